"""``mtls-client --raw``: any line server (e.g. ``openssl s_server -rev``); one reply line per sent line.

No greeting is expected, so the reply to the first line is the first read after
the handshake and proves (or, under TLS 1.3, refuses) our certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

from .channel import Channel
from .outcome import Exit, fail

__all__ = ["exchange"]


async def exchange(channel: Channel, messages: Sequence[str]) -> None:
    """Send each message as a line and read one line back.

    A reply in the line protocol's refusal form (``ERR forbidden ...``, as our server
    and servers written after it answer) is a refusal, not an answer.
    """
    report = channel.report
    for message in messages:
        with channel.exchange(f"reply to {message!r}"):
            await channel.send_line(message)
            reply = await channel.line(f"a reply to {message!r}")
        report.exchanges.append((message, reply))
        if reply.startswith("ERR forbidden"):
            raise fail(
                report,
                Exit.FORBIDDEN,
                summary=f"authenticated, but the server refused: {reply}",
                fix="ask for this identity to be put on the server's allow-list",
            )
        if reply.startswith("ERR "):
            raise fail(
                report, Exit.PROTOCOL, summary=f"the server answered an error: {reply}", fix="see its log"
            )
