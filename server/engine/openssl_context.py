"""The server's TLS context on pyOpenSSL, driving the OpenSSL that the cryptography wheel ships.

Theory of operation
-------------------
Python's ``ssl`` is bound to the system's OpenSSL (3.0 on Debian 12); the
cryptography wheel carries a newer one (4.0), which pyOpenSSL drives. Most of
a server's CPU per connection is the handshake inside that library, and the
newer one does a full P-256 mTLS handshake in about half the time (docs/performance.md,
"Performance"). This module builds the same policy as
:func:`~mtls_ref.shared.tls.context.server_context` on it:

* TLS 1.2 minimum, the configured range; TLS 1.2 suites ECDHE + AEAD only;
* a client certificate required (``VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT``),
  chains verified with ``X509_STRICT``; with a CRL file, leaves checked against
  its CRLs (``CRL_CHECK``), which are added one by one so the file can never
  add a trust anchor;
* the acceptable CA names (``certificate_authorities``, RFC 8446 §4.2.4) sent in
  CertificateRequest, from the CA file: browsers and clients that pick a
  certificate by issuer get their hint, which Python's ``ssl`` cannot give;
* a session id context, so TLS 1.3 and TLS 1.2 session tickets resume
  (OpenSSL refuses to resume a client-authenticated session without one); no
  server-side session cache;
* ALPN chosen by the server (``h2``, ``http/1.1`` or ``mtls-ref/1``, in that order; ``h2``
  not in forward mode; a client offering
  only other protocols gets none, not an alert, and is sniffed by the handler);
* the NSS key log through pyOpenSSL's keylog callback, into a checked 0600 file
  kept open (:class:`~mtls_ref.shared.tls.keylog.KeyLogFile`);
* OpenSSL's message callback for the trace, only with ``trace`` or ``record_handshakes``
  (otherwise its info callback, for the alerts written), and a C-level verify callback
  that keeps a refused peer's chain (:mod:`.openssl_lowlevel`);
* ``MODE_RELEASE_BUFFERS``: an idle connection gives its 34 KiB of record
  buffers back, which keeps a server holding thousands of connections small.

Everything that can be wrong with the files fails here, before a socket is
opened and on reload, with the same words as the stdlib engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from OpenSSL import SSL, crypto

from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.keys import load_certificates, load_private_key, read_passphrase
from mtls_ref.shared.tls.context import (
    TLS12_CIPHERS,
    key_mismatch,
    read_crls,
    require_ca_file,
    require_credential_files,
    require_server_ca,
    server_alpn,
)
from mtls_ref.shared.tls.keylog import KeyLogFile

from . import openssl_lowlevel

__all__ = ["library_versions", "openssl_server_context"]

_VERSIONS: Final = {"1.2": SSL.TLS1_2_VERSION, "1.3": SSL.TLS1_3_VERSION}
# Tickets and session ids are only valid for contexts with this id (one per server).
SESSION_ID_CONTEXT: Final = b"mtls-ref"


def library_versions() -> str:
    """``pyOpenSSL 26.4.0, OpenSSL 4.0.3``: what the openssl engine runs on."""
    import OpenSSL  # noqa: PLC0415 - only for its version string

    openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode().split()[1]
    return f"pyOpenSSL {OpenSSL.__version__}, OpenSSL {openssl}"


def openssl_server_context(config: ServerConfig) -> SSL.Context:
    """A pyOpenSSL server context that requires and verifies client certificates."""
    if not openssl_lowlevel.available():
        raise ConfigError(
            "the openssl TLS engine needs OpenSSL calls that this cryptography release no longer exposes "
            f"({', '.join(openssl_lowlevel.missing())}); set [server] tls_engine = \"stdlib\" "
            "(or --tls-engine stdlib), or install a cryptography release that has them"
        )
    ca = require_server_ca(config)
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(_VERSIONS[config.tls_min])
    ctx.set_max_proto_version(_VERSIONS[config.tls_max])
    ctx.set_cipher_list(TLS12_CIPHERS.encode())
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    ctx.set_session_id(SESSION_ID_CONTEXT)
    # Resumption by tickets only (TLS 1.3 and 1.2; the ticket holds the session, encrypted
    # to this context), as nginx does by default: no server-side cache to fill, lock and
    # keep ~ a session's peer chain in memory for every client seen.
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    _load_chain(ctx, config)
    _load_trust(ctx, ca, config.crl)
    openssl_lowlevel.install_alpn_selector(ctx, tuple(p.encode() for p in server_alpn(config)))
    if config.keylog is not None:
        _log_keys_to(ctx, KeyLogFile(config.keylog))
    # Every message, for the diagram (logged, or kept for the browser page); costs ~10% of a
    # handshake, so only when asked. Otherwise the info callback, for the alerts written, so the
    # log names the alert on the wire (the message callback reports those too).
    if config.trace or config.record_handshakes:
        openssl_lowlevel.install_message_callback(ctx)
    else:
        openssl_lowlevel.install_alert_callback(ctx)
    return ctx


def _load_chain(ctx: SSL.Context, config: ServerConfig) -> None:
    require_credential_files(config.cert, config.key, "server")
    # Loaded with cryptography, so an encrypted key never makes OpenSSL prompt on the terminal
    # and every mistake gets the same message as on the stdlib engine.
    key = load_private_key(config.key, read_passphrase(config.key_passphrase_file))
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise CertificateError(f"server key {str(config.key)!r}: {type(key).__name__} keys are not supported")
    chain = load_certificates(config.cert)
    ctx.use_certificate(chain[0])
    for extra in chain[1:]:
        ctx.add_extra_chain_cert(extra)
    try:
        ctx.use_privatekey(key)  # checks the key against the certificate
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise key_mismatch(config.cert, config.key, "server") from exc


def _load_trust(ctx: SSL.Context, ca: Path, crl: Path | None) -> None:
    require_ca_file(ca, "server")
    try:
        ctx.load_verify_locations(str(ca).encode())
        ctx.load_client_ca(str(ca).encode())  # the CA names sent in CertificateRequest
    except SSL.Error as exc:
        raise CertificateError(f"server CA file {str(ca)!r} holds no usable PEM certificate: {exc}") from exc
    store = ctx.get_cert_store()
    if store is None:  # cannot happen for a new context; refuse rather than run unverified
        raise CertificateError("OpenSSL gave no certificate store for the server context")
    flags = crypto.X509StoreFlags.X509_STRICT
    if crl is not None:
        for revocations in read_crls(crl):
            store.add_crl(revocations)
        flags |= crypto.X509StoreFlags.CRL_CHECK
    store.set_flags(flags)
    openssl_lowlevel.install_verify_callback(ctx, SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)


def _log_keys_to(ctx: SSL.Context, keylog: KeyLogFile) -> None:
    # The callback holds the open file, so it lives (and stays open) as long as this context.
    def write(connection: SSL.Connection, line: bytes) -> None:
        keylog.write(line)

    ctx.set_keylog_callback(write)
