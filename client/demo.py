"""``python -m mtls_ref.client.demo``: start a server process, run the client against it, stop the server.

The server runs as a separate process (``python -m mtls_ref.server``) on a free port, so
the demo shows exactly what two terminals would, in one command. Readiness is
the server's own ``listening`` log line, never a fixed wait.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Final

import trio

from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.core.config import load_config
from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.core.events import listening_port, parse_event
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .report import render_report
from .session import Exit, run_client

__all__ = ["main"]

STARTUP_TIMEOUT: Final = 30.0


async def _read_until_listening(stream: trio.abc.ReceiveStream) -> tuple[int, bytes]:
    seen = b""
    with trio.fail_after(STARTUP_TIMEOUT):
        while True:
            chunk = await stream.receive_some(4096)
            if not chunk:
                raise MTLSError(f"the demo server exited before listening:\n{seen.decode(errors='replace')}")
            seen += chunk
            for line in seen.splitlines():
                if (port := listening_port(line)) is not None:
                    return port, seen


async def _demo(config_path: str | None) -> int:
    config = load_config(config_path)
    context = client_context(config.client, alpn=[ALPN_LINE])
    args = module_command(SERVER_MODULE, "--port", "0", "--log-format", "json")
    if config_path:
        args += ["--config", config_path]
    server = await trio.lowlevel.open_process(args, stderr=subprocess.PIPE)
    stderr = server.stderr
    if stderr is None:  # cannot happen: we asked for the pipe
        raise MTLSError("could not read the demo server's log")
    try:
        port, _ = await _read_until_listening(stderr)
        print(f"demo: server process {server.pid} listening on port {port}; running the client\n")
        client = dataclasses.replace(
            config.client, host=config.server.host, port=port, server_name="localhost"
        )
        report = await run_client(client, context)
        print(render_report(report))
    finally:
        server.send_signal(signal.SIGTERM)
        with trio.move_on_after(10):
            log = b""
            while chunk := await stderr.receive_some(4096):
                log += chunk
            await server.wait()
        if server.returncode is None:
            server.kill()
        await stderr.aclose()
    print("\ndemo: the server's log of this connection:")
    for line in log.splitlines():
        entry = parse_event(line)
        if entry is not None and entry["event"] == "connection":
            print("  " + ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("ts", "event")))
    return int(report.result)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = argv[1] if len(argv) == 2 and argv[0] == "--config" else None
    try:
        return trio.run(_demo, config_path)
    except MTLSError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return Exit.USAGE


if __name__ == "__main__":
    raise SystemExit(main())
