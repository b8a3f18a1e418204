"""``mtls-server badservers --badset DIR``: every bad server at once, on loopback, to test any mTLS client.

Without ``--run`` it serves until Ctrl-C (or SIGTERM), prints each row's URL
and what a correct client does there, then one line per connection saying
what the client did (``--json``: JSON lines, which the pytest plugin reads).
With ``--run 'CMD'`` it runs CMD once per row and prints a verdict per row
(``--json``, ``--junit-xml FILE``); the exit code is 1 when a row fails.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import trio

from mtls_ref.shared.badservers import ROWS, Observation, render_json, render_junit, render_table, row_named
from mtls_ref.shared.core.addresses import is_loopback
from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.pki.badset import Manifest, load_manifest

from .runner import PLACEHOLDERS, ServedRow, run_command, serve_bad_servers

__all__ = ["main"]

PROG: Final = "mtls-server badservers"
DEFAULT_TIMEOUT: Final = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve every bad-server row at once, each on its own loopback port, to test an mTLS "
        "client: a correct client refuses each bad server certificate, notices when the server refuses it, "
        "and still works with the controls. Each row records what the client did.",
        epilog=f"CMD placeholders (shell-quoted): {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; "
        "{cert}/{key} are the set's good client credential, {crl} its CRL. Example: --run 'curl -sS "
        "--cacert {ca} --cert {cert} --key {key} --crlfile {crl} {url}'. Exit code 1 when any row fails.",
    )
    parser.add_argument(
        "--badset", type=Path, required=True, metavar="DIR", help="made by 'mtls-certs badset DIR'"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--base-port", type=int, default=0, metavar="N", help="row i listens on N+i (default: free ports)"
    )
    parser.add_argument("--row", action="append", metavar="NAME", help="only this row (repeatable)")
    parser.add_argument("--run", metavar="CMD", help="run CMD once per row and judge each row")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"deadline for CMD per row (default {DEFAULT_TIMEOUT:g}); a client still running then fails",
    )
    parser.add_argument("--json", action="store_true", help="JSON: the verdicts with --run, else JSON lines")
    parser.add_argument("--junit-xml", type=Path, metavar="FILE", help="with --run: also write JUnit XML")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.junit_xml and not args.run:
        parser.error("--junit-xml needs --run")
    if not is_loopback(args.host):
        parser.error(f"--host {args.host!r} is not a loopback address: bad servers are for this machine only")
    try:
        rows = tuple(row_named(name) for name in args.row) if args.row else ROWS
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    manifest = _manifest(args.badset)
    if args.run:
        return trio.run(_run, manifest, rows, args)
    trio.run(_serve, manifest, rows, args)
    return 0


def _manifest(folder: Path) -> Manifest:
    try:
        manifest = load_manifest(folder)
        missing = [
            row.credential
            for row in ROWS
            if row.credential != "server" and not _has(manifest, row.credential)
        ]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot read {str(folder / 'manifest.json')!r} ({exc}); "
            "make the set with 'mtls-certs badset DIR'"
        ) from exc
    if missing:
        raise ConfigError(
            f"the bad set in {str(folder)!r} has no {', '.join(missing)}: it was made by an older "
            "mtls-certs; make a new one with 'mtls-certs badset NEWDIR'"
        )
    return manifest


def _has(manifest: Manifest, name: str) -> bool:
    return any(case.name == name for case in manifest.server_cases)


async def _run(manifest: Manifest, rows: Sequence[Any], args: argparse.Namespace) -> int:
    async with serve_bad_servers(manifest, host=args.host, base_port=args.base_port, rows=rows) as served:
        verdicts = await run_command(served, args.run, manifest, per_row=args.timeout)
    if args.json:
        print(render_json(verdicts, command=args.run))
    else:
        print(render_table(verdicts, command=args.run))
    if args.junit_xml:
        args.junit_xml.write_text(render_junit(verdicts, command=args.run), encoding="utf-8")
    return 1 if any(v.failed for v in verdicts) else 0


async def _serve(manifest: Manifest, rows: Sequence[Any], args: argparse.Namespace) -> None:
    notify = _json_line if args.json else _text_line
    async with serve_bad_servers(
        manifest, host=args.host, base_port=args.base_port, rows=rows, notify=notify
    ) as served:
        if args.json:
            _json_line("bad-servers", _describe(manifest, served))
        else:
            print(_banner(manifest, served), flush=True)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break


def _describe(manifest: Manifest, served: Sequence[ServedRow]) -> dict[str, Any]:
    good = manifest.case("good")
    return {
        "ca": str(manifest.path(manifest.ca)),
        "crl": str(manifest.path(manifest.crl)),
        "cert": str(manifest.path(good.cert or "")),
        "key": str(manifest.path(good.key or "")),
        "rows": [
            {
                "name": item.row.name,
                "url": item.url if item.port else None,
                "port": item.port,
                "expect": item.row.expect.value,
                "server": item.row.server,
                "must": item.row.must,
                "unavailable": item.unavailable,
            }
            for item in served
        ],
    }


def _banner(manifest: Manifest, served: Sequence[ServedRow]) -> str:
    facts = _describe(manifest, served)
    lines = [f"{PROG}: {len(served)} bad servers on loopback, from {manifest.root}", ""]
    lines.append(f"{'row':<22}{'url':<28}a correct client must")
    for item in served:
        where = item.url if item.port else "(skipped)"
        lines.append(f"{item.row.name:<22}{where:<28}{item.row.must}")
        if item.unavailable:
            lines.append(f"{'':<22}-> {item.unavailable}")
    lines += [
        "",
        f"trust {facts['ca']}, present {facts['cert']} with {facts['key']},",
        f"check revocation with {facts['crl']}",
        "each connection is reported below as it ends; Ctrl-C stops",
    ]
    return "\n".join(lines)


def _json_line(event: str, fields: dict[str, Any]) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _text_line(event: str, fields: dict[str, Any]) -> None:
    if event != "observed":
        return
    observation = Observation.from_json({k: v for k, v in fields.items() if k != "row"})
    print(f"{fields['row']:<22}{observation.peer:<22}{observation.describe()}", flush=True)


def run(argv: Sequence[str]) -> int:
    """For ``mtls-server``: our errors become one line and an exit code."""
    try:
        return main(argv)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
