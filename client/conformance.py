"""``mtls-client conformance HOST:PORT --badset DIR``: does a server refuse every bad credential?

For each case of the bad-credential set (``mtls-certs badset``) and each TLS
version, connect with that credential and record what the server did:
accepted, refused with a TLS alert, refused by its authorization, or closed.
A row fails when the server accepted what it must refuse (it *fails open*), or
refused the good control (the setup is wrong). The exit code is non-zero when
any row fails.

The server under test must trust the set's CA (``ca/ca.pem``), check its CRL
(``ca/crl.pem``) and, for the authorization row (``--authz``), admit only the
manifest's allow rule. Each row can print the ``openssl s_client`` command that
reproduces it by hand.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from mtls_ref.shared.core.addresses import HostPort
from mtls_ref.shared.core.config import TLS_VERSIONS, ClientConfig
from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.pki.badset import BadCase, Manifest, load_manifest
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE, client_context

from .session import ClientReport, Exit, run_client

__all__ = ["Row", "main", "run_conformance"]

MODES = ("mtls-ref", "raw", "http")


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    case: str
    tls: str
    expected: str
    observed: str
    verdict: str  # "pass", "FAIL", "skip"
    detail: str
    reproduce: str


def _closed_under_tls13(report: ClientReport) -> bool:
    """TLS 1.3, and the server hung up after the handshake without an alert or a reply.

    The client does not call that a certificate rejection (it cannot know); for a credential
    that must be refused it is one, without the alert that would say why. Under TLS 1.2 the
    server has accepted the certificate by then, so there it is not.
    """
    return report.closed_without_alert and report.tls13 is True


def _observed(report: ClientReport) -> str:
    """What the server did, as seen: the alert, or the HTTP status and reason it answered with."""
    match report.result:
        case Exit.OK:
            return "accepted"
        case Exit.CERT_REJECTED if report.http_status:
            return f"refused, HTTP {report.http_status}"
        case Exit.CERT_REJECTED:
            return f"refused, alert {report.alert}" if report.alert else "refused"
        case Exit.FORBIDDEN if report.http_status:
            return f"forbidden, HTTP {report.http_status}"
        case Exit.FORBIDDEN:
            return "forbidden (authorization)"
        case _ if _closed_under_tls13(report):
            return "refused (closed, no alert)"
        case _:
            return f"error: {report.summary}"


def _verdict(case: BadCase, report: ClientReport, authz: bool) -> tuple[str, str]:
    result = report.result
    if case.expect == "accepted":
        return (
            ("pass", "")
            if result is Exit.OK
            else ("FAIL", "the good control was not accepted: check the setup")
        )
    if case.expect == "forbidden" and not authz:
        return "skip", "authorization row: pass --authz when the server enforces the manifest's allow rule"
    if result is Exit.OK:
        return "FAIL", "accepted a credential it must refuse: the server fails open"
    if case.expect == "forbidden" and result is not Exit.FORBIDDEN:
        return "FAIL", "expected an authorization refusal"
    if result in (Exit.CERT_REJECTED, Exit.FORBIDDEN) or _closed_under_tls13(report):
        return "pass", ""
    return "FAIL", "neither accepted nor cleanly refused"


def openssl_command(
    manifest: Manifest, case: BadCase, *, host: str, port: int, tls: str, server_name: str
) -> str:
    argv = [
        "openssl",
        "s_client",
        "-connect",
        str(HostPort(host, port)),
        "-tls1_3" if tls == "1.3" else "-tls1_2",
        "-servername",
        server_name,
        "-verify_return_error",
        "-CAfile",
        str(manifest.path(manifest.ca)),
    ]
    if case.cert and case.key:
        # s_client sends -cert's first certificate and then every one of -cert_chain, so the chain
        # file given to both sends the leaf twice (-trace shows it). The set keeps each leaf beside
        # its chain (NAME.pem, NAME-chain.pem), and what a chain adds is the set's intermediate.
        chain = manifest.path(case.cert)
        leaf = chain.with_name(chain.name.removesuffix("-chain.pem") + ".pem")
        if len(load_certificates(chain)) > 1 and leaf != chain and leaf.is_file():
            intermediate = manifest.path(manifest.ca).with_name("intermediate.pem")
            argv += ["-cert", str(leaf), "-cert_chain", str(intermediate)]
        else:
            argv += ["-cert", str(chain)]  # a single certificate: the leaf alone, or a CA as client
        argv += ["-key", str(manifest.path(case.key))]
    return shlex.join(argv)


async def _run_row(
    manifest: Manifest, case: BadCase, run: ClientConfig, *, tls: str, mode: str, authz: bool
) -> Row:
    """One case on one TLS version; ``run`` is the run's client config (server, CA, deadline)."""
    reproduce = openssl_command(
        manifest, case, host=run.host, port=run.port, tls=tls, server_name=run.server_name
    )
    config = dataclasses.replace(
        run,
        cert=manifest.path(case.cert) if case.cert else None,
        key=manifest.path(case.key) if case.key else None,
        tls_min=tls,
        tls_max=tls,
    )
    alpn = {"mtls-ref": [ALPN_LINE], "http": [ALPN_HTTP], "raw": None}[mode]
    try:
        context = client_context(config, alpn=alpn)
    except MTLSError as exc:
        verdict = "pass" if case.expect == "local" else "FAIL"
        return Row(
            case=case.name,
            tls=tls,
            expected=case.expect,
            observed=f"refused locally: {exc}",
            verdict=verdict,
            detail="" if verdict == "pass" else "could not load the credential",
            reproduce=reproduce,
        )
    if case.expect == "local":
        return Row(
            case=case.name,
            tls=tls,
            expected="local",
            observed="loaded",
            verdict="FAIL",
            detail="the client should refuse this credential before connecting",
            reproduce=reproduce,
        )
    report = await run_client(
        config,
        context,
        messages=["PING"] if mode == "raw" else ["QUIT"],
        mode="line" if mode == "mtls-ref" else mode,
    )
    verdict, detail = _verdict(case, report, authz)
    return Row(
        case=case.name,
        tls=tls,
        expected=case.expect,
        observed=_observed(report),
        verdict=verdict,
        detail=detail or (report.summary if verdict != "pass" else ""),
        reproduce=reproduce,
    )


