"""One real server per bad-server row: ours, with the row's credential and, where needed, a changed context.

Most rows are :class:`~mtls_ref.server.app.Server` with a per-row
:class:`ServerConfig` (the bad credential, which CA it trusts, the TLS range).
What no config can say is done to the server's pyOpenSSL context after it is
built and before it serves (a context cannot change once it made a connection):

* weak credentials (SHA-1, RSA-1024): OpenSSL 4's default security level
  refuses to load an RSA-1024 key, so the server is built with a good
  credential of the same key type (OpenSSL keeps one certificate per key type,
  and would serve a leftover ECDSA one instead), lowered to security level 0
  for this row only, and given the weak one; a refusal even then makes the row
  *skipped*, saying why;
* TLS 1.0/1.1 only: versions and ciphers for them, at security level 0, and only
  after an in-memory handshake showed this OpenSSL still speaks them;
* late rejection: the CertificateRequest names the client's CA (``load_client_ca``)
  while the trust store holds another, so TLS 1.3 refuses the certificate after
  the client's Finished;
* no ALPN overlap: the ALPN callback refuses every offer with the fatal alert.

The no-certificate-request row is :class:`.anonymous.AnonymousServer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL

from mtls_ref.server.app import Server
from mtls_ref.shared.badservers import BadServerRow
from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.pki.badset import Manifest
from mtls_ref.shared.pki.keys import load_certificates, load_private_key
from mtls_ref.shared.tls.context import TLS12_CIPHERS

from .anonymous import AnonymousServer
from .recorder import RowLog, RowRecorder

__all__ = ["HANDSHAKE_TIMEOUT", "RowServer", "Unavailable", "build_row_server"]

# A client under test gets this long for its handshake, and then between requests.
HANDSHAKE_TIMEOUT: Final = 10.0
IDLE_TIMEOUT: Final = 10.0
SHUTDOWN_GRACE: Final = 1.0
# Security level 0 allows what levels 1-2 refuse: SHA-1, RSA-1024, TLS 1.0/1.1
# (SSL_CTX_set_security_level(3)).
WEAK: Final = "@SECLEVEL=0"


class RowServer(Protocol):
    async def serve(self, *, task_status: Any = ...) -> None: ...

    def shutdown(self) -> None: ...


class Unavailable(Exception):
    """This OpenSSL cannot serve the row; the message says why (the row is reported as skipped)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    trust_other_ca: bool = False  # trust (and name) the CA nobody's client certificate comes from
    tls: tuple[str, str] = ("1.2", "1.3")
    weak_credential: bool = False
    base: str = "server"  # the credential the server is built with, before a weak one replaces it
    legacy_versions: bool = False
    name_client_ca: bool = False  # CertificateRequest names the set's CA anyway
    refuse_alpn: bool = False
    anonymous: bool = False


_PLANS: Final = {
    "sha1-signature": _Plan(weak_credential=True),
    "rsa-1024": _Plan(weak_credential=True, base="server-rsa2048"),
    "tls-1.0-1.1": _Plan(legacy_versions=True),
    "no-alpn-overlap": _Plan(refuse_alpn=True),
    "late-rejection": _Plan(trust_other_ca=True, tls=("1.3", "1.3"), name_client_ca=True),
    "unknown-ca-names": _Plan(trust_other_ca=True),
    "no-cert-request": _Plan(anonymous=True),
}


def build_row_server(
    row: BadServerRow, manifest: Manifest, *, host: str, port: int, recorder: RowRecorder
) -> RowServer:
    """The row's server, ready to serve; :class:`Unavailable` when this OpenSSL cannot be it."""
    plan = _PLANS.get(row.name, _Plan())
    config = _config(row, plan, manifest, host=host, port=port)
    if plan.anonymous:
        anonymous = AnonymousServer(config, recorder)
        recorder.install(anonymous.context)
        return anonymous
    server = Server(config, log=RowLog(recorder))
    context = server.context
    if not isinstance(context, SSL.Context):  # tls_engine is openssl above; this cannot happen
        raise TypeError(f"expected a pyOpenSSL context, got {type(context).__name__}")
    if plan.weak_credential:
        _serve_weak(context, *_credential(manifest, row.credential))
    if plan.legacy_versions:
        _speak_legacy_tls(context)
    if plan.name_client_ca:
        context.load_client_ca(str(manifest.path(manifest.ca)).encode())
    recorder.install(context, refuse_alpn=plan.refuse_alpn)
    return server


