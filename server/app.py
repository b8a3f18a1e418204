"""Listen, accept, hand each connection to the handler, and shut down gracefully.

Shutdown (Ctrl-C, SIGTERM, or :meth:`Server.shutdown`): stop accepting and close
the listeners at once; give live connections ``shutdown_grace`` seconds to
finish (the handler nursery gets a deadline; HTTP/2 connections are told with
GOAWAY at once); then cancel the rest, whose handlers still send a goodbye
line and close_notify within a bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import resource
import socket
from typing import Any, Final

import trio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.shared.core.addresses import HostPort, is_loopback
from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.core.errors import ConfigError, MTLSError
from mtls_ref.shared.pki.inspect import fingerprint
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.context import read_crls, server_alpn
from mtls_ref.shared.tls.identity import AllowList

from .admission import HandshakeBudget, HandshakeSlot
from .banner import expiry_warnings, render_banner, version_range
from .engine import ServerContext, build_server_context, describe_engine, engine_traits
from .grpc_service import grpc_route
from .handler import HandlerSettings, handle_connection
from .log import EventLog
from .metrics import Credentials, ServerMetrics
from .record import Code, ConnectionRecord, ConnectionReport, Outcome
from .reload import FileWatch
from .settings import forward_target, status_address
from .status import serve_status
from .views import describe_crls

__all__ = ["Server"]

# accept() errors that mean "out of resources right now", not "the listener is broken";
# trio's own serve_listeners treats the same set this way.
_TRANSIENT_ACCEPT_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_BACKOFF: Final = 0.1  # seconds to let the resource pressure ease before accepting again


class Server:
    """The mTLS server. Everything that can be wrong with the config fails here, before binding."""

    def __init__(self, config: ServerConfig, *, log: EventLog | None = None) -> None:
        self.config = config
        self.log = log or EventLog(config.log_format)
        self.status_address = status_address(config)
        self.allow = AllowList.parse(config.allow)
        self.context: ServerContext = build_server_context(config)
        self.trust_anchors = _trust_anchors(config)
        self.credentials = _credentials(config, self.trust_anchors)
        self.metrics = ServerMetrics(active=lambda: self.active, credentials=lambda: self.credentials)
        # Every finished connection, from the handler or refused at accept: one log line, one count.
        self.report = ConnectionReport(self.log, self.metrics.record)
        self.files = FileWatch([config.cert, config.key, config.ca, config.crl])
        self.settings = HandlerSettings(
            protocol_sniff=config.protocol_sniff,
            ca_subject=_ca_subject(self.ca_certificate),
            trusted=self.trust_anchors,
            handshake_timeout=config.handshake_timeout,
            idle_timeout=config.idle_timeout,
            request_timeout=config.request_timeout,
            shutdown_grace=config.shutdown_grace,
            max_line=config.max_line,
            allow=self.allow,
            trace=config.trace,
            record_handshakes=config.record_handshakes or config.trace,
            crl=describe_crls(self.credentials.crls),
            forward=forward_target(config),
            h2_app=grpc_route,  # gRPC calls (content-type application/grpc) on HTTP/2
        )
        self.active = 0
        self.status_addresses: list[Any] = []
        self.budget = HandshakeBudget(
            total=config.max_handshakes,
            per_source=config.max_handshakes_per_source,
            max_established=config.max_connections,
            handshake_timeout=config.handshake_timeout,
        )
        self._accepting = trio.CancelScope()

    def __repr__(self) -> str:
        return f"<Server {HostPort(self.config.host, self.config.port)} active={self.active}>"

    @property
    def ca_certificate(self) -> x509.Certificate | None:
        """The first certificate of the CA file: the CA the banner names."""
        return self.trust_anchors[0] if self.trust_anchors else None

    @property
    def draining(self) -> bool:
        return self._accepting.cancel_called

    def shutdown(self) -> None:
        """Stop accepting; live connections get ``shutdown_grace`` seconds."""
        self._accepting.cancel()

    def reload(self, why: str = "requested") -> bool:
        """Re-read cert, key, CA and CRL into a new context for new connections.

        Live connections keep the context they were accepted with; HTTP/2 ones get GOAWAY, so their
        clients reconnect under the new one. A broken or mismatched file leaves the old context
        serving, and the log says why.
        """
        try:
            context = build_server_context(self.config)
            anchors = _trust_anchors(self.config)
            credentials = _credentials(self.config, anchors)
        except MTLSError as exc:
            self.log.event(
                "reload-failed", why=why, error=str(exc), action="still serving the previous context"
            )
            return False
        self.context, self.trust_anchors, self.credentials = context, anchors, credentials
        before = self.settings.reloaded
        self.settings = dataclasses.replace(
            self.settings,
            ca_subject=_ca_subject(self.ca_certificate),
            trusted=anchors,
            crl=describe_crls(credentials.crls),
            reloaded=trio.Event(),
        )
        before.set()  # HTTP/2 connections accepted before it say GOAWAY (the CA or CRL may have changed)
        self.log.event(
            "reloaded",
            why=why,
            client_ca=self.settings.ca_subject,
            trust_anchors=_describe_anchors(anchors),
            server_cert=fingerprint(credentials.server_cert.public_bytes(Encoding.DER)),
            crl=str(self.config.crl or "off"),
        )
        return True

    async def _watch_files(self) -> None:
        """Poll the credential files' metadata; reload when they change."""
        while True:
            await trio.sleep(self.config.reload_interval)
            if self.files.changed():
                self.reload("files changed")

    async def listen(self, *, reuse_port: bool = False) -> list[trio.SocketListener]:
        """Bind the configured address; a busy port is a clear error, not a traceback.

        ``reuse_port``: bind with SO_REUSEPORT so several worker processes share the
        port and the kernel spreads connections over them.
        """
        try:
            if reuse_port:
                return [await _reuse_port_listener(self.config.host, self.config.port)]
            return await trio.open_tcp_listeners(self.config.port, host=self.config.host)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {HostPort(self.config.host, self.config.port)}: {exc.strerror or exc}; "
                "pick another --port (or [server] port), or stop the program using it"
            ) from exc

    async def serve(
        self,
        listeners: list[trio.SocketListener] | None = None,
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until :meth:`shutdown`; ``task_status.started`` gets the bound (host, port) list."""
        if listeners is None:
            listeners = await self.listen()
        try:
            status_listeners = await self._listen_status()
        except ConfigError:
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        addresses = [listener.socket.getsockname()[:2] for listener in listeners]
        self.status_addresses = [s.socket.getsockname()[:2] for s in status_listeners]
        self._log_start(addresses)
        task_status.started(addresses)
        async with trio.open_nursery() as handlers:
            try:
                with self._accepting:
                    async with trio.open_nursery() as acceptors:
                        for listener in listeners:
                            acceptors.start_soon(self._accept_loop, listener, handlers)
                        if self.config.reload_interval > 0:
                            acceptors.start_soon(self._watch_files)
                        if status_listeners:
                            acceptors.start_soon(serve_status, status_listeners, self.metrics)
            finally:  # on shutdown, and on cancellation or error too: never leak the listening sockets
                for listener in (*listeners, *status_listeners):
                    await trio.aclose_forcefully(listener)
            self.log.event("shutdown", draining=self.active, grace_s=self.config.shutdown_grace)
            self.settings.stopping.set()  # HTTP/2 connections send GOAWAY and finish their streams
            handlers.cancel_scope.deadline = trio.current_time() + self.config.shutdown_grace
        self.log.event("stopped")

    async def _listen_status(self) -> list[trio.SocketListener]:
        """The status port's listeners, or none when ``status`` is empty."""
        if self.status_address is None:
            return []
        host, port = self.status_address
        try:
            return await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for the status port on {self.config.status}: {exc.strerror or exc}; "
                "pick another [server] status, or stop the program using it"
            ) from exc

    def posture(self, addresses: list[Any]) -> dict[str, Any]:
        """The security posture the server starts with: printed as a banner and logged."""
        ca = self.ca_certificate
        return {
            "addresses": [_host_port(h, p) for h, p in addresses],
            "tls": version_range(self.config.tls_min, self.config.tls_max),
            "tls_engine": describe_engine(self.config.tls_engine),
            "client_cert": "required",
            "client_ca": ca.subject.rfc4514_string() if ca else None,
            "client_ca_sha256": fingerprint(ca.public_bytes(Encoding.DER)) if ca else None,
            "crl": str(self.config.crl) if self.config.crl else "off",
            "allow": list(self.allow.describe()) or "any verified client",
            "alpn": list(server_alpn(self.config)),
            "status": [f"http://{_host_port(h, p)}/metrics" for h, p in self.status_addresses] or None,
            # A warning, not a setting: nothing on the status port asks who is asking.
            "status_warning": (
                f"the status port {self.config.status} is open to the network (status_allow_remote): "
                "/healthz and /metrics answer anyone who reaches it, without authentication"
                if self.status_address is not None and not is_loopback(self.status_address[0])
                else None
            ),
            "forward": (
                f"{self.settings.forward} (identity: {self.settings.forward.identity})"
                if self.settings.forward
                else None
            ),
            "ca_names_advertised": engine_traits(self.config.tls_engine).sends_ca_names,
            "trace": self.config.trace,
            "record_handshakes": self.config.record_handshakes or self.config.trace,
            # Warnings, not settings: the server starts with expired credentials (/healthz says 503),
            # so the banner names them, and those a month from their end, where someone is looking.
            "expiry_warnings": expiry_warnings(self.credentials, dt.datetime.now(dt.UTC)),
            # A warning, not a setting: session secrets on disk decrypt every captured connection.
            "keylog_warning": (
                f"writing TLS session secrets to {self.config.keylog} (0600): anyone holding that file "
                "can decrypt captured traffic; for debugging only"
                if self.config.keylog is not None
                else None
            ),
        }

    def _log_start(self, addresses: list[Any]) -> None:
        posture = self.posture(addresses)
        # Each connection is a file descriptor; a low soft limit would turn load into accept errors.
        wanted = self.config.max_connections + self.config.max_handshakes + 64
        posture["fd_limit"] = raise_fd_limit(wanted)[1]
        posture["workers"] = self.config.workers
        if self.log.fmt == "text":
            self.log.raw(render_banner(posture))
        self.log.event("listening", **posture)

    async def _accept_loop(self, listener: trio.SocketListener, handlers: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _TRANSIENT_ACCEPT_ERRORS:
                    raise
                self.log.event("accept-error", error=exc.strerror, action=f"retrying in {_ACCEPT_BACKOFF}s")
                await trio.sleep(_ACCEPT_BACKOFF)
                continue
            source, port, peer = _peer_name(stream)
            slot = self.budget.admit(source)
            if slot is None:
                refused = ConnectionRecord(peer=peer)
                refused.decide(
                    Outcome.REJECTED,
                    Code.PER_SOURCE_LIMIT,
                    f"{source} already has {self.config.max_handshakes_per_source} connections in "
                    "their handshake (max_handshakes_per_source)",
                )
                self.report(refused)
                await trio.aclose_forcefully(stream)
                continue
            self.active += 1
            addresses = None
            if self.settings.forward is not None:  # the PROXY v2 header names both ends
                addresses = ((source, port), tuple(stream.socket.getsockname()[:2]))
            handlers.start_soon(self._handle, stream, peer, slot, addresses)

    async def _handle(
        self, stream: trio.SocketStream, peer: str, slot: HandshakeSlot, addresses: Any
    ) -> None:
        try:
            await handle_connection(
                stream,
                context=self.context,
                settings=self.settings,
                log=self.log,
                peer=peer,
                slot=slot,
                addresses=addresses,
                report=self.report,
            )
        except Exception as exc:  # noqa: BLE001 - one connection's bug must not stop the server
            self.log.event("connection-error", peer=peer, error=f"{type(exc).__name__}: {exc}")
        finally:
            self.active -= 1


async def _reuse_port_listener(host: str, port: int) -> trio.SocketListener:
    family, kind, proto, _, address = (await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = trio.socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


def raise_fd_limit(wanted: int) -> tuple[int, str]:
    """Raise the soft file-descriptor limit toward ``wanted`` (each connection needs one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft, f"{soft} (enough for max_connections)"
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
        return new, f"{new}: raised to the hard limit, below max_connections; raise it with ulimit -Hn"
    return new, f"{new} (raised from {soft})"


def _credentials(config: ServerConfig, anchors: tuple[x509.Certificate, ...]) -> Credentials:
    """What the status port's readiness and expiry figures look at (loaded with the context)."""
    return Credentials(
        server_cert=load_certificates(config.cert)[0],
        trust_anchors=anchors,
        crls=tuple(read_crls(config.crl)) if config.crl is not None else (),
    )


def _trust_anchors(config: ServerConfig) -> tuple[x509.Certificate, ...]:
    """Every certificate in the CA file: exactly what the TLS context trusts (the CRL file adds none)."""
    return tuple(load_certificates(config.ca)) if config.ca else ()


def _describe_anchors(anchors: tuple[x509.Certificate, ...]) -> list[str]:
    return [
        f"{ca.subject.rfc4514_string()} sha256={fingerprint(ca.public_bytes(Encoding.DER))}" for ca in anchors
    ]


def _ca_subject(ca: x509.Certificate | None) -> str:
    return ca.subject.rfc4514_string() if ca is not None else "?"


def _host_port(host: str, port: int) -> str:  # socket addresses, as HostPort prints them
    return str(HostPort(host, port))


def _peer_name(stream: trio.SocketStream) -> tuple[str, int, str]:
    """(source address, source port, printable peer ``host:port``)."""
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "unknown", 0, "unknown"
    return host, port, _host_port(host, port)
