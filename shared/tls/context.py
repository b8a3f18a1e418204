"""TLS contexts for each role, and a trio TLS stream that delivers its alerts.

Theory of operation
-------------------
This is the one place TLS options are chosen:

* both roles: TLS 1.2 minimum (RFC 8996 retired 1.0/1.1), 1.3 preferred, the
  configured range applied; ``VERIFY_X509_STRICT`` so malformed certificates are
  refused as strict verifiers elsewhere would; an optional NSS key log.
* server: ``CERT_REQUIRED`` always. A server config that cannot enforce client
  authentication (no CA) is refused before any socket is opened.
* client: ``PROTOCOL_TLS_CLIENT`` (``CERT_REQUIRED`` plus hostname/IP checking),
  trusting only the configured CA, not the system store: a test tool must not
  pass because some public CA happens to vouch for the server.

OpenSSL enforces the certificate *purpose* by itself: a server verifies client
chains for "SSL client" (EKU clientAuth) and a client verifies servers for "SSL
server" (serverAuth).

Alert delivery. ``trio.SSLStream`` keeps OpenSSL's output in a memory BIO and,
when ``do_handshake`` fails, raises before sending what is in it, which is the
fatal alert OpenSSL just queued ("unknown ca", "certificate required"...). The
rejected peer then sees a bare EOF. (A known gap in trio; other TLS stacks had
the same bug, e.g. boostorg/asio#189.) :class:`TLSConnection` closes it twice:
over real sockets it uses :class:`~mtls_ref.shared.tls.socket_stream.SocketTLSStream`, where
OpenSSL writes the alert to the socket itself (and is cheaper, see ``make
bench``), then lingers so a TCP reset cannot overtake the alert; over other
streams (memory streams in tests) it hands trio a context proxy whose
``wrap_bio`` keeps the outgoing BIO (the stdlib signature, no private trio
attribute) and sends what is left in it.
"""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path
from typing import Final, cast

import trio

from mtls_ref.shared.core.config import ClientConfig, ServerConfig
from mtls_ref.shared.core.errors import CertificateError, ConfigError
from mtls_ref.shared.pki.keys import read_passphrase
from mtls_ref.shared.tls import trace
from mtls_ref.shared.tls.socket_stream import SocketTLSStream

__all__ = [
    "ALPN_HTTP",
    "ALPN_LINE",
    "TLSConnection",
    "client_context",
    "plaintext_alert",
    "server_context",
    "tls_version",
]

# How long a failed handshake may spend delivering its alert before we hang up.
ALERT_FLUSH_TIMEOUT: Final = 1.0
# ALPN: HTTP clients say http/1.1; our client says mtls-ref/1 (the line protocol).
ALPN_HTTP: Final = "http/1.1"
ALPN_LINE: Final = "mtls-ref/1"


def tls_version(name: str) -> ssl.TLSVersion:
    return {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[name]


def _common(ctx: ssl.SSLContext, tls_min: str, tls_max: str, keylog: Path | None) -> None:
    ctx.minimum_version = tls_version(tls_min)
    ctx.maximum_version = tls_version(tls_max)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    ctx.options |= ssl.OP_NO_RENEGOTIATION  # mid-connection renegotiation only widens attack surface
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    # The message hook is always installed: the client draws its handshake diagram from it,
    # the server names the presented certificate in refusals (trace.PeerCertificateCatcher).
    # It only records for connections whose task has a recorder set.
    trace.install(ctx)


def _load_chain(ctx: ssl.SSLContext, cert: Path, key: Path, passphrase_file: Path | None, role: str) -> None:
    for path, what in ((cert, "certificate"), (key, "private key")):
        if not path.is_file():
            raise ConfigError(
                f"{role} {what} {str(path)!r} not found; create the demo PKI with 'make certs' "
                f"(or 'mtls-certs demo'), or set [{role}] {'cert' if what == 'certificate' else 'key'}"
            )
    passphrase = read_passphrase(passphrase_file)
    try:
        ctx.load_cert_chain(cert, key, password=(lambda: passphrase) if passphrase else _no_prompt)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise CertificateError(
                f"{role} key {str(key)!r} does not belong to certificate {str(cert)!r}; "
                "pass the key generated with that certificate's CSR"
            ) from exc
        raise CertificateError(
            f"cannot load {role} certificate {str(cert)!r} with key {str(key)!r}: {exc.reason or exc}; "
            "both must be PEM (an encrypted key needs --passphrase-file or MTLS_KEY_PASSPHRASE)"
        ) from exc


def _no_prompt() -> bytes:
    # Without this, OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise CertificateError(
        "the private key is encrypted: give its passphrase via key_passphrase_file "
        "or the MTLS_KEY_PASSPHRASE environment variable"
    )


def _load_verify_file(ctx: ssl.SSLContext, path: Path, *, what: str, missing_fix: str) -> None:
    """Load CA certificates or CRLs (OpenSSL reads both from one PEM file)."""
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} not found; {missing_fix}")
    try:
        ctx.load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise CertificateError(f"{what} {str(path)!r} holds no usable PEM data: {exc.reason or exc}") from exc


def _load_ca(ctx: ssl.SSLContext, ca: Path, role: str) -> None:
    _load_verify_file(
        ctx,
        ca,
        what=f"{role} CA file",
        missing_fix=f"create the demo PKI with 'make certs', or set [{role}] ca",
    )


