"""What the connection handler is told: the per-connection settings, and the addresses read from config."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio
from cryptography import x509

from mtls_ref.shared.core.addresses import HostPort, is_loopback
from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.tls.identity import AllowList

from .forward import ForwardTarget
from .h2_app import App

__all__ = ["HandlerSettings", "forward_target", "status_address"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerSettings:
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0  # also: a reply the peer does not read within this drops it
    request_timeout: float = 10.0  # a whole request line (or HTTP head) once it has started
    max_line: int = 4096
    allow: AllowList = field(default_factory=AllowList)
    trace: bool = False  # log each connection's handshake diagram
    record_handshakes: bool = False  # keep each connection's messages for the browser page
    crl: tuple[str, ...] = ()  # the CRLs client leaves are checked against (views.describe_crls)
    protocol_sniff: float = 0.3
    ca_subject: str = "the configured CA"
    trusted: tuple[x509.Certificate, ...] = ()  # the CA file's certificates, to explain refusals
    forward: ForwardTarget | None = None  # forward mode: relay to this backend instead of answering
    # Asked first for each HTTP/2 request, refused clients' too (gRPC plugs in here); None: routes only.
    h2_app: App | None = field(default=None, compare=False, repr=False)
    # Set when the server starts shutting down (kept across reloads): HTTP/2 sends GOAWAY then.
    stopping: trio.Event = field(default_factory=trio.Event, compare=False, repr=False)
    # Set when the credentials are reloaded (a new one for the settings after): HTTP/2 connections
    # accepted before send GOAWAY, so their clients reconnect under the new CA and CRL.
    reloaded: trio.Event = field(default_factory=trio.Event, compare=False, repr=False)
    shutdown_grace: float = 5.0  # what HTTP/2 streams in flight get after a reload's GOAWAY


def forward_target(config: ServerConfig) -> ForwardTarget | None:
    try:
        return ForwardTarget.parse(
            config.forward,
            config.forward_identity,
            keep_underscore_headers=config.forward_underscore_headers,
        )
    except ValueError as exc:
        raise ConfigError(
            f'[server] forward {exc}; e.g. forward = "127.0.0.1:8080" (or leave it empty)'
        ) from exc


def status_address(config: ServerConfig) -> tuple[str, int] | None:
    """The status port's (host, port), or None when ``status`` is empty.

    Off loopback only with ``status_allow_remote``: the port is plain HTTP with no
    authentication, like the tunnel's local port (``--allow-remote``).
    """
    if not config.status:
        return None
    try:
        address = HostPort.parse(config.status, default_host="127.0.0.1")
    except ValueError as exc:
        raise ConfigError(f'[server] status {exc}; e.g. status = "127.0.0.1:9100"') from exc
    host = address.host
    if not is_loopback(host) and not config.status_allow_remote:
        raise ConfigError(
            f"[server] status {config.status!r} is not a loopback address: /healthz and /metrics need no "
            "authentication, so anyone who reaches it would read them; listen on 127.0.0.1 (e.g. status = "
            '"127.0.0.1:9100"), or pass --status-allow-remote (status_allow_remote = true) if that is what '
            "you mean"
        )
    return host, address.port
