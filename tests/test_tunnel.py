"""Tunnel mode, and the whole chain: plain client -> tunnel -> mTLS -> forward -> plain service."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import pytest
import trio

from mtls_ref.client.tunnel import TunnelSettings, main, run_tunnel
from mtls_ref.shared.tls.context import client_context

from .support.backends import echo_backend
from .support.pki import Pki
from .support.ports import free_port, wait_for_port
from .support.processes import stop_process
from .support.tls import client_config, log_events, start_server


async def through(port: int, data: bytes, expect: int) -> bytes:
    """A plain TCP client: send ``data``, read ``expect`` bytes back (bounded)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    async with stream:
        with trio.fail_after(15), contextlib.suppress(trio.BrokenResourceError):  # a refusal may reset
            await stream.send_all(data)
            while len(answer) < expect and (chunk := await stream.receive_some(65536)):
                answer += chunk
    return answer


@pytest.mark.usefixtures("tls_engine")
async def test_plain_client_reaches_a_plain_service_over_mutual_tls(pki: Pki) -> None:
    """Bytes from a client without any certificate cross the tunnel and our forwarding server to a
    plain echo service and back; the server authenticated the tunnel's certificate."""
    received: list[bytes] = []
    said: list[str] = []
    ended = trio.Event()

    def say(line: str) -> None:
        said.append(line)
        if "session ended" in line:
            ended.set()

    async with echo_backend(received) as backend, trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, forward=f"127.0.0.1:{backend}")
        config = client_config(pki, port=port)
        settings = TunnelSettings(listen_host="127.0.0.1", listen_port=0, client=config)
        bound = await nursery.start(
            lambda task_status: run_tunnel(settings, client_context(config), say=say, task_status=task_status)
        )
        answer = await through(bound[0][1], b"hello through the tunnel\n", 25)
        with trio.fail_after(10):
            await ended.wait()  # the tunnel logs when the session ends
        server.shutdown()
        nursery.cancel_scope.cancel()
    assert answer == b"hello through the tunnel\n"
    assert b"".join(received) == b"hello through the tunnel\n"
    (entry,) = log_events(log, "connection")
    assert (
        entry["outcome"] == "accepted" and entry["subject"] == "CN=alice" and entry["protocol"] == "forward"
    )
    assert any("25 bytes up, 25 down" in s for s in said), said


async def test_tunnel_names_a_refused_certificate(pki: Pki) -> None:
    """With a certificate the server does not trust, the tunnel says why and closes the local side."""
    said: list[str] = []
    told = trio.Event()

    def say(line: str) -> None:
        said.append(line)
        if "listening" not in line:
            told.set()

    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki)
        config = client_config(pki, pki.foreign_client, port=port)
        settings = TunnelSettings(listen_host="127.0.0.1", listen_port=0, client=config)
        bound = await nursery.start(
            lambda task_status: run_tunnel(settings, client_context(config), say=say, task_status=task_status)
        )
        answer = await through(bound[0][1], b"PING\n", 1)
        with trio.fail_after(10):
            await told.wait()
        server.shutdown()
        nursery.cancel_scope.cancel()
    assert answer == b""
    # TLS 1.3: the refusal arrives after our handshake, on the first read; TLS 1.2: in the handshake.
    assert any("does not trust the CA that issued our certificate" in s for s in said), said


def test_tunnel_listens_on_loopback_unless_told(capsys: pytest.CaptureFixture[str]) -> None:
    """--listen on a non-loopback address is refused (exit 2) without --allow-remote."""
    assert main(["--listen", "0.0.0.0:15000", "127.0.0.1:8443"]) == 2
    assert "is not a loopback address" in capsys.readouterr().err


@pytest.mark.interop
async def test_redis_cli_through_the_whole_chain(pki: Pki, redis: tuple[str, str]) -> None:
    """redis-cli -> tunnel -> mutual TLS -> our server in forward mode -> redis-server: PING, SET, GET."""
    redis_server, redis_cli = redis
    redis_port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        redis_process = await trio.lowlevel.open_process(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
            stdout=subprocess.DEVNULL,
        )
        try:
            await wait_for_port(redis_port, redis_process, "redis-server")
            async with trio.open_nursery() as nursery:
                server, port, _ = await start_server(nursery, pki, forward=f"127.0.0.1:{redis_port}")
                config = client_config(pki, port=port)
                settings = TunnelSettings(listen_host="127.0.0.1", listen_port=0, client=config)
                bound = await nursery.start(
                    lambda task_status: run_tunnel(
                        settings, client_context(config), say=lambda _: None, task_status=task_status
                    )
                )
                tunnel_port = str(bound[0][1])
                results = []
                for command in (["PING"], ["SET", "greeting", "hello over mTLS"], ["GET", "greeting"]):
                    with trio.fail_after(20):
                        done = await trio.run_process(
                            [redis_cli, "-p", tunnel_port, *command], capture_stdout=True, capture_stderr=True
                        )
                    results.append(done.stdout.decode().strip())
                server.shutdown()
                nursery.cancel_scope.cancel()
        finally:
            await stop_process(redis_process)
    assert results == ["PONG", "OK", "hello over mTLS"]
    assert Path(folder).name  # the data folder was a throwaway one
