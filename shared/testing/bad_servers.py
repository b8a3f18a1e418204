"""The ``mtls_bad_servers`` fixture's machinery: ``mtls-server badservers`` as a process, its rows as objects.

The process is started from the installed package (``python -P -m
mtls_ref.server badservers --json``, in its own folder) and writes JSON lines:
first the rows with their ports, then ``opened`` and ``observed`` as each
connection starts and ends. A reader thread keeps them per row, so a test asks
a row what its client did (:meth:`BadServerRow.observed`), waiting, bounded,
until every connection the client opened has ended. Synchronous, like the rest
of the plugin, so any suite can use it.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from mtls_ref.shared.badservers import Activity, Observation, Verdict, judge, row_named
from mtls_ref.shared.pki.badset import write_badset
from mtls_ref.shared.testing.processes import start_server_process, stop_process

__all__ = ["BadServerRow", "MtlsBadServers", "start_bad_servers", "stop_bad_servers"]

STARTUP_TIMEOUT: Final = 30.0
# After a client returns, how long its first connection may take to show up at all: the server
# reported it before answering, so it is already on its way through the pipe.
FIRST_CONNECTION_GRACE: Final = 1.0
SETTLE_TIMEOUT: Final = 15.0  # the row servers' handshake deadline (10 s), and some


@dataclass(slots=True, kw_only=True)
class BadServerRow:
    """One bad server: where it is, what a correct client does there, and what clients did."""

    name: str
    url: str | None
    port: int | None
    expect: str
    server: str
    must: str
    unavailable: str | None
    _lock: threading.Condition = field(repr=False)
    _open: set[str] = field(default_factory=set, repr=False)
    _done: list[Observation] = field(default_factory=list, repr=False)

    def observed(self, *, timeout: float = SETTLE_TIMEOUT) -> Activity:
        """What clients did here since the last call: waits until their connections have ended."""
        with self._lock:
            self._lock.wait_for(lambda: self._done or self._open, timeout=FIRST_CONNECTION_GRACE)
            if not self._lock.wait_for(lambda: not self._open, timeout=timeout):
                raise AssertionError(f"bad server {self.name!r}: connections still open after {timeout:g}s")
            activity = Activity(connections=tuple(self._done))
            self._done.clear()
        return activity

    def judge(self, *, client_ok: bool | None, timeout: float = SETTLE_TIMEOUT) -> Verdict:
        """The row's verdict: ``client_ok`` is whether *your* client reported success (None: unknown)."""
        return judge(
            row_named(self.name),
            self.observed(timeout=timeout),
            client_ok=client_ok,
            client={True: "success", False: "failure", None: "not reported"}[client_ok],
            unavailable=self.unavailable,
        )


@dataclass(slots=True, kw_only=True)
class MtlsBadServers:
    """Every bad server, running; the bad set's CA, CRL and good client credential to use with them."""

    rows: list[BadServerRow]
    ca: Path
    crl: Path
    cert: Path  # the good client certificate chain
    key: Path
    process: subprocess.Popen[bytes]

    def row(self, name: str) -> BadServerRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no bad-server row {name!r}; rows: {', '.join(r.name for r in self.rows)}")


def start_bad_servers(directory: Path) -> MtlsBadServers:
    """Write a bad set under ``directory`` and start every bad server on it."""
    write_badset(directory / "badset")
    process = start_server_process(
        "badservers", "--badset", str(directory / "badset"), "--json", cwd=directory, pipe="stdout"
    )
    try:
        first = _first_line(process)
    except RuntimeError:
        process.kill()
        process.wait(timeout=10)
        raise
    lock = threading.Condition()
    rows = [
        BadServerRow(
            name=r["name"],
            url=r["url"],
            port=r["port"],
            expect=r["expect"],
            server=r["server"],
            must=r["must"],
            unavailable=r["unavailable"],
            _lock=lock,
        )
        for r in first["rows"]
    ]
    servers = MtlsBadServers(
        rows=rows,
        ca=Path(first["ca"]),
        crl=Path(first["crl"]),
        cert=Path(first["cert"]),
        key=Path(first["key"]),
        process=process,
    )
    threading.Thread(target=_read_events, args=(servers, lock), daemon=True).start()
    return servers


def stop_bad_servers(servers: MtlsBadServers) -> None:
    stop_process(servers.process)
    if servers.process.stdout is not None:
        servers.process.stdout.close()


def _first_line(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The ``bad-servers`` line (bounded): the rows, their ports, the files to use."""
    assert process.stdout is not None  # noqa: S101 - Popen was given stdout=PIPE
    deadline = time.monotonic() + STARTUP_TIMEOUT
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer and (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                break
            chunk = os.read(process.stdout.fileno(), 1)  # byte by byte: the reader thread takes the rest
            if not chunk:
                break
            buffer += chunk
    if not buffer.endswith(b"\n"):
        raise RuntimeError(f"mtls-server badservers did not start within {STARTUP_TIMEOUT:g}s: {buffer!r}")
    event: dict[str, Any] = json.loads(buffer)
    if event.get("event") != "bad-servers":
        raise RuntimeError(f"mtls-server badservers said {event!r} first, not the rows")
    return event


def _read_events(servers: MtlsBadServers, lock: threading.Condition) -> None:
    """Keep each row's connections up to date (and the pipe drained) until the process ends."""
    rows = {row.name: row for row in servers.rows}
    assert servers.process.stdout is not None  # noqa: S101 - Popen was given stdout=PIPE
    for raw in servers.process.stdout:
        try:
            event = json.loads(raw)
            row = rows[event.pop("row")]
        except (ValueError, KeyError):
            continue  # not one of ours: nothing to record
        with lock:
            if event.pop("event") == "opened":
                row._open.add(event["peer"])
            else:
                row._open.discard(event["peer"])
                row._done.append(Observation.from_json(event))
            lock.notify_all()
