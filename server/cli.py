"""``mtls-server``: serve mutual TLS on the configured address until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any, Final

import trio

from mtls_ref.shared.core.cli_support import SERVER_MODULE, ConfigFlags, module_command, run_cli
from mtls_ref.shared.core.config import ServerConfig, load_config

from . import badservers
from .app import Server

__all__ = ["main"]

FLAGS: Final = ConfigFlags(section=ServerConfig)  # every [server] key with a help text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-server",
        description="A mutual-TLS server: requires a client certificate from the configured CA, "
        "then speaks, on the same port, a line protocol (WHOAMI, ECHO <text>, PING, HELP, QUIT), "
        "HTTP/1.1, or HTTP/2 (ALPN h2) with gRPC (grpc.health.v1.Health/Check, "
        "mtls_ref.v1.Identity/WhoAmI). SIGHUP (or a change to cert/key/ca/crl files) reloads the "
        "credentials for new connections (open HTTP/2 ones get GOAWAY); Ctrl-C/SIGTERM drains and "
        "stops. Flags override the [server] section of the config.",
        epilog="mtls-server badservers --badset DIR serves every bad server at once to test a client "
        "(see 'mtls-server badservers --help'). Try it by hand (s_client sends only the first "
        "certificate of -cert, so pass the intermediate with -cert_chain; the whole chain there would "
        "send the leaf twice): openssl s_client -connect 127.0.0.1:8443 -quiet -CAfile certs/ca.pem "
        "-cert certs/client.pem -cert_chain certs/intermediate.pem -key certs/client.key, then type "
        "WHOAMI.",
    )
    FLAGS.add_to(parser)
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
    # Workers share the TLS port; the status port stays with the first process.
    worker_status = {"status": ""} if args.worker_child else {}
    overrides = FLAGS.overrides(args, **worker_status)
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
