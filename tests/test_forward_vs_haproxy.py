"""Forward mode beside HAProxy 2.6 in the same place: the same smuggling and header probes, compared.

HAProxy (``mode http``, ``verify required``, its own X-Forwarded-Client-Cert set after removing the
client's) and our server stand in front of the same recording backend. Where HAProxy refuses, we
refuse; where both forward, the backend sees the same request. Where we are stricter, the probe is
named below with the reason, so the difference is a decision, not an accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import trio

from .support.backends import Seen, h11_backend
from .support.forward import responses, start_forwarding, tls_exchange
from .support.haproxy import haproxy_http_front
from .support.pki import Pki

CLOSE = b"Connection: close\r\n"
PROBES: dict[str, bytes] = {
    "te-and-cl": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    + CLOSE
    + b"\r\n0\r\n\r\n",
    "te-gzip": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n" + CLOSE + b"\r\nabc",
    "te-chunked-gzip": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n"
    + CLOSE
    + b"\r\n0\r\n\r\n",
    "te-gzip-chunked": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
    + CLOSE
    + b"\r\n0\r\n\r\n",
    "two-te-headers": b"POST /a HTTP/1.1\r\nHost: x\r\n"
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
    + CLOSE
    + b"\r\n0\r\n\r\n",
    "differing-cls": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n"
    + CLOSE
    + b"\r\nabcde",
    "cl-list": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n" + CLOSE + b"\r\nabcde",
    "same-cl-twice": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
    + CLOSE
    + b"\r\nabcde",
    "space-before-colon": b"GET /s HTTP/1.1\r\nHost: x\r\nX-Forwarded-Client-Cert : forged\r\n"
    + CLOSE
    + b"\r\n",
    "xfcc-any-case": b"GET /c HTTP/1.1\r\nHost: x\r\nx-FORWARDED-client-CERT: forged\r\n" + CLOSE + b"\r\n",
    "xfcc-underscores": b"GET /u HTTP/1.1\r\nHost: x\r\nX_Forwarded_Client_Cert: forged\r\n"
    + CLOSE
    + b"\r\n",
    "xfcc-in-trailer": b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    + CLOSE
    + b"\r\n3\r\nabc\r\n0\r\nX-Forwarded-Client-Cert: forged\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "obs-fold": b"GET /f HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n" + CLOSE + b"\r\n",
    "http10-without-host": b"GET /old HTTP/1.0\r\n\r\n",
    "chunked-body": b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    + CLOSE
    + b"\r\n3\r\nabc\r\n0\r\n\r\n",
    "sized-body": b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n" + CLOSE + b"\r\nabc",
}

# Where we refuse and HAProxy 2.6 forwards, and why.
STRICTER = {
    # HAProxy drops Content-Length and forwards chunked (RFC 9112 §6.3 allows it); we reject rather
    # than repair: a request that was built to be read two ways is not a request to serve.
    "te-and-cl": "refused",
    # HAProxy forwards CONNECT and then tunnels; forward mode is no tunnelling proxy.
    "connect": "refused",
    # HAProxy passes 'X_Forwarded_Client_Cert' on, which WSGI and CGI read as our header.
    "xfcc-underscores": "forged header dropped",
    # HAProxy passes trailers on as they came, forged identity header included.
    "xfcc-in-trailer": "forged trailer dropped",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a front did with a probe, as the client and the backend saw it."""

    forwarded: bool
    method: str = ""
    target: str = ""
    body: bytes = b""
    framing: tuple[str, ...] = ()  # the framing headers the backend got
    forged: bool = False  # a value the client sent as identity reached the backend
    identity_headers: int = 0  # X-Forwarded-Client-Cert headers the backend got


def verdict(raw: bytes, seen: list[Seen]) -> Verdict:
    if not seen:
        statuses = [status for status, _, _ in responses(raw)]
        assert not statuses or statuses[0] >= 400, raw  # refused means answered with an error, or closed
        return Verdict(forwarded=False)
    (request,) = seen
    everything = request.headers + request.trailers
    return Verdict(
        forwarded=True,
        method=request.method,
        target=request.target,
        body=request.body,
        framing=tuple(k for k, _ in request.headers if k in ("content-length", "transfer-encoding")),
        forged=any("forged" in value for _, value in everything),
        identity_headers=len(request.values("x-forwarded-client-cert")),
    )


async def probe_all(pki: Pki, port: int, seen: list[Seen]) -> dict[str, Verdict]:
    verdicts = {}
    for name, request in PROBES.items():
        seen.clear()
        raw = b""
        with trio.move_on_after(5):  # a front may keep a CONNECT open: what the backend saw decides
            raw = await tls_exchange(pki, port, request)
        verdicts[name] = verdict(raw, list(seen))
    return verdicts


@pytest.mark.interop
async def test_forward_mode_refuses_whatever_haproxy_refuses(pki: Pki, haproxy: str) -> None:
    """The same probes through HAProxy and through us: every HAProxy refusal is ours too, every request
    both forward reaches the backend the same (method, target, body, one framing header, one identity
    header, nothing forged), and where we are stricter it is one of the named decisions above."""
    seen: list[Seen] = []
    async with h11_backend(seen) as backend:
        async with haproxy_http_front(haproxy, pki, backend) as front:
            theirs = await probe_all(pki, front, seen)
        async with trio.open_nursery() as nursery:
            server, port, _ = await start_forwarding(nursery, pki, backend)
            ours = await probe_all(pki, port, seen)
            server.shutdown()
    stricter = {}
    for name in PROBES:
        mine, haproxy_did = ours[name], theirs[name]
        if not haproxy_did.forwarded:
            assert not mine.forwarded, f"{name}: HAProxy refuses it, we forwarded {mine}"
            continue
        assert not mine.forged, f"{name}: a forged identity reached the backend through us: {mine}"
        if not mine.forwarded:
            stricter[name] = "refused"
            continue
        if haproxy_did.forged:
            stricter[name] = "forged trailer dropped" if "trailer" in name else "forged header dropped"
        assert (mine.method, mine.target, mine.body) == (
            haproxy_did.method,
            haproxy_did.target,
            haproxy_did.body,
        )
        assert len(mine.framing) <= 1 and mine.framing == haproxy_did.framing, (name, mine, haproxy_did)
        assert mine.identity_headers == 1, (name, mine)
    assert stricter == STRICTER
