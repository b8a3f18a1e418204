"""A pytest plugin for integration-testing mutual TLS (loaded through the ``pytest11`` entry point).

Fixtures:

``mtls_ca``
    A throwaway CA (root + intermediate) in a temporary folder, with
    role-correct leaves: ``mtls_ca.issue_client("alice", sans=[...])``,
    ``mtls_ca.issue_server()``; each leaf has ``cert_path``, ``chain_path``,
    ``key_path``; ready contexts from ``mtls_ca.client_context(leaf)`` and
    ``mtls_ca.server_context(leaf)``; ``configure_trust(ctx)`` /
    ``leaf.configure_cert(ctx)`` in trustme's style; ``mtls_ca.ca_cert_path``,
    the root's PEM file, for tools that take a CA file (requests' ``verify=``,
    curl's ``--cacert``).

``mtls_server``
    Our server, started as a separate process on a free loopback port with the
    CA's server certificate, requiring client certificates from ``mtls_ca``.
    ``mtls_server.assert_accepted(ctx)`` / ``assert_refused(ctx, reason=...)``
    check what the server does with a client ``ssl.SSLContext``;
    ``mtls_server.url`` for HTTP clients; ``mtls_server.connections()`` the
    server's per-connection log entries, ``connections(wait_for=n)`` once there
    are n of them. ``mtls_server_factory(allow=[...])`` starts one with other
    ``[server]`` settings.

``mtls_bad_servers``
    Every bad *server* (``mtls-server badservers``) in one process, for testing
    your client: ``mtls_bad_servers.rows`` (each with ``url``, ``must``,
    ``expect``), ``ca`` / ``crl`` / ``cert`` / ``key`` to configure the client
    with; after your client ran against ``row.url``, ``row.observed()`` says what
    it did and ``row.judge(client_ok=...)`` gives the verdict (``pass``,
    ``FAIL``, ``informational``, ``skip``). One per test session.

The helpers are synchronous (stdlib ``ssl`` and ``socket``), so they work in
any test suite, trio or not.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.core.events import listening_port, parse_event
from mtls_ref.shared.pki.authority import CertificateAuthority, IssuedFiles, Profile, parse_san
from mtls_ref.shared.pki.badset import Manifest, write_badset
from mtls_ref.shared.testing.bad_servers import (
    BadServerRow,
    MtlsBadServers,
    start_bad_servers,
    stop_bad_servers,
)
from mtls_ref.shared.tls.diagnose import diagnose_eof, diagnose_ssl_error
from mtls_ref.shared.tls.trace import Role

__all__ = ["BadServerRow", "MtlsBadServers", "MtlsBadSet", "MtlsCA", "MtlsLeaf", "MtlsServer", "Verdict"]

STARTUP_TIMEOUT: Final = 30.0
# How long connections(wait_for=n) waits by default: the server logs a connection the moment it
# ends, milliseconds after the client's side returns; seconds leave room for a loaded CI machine.
CONNECTIONS_TIMEOUT: Final = 10.0
DEFAULT_SERVER_SANS: Final = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


@dataclass(frozen=True, slots=True)
class MtlsLeaf:
    """An issued certificate and its key, as files."""

    name: str
    files: IssuedFiles

    @property
    def cert_path(self) -> Path:
        return self.files.cert

    @property
    def chain_path(self) -> Path:
        """Leaf + intermediate: what a peer must send."""
        return self.files.chain

    @property
    def key_path(self) -> Path:
        return self.files.key

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Present this certificate (with its chain) from ``ctx``."""
        ctx.load_cert_chain(self.chain_path, self.key_path)


