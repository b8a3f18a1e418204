"""Peers nobody here wrote (nginx, HAProxy, redis, Chromium, the openssl and curl CLIs): found, never
installed, and run on loopback.

``make test-deps`` installs them: .ci/test-peers.txt is the one list of the programs and the Debian
package of each, read here so a skip names the package that list installs. A test asks for a peer
through a sync fixture (tests/conftest.py), never in an async test body: pytest-trio loses the reason
of a skip raised there, and ``-ra`` shows only "Skipped".
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

REPO = Path(__file__).resolve().parent.parent
PEER_LIST = REPO / ".ci" / "test-peers.txt"
# Debian keeps daemons (nginx, haproxy) in the sbin folders, which a non-root PATH leaves out;
# .ci/test-deps looks in the same places.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
STARTUP_TIMEOUT = 20.0


@functools.cache
def debian_packages() -> dict[str, str]:
    """Each program of .ci/test-peers.txt, and the Debian package that ships it."""
    packages = {}
    for line in PEER_LIST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            program, package = line.split()
            packages[program] = package
    return packages


def find_peer(program: str) -> str | None:
    """Where ``program`` is (PATH, then the sbin folders), or None. It only looks: nothing is installed."""
    if program not in debian_packages():
        raise ValueError(
            f"{program!r} is not in {PEER_LIST}: add it with its Debian package, "
            "so that `make test-deps` installs it"
        )
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN]))


def missing_message(programs: list[str]) -> str:
    """What is missing and the fix, e.g. "nginx is not installed: run 'make test-deps' (Debian package
    nginx)"."""
    packages = list(dict.fromkeys(debian_packages()[program] for program in programs))
    return (
        f"{', '.join(programs)} {'is' if len(programs) == 1 else 'are'} not installed: run 'make test-deps' "
        f"(Debian package{'' if len(packages) == 1 else 's'} {', '.join(packages)})"
    )


def under_ci() -> bool:
    """CI runs `make test-deps` before the tests, so there a missing peer is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def peers_or_skip(*programs: str) -> list[str]:
    """The paths of ``programs``; if any is missing, a skip naming each missing one and its Debian
    package (a failure under CI). Call it from a sync fixture, where pytest keeps the reason."""
    found = {program: find_peer(program) for program in programs}
    missing = [program for program, path in found.items() if path is None]
    if missing:
        if under_ci():
            pytest.fail(missing_message(missing), pytrace=False)
        pytest.skip(missing_message(missing))
    return [path for path in found.values() if path is not None]


def peer_or_skip(program: str) -> str:
    """The path of ``program``, or a skip that says which package to install (a failure under CI)."""
    (path,) = peers_or_skip(program)
    return path


def require_peer(program: str) -> str:
    """The path of ``program``, or a RuntimeError that says which package to install (for the bench)."""
    path = find_peer(program)
    if path is None:
        raise RuntimeError(missing_message([program]))
    return path


def free_port() -> int:
    """A loopback port free right now, for peers that cannot report the port they bound to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def mtls_nginx(
    nginx: str, *, cert: Path, key: Path, ca: Path, crl: Path | None = None, verify_depth: int = 2
) -> AsyncIterator[tuple[int, Path]]:
    """``nginx`` with ``ssl_verify_client on`` (and ``ssl_crl`` when given); yields (port, its error log)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mtls-nginx-") as folder:
        root = Path(folder)
        crl_line = f"ssl_crl {crl};" if crl is not None else ""
        (root / "nginx.conf").write_text(
            f"""
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_verify_depth {verify_depth};
        ssl_protocols TLSv1.2 TLSv1.3;  # 1.22 leaves 1.3 off by default
        {crl_line}
        location / {{ return 200 "hello $ssl_client_s_dn\\n"; }}
    }}
}}
""",
            encoding="utf-8",
        )
        process = await trio.lowlevel.open_process(
            [nginx, "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_for_port(port, process, "nginx")
            yield port, root / "error.log"
        finally:
            await stop_process(process)


async def wait_for_port(port: int, process: trio.Process, what: str) -> None:
    """Until ``port`` accepts connections (bounded): these servers print nothing when ready."""
    with trio.fail_after(STARTUP_TIMEOUT):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                if process.returncode is not None:
                    pytest.fail(f"{what} exited with {process.returncode} before listening")
                await trio.sleep(0.05)  # starting up; bounded by fail_after
                continue
            await stream.aclose()
            return


async def stop_process(process: trio.Process) -> None:
    """SIGTERM, up to 10 s to go, then SIGKILL."""
    process.terminate()
    with trio.move_on_after(10):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