async def run_conformance(
    manifest: Manifest,
    *,
    host: str,
    port: int,
    versions: Sequence[str] = TLS_VERSIONS,
    server_name: str = "localhost",
    mode: str = "mtls-ref",
    authz: bool = False,
    read_timeout: float = 5.0,
) -> list[Row]:
    """Every client case on every TLS version, one connection each, in order."""
    run = ClientConfig(
        host=host, port=port, server_name=server_name, ca=manifest.path(manifest.ca), timeout=read_timeout
    )
    return [
        await _run_row(manifest, case, run, tls=tls, mode=mode, authz=authz)
        for tls in versions
        for case in manifest.cases
    ]


def render_table(rows: Sequence[Row], *, show_openssl: bool = False) -> str:
    header = f"{'case':<22}{'TLS':<5}{'expected':<11}{'observed':<40}verdict"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.case:<22}{row.tls:<5}{row.expected:<11}{row.observed[:39]:<40}{row.verdict}")
        if row.detail:
            lines.append(f"{'':<38}-> {row.detail}")
        if show_openssl:
            lines.append(f"{'':<38}$ {row.reproduce}")
    failed = [r for r in rows if r.verdict == "FAIL"]
    skipped = [r for r in rows if r.verdict == "skip"]
    open_rows = [r for r in failed if "fails open" in r.detail]
    summary = f"{len(rows) - len(failed) - len(skipped)} of {len(rows)} rows pass"
    if skipped:
        summary += f", {len(skipped)} skipped"
    if open_rows:
        summary += f"; FAILING OPEN on {len(open_rows)}: {', '.join(sorted({r.case for r in open_rows}))}"
    lines.append(summary)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-client conformance",
        description="Check that an mTLS server refuses every bad client credential of a bad set "
        "(made with 'mtls-certs badset DIR') and accepts the good control.",
        epilog="The server must trust DIR/ca/ca.pem and check DIR/ca/crl.pem. Exit code 1 when any row "
        "fails, 2 on usage errors.",
    )
    parser.add_argument("target", metavar="HOST:PORT")
    parser.add_argument(
        "--badset", type=Path, required=True, metavar="DIR", help="folder made by mtls-certs badset"
    )
    parser.add_argument("--tls", choices=TLS_VERSIONS, action="append", help="only this version (repeatable)")
    parser.add_argument("--server-name", default="localhost", help="name to check on the server certificate")
    parser.add_argument(
        "--protocol",
        choices=MODES,
        default="mtls-ref",
        help="how to prove acceptance: our greeting, any reply line (raw), or HTTP GET /",
    )
    parser.add_argument(
        "--authz",
        action="store_true",
        help="the server enforces the manifest's allow rule: check the authorization row",
    )
    parser.add_argument(
        "--show-openssl", action="store_true", help="print an openssl s_client command per row"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    return parser


def main(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        target = HostPort.parse(args.target)
    except ValueError as exc:
        parser.error(f"target {exc}")
    try:
        manifest = load_manifest(args.badset)
    except (OSError, ValueError, KeyError) as exc:
        print(
            f"mtls-client conformance: error: cannot read {args.badset}/manifest.json ({exc}); "
            "make the set with 'mtls-certs badset DIR'",
            file=sys.stderr,
        )
        return 2
    rows = trio.run(
        lambda: run_conformance(
            manifest,
            host=target.host,
            port=target.port,
            versions=args.tls or TLS_VERSIONS,
            server_name=args.server_name,
            mode=args.protocol,
            authz=args.authz,
            read_timeout=args.timeout,
        )
    )
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(render_table(rows, show_openssl=args.show_openssl))
    return 1 if any(r.verdict == "FAIL" for r in rows) else 0
