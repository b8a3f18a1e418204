"""HAProxy as the peer nobody here wrote in front of a backend: what a careful operator configures."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from .pki import Pki
from .ports import free_port, wait_for_port
from .processes import stop_process


@asynccontextmanager
async def haproxy_http_front(haproxy: str, pki: Pki, backend: int) -> AsyncIterator[int]:
    """HAProxy in our place: ``mode http``, client certificates required and verified against the test
    CA, any X-Forwarded-Client-Cert removed and its own set (as a careful operator configures it)."""
    with tempfile.TemporaryDirectory(prefix="mtls-haproxy-") as folder:
        root = Path(folder)
        bundle = root / "server.pem"
        bundle.write_bytes(pki.server.chain.read_bytes() + pki.server.key.read_bytes())
        port = free_port()
        (root / "haproxy.cfg").write_text(
            f"""
defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s
frontend mtls
  bind 127.0.0.1:{port} ssl crt {bundle} ca-file {pki.ca_cert} verify required
  http-request del-header X-Forwarded-Client-Cert
  http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_der,sha2(256),hex]"
  default_backend app
backend app
  server app 127.0.0.1:{backend}
""",
            encoding="utf-8",
        )
        process = await trio.lowlevel.open_process(
            [haproxy, "-db", "-f", str(root / "haproxy.cfg")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            await wait_for_port(port, process, "haproxy")
            yield port
        finally:
            await stop_process(process)
