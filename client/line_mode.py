"""``mtls-client`` against our server: the line protocol (greeting, then one reply per request line).

Our server greets first, so the greeting is the first read after the handshake
and carries the server's verdict: ``OK hello <identity>``, ``ERR forbidden``
from the allow-list, or (TLS 1.3) the alert that refuses our certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from mtls_ref.shared.core.errors import ProtocolError
from mtls_ref.shared.core.protocol import Reply, parse_reply

from .channel import Channel
from .outcome import ClientReport, Exit, fail

__all__ = ["exchange"]

# Replies with which our server ends a session it will not continue.
_ENDING_CODES: Final = frozenset({"line-too-long", "bad-encoding", "idle-timeout", "shutting-down"})


async def exchange(channel: Channel, messages: Sequence[str]) -> None:
    """Read the greeting, then send each message and read its reply, until ``OK bye``."""
    report = channel.report
    with channel.exchange("greeting"):
        greeting = await channel.line("a greeting")
    report.greeting = greeting
    reply = _parse(greeting, report)
    if not reply.ok and reply.code == "forbidden":
        raise fail(
            report,
            Exit.FORBIDDEN,
            summary=f"authenticated, but refused by the server's authorization: {reply.text}",
            fix="ask for this identity to be added to the server's allow-list ([server] allow)",
        )
    if not reply.ok:
        raise fail(
            report,
            Exit.PROTOCOL,
            summary=f"the server refused the session: {reply}",
            fix="see the server's log",
        )
    for message in messages:
        with channel.exchange(f"reply to {message!r}"):
            await channel.send_line(message)
            answer = await channel.line(f"a reply to {message!r}")
        report.exchanges.append((message, answer))
        parsed = _parse(answer, report)
        if parsed.ok and parsed.code == "bye":
            return
        if not parsed.ok and parsed.code in _ENDING_CODES:
            raise fail(
                report,
                Exit.PROTOCOL,
                summary=f"the server ended the session: {parsed}",
                fix="shorten the request, or retry",
            )


def _parse(line: str, report: ClientReport) -> Reply:
    try:
        return parse_reply(line)
    except ProtocolError as exc:
        raise fail(
            report,
            Exit.PROTOCOL,
            summary=f"unexpected reply: {exc}",
            fix="is this an mtls-ref server? for other servers use --raw",
        ) from exc
