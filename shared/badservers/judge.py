"""A verdict per row, from what the row's server saw and what the client said about itself.

The server's side (:class:`~.observation.Activity`) says how far the client got:
a request sent to a server it should have refused is a failure whatever the
client prints. The client's side (``client_ok``: its exit status, or what a
test's own client returned) catches the other failure, a client that *says*
it succeeded when the server refused it (TLS 1.3 late rejection). When
neither side can tell, the verdict is **informational**, never a silent pass.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .observation import Activity, Stage
from .rows import BadServerRow, Expect

__all__ = ["Status", "Verdict", "judge"]


class Status(enum.Enum):
    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    INFORMATIONAL = "informational"
    SKIP = "skip"  # the row could not be served here (the reason says why)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    row: str
    expected: str  # what a correct client does
    observed: str  # what the row's server saw
    client: str  # what the client said: "exit 0", "timed out after 20s", "not reported"
    status: Status
    detail: str
    activity: Activity
    output: str = ""  # the end of what the client printed, when it was run for this row

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "expected": self.expected,
            "observed": self.observed,
            "client": self.client,
            "verdict": self.status.value,
            "detail": self.detail,
            "activity": self.activity.to_json(),
            "output": self.output,
        }


def judge(
    row: BadServerRow,
    activity: Activity,
    *,
    client_ok: bool | None,
    client: str = "not reported",
    unavailable: str | None = None,
    hung: bool = False,
) -> Verdict:
    """The row's verdict. ``client_ok``: did the client report success (None: unknown)."""
    if unavailable is not None:
        status, detail = Status.SKIP, unavailable
    elif hung:
        status, detail = (
            Status.FAIL,
            "the client did not finish in time: every wait on a peer needs a deadline",
        )
    else:
        status, detail = _decide(row, activity, client_ok)
    return Verdict(
        row=row.name,
        expected=row.expect.value,
        observed=activity.describe(),
        client=client,
        status=status,
        detail=detail,
        activity=activity,
    )


def _decide(row: BadServerRow, activity: Activity, client_ok: bool | None) -> tuple[Status, str]:
    if activity.stage is Stage.NO_CONNECTION:
        if client_ok:
            return Status.FAIL, "the client reported success but never connected to this row's server"
        if row.expect is Expect.CONNECT:
            return Status.FAIL, "the control never connected: check the command (URL, port, CA)"
        return (
            Status.INFORMATIONAL,
            "never connected, so nothing shows whether it would refuse (check the command)",
        )
    match row.expect:
        case Expect.CONNECT:
            return _connect(activity, client_ok)
        case Expect.REFUSE:
            return _refuse(row, activity, client_ok)
        case Expect.REPORT:
            return _report(row, activity, client_ok)


def _connect(activity: Activity, client_ok: bool | None) -> tuple[Status, str]:
    if activity.stage is Stage.APPLICATION_DATA:
        if client_ok is False:
            return Status.FAIL, "the server answered its request, yet the client reported failure"
        return Status.PASS, ""
    if client_ok:
        return (
            Status.FAIL,
            f"the client reported success, but no request reached the server ({activity.describe()})",
        )
    return (
        Status.FAIL,
        f"the control failed ({activity.describe()}): check the command's CA, certificate and key",
    )


def _refuse(row: BadServerRow, activity: Activity, client_ok: bool | None) -> tuple[Status, str]:
    stage = activity.stage
    if stage is Stage.APPLICATION_DATA:
        if row.lenient:
            return Status.INFORMATIONAL, row.lenient
        return Status.FAIL, "sent a request to a server it must refuse"
    if stage is Stage.HANDSHAKE_COMPLETED:
        if row.completed_is_failure:
            tls = activity.furthest.tls if activity.furthest else None
            return Status.FAIL, f"completed a handshake with it ({tls})"
        if client_ok:
            if row.lenient:
                return Status.INFORMATIONAL, row.lenient
            return Status.FAIL, "completed the handshake with a server it must refuse and reported success"
        if client_ok is None:
            return (
                Status.INFORMATIONAL,
                "completed the handshake and sent nothing; no exit status says whether it refused",
            )
        return Status.PASS, "refused only after the handshake completed (its certificate was already sent)"
    if activity.alert_from_server and not activity.alert_from_client and not row.completed_is_failure:
        # Only a client that accepted the server's certificate gets as far as being judged itself.
        return Status.FAIL, (
            f"accepted this server's certificate: the handshake went on until the server refused the client "
            f"(alert {activity.alert_from_server}); give the client a certificate ({{cert}}, {{key}})"
        )
    if client_ok:
        return Status.FAIL, "the handshake failed, yet the client reported success"
    return Status.PASS, ""


def _report(row: BadServerRow, activity: Activity, client_ok: bool | None) -> tuple[Status, str]:
    if row.needs_alpn_offer and not activity.offered_alpn:
        return Status.INFORMATIONAL, "the client offered no ALPN, so there was no overlap to miss"
    if activity.stage is Stage.APPLICATION_DATA:
        return Status.FAIL, "the server answered a request it should have refused: this row is broken"
    presented = "it presented its certificate" if activity.cert_presented else "it presented no certificate"
    alert = activity.alert_from_server
    refused = f"the server refused it (alert {alert})" if alert else "the server refused it"
    if client_ok:
        return Status.FAIL, f"reported success, but {refused}"
    if client_ok is None:
        return (
            Status.INFORMATIONAL,
            f"{refused}; {presented}; whether the client reported failure is yours to check",
        )
    return Status.PASS, ""
