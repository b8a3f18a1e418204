"""``mtls-client --http2 [PATH]``: one ``GET PATH`` over HTTP/2 (ALPN h2), judged by the status as ``--http``.

The request and the reading are :mod:`~.h2_exchange`'s; the verdict is the same
as HTTP/1.1's (:func:`~.http_mode.judge_status`): nginx refuses a missing or
bad client certificate with 400/495/496 on HTTP/2 as on HTTP/1.1. The status
and the body are printed; an HTML error page's ``<title>`` is its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .channel import Channel
from .h2_exchange import H2Client
from .http_mode import judge_status, page_reason

__all__ = ["exchange"]

# The body we take and print: a page or a JSON document, not a download.
MAX_BODY: Final = 1 << 20


async def exchange(channel: Channel, messages: Sequence[str]) -> None:
    """``GET`` the path in ``messages`` (the one --http2 gave; "/" by default) and judge its status."""
    path = messages[0] if messages else "/"
    client = H2Client(channel)
    await client.start()
    response = await client.request("GET", path, max_body=MAX_BODY)
    await client.close()
    report = channel.report
    report.exchanges.append((f"GET {path} HTTP/2", f"HTTP/2 {response.status}"))
    reason = page_reason(response.body)
    report.http_status = str(response.status) + (f": {reason}" if reason else "")
    report.body = response.body.decode("utf-8", errors="replace")
    judge_status(report, response.status, f"GET {path}")