class MtlsCA:
    """A root CA with an intermediate that signs role-correct leaves."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._pki = PKIConfig(dir=directory, ca_common_name="mtls-ref pytest CA")
        self._ca = CertificateAuthority.create(self._pki, intermediate=True)
        self._server: MtlsLeaf | None = None

    def __repr__(self) -> str:
        return f"<MtlsCA {self.directory}>"

    @property
    def ca_cert_path(self) -> Path:
        """The root CA's PEM file: what requests' ``verify=``, curl's ``--cacert`` and
        ``ssl.create_default_context(cafile=...)`` take."""
        return self._pki.path(self._pki.ca_cert)

    def configure_trust(self, ctx: ssl.SSLContext) -> None:
        """Trust this CA (and only what it issues) in ``ctx``."""
        ctx.load_verify_locations(cafile=str(self.ca_cert_path))

    def issue_client(self, name: str = "client", sans: Sequence[str] = ()) -> MtlsLeaf:
        """A clientAuth-only leaf; SANs as ``URI:spiffe://...``, ``email:...``, ``DNS:...``."""
        return self._issue(Profile.CLIENT, name, sans)

    def issue_server(self, name: str = "localhost", sans: Sequence[str] = DEFAULT_SERVER_SANS) -> MtlsLeaf:
        """A serverAuth-only leaf, valid for localhost and the loopback addresses by default."""
        return self._issue(Profile.SERVER, name, sans)

    @property
    def server(self) -> MtlsLeaf:
        """The default server leaf (made on first use)."""
        if self._server is None:
            self._server = self.issue_server()
        return self._server

    def _issue(self, profile: Profile, name: str, sans: Sequence[str]) -> MtlsLeaf:
        files = self._ca.issue(profile, name, out_dir=self.directory, sans=[parse_san(s) for s in sans])
        return MtlsLeaf(name, files)

    def client_context(self, leaf: MtlsLeaf | None = None) -> ssl.SSLContext:
        """A client context trusting this CA, presenting ``leaf`` (none: no certificate)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.configure_trust(ctx)
        if leaf is not None:
            leaf.configure_cert(ctx)
        return ctx

    def server_context(self, leaf: MtlsLeaf | None = None) -> ssl.SSLContext:
        """A server context that requires client certificates from this CA."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.configure_trust(ctx)
        (leaf or self.server).configure_cert(ctx)
        return ctx


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What the server did with one client context."""

    accepted: bool
    reason: str
    alert: str | None = None
    greeting: str | None = None


@dataclass(slots=True, kw_only=True)
class MtlsServer:
    """A running mtls-server process on loopback.

    A thread reads the process's log (its stderr) line by line; each line wakes whoever waits in
    ``connections(wait_for=n)``, so a wait ends the moment the entry is written, never on a poll.
    """

    host: str
    port: int
    ca: MtlsCA
    process: subprocess.Popen[bytes]
    log_lines: list[str] = field(default_factory=list)
    _connections: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _log_changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _log_ended: bool = field(default=False, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def connections(self, *, wait_for: int = 0, timeout: float = CONNECTIONS_TIMEOUT) -> list[dict[str, Any]]:
        """The server's per-connection log entries (one per connection, written as it ends).

        The server writes a connection's entry when that connection ends, a moment after the
        client's side has returned (``check`` included), so right after a check it may not be
        there yet. ``wait_for=n`` blocks until at least ``n`` entries exist since the server
        started, and raises AssertionError if they do not within ``timeout`` seconds or the server
        exits first.
        """
        with self._log_changed:
            self._log_changed.wait_for(
                lambda: len(self._connections) >= wait_for or self._log_ended, timeout=timeout
            )
            found = list(self._connections)
            ended = self._log_ended
        if len(found) < wait_for:
            why = "the server exited first" if ended else f"after {timeout:g}s"
            tail = "\n".join(self.log_lines[-5:])
            raise AssertionError(
                f"mtls-ref server logged {len(found)} connection(s), not the {wait_for} waited for: "
                f"{why}; its last log lines:\n{tail}"
            )
        return found

    def _record(self, line: str) -> None:
        """Keep one log line (from the reading thread) and wake the waiters."""
        event = parse_event(line)
        with self._log_changed:
            self.log_lines.append(line)
            if event is not None and event["event"] == "connection":
                self._connections.append(event)
            self._log_changed.notify_all()

    def _end_of_log(self) -> None:
        with self._log_changed:
            self._log_ended = True
            self._log_changed.notify_all()

    def check(
        self, ctx: ssl.SSLContext, *, server_hostname: str = "localhost", timeout: float = 5.0
    ) -> Verdict:
        """Connect with ``ctx`` and report whether the server accepted it, and why not."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    tls.settimeout(timeout)
                    greeting = _read_line(tls)
            except ssl.SSLError as exc:
                diagnosis = diagnose_ssl_error(exc, local=Role.CLIENT)
                return Verdict(accepted=False, reason=diagnosis.summary, alert=diagnosis.alert)
            except TimeoutError:
                return Verdict(accepted=False, reason=f"no greeting within {timeout:g}s")
        if greeting is None:
            return Verdict(accepted=False, reason=diagnose_eof(tls13=True, after_handshake=True).summary)
        if greeting.startswith("OK hello"):
            return Verdict(accepted=True, reason="greeted", greeting=greeting)
        return Verdict(accepted=False, reason=greeting, greeting=greeting)

    def assert_accepted(self, ctx: ssl.SSLContext, **kwargs: Any) -> Verdict:
        verdict = self.check(ctx, **kwargs)
        if not verdict.accepted:
            alert = f" [alert {verdict.alert}]" if verdict.alert else ""
            raise AssertionError(f"mtls-ref server refused the client: {verdict.reason}{alert}")
        return verdict

    def assert_refused(self, ctx: ssl.SSLContext, reason: str | None = None, **kwargs: Any) -> Verdict:
        """Refused, and (when given) ``reason`` appears in the alert name or the explanation."""
        verdict = self.check(ctx, **kwargs)
        if verdict.accepted:
            raise AssertionError(f"mtls-ref server accepted the client ({verdict.greeting})")
        said = f"{verdict.alert or ''} {verdict.reason}"
        if reason is not None and reason not in said:
            raise AssertionError(f"refused, but not for {reason!r}: {verdict.reason} [alert {verdict.alert}]")
        return verdict