def server_context(config: ServerConfig) -> ssl.SSLContext:
    """A server context that requires and verifies client certificates."""
    if config.ca is None:
        raise ConfigError(
            "refusing to start: no [server] ca is configured, so client certificates could not be "
            "verified; set ca to the CA that issues your client certificates (e.g. certs/ca.pem)"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _common(ctx, config.tls_min, config.tls_max, config.keylog)
    ctx.verify_mode = ssl.CERT_REQUIRED
    # A client offering neither gets no ALPN (not an alert) and is sniffed by the handler.
    ctx.set_alpn_protocols([ALPN_HTTP, ALPN_LINE])
    _load_chain(ctx, config.cert, config.key, config.key_passphrase_file, "server")
    _load_ca(ctx, config.ca, "server")
    if config.crl is not None:
        _load_crl(ctx, config.crl)
    return ctx


def _load_crl(ctx: ssl.SSLContext, crl: Path) -> None:
    """Check client leaves against a CRL (the leaf issuer's; OpenSSL picks it by issuer name)."""
    _load_verify_file(
        ctx, crl, what="server CRL file", missing_fix="write one with 'mtls-certs crl', or unset [server] crl"
    )
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def client_context(config: ClientConfig, *, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A client context: verifies the server against the configured CA and checks its name.

    ``alpn``: protocols to offer; none by default, because some servers (nginx)
    answer an ALPN offer they do not know with a fatal no_application_protocol.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _common(ctx, config.tls_min, config.tls_max, config.keylog)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    _load_ca(ctx, config.ca, "client")
    if config.cert is not None:
        if config.key is None:
            raise ConfigError("client cert is set but key is not; set both [client] cert and key")
        _load_chain(ctx, config.cert, config.key, config.key_passphrase_file, "client")
    return ctx


def plaintext_alert(records: bytes) -> str | None:
    """The alert in an unencrypted alert record (TLS 1.2 handshake), else None.

    Record: type 21, version (2), length 2, then level and description (RFC 5246 §7.2).
    Under TLS 1.3 the alert is encrypted (outer type 23) and this returns None.
    """
    if len(records) >= 7 and records[0] == 21 and records[3:5] == b"\x00\x02":
        return trace.ALERT_NAMES.get(records[6], str(records[6]))
    return None


class _BioCapture:
    """Stands in for an SSLContext so we keep the outgoing BIO trio creates."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self.outgoing: ssl.MemoryBIO | None = None

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
    ) -> ssl.SSLObject:
        self.outgoing = outgoing
        return self._context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )


class TLSConnection:
    """A TLS stream that always tells a rejected peer why, and closes politely.

    Over a real socket (``trio.SocketStream``) it uses :class:`SocketTLSStream`:
    OpenSSL does the I/O, so alerts leave at once and the handshake costs the
    least CPU. Over any other stream (tests use memory streams) it uses
    ``trio.SSLStream`` and flushes the alert that stream would leave behind.
    """

    def __init__(
        self,
        transport: trio.abc.Stream,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.sent_alert: str | None = None  # the alert we sent, when we could see it (plaintext, memory BIO)
        self.handshake_done = False
        self._capture: _BioCapture | None = None
        self.stream: trio.SSLStream[trio.abc.Stream] | SocketTLSStream
        if isinstance(transport, trio.SocketStream):
            self.stream = SocketTLSStream.wrap(
                transport, context, server_side=server_side, server_hostname=server_hostname
            )
        else:
            self._capture = _BioCapture(context)
            self.stream = trio.SSLStream(
                transport,
                cast(ssl.SSLContext, self._capture),
                server_side=server_side,
                server_hostname=server_hostname,
            )

    async def handshake(self) -> None:
        """Run the handshake; on failure make sure the alert went out, then re-raise."""
        try:
            await self.stream.do_handshake()
        except trio.BrokenResourceError:
            await self.flush_alert()
            raise
        self.handshake_done = True

    async def flush_alert(self) -> None:
        """Send whatever OpenSSL left in trio's outgoing memory BIO (a fatal alert), within a bound."""
        if (
            self._capture is None
            or self._capture.outgoing is None
            or not isinstance(self.stream, trio.SSLStream)
        ):
            return  # the socket-backed stream has sent it already
        pending = self._capture.outgoing.read()
        if not pending:
            return
        self.sent_alert = plaintext_alert(pending)
        # A peer that is already gone cannot be told anything more.
        with (
            trio.move_on_after(ALERT_FLUSH_TIMEOUT),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self.stream.transport_stream.send_all(pending)

    async def aclose(self, *, goodbye_within: float) -> None:
        """close_notify after a completed handshake (bounded by ``goodbye_within`` s); otherwise just drop."""
        if self.handshake_done:
            with (
                trio.move_on_after(goodbye_within) as scope,
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await self.stream.aclose()
            if not scope.cancelled_caught:
                return
        await self.abort()

    async def abort(self) -> None:
        """Close without a TLS goodbye, lingering briefly so an alert already sent is not lost to a RST."""
        if isinstance(self.stream, SocketTLSStream):
            await self.stream.linger_close(ALERT_FLUSH_TIMEOUT)
        else:
            await trio.aclose_forcefully(self.stream.transport_stream)
