"""The verdicts for people (a table like `mtls-client conformance`), scripts (JSON) and CI (JUnit XML).

JUnit has no word for *informational*: such a row is written as skipped with
its reason, so a CI page shows it rather than counting it as passed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from .judge import Status, Verdict

__all__ = ["render_json", "render_junit", "render_table", "summary"]

SUITE = "mtls-bad-servers"


def summary(verdicts: Sequence[Verdict]) -> str:
    """``14 of 17 rows pass, 2 informational, 1 skipped; FAILING on 1: wrong-name``."""
    count = {status: [v.row for v in verdicts if v.status is status] for status in Status}
    text = f"{len(count[Status.PASS])} of {len(verdicts)} rows pass"
    if count[Status.INFORMATIONAL]:
        text += f", {len(count[Status.INFORMATIONAL])} informational"
    if count[Status.SKIP]:
        text += f", {len(count[Status.SKIP])} skipped"
    if count[Status.FAIL]:
        text += f"; FAILING on {len(count[Status.FAIL])}: {', '.join(count[Status.FAIL])}"
    return text


def render_table(verdicts: Sequence[Verdict], *, command: str | None = None) -> str:
    header = f"{'row':<22}{'expected':<16}{'observed':<52}{'client':<10}verdict"
    lines = [f"$ {command}"] if command else []
    lines += [header, "-" * len(header)]
    for v in verdicts:
        observed = v.observed if len(v.observed) < 52 else v.observed[:50] + "…"
        lines.append(f"{v.row:<22}{v.expected:<16}{observed:<52}{v.client:<10}{v.status.value}")
        if v.detail:
            lines.append(f"{'':<38}-> {v.detail}")
    lines.append(summary(verdicts))
    return "\n".join(lines)


def render_json(verdicts: Sequence[Verdict], *, command: str | None = None) -> str:
    document = {
        "command": command,
        "summary": summary(verdicts),
        "rows": [v.to_json() for v in verdicts],
    }
    return json.dumps(document, indent=2)


def render_junit(verdicts: Sequence[Verdict], *, command: str | None = None) -> str:
    """One ``testcase`` per row: FAIL is a failure, skip and informational are skipped with the reason."""
    failures = sum(v.status is Status.FAIL for v in verdicts)
    skipped = sum(v.status in (Status.SKIP, Status.INFORMATIONAL) for v in verdicts)
    suite = ET.Element(
        "testsuite",
        name=SUITE,
        tests=str(len(verdicts)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    if command:
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="command", value=command)
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=SUITE, name=v.row)
        text = f"expected: {v.expected}; observed: {v.observed}; client: {v.client}"
        if v.status is Status.FAIL:
            ET.SubElement(case, "failure", message=v.detail or "failed", type="FAIL").text = text
        elif v.status is Status.SKIP:
            ET.SubElement(case, "skipped", message=f"skipped: {v.detail}")
        elif v.status is Status.INFORMATIONAL:
            ET.SubElement(case, "skipped", message=f"informational: {v.detail}")
        ET.SubElement(case, "system-out").text = text
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
