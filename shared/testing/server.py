"""The ``mtls_server`` fixture's server: our ``mtls-server`` as a process on loopback, and its verdicts.

The fixture writes a ``[server]`` config (JSON log, port 0, the CA's server
leaf), starts the server from the installed package and reads its log until the
``listening`` line gives the port. A reader thread then keeps every log line, so
:meth:`MtlsServer.connections` waits for an entry the moment it is written,
never on a poll. :meth:`MtlsServer.check` connects with a client
``ssl.SSLContext`` and says what the server did, in the words of the client's
own diagnosis.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mtls_ref.shared.core.events import listening_port, parse_event
from mtls_ref.shared.testing.ca import MtlsCA
from mtls_ref.shared.testing.processes import start_server_process, stop_process
from mtls_ref.shared.tls.diagnose import diagnose_eof, diagnose_ssl_error
from mtls_ref.shared.tls.role import Role

__all__ = ["MtlsServer", "Verdict", "start_server", "stop_server"]

STARTUP_TIMEOUT: Final = 30.0
# How long connections(wait_for=n) waits by default: the server logs a connection the moment it
# ends, milliseconds after the client's side returns; seconds leave room for a loaded CI machine.
CONNECTIONS_TIMEOUT: Final = 10.0


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


def start_server(ca: MtlsCA, directory: Path, options: dict[str, Any]) -> MtlsServer:
    """Our server in ``directory`` with ``ca``'s credentials and ``options`` as ``[server]`` settings."""
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
    process = start_server_process("--config", str(config), cwd=directory, pipe="stderr")
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


def stop_server(server: MtlsServer) -> None:
    """Stop the server (draining), then its log reader."""
    stop_process(server.process)
    # The reader sees the end of the log once the process (and any worker it started) is gone;
    # close the pipe only after, so it never reads a closed descriptor.
    if server._reader is not None:
        server._reader.join(timeout=10)
    if server.process.stderr is not None and (server._reader is None or not server._reader.is_alive()):
        server.process.stderr.close()