def _read_line(tls: ssl.SSLSocket) -> str | None:
    data = b""
    while b"\n" not in data and len(data) < 65536:
        chunk = tls.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")


def _start_server(ca: MtlsCA, directory: Path, options: dict[str, Any]) -> MtlsServer:
    config = directory / "mtls-server.toml"
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "log_format": "json",
        "reload_interval": 0,
        "cert": str(ca.server.chain_path),
        "key": str(ca.server.key_path),
        "ca": str(ca.ca_cert_path),
    }
    settings.update({k: str(v) if isinstance(v, Path) else v for k, v in options.items()})
    # JSON strings, numbers, booleans and arrays of strings are valid TOML values as written.
    lines = ["[server]", *(f"{key} = {json.dumps(value)}" for key, value in settings.items())]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MTLS_")}
    # Started from the installed package (never a server.py where the tests run), in its own folder.
    process = subprocess.Popen(
        module_command(SERVER_MODULE, "--config", str(config)), stderr=subprocess.PIPE, env=env, cwd=directory
    )
    server = MtlsServer(host="127.0.0.1", port=0, ca=ca, process=process)
    server.port, rest = _wait_listening(process, server)
    server._reader = threading.Thread(target=_drain, args=(process, server, rest), daemon=True)
    server._reader.start()
    return server


def _record_lines(buffer: bytes, server: MtlsServer) -> bytes:
    """Record the complete lines of ``buffer``; return the unfinished rest."""
    *complete, rest = buffer.split(b"\n")
    for raw in complete:
        server._record(raw.decode("utf-8", "replace"))
    return rest


def _wait_listening(process: subprocess.Popen[bytes], server: MtlsServer) -> tuple[int, bytes]:
    """Read the server's log until its 'listening' line (bounded); the port, and what followed it."""
    assert process.stderr is not None  # noqa: S101 - Popen was given stderr=PIPE
    deadline = time.monotonic() + STARTUP_TIMEOUT
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                break
            chunk = os.read(process.stderr.fileno(), 65536)
            if not chunk:
                break
            # One line at a time: whatever follows 'listening' in this chunk goes to _drain.
            buffer += chunk
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("utf-8", "replace")
                server._record(line)
                if (port := listening_port(line)) is not None:
                    return port, buffer
    process.kill()
    said = "\n".join(server.log_lines) + buffer.decode("utf-8", "replace")
    raise RuntimeError("mtls-server did not start:\n" + said)


