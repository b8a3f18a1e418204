"""Print a :class:`ClientReport` for people (with the handshake diagram) or as JSON."""

from __future__ import annotations

import json
import re
from typing import Final

from mtls_ref.shared.tls.render import render_json, render_mermaid, render_terminal
from mtls_ref.shared.tls.trace import Role

from .outcome import ClientReport, Exit

__all__ = ["MACHINE_TRACES", "TRACE_MODES", "render_report", "render_trace"]

TRACE_MODES: Final = ("terminal", "mermaid", "json", "off")
# Traces for programs (Mermaid's parser, a JSON reader): printed alone on stdout.
MACHINE_TRACES: Final = ("mermaid", "json")
# C0 and C1 controls and DEL: in a server's words (a grpc-message, a page's title, a body) a newline
# would start a line of the report's own ("result: OK") and an escape would drive the terminal.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def render_trace(report: ClientReport, mode: str) -> str:
    """The handshake as recorded by this client, in the chosen form ("" for off)."""
    if mode == "terminal":
        return render_terminal(
            report.events, observer=Role.CLIENT, version_label=report.version_label, tls13=report.tls13
        )
    if mode == "mermaid":
        return render_mermaid(report.events, version_label=report.version_label, tls13=report.tls13)
    if mode == "json":
        return render_json(report.events, observer=Role.CLIENT, version_label=report.version_label)
    return ""


def render_report(report: ClientReport, *, trace: str = "terminal", as_json: bool = False) -> str:
    if as_json:
        return json.dumps(report.to_dict(), indent=2)
    lines = [f"mtls-client -> {report.target} (expecting server name {report.server_name!r})"]
    if report.tls_version:
        lines.append(f"  TLS             {report.tls_version}, {report.cipher}")
    for index, cert in enumerate(report.server_chain):
        role = "server cert" if index == 0 else "  + chain"
        sans = f"; {', '.join(cert['sans'])}" if cert["sans"] else ""
        lines.append(
            f"  {role:<15} {cert['subject']} (issuer {cert['issuer']}{sans}; "
            f"{cert['key']}; {cert['days_left']} days left)"
        )
    if report.client_cert_requested is not None and report.events:
        asked = "yes" if report.client_cert_requested else "no"
        sent = report.client_cert_sent or "nothing"
        lines.append(f"  client cert     server asked: {asked}; we sent: {sent}")
    diagram = render_trace(report, trace)
    if diagram:
        lines += ["", *diagram.split("\n"), ""]
    if report.greeting is not None:
        lines.append(f"< {report.greeting}")
    for request, reply in report.exchanges:
        lines += [f"> {request}", f"< {reply}"]
    if report.body:
        lines += [f"< {line}" for line in report.body.splitlines()]
    verdict = "OK" if report.result is Exit.OK else f"FAILED ({report.result.name.lower().replace('_', '-')})"
    direction = "sent" if report.result is Exit.SERVER_UNTRUSTED else "received"
    alert = f" [alert {direction}: {report.alert}]" if report.alert else ""
    lines.append(f"result: {verdict}: {report.summary}{alert}")
    if report.fix:
        lines.append(f"fix: {report.fix}")
    return "\n".join(_one_line(line) for line in lines)


def _one_line(text: str) -> str:
    """``text`` with its control characters escaped as Python writes them (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)
