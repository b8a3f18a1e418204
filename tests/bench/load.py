"""The load generator: blocking stdlib ssl clients, one process per worker, the same for every server."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where to connect, with which credentials, and what one request/reply looks like."""

    port: int
    ca: str
    cert: str
    key: str
    tls: str
    request: bytes
    reply_lines: int
    alpn: tuple[str, ...] = ()
    host: str = "127.0.0.1"

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        version = ssl.TLSVersion.TLSv1_3 if self.tls == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = version
        ctx.load_verify_locations(self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        if self.alpn:
            ctx.set_alpn_protocols(list(self.alpn))
        return ctx


def _read_lines(sock: ssl.SSLSocket, count: int, first: list[float]) -> None:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        if not data:
            first.append(time.perf_counter())
        data += chunk


def one_exchange(
    target: Target, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[float, ssl.SSLSocket]:
    """Connect, full (or resumed) mTLS handshake, one request/reply; returns time to first reply byte."""
    start = time.perf_counter()
    raw = socket.create_connection((target.host, target.port), timeout=30)
    sock = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    sock.sendall(target.request)
    first: list[float] = []
    _read_lines(sock, target.reply_lines, first)
    return first[0] - start, sock


def handshake_worker(target: Target, seconds: float, max_count: int) -> tuple[list[float], int]:
    """Full handshakes (no resumption) for ``seconds``; returns latencies and failures."""
    ctx = target.context()
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and len(latencies) < max_count:
        try:
            latency, sock = one_exchange(target, ctx)
            sock.close()
            latencies.append(latency)
        except (OSError, ssl.SSLError):
            failures += 1
    return latencies, failures


def resumed_worker(target: Target, seconds: float, max_count: int) -> tuple[int, int]:
    """Handshakes resuming one TLS session (tickets); returns (connections, how many resumed)."""
    ctx = target.context()
    _, first = one_exchange(target, ctx)
    session = first.session
    first.close()
    done = reused = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline and done < max_count:
        _, sock = one_exchange(target, ctx, session)
        reused += bool(sock.session_reused)  # typed bool | None: None only before a handshake
        session = sock.session or session
        sock.close()
        done += 1
    return done, reused


def download(target: Target, size: int) -> float:
    """MB/s of ``GET /bytes/<size>`` over one connection."""
    ctx = target.context()
    raw = socket.create_connection((target.host, target.port), timeout=60)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        start = time.perf_counter()
        sock.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        _receive_body(sock, size)
        elapsed = time.perf_counter() - start
    return size / elapsed / 1e6


def _receive_body(sock: socket.socket, size: int) -> None:
    """Read a 200 response's head and ``size`` bytes of body; a refusal or short body raises."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk or len(head) > 65536:
            raise ConnectionError(f"no complete response head: {head[:80]!r}")
        head += chunk
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        raise ConnectionError(f"download refused: {head[:80]!r}")
    received = len(head.split(b"\r\n\r\n", 1)[1])
    while received < size:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"download stopped at {received} of {size} bytes")
        received += len(chunk)


def upload(target: Target, size: int) -> float:
    """MB/s of ``POST /sink`` with a ``size``-byte body over one connection."""
    ctx = target.context()
    raw = socket.create_connection((target.host, target.port), timeout=60)
    block = bytes(1 << 20)
    with ctx.wrap_socket(raw, server_hostname="localhost") as sock:
        start = time.perf_counter()
        sock.sendall(
            f"POST /sink HTTP/1.1\r\nHost: localhost\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            sock.sendall(piece)
            sent += len(piece)
        reply = sock.recv(4096)
        elapsed = time.perf_counter() - start
    if not reply.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(f"upload refused: {reply[:60]!r}")
    return size / elapsed / 1e6


def download_plain(port: int, size: int) -> float:
    """MB/s of ``GET /bytes/<size>`` over plain TCP (through a tunnel)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        start = time.perf_counter()
        sock.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        _receive_body(sock, size)
        elapsed = time.perf_counter() - start
    return size / elapsed / 1e6
