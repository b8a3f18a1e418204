"""Render a recorded handshake: a terminal sequence diagram, Mermaid, or JSON.

Renderers take only recorded :class:`~mtls_ref.shared.tls.trace.TraceEvent` values, so they
are tested on recorded events without any network; the annotations (where the
client certificate and CertificateVerify travel, where a TLS 1.3 client thinks
it is done) are derived from the events, never scripted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from mtls_ref.shared.tls.trace import Role, TraceEvent

__all__ = ["annotation", "render_json", "render_mermaid", "render_terminal"]

_LANE: Final = 46  # characters between the two lifelines
TLS13_PENDING_NOTE: Final = (
    "TLS 1.3: the client's handshake is complete here, but the server has not yet "
    "ruled on the client certificate; a rejection arrives on the client's first read"
)


def annotation(event: TraceEvent) -> str:
    """Why a message matters for mutual TLS, in a few words ("" when it speaks for itself)."""
    by_client = event.sender is Role.CLIENT
    match event.name:
        case "Certificate" if by_client:
            return f"client certificate: {event.detail}"
        case "Certificate":
            return f"server certificate: {event.detail}"
        case "CertificateRequest":
            return "server asks for a client certificate"
        case "CertificateVerify" if by_client:
            return "client proves it holds the certificate's private key"
        case "CertificateVerify":
            return "server proves it holds its key"
        case "Alert":
            return f"ALERT {event.detail}"
        case "ApplicationData":
            return f"application data, {event.length}-byte encrypted record"
        case "NewSessionTicket":
            return "resumption ticket"
        case _:
            return ""


def _pending_note_index(events: Sequence[TraceEvent], tls13: bool | None) -> int | None:
    """Index after which a TLS 1.3 client considers itself done (its Finished)."""
    if not tls13:
        return None
    for index, event in enumerate(events):
        if event.name == "Finished" and event.sender is Role.CLIENT:
            return index
    return None


def _arrow(event: TraceEvent) -> str:
    label = f" {event.name} "
    if event.kind == "alert":
        label = f" Alert ({event.detail}) "
    filler = max(_LANE - len(label) - 4, 2)
    if event.sender is Role.CLIENT:
        return "|--" + label + "-" * filler + "->|"
    return "|<-" + "-" * filler + label + "--|"


def render_terminal(
    events: Sequence[TraceEvent], *, observer: Role, version_label: str, tls13: bool | None
) -> str:
    """A sequence diagram for a terminal: two lifelines, one arrow per message."""
    title = f"{version_label} handshake, as recorded by the {observer.value}"
    width = _LANE + 2
    lines = [title, f"{'Client':<{width // 2}}{'Server':>{width - width // 2}}"]
    note_after = _pending_note_index(events, tls13)
    for index, event in enumerate(events):
        note = annotation(event)
        lines.append(_arrow(event) + (f"  {note}" if note else ""))
        if index == note_after:
            lines.append(f":{' ' * _LANE}:  {TLS13_PENDING_NOTE}")
    if not events:
        lines.append("(no TLS messages were exchanged)")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    # ';' and '#' end or escape a Mermaid statement; keep labels plain.
    return text.replace(";", ",").replace("#", "")


def render_mermaid(events: Sequence[TraceEvent], *, version_label: str, tls13: bool | None) -> str:
    """A Mermaid ``sequenceDiagram`` in the shape introductory docs use."""
    lines = [
        "sequenceDiagram",
        "    participant Client",
        "    participant Server",
        f"    Note over Client,Server: {version_label}",
    ]
    note_after = _pending_note_index(events, tls13)
    for index, event in enumerate(events):
        sender, receiver = ("Client", "Server") if event.sender is Role.CLIENT else ("Server", "Client")
        arrow = "-x" if event.kind == "alert" and event.detail.startswith("fatal") else "->>"
        label = f"Alert {event.detail}" if event.kind == "alert" else event.name
        lines.append(f"    {sender}{arrow}{receiver}: {_mermaid_text(label)}")
        note = annotation(event)
        if note and event.kind != "alert":
            lines.append(
                f"    Note {'right' if sender == 'Client' else 'left'} of {sender}: {_mermaid_text(note)}"
            )
        if index == note_after:
            lines.append(f"    Note over Client,Server: {_mermaid_text(TLS13_PENDING_NOTE)}")
    return "\n".join(lines)


def render_json(events: Sequence[TraceEvent], *, observer: Role, version_label: str) -> str:
    """The events as JSON, for scripts."""
    return json.dumps(
        {"observer": observer.value, "version": version_label, "events": [e.to_dict() for e in events]},
        indent=2,
    )
