"""The servers under test, each started on a free loopback port with the same certificates."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from OpenSSL import SSL

from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.core.events import listening_port

from ..support.nginx import mtls_nginx_conf
from ..support.peers import require_peer
from ..support.ports import free_port, wait_for_port_blocking
from ..support.s_server import REQUIRE_CLIENT_CERT, accept_port, credential_flags
from .proc import children

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """One key type's PKI: a root that signs the leaves directly (s_time cannot send a chain)."""

    key_type: str
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(slots=True, kw_only=True)
class Running:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: list[str] = field(default_factory=list)

    def pids(self) -> list[int]:
        """The server and its worker processes (nginx workers, our --workers)."""
        return [self.process.pid, *children(self.process.pid)]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _watch(process: subprocess.Popen[bytes], log: list[str], ready: Callable[[str], int | None]) -> int:
    """Read the process's output on a thread until ``ready`` finds the port (bounded)."""
    found: list[int] = []
    event = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if len(log) < 10_000:
                log.append(line)
            if not found and (port := ready(line)) is not None:
                found.append(port)
                event.set()
        event.set()

    threading.Thread(target=pump, daemon=True).start()
    if not event.wait(STARTUP_TIMEOUT) or not found:
        process.kill()
        raise RuntimeError("server did not start:\n" + "\n".join(log[-20:]))
    return found[0]


def start_ours(
    creds: Credentials,
    work: Path,
    *,
    workers: int = 1,
    engine: str = "openssl",
    forward: str = "",
    record: bool = False,
) -> Running:
    """Our server with the default config (logging, authorization, greeting on; trace off) on ``engine``,
    or in forward mode to ``forward``, or keeping every connection's messages for the browser page."""
    variant = "-forward" if forward else "-recording" if record else ""
    config = work / f"ours-{engine}-{creds.key_type}{variant}.toml"
    config.write_text(
        "[server]\n"
        f"tls_engine = {json.dumps(engine)}\nforward = {json.dumps(forward)}\n"
        f"record_handshakes = {json.dumps(record)}\n"
        f"cert = {json.dumps(str(creds.server_cert))}\nkey = {json.dumps(str(creds.server_key))}\n"
        f"ca = {json.dumps(str(creds.ca))}\n"
        'allow = ["URI:spiffe://bench.test/*"]\nmax_connections = 20000\nlog_format = "json"\n',
        encoding="utf-8",
    )
    argv = module_command(SERVER_MODULE, "--config", str(config), "--port", "0")
    if workers > 1:
        argv += ["--workers", str(workers)]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    name = (
        "ours-forward"
        if forward
        else "ours-recording"
        if record
        else "ours"
        if engine == "openssl"
        else f"ours-{engine}"
    )
    running = Running(name=name, port=0, process=process)
    running.port = _watch(process, running.log, listening_port)
    return running


