"""``mtls-client tunnel --listen 127.0.0.1:PORT HOST:PORT``: plain TCP in, mutual TLS out.

Theory of operation
-------------------
A tool that cannot present a client certificate (curl without flags,
``redis-cli``, a browser) connects to the tunnel's local port; for each such
connection the tunnel opens mutual TLS to the service with our certificate,
verifying the server exactly as ``mtls-client`` does (its CA, its name in the
subjectAltName), and copies bytes both ways:

* service to local client until the service closes, which ends the session;
* local client to service until the local client ends its stream; then the
  service's answer keeps flowing back for ``HALF_CLOSE_GRACE`` seconds at most
  (as socat does: most tools close for good, a few only half-close after a
  request; waiting longer would hold both connections for a client that is gone).

``idle_timeout`` without a byte either way ends a session. A handshake that
fails is one line on stderr with the diagnosis (and the local connection is
closed), so a refused certificate is as visible here as in ``mtls-client``.

The tunnel listens on loopback only, unless ``--allow-remote`` says otherwise:
anything that can reach its port acts with our certificate.
"""

from __future__ import annotations

import argparse
import dataclasses
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

import trio

from mtls_ref.shared.core.addresses import HostPort, is_loopback
from mtls_ref.shared.core.cli_support import ConfigFlags, add_exact_tls_flag, run_cli
from mtls_ref.shared.core.config import ClientConfig, load_config
from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.core.relay import relay
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import client_context
from mtls_ref.shared.tls.diagnose import diagnose_ssl_error
from mtls_ref.shared.tls.trace import Role

__all__ = ["TunnelSettings", "main", "run_tunnel"]

DEFAULT_IDLE: Final = 300.0
HALF_CLOSE_GRACE: Final = 0.5  # seconds the service may go on answering a client that ended its stream
# The [client] keys the tunnel takes as flags (the target gives host and port), worded for the tunnel.
FLAGS: Final = ConfigFlags(
    section=ClientConfig,
    only=frozenset({"server_name", "cert", "key", "ca", "timeout"}),
    help_for={
        "server_name": "name the server certificate must carry (default: the host)",
        "timeout": "deadline for connect and handshake",
    },
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TunnelSettings:
    listen_host: str
    listen_port: int
    client: ClientConfig  # where to connect, with which credentials
    idle_timeout: float = DEFAULT_IDLE


def _host_port(text: str, what: str) -> tuple[str, int]:
    try:
        address = HostPort.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{what} {exc}") from exc
    return address.host, address.port


async def run_tunnel(
    settings: TunnelSettings,
    context: ssl.SSLContext,
    *,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen, and tunnel every local connection to the service, until cancelled."""
    listeners = await trio.open_tcp_listeners(settings.listen_port, host=settings.listen_host)
    bound = [listener.socket.getsockname()[:2] for listener in listeners]
    target = str(HostPort(settings.client.host, settings.client.port))
    say(f"tunnel: listening on {', '.join(str(HostPort(h, p)) for h, p in bound)} -> mutual TLS to {target}")
    task_status.started(bound)

    async def handle(local: trio.SocketStream) -> None:
        await _tunnel_one(local, settings, context, say)

    await trio.serve_listeners(handle, listeners)


async def _tunnel_one(
    local: trio.SocketStream, settings: TunnelSettings, context: ssl.SSLContext, say: Callable[[str], None]
) -> None:
    config = settings.client
    source = str(HostPort(*local.socket.getpeername()[:2]))
    async with local:
        try:
            with trio.fail_after(config.timeout):
                remote_tcp = await trio.open_tcp_stream(config.host, config.port)
        except (OSError, trio.TooSlowError) as exc:
            say(f"tunnel: {source}: cannot reach {HostPort(config.host, config.port)}: {exc or 'timeout'}")
            return
        tls = TLSConnection(remote_tcp, context, server_side=False, server_hostname=config.expected_name)
        try:
            with trio.fail_after(config.timeout):
                await tls.handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            cause = exc.__cause__
            why = (
                diagnose_ssl_error(cause, local=Role.CLIENT).line()
                if isinstance(cause, ssl.SSLError)
                else (
                    "no complete handshake in time"
                    if isinstance(exc, trio.TooSlowError)
                    else "connection lost"
                )
            )
            say(f"tunnel: {source}: handshake with {HostPort(config.host, config.port)} failed: {why}")
            await tls.abort()
            return
        try:
            relayed = await relay(
                local,
                tls,
                idle_timeout=settings.idle_timeout,
                names=("local client", "service"),
                half_close_grace=HALF_CLOSE_GRACE,
            )
            # Under TLS 1.3 a server refuses our certificate after our handshake is done:
            # its alert arrives in the relay, on the first read.
            ended = _why_broken(relayed.error) if relayed.error is not None else relayed.ended
            version = tls.version()
            say(
                f"tunnel: {source}: {version} session ended ({ended}); "
                f"{relayed.up} bytes up, {relayed.down} down"
            )
        finally:
            with trio.CancelScope(shield=True):
                await tls.aclose()


def _why_broken(exc: BaseException) -> str:
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):
        return f"refused: {diagnose_ssl_error(cause, local=Role.CLIENT).line()}"
    return f"connection broken ({type(cause or exc).__name__})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-client tunnel",
        description="Accept plain TCP on a local port and carry each connection over mutual TLS to "
        "HOST:PORT with our certificate (verifying the server), so tools without a client "
        "certificate (curl, redis-cli, a browser) reach an mTLS service. Flags override [client].",
    )
    FLAGS.add_to(parser)
    parser.add_argument("target", help="the mTLS service, HOST:PORT")
    parser.add_argument(
        "--listen", required=True, metavar="HOST:PORT", help="local address, e.g. 127.0.0.1:15000"
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen on a non-loopback address (anyone reaching it acts with our certificate)",
    )
    add_exact_tls_flag(parser)
    parser.add_argument(
        "--idle-timeout", type=float, default=DEFAULT_IDLE, metavar="SECONDS", help="end a silent session"
    )
    return parser


def _body(args: argparse.Namespace) -> int:
    listen_host, listen_port = _host_port(args.listen, "--listen")
    if not is_loopback(listen_host) and not args.allow_remote:
        raise ConfigError(
            f"--listen {args.listen} is not a loopback address: anyone who reaches it would act with our "
            "certificate; listen on 127.0.0.1, or pass --allow-remote if that is what you mean"
        )
    host, port = _host_port(args.target, "target")
    overrides = FLAGS.overrides(args, host=host, port=port, tls_min=args.tls, tls_max=args.tls)
    config = load_config(args.config, overrides=overrides).client
    context = client_context(config)
    settings = TunnelSettings(
        listen_host=listen_host, listen_port=listen_port, client=config, idle_timeout=args.idle_timeout
    )
    try:
        trio.run(run_tunnel, settings, context)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {args.listen}: {exc.strerror or exc}; pick another --listen"
        ) from exc
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtls-client tunnel``."""
    return run_cli(_body, build_parser(), argv)
