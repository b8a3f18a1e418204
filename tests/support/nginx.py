"""nginx as a mutual-TLS peer on loopback, configured in a throwaway folder."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from .ports import free_port, wait_for_port
from .processes import stop_process


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
