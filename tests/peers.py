"""Servers nobody here wrote (nginx, HAProxy, redis): installed from Debian when missing, run on loopback."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from .bench.servers import ensure_nginx, free_port

STARTUP_TIMEOUT = 20.0


def nginx_or_skip() -> str:
    """The nginx binary, or a skip that says why (it could not be installed here)."""
    path = ensure_nginx()
    if path is None:
        pytest.skip("nginx is not installed and 'apt-get install nginx' was not possible on this machine")
    return path


@asynccontextmanager
async def mtls_nginx(
    *, cert: Path, key: Path, ca: Path, crl: Path | None = None, verify_depth: int = 2
) -> AsyncIterator[tuple[int, Path]]:
    """nginx with ``ssl_verify_client on`` (and ``ssl_crl`` when given); yields (port, its error log)."""
    nginx = nginx_or_skip()
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
