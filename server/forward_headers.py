"""What an HTTP request may carry to the backend, and the identity headers we add (sans-I/O).

Three rules keep a client from speaking for anyone but itself:

* **Framing by the book** (RFC 9112 §6.3, §11.2). A request with both
  ``Transfer-Encoding`` and ``Content-Length`` is how requests are smuggled
  past a proxy: the proxy reads one length, the backend the other, and the
  rest of the body runs as a second request. Such a request is refused (400,
  then close), never repaired. h11 already refuses differing ``Content-Length``
  values and any ``Transfer-Encoding`` but ``chunked``; what we forward then
  carries exactly the one framing header the body was read with.
* **Identity headers cannot be forged.** Every header we set is removed from
  what the client sent, under any spelling a backend might read as the same
  name: case, and ``_`` for ``-`` (WSGI and CGI turn both into
  ``HTTP_X_FORWARDED_CLIENT_CERT``). Header names holding ``_`` are dropped
  altogether unless configured otherwise (nginx's
  ``underscores_in_headers off``, Envoy's ``headers_with_underscores_action``).
  Trailers are cleaned by the same rule.
* **Identity values are encoded so no certificate can add a field.**
  XFCC (Envoy's format): a value holding ``,`` ``;`` ``=`` ``"`` ``\\`` or a
  space is double-quoted, with ``"`` and ``\\`` escaped by a backslash (the
  quoted-string of RFC 9110 §5.6.4). RFC 9440: ``Client-Cert`` and
  ``Client-Cert-Chain`` carry DER as structured-field byte sequences
  (``:base64:``, RFC 8941 §3.3.5), which nothing can inject into. And a
  certificate whose names hold a control character is never forwarded.

Hop-by-hop fields (RFC 9110 §7.6.1: ``Connection``, the fields it names,
``Keep-Alive``, ``Proxy-Connection``, ``TE``, ``Trailer``, ``Upgrade``) are
the sender's business with us, not with the backend: they are removed both ways
and we set our own. The framing fields and ``Host`` are never removed on a
``Connection`` token's say-so. The only upgrade passed on is ``websocket``: an
upgrade to another HTTP (``h2c``) would carry requests the relay never sees,
and so could carry any identity header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from typing import Final

import h11

from mtls_ref.shared.tls.identity import PeerIdentity

__all__ = [
    "HOP_BY_HOP",
    "IDENTITY_HEADERS",
    "UPGRADES",
    "Headers",
    "clean_headers",
    "client_cert_headers",
    "framing_problem",
    "head_size",
    "requested_upgrade",
    "unforwardable_name",
    "xfcc_value",
]

Headers = list[tuple[bytes, bytes]]

XFCC: Final = b"x-forwarded-client-cert"
CLIENT_CERT: Final = b"client-cert"
CLIENT_CERT_CHAIN: Final = b"client-cert-chain"
# Every header this server may set; removed from requests in every http mode.
IDENTITY_HEADERS: Final = frozenset({XFCC, CLIENT_CERT, CLIENT_CERT_CHAIN})

# RFC 9110 §7.6.1, plus what a HTTP/2 upgrade carries.
HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade", b"http2-settings"}
)
# What a Connection token may never remove: the message's framing and its target.
_NEVER_HOP: Final = frozenset({b"content-length", b"transfer-encoding", b"host"})
# Upgrades relayed: protocols that are not HTTP, so the relay has nothing left to check.
UPGRADES: Final = frozenset({b"websocket"})

# C0 controls, DEL and C1 controls: no name in a certificate we forward may hold one.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")
# Characters that make an XFCC value need quotes: Envoy's three separators, the quote itself,
# the escape character and white space (which some parsers trim).
_XFCC_SPECIAL: Final = re.compile(r'[,;="\\\s]')


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def framing_problem(request: h11.Request) -> str | None:
    """Why this request's body length is ambiguous, or None when one framing header decides it.

    h11 has already refused a ``Transfer-Encoding`` other than ``chunked``, several of them,
    and differing ``Content-Length`` values; what is left is the pair.
    """
    if _header(request.headers, b"transfer-encoding") and _header(request.headers, b"content-length"):
        return (
            "the request has both Transfer-Encoding and Content-Length, which backends may read "
            "differently (request smuggling, RFC 9112 section 6.3); send one of them"
        )
    return None


def clean_headers(
    headers: Iterable[tuple[bytes, bytes]], *, keep_underscores: bool
) -> tuple[Headers, Headers]:
    """(headers to pass on, headers dropped): our identity headers in any spelling, ``_`` names, and
    hop-by-hop fields (those ``Connection`` names included)."""
    headers = list(headers)
    hop = HOP_BY_HOP | {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
    }
    hop -= _NEVER_HOP
    kept: Headers = []
    dropped: Headers = []
    for name, value in headers:
        lowered = name.lower()  # h11 lowercases already; trailers from elsewhere may not be
        forged = lowered.replace(b"_", b"-") in IDENTITY_HEADERS
        if forged or lowered in hop or (b"_" in lowered and not keep_underscores):
            dropped.append((lowered, value))
        else:
            kept.append((lowered, value))
    return kept, dropped


def requested_upgrade(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The protocol a request asks to switch to, when it is one we relay (``websocket``), else None."""
    values = [value.strip().lower() for name, value in headers if name == b"upgrade"]
    return values[0] if len(values) == 1 and values[0] in UPGRADES else None


def head_size(request: h11.Request) -> int:
    """About how many bytes the request head took (h11 bounds only a head that arrives in pieces)."""
    return len(request.method) + len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)


def unforwardable_name(identity: PeerIdentity) -> str | None:
    """A name of the certificate that holds a control character (shown escaped), or None."""
    for value in (identity.subject, *identity.common_names, *identity.names()):
        if _CONTROL.search(value):
            return ascii(value)
    return None


def _xfcc_field(value: str) -> str:
    if not _XFCC_SPECIAL.search(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def xfcc_value(identity: PeerIdentity) -> bytes:
    """One XFCC element for the verified client certificate, in Envoy's key order.

    ``Hash`` (SHA-256 of the DER, hex), ``Subject`` (RFC 4514, always quoted, as Envoy
    writes it), then one ``URI`` and one ``DNS`` pair per SAN of that kind.
    """
    parts = [
        f"Hash={identity.sha256.replace(':', '').lower()}",
        'Subject="' + identity.subject.replace("\\", "\\\\").replace('"', '\\"') + '"',
    ]
    parts += [f"URI={_xfcc_field(uri)}" for uri in identity.uris]
    parts += [f"DNS={_xfcc_field(name)}" for name in identity.dns]
    return ";".join(parts).encode()


def _byte_sequence(der: bytes) -> bytes:
    """An RFC 8941 byte sequence: the base64 of the bytes between colons."""
    return b":" + base64.b64encode(der) + b":"


def client_cert_headers(leaf_der: bytes, chain_der: Sequence[bytes]) -> Headers:
    """RFC 9440's ``Client-Cert`` (the leaf) and, when known, ``Client-Cert-Chain``.

    ``chain_der``: the certificates that certify the leaf, nearest first, without the trust
    anchor (RFC 9440 §2.3 lets a proxy omit it; the backend has its own). Empty: the header
    is left out, as the RFC allows when the chain is not known.
    """
    headers: Headers = [(CLIENT_CERT, _byte_sequence(leaf_der))]
    if chain_der:
        headers.append((CLIENT_CERT_CHAIN, b", ".join(_byte_sequence(der) for der in chain_der)))
    return headers
