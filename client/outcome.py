"""What a client session ends in: an exit code (:class:`Exit`) and all it learned (:class:`ClientReport`).

Every module of the session stops it the same way: :func:`fail` writes the
verdict into the report and returns a :class:`Stop` to raise, so the words and
the exit code are set together, where the decision is made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from mtls_ref.shared.tls.diagnose import Diagnosis
from mtls_ref.shared.tls.trace import TraceEvent

__all__ = ["ClientReport", "Exit", "Stop", "fail"]


class Exit(enum.IntEnum):
    """The client's exit codes (documented in --help and docs/client.md)."""

    OK = 0
    FAILURE = 1  # unexpected
    USAGE = 2  # bad flags, config or local files
    CONNECT = 3  # cannot connect (refused, unreachable, DNS, timeout on connect)
    SERVER_UNTRUSTED = 4  # we refused the server's certificate
    CERT_REJECTED = 5  # the server refused our certificate (an alert, or an HTTP 400/495/496)
    FORBIDDEN = 6  # authenticated, but the server's authorization refused us
    PROTOCOL = 7  # protocol error or timeout after the handshake
    NEGOTIATION = 8  # refused before our certificate was sent: no TLS version (or cipher) in common


@dataclass(slots=True, kw_only=True)
class ClientReport:
    """Everything the client learned; rendered as text or JSON by the CLI."""

    target: str
    server_name: str
    result: Exit = Exit.FAILURE
    summary: str = ""
    fix: str = ""
    alert: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    server_chain: list[dict[str, Any]] = field(default_factory=list)
    client_cert_requested: bool | None = None
    client_cert_sent: str | None = None
    greeting: str | None = None
    exchanges: list[tuple[str, str]] = field(default_factory=list)
    events: list[TraceEvent] = field(default_factory=list)
    tls13: bool | None = None
    version_label: str = ""
    # --http: the status line and, when the body names one (nginx's <title>), the reason.
    http_status: str | None = None
    # --http2: the response body, as text (bounded by the mode).
    body: str | None = None
    # The server ended the connection after the handshake without an alert, before any reply.
    closed_without_alert: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "server_name": self.server_name,
            "result": self.result.name.lower(),
            "exit_code": int(self.result),
            "summary": self.summary,
            "fix": self.fix or None,
            "alert": self.alert,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "server_chain": self.server_chain,
            "client_cert_requested": self.client_cert_requested,
            "client_cert_sent": self.client_cert_sent,
            "greeting": self.greeting,
            "exchanges": [{"request": q, "reply": a} for q, a in self.exchanges],
            "http_status": self.http_status,
            "body": self.body,
            "closed_without_alert": self.closed_without_alert,
            "trace": [e.to_dict() for e in self.events],
        }


class Stop(Exception):
    """The session ends with ``result``; the report already says why."""

    def __init__(self, result: Exit) -> None:
        super().__init__(result.name)
        self.result = result


def fail(
    report: ClientReport,
    result: Exit,
    diagnosis: Diagnosis | None = None,
    *,
    summary: str = "",
    fix: str = "",
) -> Stop:
    """Write the verdict (a diagnosis, or summary and fix) into ``report``; raise what this returns."""
    if diagnosis is not None:
        summary, fix = diagnosis.summary, diagnosis.fix
        report.alert = diagnosis.alert
    report.summary, report.fix = summary, fix
    return Stop(result)
