"""Draw a recorded handshake as an inline SVG sequence diagram, for the browser page.

Like the other renderers it takes only recorded
:class:`~mtls_ref.shared.tls.trace.TraceEvent` values and derives every note from
them. Everything that reaches the markup goes through :func:`html.escape`: an
event's detail carries a certificate subject, which the peer chose. No script,
no external font or stylesheet: the page must render offline and under a
``Content-Security-Policy`` that forbids both.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from html import escape
from typing import Final

from mtls_ref.shared.tls.render import TLS13_PENDING_NOTE, annotation
from mtls_ref.shared.tls.trace import Role, TraceEvent

__all__ = ["render_svg"]

WIDTH: Final = 760
CLIENT_X: Final = 150
SERVER_X: Final = 610
TOP: Final = 70  # first arrow's y, below the two participant boxes
ROW: Final = 46  # vertical space per message
NOTE_ROW: Final = 40  # a note spanning both lifelines
MAX_TEXT: Final = 74  # characters of an annotation before it is cut (the full text is in <title>)
BAND_TEXT: Final = 84  # characters per line of a note across both lifelines
LINE: Final = 16  # line height of wrapped note text

_STYLE: Final = (
    "text{font-family:system-ui,sans-serif;font-size:13px;fill:#1f2328}"
    ".name{font-weight:600}.note{font-size:12px;fill:#57606a}"
    ".client-auth .name,.client-auth .note{fill:#0550ae}"
    ".alert .name,.alert .note{fill:#cf222e}"
    ".line{stroke:#57606a;stroke-width:1.5}.client-auth .line{stroke:#0550ae;stroke-width:2.5}"
    ".alert .line{stroke:#cf222e;stroke-width:2.5}.data .line,.pending .line{stroke-dasharray:6 4}"
    ".lifeline{stroke:#afb8c1;stroke-dasharray:2 4}.box{fill:#f6f8fa;stroke:#57606a}"
    ".band{fill:#fff8c5;stroke:#d4a72c}.sep{stroke:#8c959f;stroke-dasharray:8 4}"
)

# Arrow heads: a filled triangle, and a cross for a fatal alert (the connection dies there).
_DEFS: Final = (
    "<defs>"
    '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
    'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
    '<path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker>'
    '<marker id="x" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="12" markerHeight="12" '
    'markerUnits="userSpaceOnUse"><path d="M1,1 L9,9 M9,1 L1,9" stroke="#cf222e" stroke-width="2"/></marker>'
    "</defs>"
)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _css_class(event: TraceEvent) -> str:
    if event.kind == "alert":
        return "message alert"
    if event.kind == "application_data":
        return "message data"
    if event.sender is Role.CLIENT and event.name in ("Certificate", "CertificateVerify"):
        return "message client-auth"  # where mutual TLS differs from ordinary TLS
    return "message"


def _arrow(y: int, event: TraceEvent, *, css: str, label: str, note: str, title: str) -> str:
    start, end = (CLIENT_X, SERVER_X) if event.sender is Role.CLIENT else (SERVER_X, CLIENT_X)
    head = "x" if event.kind == "alert" and event.detail.startswith("fatal") else "arrow"
    middle = (CLIENT_X + SERVER_X) // 2
    note_text = (
        f'<text class="note" x="{middle}" y="{y + 17}" text-anchor="middle">{escape(_cut(note))}</text>'
    )
    return (
        f'<g class="{css}" data-name="{escape(event.name)}" data-sender="{event.sender.value}">'
        f"<title>{escape(title)}</title>"
        f'<line class="line" x1="{start}" y1="{y}" x2="{end}" y2="{y}" marker-end="url(#{head})"/>'
        f'<text class="name" x="{middle}" y="{y - 7}" text-anchor="middle">{escape(label)}</text>'
        + (note_text if note else "")
        + "</g>"
    )


def _band(y: int, text: str) -> tuple[str, int]:
    """A note across both lifelines, wrapped; the markup and the height it takes."""
    lines = textwrap.wrap(text, BAND_TEXT) or [""]
    middle = (CLIENT_X + SERVER_X) // 2
    spans = "".join(
        f'<tspan x="{middle}" dy="{0 if i == 0 else LINE}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    height = 12 + LINE * len(lines)
    markup = (
        f'<g class="band-note"><rect class="band" x="{CLIENT_X - 40}" y="{y - 14}" '
        f'width="{SERVER_X - CLIENT_X + 80}" height="{height}" rx="4"/>'
        f'<text class="note" y="{y + 4}" text-anchor="middle">{spans}</text></g>'
    )
    return markup, height


def _add_band(parts: list[str], y: int, text: str) -> int:
    markup, height = _band(y - 8, text)
    parts.append(markup)
    return y + height + NOTE_ROW - 26


def _separator(y: int, text: str) -> str:
    return (
        f'<line class="sep" x1="{CLIENT_X - 60}" y1="{y}" x2="{SERVER_X + 60}" y2="{y}"/>'
        f'<text class="note" x="{SERVER_X + 60}" y="{y - 5}" text-anchor="end">{escape(text)}</text>'
    )


def _label(event: TraceEvent) -> str:
    if event.kind == "alert":
        return f"Alert ({event.detail})"
    if event.kind == "handshake" and event.length:
        return f"{event.name} ({event.length} bytes)"
    return event.name


def render_svg(
    events: Sequence[TraceEvent],
    *,
    version_label: str,
    tls13: bool | None,
    omitted: int = 0,
    pending: str = "",
) -> str:
    """An ``<svg>`` element: Client and Server lifelines, one arrow per recorded message.

    ``omitted``: events the recorder counted but did not keep (drawn as one note).
    ``pending``: a message not sent yet when this is drawn (the page carrying the
    diagram), shown as a dashed server-to-client arrow and said to be so.
    """
    parts: list[str] = []
    y = TOP
    client_finished = None
    if tls13:
        client_finished = next(
            (i for i, e in enumerate(events) if e.name == "Finished" and e.sender is Role.CLIENT), None
        )
    for index, event in enumerate(events):
        note = annotation(event) if event.kind != "alert" else ""
        title = f"{event.sender.value} → {event.sender.peer.value}: {_label(event)}"
        title += f" at +{event.at * 1000:.1f} ms" + (f"; {event.detail}" if event.detail else "")
        parts.append(_arrow(y, event, css=_css_class(event), label=_label(event), note=note, title=title))
        y += ROW
        if tls13 and event.name == "ServerHello":
            parts.append(_separator(y - ROW // 2 + 8, "encrypted from here on (TLS 1.3)"))
            y += 10
        if index == client_finished:
            y = _add_band(parts, y, TLS13_PENDING_NOTE)
    if omitted:
        y = _add_band(parts, y, f"… {omitted} more records on this connection, counted but not kept")
    if not events:
        y = _add_band(parts, y, "no TLS messages were recorded")
    if pending:
        fake = TraceEvent(sender=Role.SERVER, kind="pending", name=pending, length=0, at=0.0)
        parts.append(
            _arrow(
                y,
                fake,
                css="message pending",
                label=pending,
                note="sent after this diagram was drawn",
                title=f"{pending}: not yet sent when the diagram was drawn",
            )
        )
        y += ROW
    height = y + 10
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="handshake" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" aria-label="{escape(version_label)} handshake sequence diagram">'
        f"<style>{_STYLE}</style>{_DEFS}"
    )
    lanes = "".join(
        f'<rect class="box" x="{x - 60}" y="8" width="120" height="30" rx="4"/>'
        f'<text class="name" x="{x}" y="28" text-anchor="middle">{name}</text>'
        f'<line class="lifeline" x1="{x}" y1="38" x2="{x}" y2="{height - 4}"/>'
        for x, name in ((CLIENT_X, "Client"), (SERVER_X, "Server"))
    )
    return head + lanes + "".join(parts) + "</svg>"