def _credential(manifest: Manifest, name: str) -> tuple[Path, Path]:
    if name == "server":
        return manifest.path(manifest.server_cert), manifest.path(manifest.server_key)
    case = manifest.case(name)
    if case.cert is None or case.key is None:
        raise KeyError(f"the bad set's case {name!r} has no certificate and key")
    return manifest.path(case.cert), manifest.path(case.key)


def _config(row: BadServerRow, plan: _Plan, manifest: Manifest, *, host: str, port: int) -> ServerConfig:
    cert, key = _credential(manifest, plan.base if plan.weak_credential else row.credential)
    return ServerConfig(
        host=host,
        port=port,
        cert=cert,
        key=key,
        ca=manifest.path(manifest.other_ca if plan.trust_other_ca else manifest.ca),
        tls_min=plan.tls[0],
        tls_max=plan.tls[1],
        tls_engine="openssl",
        reload_interval=0,  # a reload would rebuild the context without the row's changes
        log_format="json",
        handshake_timeout=HANDSHAKE_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        request_timeout=IDLE_TIMEOUT,
        shutdown_grace=SHUTDOWN_GRACE,
    )


def _serve_weak(context: SSL.Context, cert: Path, key: Path) -> None:
    """Lower this row's context to security level 0 and give it the weak credential."""
    try:
        context.set_cipher_list(f"{TLS12_CIPHERS}:{WEAK}".encode())
        context.use_certificate(load_certificates(cert)[0])
        private_key = load_private_key(key)
        if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise Unavailable(f"{key.name} is a {type(private_key).__name__}; the weak rows use RSA or ECDSA")
        context.use_privatekey(private_key)
        context.check_privatekey()
    except SSL.Error as exc:
        raise Unavailable(
            f"{_openssl()} refuses to serve {cert.name} even at security level 0: {exc}"
        ) from exc


def _speak_legacy_tls(context: SSL.Context) -> None:
    """TLS 1.0 and 1.1 only, if this OpenSSL still speaks them (checked by a handshake in memory)."""
    problem = _legacy_tls_problem()
    if problem is not None:
        raise Unavailable(problem)
    context.set_min_proto_version(SSL.TLS1_VERSION)
    context.set_max_proto_version(SSL.TLS1_1_VERSION)
    context.set_cipher_list(f"DEFAULT:{WEAK}".encode())  # TLS 1.0/1.1 have no AEAD suites


def _legacy_tls_problem() -> str | None:
    """None when two in-memory peers of this OpenSSL agree on TLS 1.0; else why not.

    The server side uses a throwaway key and no certificate: an anonymous suite
    (aNULL) is enough to show whether the version is still compiled in and allowed.
    """
    contexts = []
    for _ in ("client", "server"):
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_VERSION)
        context.set_max_proto_version(SSL.TLS1_VERSION)
        context.set_cipher_list(f"aNULL:{WEAK}".encode())
        contexts.append(context)
    client, server = SSL.Connection(contexts[0], None), SSL.Connection(contexts[1], None)
    client.set_connect_state()
    server.set_accept_state()
    try:
        for _ in range(10):  # a TLS 1.0 handshake is two round trips; ten rounds is plenty
            done = 0
            for one, other in ((client, server), (server, client)):
                try:
                    one.do_handshake()
                    done += 1
                except SSL.WantReadError:
                    pass
                _pump(one, other)
            if done == 2:
                version = client.get_protocol_version_name()
                return None if version == "TLSv1" else f"{_openssl()} negotiated {version}, not TLS 1.0"
    except SSL.Error as exc:
        return f"{_openssl()} no longer speaks TLS 1.0/1.1 ({exc})"
    return f"{_openssl()} did not complete a TLS 1.0 handshake with itself"


def _pump(source: SSL.Connection, sink: SSL.Connection) -> None:
    """Move what ``source`` wrote into ``sink``'s incoming memory BIO."""
    while True:
        try:
            data = source.bio_read(65536)
        except SSL.WantReadError:
            return
        sink.bio_write(data)


def _openssl() -> str:
    return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
