"""nginx as a mutual-TLS peer on loopback: its config (shared with the bench) and a run for the tests."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from .ports import free_port, wait_for_port
from .processes import stop_process


def mtls_nginx_conf(
    root: Path,
    port: int,
    *,
    cert: Path,
    key: Path,
    ca: Path,
    locations: Sequence[str],
    crl: Path | None = None,
    verify_depth: int | None = None,
    worker_connections: int = 64,
    error_level: str = "info",
    access_log: bool = False,
    http2: bool = False,
) -> str:
    """nginx.conf for one server on 127.0.0.1:``port`` with ``ssl_verify_client on``; nginx writes only
    under ``root`` (pid, logs, temp folders), so it runs as any user. nginx's default master_process on
    is spelled out: the bench counts the workers' CPU too. ``http2``: HTTP/2 too (ALPN h2), spelled
    ``listen ... http2`` as Debian 12's nginx 1.22 takes it (``http2 on;`` came with 1.25.1)."""
    ssl_extra = "".join(
        f"\n        {line}"
        for line in (
            f"ssl_verify_depth {verify_depth};" if verify_depth is not None else "",
            f"ssl_crl {crl};" if crl is not None else "",
            *locations,
        )
        if line
    )
    return f"""
worker_processes 1;
daemon off;
master_process on;
pid {root}/nginx.pid;
error_log {root}/error.log {error_level};
events {{ worker_connections {worker_connections}; }}
http {{
    access_log {f"{root}/access.log" if access_log else "off"};
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl{" http2" if http2 else ""};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_client_certificate {ca};
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;  # 1.22 leaves 1.3 off by default{ssl_extra}
    }}
}}
"""


@asynccontextmanager
async def mtls_nginx(
    nginx: str,
    *,
    cert: Path,
    key: Path,
    ca: Path,
    crl: Path | None = None,
    verify_depth: int = 2,
    http2: bool = False,
) -> AsyncIterator[tuple[int, Path]]:
    """``nginx`` with ``ssl_verify_client on`` (and ``ssl_crl`` when given, HTTP/2 with ``http2``);
    yields (port, its error log)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mtls-nginx-") as folder:
        root = Path(folder)
        (root / "nginx.conf").write_text(
            mtls_nginx_conf(
                root,
                port,
                cert=cert,
                key=key,
                ca=ca,
                crl=crl,
                verify_depth=verify_depth,
                http2=http2,
                locations=['location / { return 200 "hello $ssl_client_s_dn\\n"; }'],
            ),
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
