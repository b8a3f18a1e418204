"""`python -m mtls_ref.server` and `... mtls_ref.client` as real processes, driven by one config file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import trio

from mtls_ref.server.cli import build_parser
from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.grpc import HEALTH_CHECK, WHOAMI
from mtls_ref.shared.tls.context import ALPN_H2

from .support.pki import Pki
from .support.planted import MARKER, PLANTED, write_tree
from .support.processes import read_until
from .support.server_process import stop_server_process, write_config

CLIENT_MODULE = "mtls_ref.client"


async def run_client_process(config: Path, port: str, *flags: str) -> subprocess.CompletedProcess[bytes]:
    """`python -m mtls_ref.client` against the server process; asserts it succeeded."""
    with trio.fail_after(20):
        client = await trio.run_process(
            module_command(CLIENT_MODULE, "--config", str(config), "--port", port, *flags),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert client.returncode == 0, client.stdout.decode() + client.stderr.decode()
    return client


async def test_server_and_client_processes(pki: Pki, tmp_path: Path) -> None:
    """The server process announces its port, serves the client process, and stops on SIGTERM."""
    config = write_config(pki, tmp_path)
    server = await trio.lowlevel.open_process(
        module_command(SERVER_MODULE, "--config", str(config)),
        stderr=subprocess.PIPE,
    )
    assert server.stderr is not None
    try:
        seen = await read_until(server.stderr, b" listening addresses=", "the server process")
        port = seen.split(b"addresses=127.0.0.1:", 1)[1].split(b" ", 1)[0].decode()
        client = await run_client_process(config, port, "--trace", "mermaid")
        # stdout is the Mermaid diagram alone (so `> diagram.mmd` is a file Mermaid parses);
        # the summary and the result go to stderr.
        out = client.stdout.decode()
        assert out.startswith("sequenceDiagram\n") and "Client->>Server: CertificateVerify" in out
        assert "result:" not in out and "mtls-client ->" not in out
        assert "result: OK" in client.stderr.decode()
        rest = await stop_server_process(server, server.stderr)
        assert b" stopped" in rest and b"outcome=accepted" in seen + rest
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await server.stderr.aclose()


def test_client_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    """A bad config gives one error line and exit code 2, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[client]\nport = 'x'\n")
    done = subprocess.run(
        module_command(CLIENT_MODULE, "--config", str(bad)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "[client] port: expected a whole number" in done.stderr


def test_server_refuses_missing_ca_file(pki: Pki, tmp_path: Path) -> None:
    """The server process stops before listening when its CA file is missing."""
    done = subprocess.run(
        module_command(
            SERVER_MODULE, "--config", str(write_config(pki, tmp_path)), "--ca", str(tmp_path / "missing.pem")
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "server CA file" in done.stderr and "no such file: check the path" in done.stderr
    assert "Traceback" not in done.stderr


async def test_workers_share_the_port(pki: Pki, tmp_path: Path) -> None:
    """--workers 2 runs two of our processes on one port (SO_REUSEPORT), even where a server.py
    and an mtls_ref/ folder lie in the working directory; SIGTERM stops both."""
    config = write_config(pki, tmp_path)
    cwd = tmp_path / "planted"
    write_tree(cwd, PLANTED)
    server = await trio.lowlevel.open_process(
        module_command(SERVER_MODULE, "--config", str(config), "--workers", "2", "--log-format", "json"),
        stderr=subprocess.PIPE,
        cwd=cwd,
    )
    assert server.stderr is not None
    try:
        seen = await read_until(server.stderr, b'"event": "listening"', "the server process")
        port = seen.split(b'"addresses": ["127.0.0.1:', 1)[1].split(b'"', 1)[0].decode()
        for _ in range(4):
            await run_client_process(config, port, "--trace", "off", "--send", "QUIT")
        rest = await stop_server_process(server, server.stderr)
        log = (seen + rest).decode()
        assert log.count('"event": "listening"') == 2  # the first process and its one worker
        assert log.count('"event": "stopped"') == 2
        assert '"workers": 2' in log
        assert not (cwd / MARKER).exists()
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        await server.stderr.aclose()


def test_server_help_names_every_protocol_of_the_port() -> None:
    """`mtls-server --help` names each protocol the port speaks: the line protocol, HTTP/1.1, HTTP/2 by its
    ALPN name, and the two gRPC methods served over it."""
    words = " ".join(build_parser().format_help().split())
    methods = [path.lstrip("/") for path in (HEALTH_CHECK, WHOAMI)]
    assert [
        name
        for name in ("a line protocol", "HTTP/1.1", f"HTTP/2 (ALPN {ALPN_H2})", *methods)
        if name not in words
    ] == []
