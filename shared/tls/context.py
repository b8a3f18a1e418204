"""TLS contexts for each role on Python's ssl module, and the file checks both engines share.

Theory of operation
-------------------
This is where the TLS options are chosen (``openssl_context`` builds the same
policy for the server's openssl engine, from the same file checks):

* both roles: TLS 1.2 minimum (RFC 8996 retired 1.0/1.1), 1.3 preferred, the
  configured range applied; TLS 1.2 suites ECDHE + AEAD only;
  ``VERIFY_X509_STRICT`` so malformed certificates are refused as strict
  verifiers elsewhere would; an optional NSS key log, checked by
  :mod:`.keylog` (0600, ours, no link) before CPython opens it.
* server: ``CERT_REQUIRED`` always. A server config that cannot enforce client
  authentication (no CA) is refused before any socket is opened.
* client: ``PROTOCOL_TLS_CLIENT`` (``CERT_REQUIRED`` plus hostname/IP checking
  against subjectAltName only, never the common name),
  trusting only the configured CA, not the system store: a test tool must not
  pass because some public CA happens to vouch for the server.

OpenSSL enforces the certificate *purpose* by itself: a server verifies client
chains for "SSL client" (EKU clientAuth) and a client verifies servers for "SSL
server" (serverAuth).

Connections over these contexts are :class:`~mtls_ref.shared.tls.connection.TLSConnection`.
"""

from __future__ import annotations

import dataclasses
import ssl
import tempfile
from pathlib import Path
from typing import Final

from cryptography import x509

from mtls_ref.shared.core.config import ClientConfig, ServerConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.keys import read_passphrase
from mtls_ref.shared.pki.revocation import load_crls, read_crl_file
from mtls_ref.shared.tls import trace
from mtls_ref.shared.tls.keylog import set_stdlib_keylog

__all__ = [
    "ALPN_H2",
    "ALPN_HTTP",
    "ALPN_LINE",
    "TLS12_CIPHERS",
    "client_context",
    "key_mismatch",
    "read_crls",
    "require_ca_file",
    "require_credential_files",
    "require_server_ca",
    "server_alpn",
    "server_context",
    "tls_version",
]

# ALPN: HTTP clients say h2 and/or http/1.1; our client says mtls-ref/1 (the line protocol).
ALPN_H2: Final = "h2"
ALPN_HTTP: Final = "http/1.1"
ALPN_LINE: Final = "mtls-ref/1"
# TLS 1.2 suites: forward-secret key exchange (ECDHE) and AEAD ciphers only, both engines.
TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


def tls_version(name: str) -> ssl.TLSVersion:
    return {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[name]


def _common(ctx: ssl.SSLContext, tls_min: str, tls_max: str, keylog: Path | None) -> None:
    ctx.minimum_version = tls_version(tls_min)
    ctx.maximum_version = tls_version(tls_max)
    ctx.set_ciphers(TLS12_CIPHERS)  # TLS 1.3 suites are all AEAD and stay OpenSSL's defaults
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # mid-connection renegotiation only widens attack surface
    if keylog is not None:
        set_stdlib_keylog(ctx, keylog)
    # The message hook is always installed: the client draws its handshake diagram from it,
    # the server names the presented certificate in refusals (trace.PeerCertificateCatcher).
    # It only records for connections whose task has a recorder set.
    trace.install(ctx)


def _demo_files() -> frozenset[tuple[str, ...]]:
    """The default cert, key and CA paths (certs/server-chain.pem, ...): the files `make certs` writes."""
    fields = (*dataclasses.fields(ServerConfig), *dataclasses.fields(ClientConfig))
    return frozenset(
        f.default.parts for f in fields if f.name in ("cert", "key", "ca") and isinstance(f.default, Path)
    )


_DEMO_FILES: Final = _demo_files()


def _missing(path: Path, description: str, role: str, setting: str) -> ConfigError:
    """A missing file, with the fix that fits: one of the demo PKI's default paths (anchored at the
    config file's folder or the working directory) is made by 'make certs'; any other path was
    given on purpose, so the likely mistake is in the path itself."""
    if any(path.parts[-len(parts) :] == parts for parts in _DEMO_FILES):
        return ConfigError(
            f"{role} {description} {str(path)!r} not found; create the demo PKI with 'make certs' "
            f"(or 'mtls-certs demo'), or set [{role}] {setting}"
        )
    problem = "is not a file" if path.exists() else "no such file"
    return ConfigError(
        f"{role} {description} {str(path)!r}: {problem}: check the path (--{setting} or [{role}] {setting})"
    )


def require_credential_files(cert: Path, key: Path, role: str) -> None:
    """A missing certificate or key file is named, with the way to create it or to fix its path."""
    for path, what, setting in ((cert, "certificate", "cert"), (key, "private key", "key")):
        if not path.is_file():
            raise _missing(path, what, role, setting)


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, passphrase_file: Path | None, role: str) -> None:
    require_credential_files(cert, key, role)
    passphrase = read_passphrase(passphrase_file)
    try:
        ctx.load_cert_chain(cert, key, password=(lambda: passphrase) if passphrase else _no_prompt)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise key_mismatch(cert, key, role) from exc
        raise CertificateError(
            f"cannot load {role} certificate {str(cert)!r} with key {str(key)!r}: {exc.reason or exc}; "
            "both must be PEM (an encrypted key needs --passphrase-file or MTLS_KEY_PASSPHRASE)"
        ) from exc


