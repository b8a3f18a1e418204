"""``mtls-server``: serve mutual TLS on the configured address until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from mtls_ref.shared.core.cli_support import SERVER_MODULE, add_config_argument, module_command, run_cli
from mtls_ref.shared.core.config import (
    FORWARD_IDENTITIES,
    LOG_FORMATS,
    TLS_ENGINES,
    TLS_VERSIONS,
    load_config,
)

from . import badservers
from .app import Server

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-server",
        description="A mutual-TLS server: requires a client certificate from the configured CA, "
        "then speaks a line protocol (WHOAMI, ECHO <text>, PING, HELP, QUIT) or HTTP/1.1 on the same "
        "port. SIGHUP (or a change to cert/key/ca/crl files) reloads the credentials for new "
        "connections; Ctrl-C/SIGTERM drains and stops. Flags override the [server] section of the config.",
        epilog="mtls-server badservers --badset DIR serves every bad server at once to test a client "
        "(see 'mtls-server badservers --help'). Try it by hand (s_client sends only the first "
        "certificate of -cert, so pass the chain with -cert_chain): openssl s_client -connect "
        "127.0.0.1:8443 -cert certs/client.pem -cert_chain certs/client-chain.pem -key certs/client.key "
        "-CAfile certs/ca.pem, then type WHOAMI.",
    )
    add_config_argument(parser)
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8443; 0 picks a free one)")
    parser.add_argument("--cert", type=Path, help="server certificate chain (PEM, leaf first)")
    parser.add_argument("--key", type=Path, help="server private key (PEM)")
    parser.add_argument("--ca", type=Path, help="CA that client certificates must chain to")
    parser.add_argument("--crl", type=Path, help="CRL (PEM) to check client certificates against")
    parser.add_argument("--tls-min", choices=TLS_VERSIONS, help="lowest TLS version accepted")
    parser.add_argument("--tls-max", choices=TLS_VERSIONS, help="highest TLS version accepted")
    parser.add_argument(
        "--tls-engine",
        choices=TLS_ENGINES,
        help="openssl: pyOpenSSL on the OpenSSL in the cryptography wheel (default, faster, sends the "
        "acceptable CA names); stdlib: Python's ssl module on the system OpenSSL",
    )
    parser.add_argument(
        "--allow",
        action="append",
        metavar="RULE",
        help="admit only clients matching a rule such as CN:alice or "
        "URI:spiffe://example.org/* (repeatable; replaces the config's list)",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, help="text (key=value) or json lines")
    parser.add_argument(
        "--trace",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log each connection's TLS messages as a sequence diagram",
    )
    parser.add_argument(
        "--record-handshakes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep each connection's TLS messages for the browser page (GET / as HTML) "
        "without logging them; costs CPU per handshake on the openssl engine",
    )
    parser.add_argument(
        "--keylog",
        type=Path,
        metavar="FILE",
        help="append NSS key-log lines (for Wireshark) to FILE: created 0600; a link, another user's "
        "file or one others can read is refused",
    )
    parser.add_argument("--handshake-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--idle-timeout", type=float, metavar="SECONDS")
    parser.add_argument("--max-connections", type=int, metavar="N")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="processes sharing the port with SO_REUSEPORT (one per core uses them all)",
    )
    parser.add_argument(
        "--status",
        metavar="HOST:PORT",
        help="serve plain-HTTP /healthz and /metrics (Prometheus) there, e.g. 127.0.0.1:9100 "
        "(with --workers, the first process's figures only)",
    )
    parser.add_argument(
        "--status-allow-remote",
        action="store_true",
        default=None,
        help="let --status listen off loopback (anyone reaching it reads /metrics: no authentication)",
    )
    parser.add_argument(
        "--forward",
        metavar="HOST:PORT",
        help="forward mode: after the handshake and the allow-list, relay bytes to this plain TCP backend",
    )
    parser.add_argument(
        "--forward-identity",
        choices=FORWARD_IDENTITIES,
        help="how the backend learns the client: none; proxy-v2 (a PROXY protocol v2 header with the "
        "TLS facts); http-header (HTTP backends: X-Forwarded-Client-Cert on every request); "
        "client-cert (HTTP backends: RFC 9440 Client-Cert and Client-Cert-Chain). In the HTTP modes "
        "any identity header the client sent is removed",
    )
    parser.add_argument(
        "--forward-underscore-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="HTTP forward modes: pass on request headers whose names hold '_' (default: dropped, "
        "as nginx does, since WSGI/CGI backends read '_' as '-')",
    )
    parser.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    return parser


async def _watch_signals(
    server: Server, scope: trio.CancelScope, workers: list[trio.Process], *, task_status: Any
) -> None:
    """SIGHUP: reload credentials. First Ctrl-C/SIGTERM: drain gracefully. Second: stop at once.

    Worker processes get the same signal, so one command drives them all.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        task_status.started()
        async for signum in signals:
            server.log.event("signal", signal=signal.Signals(signum).name)
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.send_signal(signum)
            if signum == signal.SIGHUP:
                server.reload("SIGHUP")
                continue
            if server.draining:
                scope.cancel()
            server.shutdown()


async def _run(server: Server, argv: Sequence[str], worker_child: bool) -> None:
    count = server.config.workers
    listeners = await server.listen(reuse_port=count > 1 or worker_child)
    workers: list[trio.Process] = []
    if count > 1 and not worker_child:
        port = listeners[0].socket.getsockname()[1]
        # The same command line, bound to the port this process got, as SO_REUSEPORT workers.
        child_argv = module_command(SERVER_MODULE, *argv, "--port", str(port), "--worker-child")
        workers = [await trio.lowlevel.open_process(child_argv) for _ in range(count - 1)]
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_watch_signals, server, nursery.cancel_scope, workers)
            await server.serve(listeners)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if not server.draining:  # stopping for another reason than a signal they also got
                for worker in workers:
                    with contextlib.suppress(ProcessLookupError):
                        worker.terminate()
            # A second signal would make them stop at once instead of draining: just wait.
            with trio.move_on_after(server.config.shutdown_grace + 5):
                for worker in workers:
                    await worker.wait()
            for worker in workers:
                if worker.returncode is None:
                    worker.kill()


def _body(args: argparse.Namespace) -> int:
    overrides = {
        "server": {
            "host": args.host,
            "port": args.port,
            "cert": args.cert,
            "key": args.key,
            "ca": args.ca,
            "crl": args.crl,
            "tls_min": args.tls_min,
            "tls_max": args.tls_max,
            "tls_engine": args.tls_engine,
            "allow": args.allow,
            "log_format": args.log_format,
            "trace": args.trace,
            "record_handshakes": args.record_handshakes,
            "keylog": args.keylog,
            "handshake_timeout": args.handshake_timeout,
            "idle_timeout": args.idle_timeout,
            "max_connections": args.max_connections,
            "workers": args.workers,
            # Workers share the TLS port; the status port stays with the first process.
            "status": "" if args.worker_child else args.status,
            "status_allow_remote": args.status_allow_remote,
            "forward": args.forward,
            "forward_identity": args.forward_identity,
            "forward_underscore_headers": args.forward_underscore_headers,
        }
    }
    config = load_config(args.config, overrides=overrides)
    trio.run(_run, Server(config.server), args.argv, args.worker_child)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtls-server``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["badservers"]:
        return badservers.run(args[1:])
    parser = build_parser()
    parser.set_defaults(argv=[a for a in args if a != "--worker-child"])
    return run_cli(_body, parser, args)


if __name__ == "__main__":
    raise SystemExit(main())
