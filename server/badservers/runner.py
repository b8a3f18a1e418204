"""Serve every bad-server row at once, and run a client against each in turn (``--run``).

Each row is its own server on its own loopback port (free ports, or
``base_port + index``). For ``--run`` the user's command runs once per row,
under ``/bin/sh -c`` with the row's values substituted (shell-quoted), with
empty standard input and a deadline; then the row's recorder waits, bounded,
for the connections the command made to end, and the judge gives the verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shlex
import signal
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Final

import trio

from mtls_ref.shared.badservers import ROWS, Activity, BadServerRow, Verdict, judge
from mtls_ref.shared.pki.badset import Manifest

from .recorder import Notify, RowRecorder
from .rowservers import HANDSHAKE_TIMEOUT, RowServer, Unavailable, build_row_server

__all__ = ["PLACEHOLDERS", "ServedRow", "run_command", "serve_bad_servers", "substitute"]

# The name clients connect to: every credential of the set names localhost (and 127.0.0.1, ::1).
CLIENT_HOST: Final = "localhost"
# How long after a client exits to look for a first connection (its accept may still be queued).
SETTLE_GRACE: Final = 0.5
SETTLE_WITHIN: Final = HANDSHAKE_TIMEOUT + 2.0
OUTPUT_TAIL: Final = 2000  # characters of a client's output kept for the report
PLACEHOLDERS: Final = ("url", "host", "port", "ca", "cert", "key", "crl", "row")
_PLACEHOLDER: Final = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(slots=True, kw_only=True)
class ServedRow:
    """One row as served: where it listens (or why it could not be served) and what it saw."""

    row: BadServerRow
    recorder: RowRecorder
    port: int | None = None
    unavailable: str | None = None

    @property
    def url(self) -> str:
        return f"https://{CLIENT_HOST}:{self.port}/"

    def values(self, manifest: Manifest) -> dict[str, str]:
        """What ``{url}``, ``{ca}``, ... stand for in a ``--run`` command, for this row."""
        good = manifest.case("good")
        return {
            "url": self.url,
            "host": CLIENT_HOST,
            "port": str(self.port),
            "ca": str(manifest.path(manifest.ca)),
            "cert": str(manifest.path(good.cert or "")),
            "key": str(manifest.path(good.key or "")),
            "crl": str(manifest.path(manifest.crl)),
            "row": self.row.name,
        }


@contextlib.asynccontextmanager
async def serve_bad_servers(
    manifest: Manifest,
    *,
    host: str = "127.0.0.1",
    base_port: int = 0,
    rows: Sequence[BadServerRow] = ROWS,
    notify: Notify | None = None,
) -> AsyncIterator[list[ServedRow]]:
    """Every row's server, listening, for the body of the ``async with``; stopped afterwards."""
    served: list[ServedRow] = []
    servers: list[RowServer] = []
    async with trio.open_nursery() as nursery:
        try:
            for index, row in enumerate(rows):
                item = ServedRow(row=row, recorder=RowRecorder(row.name, notify))
                port = base_port + index if base_port else 0
                try:
                    server = build_row_server(row, manifest, host=host, port=port, recorder=item.recorder)
                except Unavailable as exc:
                    item.unavailable = str(exc)
                else:
                    addresses = await nursery.start(server.serve)
                    item.port = int(addresses[0][1])
                    servers.append(server)
                served.append(item)
            yield served
        finally:
            for server in servers:
                server.shutdown()


def substitute(template: str, values: dict[str, str]) -> str:
    """``template`` with each ``{name}`` replaced by its shell-quoted value; other braces stay."""
    return _PLACEHOLDER.sub(lambda match: shlex.quote(values[match.group(1)]), template)


async def run_command(
    served: Sequence[ServedRow], template: str, manifest: Manifest, *, per_row: float
) -> list[Verdict]:
    """Run the command once per row, one row at a time (``per_row`` seconds at most each), and judge each."""
    return [await _run_row(item, template, manifest, per_row=per_row) for item in served]


async def _run_row(item: ServedRow, template: str, manifest: Manifest, *, per_row: float) -> Verdict:
    if item.unavailable is not None:
        return judge(item.row, Activity(), client_ok=None, client="not run", unavailable=item.unavailable)
    command = substitute(template, item.values(manifest))
    item.recorder.take()  # whatever came before this run is not this client's doing
    result: subprocess.CompletedProcess[bytes] | None = None
    with trio.move_on_after(per_row):
        result = await trio.run_process(
            ["/bin/sh", "-c", command],
            stdin=b"",
            capture_stdout=True,
            stderr=subprocess.STDOUT,
            check=False,
            start_new_session=True,  # so a timeout kills the shell's children too
            deliver_cancel=_kill_group,
        )
    activity = await item.recorder.settle(grace=SETTLE_GRACE, within=SETTLE_WITHIN)
    if result is None:
        return judge(item.row, activity, client_ok=False, client=f"hung {per_row:g}s", hung=True)
    code = result.returncode
    verdict = judge(item.row, activity, client_ok=code == 0, client=f"exit {code}")
    output = result.stdout.decode("utf-8", "replace")[-OUTPUT_TAIL:]
    return dataclasses.replace(verdict, output=output)


async def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
