"""Our server as a real process (``python -m mtls_ref.server``), driven by one config file."""

from __future__ import annotations

import signal
from pathlib import Path

import trio

from .pki import Pki


def write_config(pki: Pki, tmp_path: Path) -> Path:
    """One mtls.toml for both processes: [server] on a free port, [client] as alice, the test CA."""
    path = tmp_path / "mtls.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
cert = "{pki.server.chain}"
key = "{pki.server.key}"
ca = "{pki.ca_cert}"
log_format = "text"

[client]
host = "127.0.0.1"
server_name = "localhost"
cert = "{pki.client.chain}"
key = "{pki.client.key}"
ca = "{pki.ca_cert}"
timeout = 5.0
""",
        encoding="utf-8",
    )
    return path


async def stop_server_process(server: trio.Process, stderr: trio.abc.ReceiveStream) -> bytes:
    """SIGTERM, then the rest of its log; asserts a clean exit."""
    server.send_signal(signal.SIGTERM)
    rest = b""
    with trio.fail_after(20):
        while chunk := await stderr.receive_some(4096):
            rest += chunk
        assert await server.wait() == 0
    return rest