def start_plain_backend(work: Path) -> Running:
    """The plain TCP service the forward-mode contestants relay to."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.plain_backend"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    running = Running(name="backend", port=0, process=process)
    running.port = _watch(
        process, running.log, lambda line: int(line.split()[1]) if line.startswith("PORT ") else None
    )
    return running


def start_haproxy(creds: Credentials, work: Path, backend: int) -> Running:
    """HAProxy 2.6 doing forward mode's job: TLS with client certificates required, TCP to ``backend``."""
    haproxy = require_peer("haproxy")
    port = free_port()
    bundle = work / f"haproxy-{creds.key_type}.pem"
    bundle.write_bytes(creds.server_cert.read_bytes() + creds.server_key.read_bytes())
    conf = work / f"haproxy-{creds.key_type}.cfg"
    conf.write_text(
        "global\n  nbthread 1\n  maxconn 8000\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
        f"frontend f\n  bind 127.0.0.1:{port} ssl crt {bundle} ca-file {creds.ca} verify required\n"
        "  default_backend b\n"
        f"backend b\n  server s 127.0.0.1:{backend}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [haproxy, "-db", "-f", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    running = Running(name="haproxy", port=port, process=process)
    wait_for_port_blocking(port, process, "haproxy", timeout=STARTUP_TIMEOUT)
    return running


def start_tunnel(creds: Credentials, work: Path, target: int) -> Running:
    """``mtls-client tunnel`` on a free loopback port, to our forwarding server at ``target``."""
    argv = module_command(
        "mtls_ref.client",
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        f"127.0.0.1:{target}",
        "--server-name",
        "localhost",
        "--cert",
        str(creds.client_cert),
        "--key",
        str(creds.client_key),
        "--ca",
        str(creds.ca),
    )
    process = subprocess.Popen(argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    running = Running(name="tunnel", port=0, process=process)

    def ready(line: str) -> int | None:
        if line.startswith("tunnel: listening on "):
            return int(line.split(" -> ", maxsplit=1)[0].rsplit(":", 1)[1])
        return None

    running.port = _watch(process, running.log, ready)
    return running


def start_s_server(creds: Credentials, work: Path, *, www: bool = False) -> Running:
    """`openssl s_server -Verify 1 -verify_return_error`: -rev echoes lines; -WWW serves files."""
    mode = ["-WWW"] if www else ["-rev"]
    process = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            "127.0.0.1:0",
            *credential_flags(cert=creds.server_cert, key=creds.server_key, ca=creds.ca),
            *REQUIRE_CLIENT_CERT,
            *mode,
        ],
        cwd=work,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    running = Running(name="s_server", port=0, process=process)
    running.port = _watch(process, running.log, accept_port)
    return running


def start_floor(creds: Credentials, work: Path, *, module: str = "floor_server") -> Running:
    """A bare trio server (``floor_server``: SSLStream; ``pyopenssl_floor``: pyOpenSSL on the socket;
    ``work_floor``: that, plus only the work our behaviour needs per connection)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            f"tests.bench.{module}",
            str(creds.server_cert),
            str(creds.server_key),
            str(creds.ca),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    name = {"floor_server": "trio-floor", "work_floor": "pyopenssl-work"}.get(module, "pyopenssl-floor")
    running = Running(name=name, port=0, process=process)
    running.port = _watch(
        process, running.log, lambda line: int(line.split()[1]) if line.startswith("PORT ") else None
    )
    return running


def library_version(name: str) -> str:
    """The OpenSSL each contestant runs on, as it reports it."""
    if name in ("ours", "ours-recording", "pyopenssl-floor", "pyopenssl-work"):
        return SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()
    if name in ("ours-stdlib", "trio-floor"):
        return ssl.OPENSSL_VERSION
    if name == "s_server":
        done = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
        return done.stdout.strip()
    told = subprocess.run([require_peer("nginx"), "-V"], capture_output=True, text=True, check=False).stderr
    return next((line.strip() for line in told.splitlines() if "OpenSSL" in line), "?")


def start_nginx(nginx: str, creds: Credentials, work: Path, www: Path, *, http2: bool = False) -> Running:
    """nginx with ssl_verify_client on, one worker, access log on (like our per-connection log);
    ``http2``: ALPN h2 too (``listen ... ssl http2``)."""
    port = free_port()
    root = work / f"nginx-{creds.key_type}{'-h2' if http2 else ''}"
    root.mkdir(exist_ok=True)
    conf = root / "nginx.conf"
    conf.write_text(
        mtls_nginx_conf(
            root,
            port,
            cert=creds.server_cert,
            key=creds.server_key,
            ca=creds.ca,
            worker_connections=20000,
            error_level="warn",
            access_log=True,
            http2=http2,
            locations=[
                'location / { return 200 "ok\\n"; }',
                'location /sink { client_max_body_size 0; return 200 "ok\\n"; }',
                f"location /bytes/ {{ alias {www}/; }}",
                # HTTP/2: no GOAWAY after 1000 requests (the default), so one connection's figure is one
                # connection's (our server sets no such limit).
                *(["keepalive_requests 100000000;"] if http2 else []),
            ],
        ),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [nginx, "-c", str(conf), "-e", str(root / "error.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    running = Running(name="nginx", port=port, process=process)
    wait_for_port_blocking(port, process, "nginx", timeout=STARTUP_TIMEOUT)
    return running