def _drain(process: subprocess.Popen[bytes], server: MtlsServer, buffer: bytes) -> None:
    """Keep reading the server's log until it ends, so its pipe never fills; each line wakes
    connections(wait_for=...). os.read, as _wait_listening: the pipe's file object never buffers."""
    assert process.stderr is not None  # noqa: S101 - Popen was given stderr=PIPE
    try:
        while chunk := os.read(process.stderr.fileno(), 65536):
            buffer = _record_lines(buffer + chunk, server)
        if buffer:
            server._record(buffer.decode("utf-8", "replace"))
    finally:
        server._end_of_log()


def _stop(server: MtlsServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)
    # The reader sees the end of the log once the process (and any worker it started) is gone;
    # close the pipe only after, so it never reads a closed descriptor.
    if server._reader is not None:
        server._reader.join(timeout=10)
    if server.process.stderr is not None and (server._reader is None or not server._reader.is_alive()):
        server.process.stderr.close()


class MtlsBadSet:
    """The bad-credential set (``mtls-certs badset``): one client context per case."""

    def __init__(self, directory: Path) -> None:
        self.manifest: Manifest = write_badset(directory)

    def __repr__(self) -> str:
        return f"<MtlsBadSet {self.manifest.root}>"

    @property
    def cases(self) -> list[str]:
        """Client cases: good, no-cert, untrusted-ca, expired, ..., not-allowed."""
        return [c.name for c in self.manifest.cases]

    def expectation(self, case: str) -> str:
        """accepted, refused, forbidden, or local (a correct client will not even load it)."""
        return self.manifest.case(case).expect

    def client_context(self, case: str) -> ssl.SSLContext:
        """A client context presenting the case's credential and trusting the set's CA."""
        spec, m = self.manifest.case(case), self.manifest
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(m.path(m.ca)))
        if spec.cert and spec.key:
            ctx.load_cert_chain(m.path(spec.cert), m.path(spec.key))
        return ctx

    def server_settings(self) -> dict[str, Any]:
        """``[server]`` settings that make our server enforce the whole set (CA, CRL, allow rule)."""
        return self.manifest.server_settings()


@pytest.fixture
def mtls_badset(tmp_path_factory: pytest.TempPathFactory) -> MtlsBadSet:
    """Every bad client credential from a throwaway CA; start a server on it with
    ``mtls_server_factory(**mtls_badset.server_settings())``."""
    return MtlsBadSet(tmp_path_factory.mktemp("mtls-badset"))


@pytest.fixture
def mtls_ca(tmp_path_factory: pytest.TempPathFactory) -> MtlsCA:
    """A throwaway CA with intermediate; issue leaves with ``issue_client`` / ``issue_server``."""
    return MtlsCA(tmp_path_factory.mktemp("mtls-ca"))


@pytest.fixture
def mtls_server_factory(
    mtls_ca: MtlsCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., MtlsServer]]:
    """Start mtls-ref servers with extra ``[server]`` settings, e.g. ``allow=["CN:alice"]``."""
    started: list[MtlsServer] = []

    def start(**options: Any) -> MtlsServer:
        server = _start_server(mtls_ca, tmp_path_factory.mktemp("mtls-server"), options)
        started.append(server)
        return server

    yield start
    for server in started:
        _stop(server)


@pytest.fixture
def mtls_server(mtls_server_factory: Callable[..., MtlsServer]) -> MtlsServer:
    """Our mTLS server on a free loopback port, trusting ``mtls_ca``."""
    return mtls_server_factory()


@pytest.fixture(scope="session")
def mtls_bad_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsBadServers]:
    """Every bad server on its own loopback port, to test your mTLS client against; see the module doc."""
    servers = start_bad_servers(tmp_path_factory.mktemp("mtls-bad-servers"))
    yield servers
    stop_bad_servers(servers)