def key_mismatch(cert: Path, key: Path, role: str) -> CertificateError:
    return CertificateError(
        f"{role} key {str(key)!r} does not belong to certificate {str(cert)!r}; "
        "pass the key generated with that certificate's CSR"
    )


def _no_prompt() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise CertificateError(
        "the private key is encrypted: give its passphrase via key_passphrase_file "
        "or the MTLS_KEY_PASSPHRASE environment variable"
    )


def require_ca_file(ca: Path, role: str) -> None:
    if not ca.is_file():
        raise _missing(ca, "CA file", role, "ca")


def _load_ca(ctx: ssl.SSLContext, ca: Path, role: str) -> None:
    require_ca_file(ca, role)
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{role} CA file {str(ca)!r} holds no usable PEM certificate: {exc.reason or exc}"
        ) from exc


def require_server_ca(config: ServerConfig) -> Path:
    """The CA that client certificates must chain to; without one the server must not start."""
    if config.ca is None:
        raise ConfigError(
            "refusing to start: no [server] ca is configured, so client certificates could not be "
            "verified; set ca to the CA that issues your client certificates (e.g. certs/ca.pem)"
        )
    return config.ca


def server_context(config: ServerConfig) -> ssl.SSLContext:
    """A stdlib server context that requires and verifies client certificates."""
    ca = require_server_ca(config)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, config.tls_min, config.tls_max, config.keylog)
    ctx.verify_mode = ssl.CERT_REQUIRED
    # A client offering none of these gets no ALPN (not an alert) and is sniffed by the handler.
    ctx.set_alpn_protocols(list(server_alpn(config)))
    _load_chain(ctx, config.cert, config.key, config.key_passphrase_file, "server")
    _load_ca(ctx, ca, "server")
    if config.crl is not None:
        _load_crl(ctx, config.crl, "server")
    return ctx


def server_alpn(config: ServerConfig) -> tuple[str, ...]:
    """The protocols the server offers, in its order of preference (the server chooses, as nginx
    does: a client offering h2 and http/1.1 gets h2). Forward mode stays HTTP/1.1: the identity
    headers it adds are HTTP/1.1 to the backend, and its relay speaks nothing else."""
    if config.forward:
        return ALPN_HTTP, ALPN_LINE
    return ALPN_H2, ALPN_HTTP, ALPN_LINE


def _load_crl(ctx: ssl.SSLContext, crl: Path, role: str) -> None:
    """Check the peer's leaf against the CRLs (the leaf issuer's; OpenSSL picks it by issuer name).

    OpenSSL reads the checked copy of the file (see ``read_crl_file``: a
    certificate in a CRL file would become a trust anchor), never the path again.
    """
    pem, _ = read_crl_file(crl, role=role)
    with tempfile.TemporaryDirectory(prefix="mtls-crl-") as folder:
        checked = Path(folder) / "crl.pem"
        checked.write_bytes(pem)
        ctx.load_verify_locations(cafile=str(checked))
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def read_crls(path: Path) -> list[x509.CertificateRevocationList]:
    """The CRLs of the server's CRL file ([server] crl), checked as the server loads it."""
    return load_crls(path, role="server")


def client_context(config: ClientConfig, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context: verifies the server against the configured CA and checks its name.

    ``alpn``: protocols to offer; none by default, because some servers (nginx)
    answer an ALPN offer they do not know with a fatal no_application_protocol.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(ctx, config.tls_min, config.tls_max, config.keylog)
    # The name must be in subjectAltName (RFC 6125 §6.4.4, and what browsers and Go do):
    # a certificate with only CN=localhost does not pass for localhost.
    ctx.hostname_checks_common_name = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    _load_ca(ctx, config.ca, "client")
    if config.crl is not None:
        _load_crl(ctx, config.crl, "client")  # the server's leaf, checked against its issuer's CRL
    if config.cert is not None:
        if config.key is None:
            raise ConfigError("client cert is set but key is not; set both [client] cert and key")
        _load_chain(ctx, config.cert, config.key, config.key_passphrase_file, "client")
    return ctx
