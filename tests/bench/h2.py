"""The HTTP/2 rows of `make bench`: ours against nginx (``listen ... ssl http2``, ``ssl_verify_client on``).

h2load (nghttp2 1.52, Debian 12) cannot present a client certificate, so the load is a small h2
client over Python's ssl, the same for both servers, from ``processes`` client processes:

* streams: one connection each, up to MAX_STREAMS requests in flight, for ``seconds``;
  figure: requests per server CPU-second;
* connections: new connections with ALPN h2 (a full mTLS handshake, one request, close);
  figure: connections per server CPU-second.

Both servers answer a tiny body (ours ``/healthz``, nginx ``return 200 "ok\\n"``). Rounds alternate
the order of the two servers; every loop is bounded in time and count.
"""

from __future__ import annotations

import multiprocessing
import socket
import ssl
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from h2 import events as h2e
from h2.config import H2Configuration
from h2.connection import H2Connection

from . import load, servers
from .proc import cpu_seconds

MAX_STREAMS = 100  # our MAX_CONCURRENT_STREAMS; nginx allows 128
PATHS = {"ours": "/healthz", "nginx": "/"}
WINDOW = 1 << 30


def _request(conn: H2Connection, path: str) -> None:
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [(":method", "GET"), (":path", path), (":scheme", "https"), (":authority", "localhost")],
        end_stream=True,
    )


def _connect(target: load.Target, ctx: ssl.SSLContext) -> tuple[ssl.SSLSocket, H2Connection]:
    raw = socket.create_connection((target.host, target.port), timeout=30)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    if sock.selected_alpn_protocol() != "h2":
        raise ConnectionError(f"ALPN {sock.selected_alpn_protocol()!r}, not h2")
    conn = H2Connection(config=H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.increment_flow_control_window(WINDOW)
    return sock, conn


def _finished(conn: H2Connection, sock: ssl.SSLSocket) -> int:
    """Read once; how many streams ended (each must have answered 200)."""
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    ended = 0
    for event in conn.receive_data(data):
        if isinstance(event, h2e.ConnectionTerminated):
            raise ConnectionError(f"GOAWAY: {event!r}")
        if isinstance(event, h2e.ResponseReceived) and dict(event.headers or [])[b":status"] != b"200":
            raise ConnectionError(f"answered {event.headers!r}")
        if isinstance(event, h2e.DataReceived) and event.stream_id:
            conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id)
        elif isinstance(event, h2e.StreamEnded):
            ended += 1
    return ended


def streams_worker(target: load.Target, path: str, seconds: float, max_count: int) -> int:
    """Requests on one connection, MAX_STREAMS in flight, for ``seconds``; how many were answered."""
    sock, conn = _connect(target, target.context())
    done = in_flight = 0
    deadline = time.perf_counter() + seconds
    with sock:
        while time.perf_counter() < deadline and done < max_count:
            while in_flight < MAX_STREAMS:
                _request(conn, path)
                in_flight += 1
            sock.sendall(conn.data_to_send())
            ended = _finished(conn, sock)
            done, in_flight = done + ended, in_flight - ended
    return done


def connections_worker(target: load.Target, path: str, seconds: float, max_count: int) -> tuple[int, int]:
    """New h2 connections (full handshake, one request, close) for ``seconds``; (done, failures)."""
    ctx = target.context()
    done = failures = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and done < max_count:
        try:
            sock, conn = _connect(target, ctx)
            with sock:
                _request(conn, path)
                sock.sendall(conn.data_to_send())
                while not _finished(conn, sock):
                    pass
            done += 1
        except (OSError, ssl.SSLError, ConnectionError):
            failures += 1
    return done, failures


def _measure(
    running: servers.Running, function: Callable[..., Any], args: tuple[Any, ...], processes: int
) -> tuple[list[Any], float, float]:
    """``function(*args)`` in ``processes`` client processes: results, wall seconds, server CPU seconds."""
    cpu_before, start = cpu_seconds(running.pids()), time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.starmap(function, [args] * processes)
    return results, time.perf_counter() - start, max(cpu_seconds(running.pids()) - cpu_before, 1e-9)


def h2_figures(
    creds: servers.Credentials, work: Path, *, nginx: str, seconds: float, rounds: int, processes: int
) -> dict[str, Any]:
    """Both figures for ours and nginx, per round: {"streams": {name: [...]}, "connections": {...}}."""
    running = {
        "ours": servers.start_ours(creds, work),
        "nginx": servers.start_nginx(nginx, creds, work, work / "bytes", http2=True),
    }
    rows: dict[str, dict[str, list[dict[str, float]]]] = {"streams": {}, "connections": {}}
    try:
        for number in range(rounds):
            for name in list(running) if number % 2 == 0 else list(reversed(running)):
                server = running[name]
                tgt = load.Target(
                    port=server.port,
                    ca=str(creds.ca),
                    cert=str(creds.client_cert),
                    key=str(creds.client_key),
                    tls="1.3",
                    request=b"",
                    reply_lines=0,
                    alpn=("h2",),
                )
                args = (tgt, PATHS[name], seconds, 10_000_000)
                done, wall, cpu = _measure(server, streams_worker, args, processes)
                count = sum(done)
                rows["streams"].setdefault(name, []).append(
                    {"requests": count, "per_s": count / wall, "per_cpu_s": count / cpu}
                )
                made, wall, cpu = _measure(server, connections_worker, args, processes)
                count = sum(n for n, _ in made)
                rows["connections"].setdefault(name, []).append(
                    {
                        "connections": count,
                        "failures": sum(f for _, f in made),
                        "per_s": count / wall,
                        "per_cpu_s": count / cpu,
                    }
                )
    finally:
        for server in running.values():
            server.stop()
    return rows


def h2_report(rows: dict[str, dict[str, list[dict[str, float]]]]) -> list[str]:
    """The report's HTTP/2 lines: medians over rounds, and ours/nginx per round's median."""
    lines = ["", "HTTP/2 over mutual TLS (P-256, TLS 1.3): per server CPU-second, median of rounds"]
    for figure, unit in (("streams", "requests on one connection"), ("connections", "new h2 connections")):
        table = rows.get(figure, {})
        if not table:
            continue
        ours, nginx = table.get("ours", []), table.get("nginx", [])
        medians = {name: statistics.median(r["per_cpu_s"] for r in table[name]) for name in table}
        ratios = [o["per_cpu_s"] / n["per_cpu_s"] for o, n in zip(ours, nginx, strict=False)]
        lines.append(
            f"  {unit:<27} "
            + "  ".join(f"{name}={value:.0f}" for name, value in medians.items())
            + (f"  ours/nginx={statistics.median(ratios):.2f}x" if ratios else "")
        )
    return lines
