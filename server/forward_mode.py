"""Forward mode after the allow-list: the relay the configured identity needs, and that identity.

``forward_identity`` picks the relay: the byte relay (:mod:`.forward`) for
``none`` and ``proxy-v2`` (with the PROXY v2 header first), the HTTP relay
(:mod:`.forward_http`) for ``http-header`` and ``client-cert``, whose identity
headers are computed once per connection here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding

from mtls_ref.server.proxy_protocol import ProxyHeader
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.identity import PeerIdentity

from .forward import forward
from .forward_headers import XFCC, Headers, client_cert_headers, xfcc_value
from .forward_http import forward_http
from .record import Code, ConnectionRecord, Outcome, refuse
from .settings import HandlerSettings

__all__ = ["forward_connection"]


async def forward_connection(
    tls: TLSConnection,
    settings: HandlerSettings,
    ident: PeerIdentity,
    record: ConnectionRecord,
    addresses: tuple[tuple[str, int], tuple[str, int]] | None,
) -> None:
    target = settings.forward
    if target is None:  # only called in forward mode
        return
    if target.identity in ("http-header", "client-cert"):
        result = await forward_http(
            tls,
            target,
            _identity_headers(tls, target.identity, ident),
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.handshake_timeout,
            request_timeout=settings.request_timeout,
        )
        record.requests = result.requests
        record.dropped_headers = sorted(result.dropped_headers) or None
    else:
        header = b""
        if target.identity == "proxy-v2" and addresses is not None:
            header = _proxy_header(record, ident, addresses)
        result = await forward(
            tls,
            target,
            header,
            idle_timeout=settings.idle_timeout,
            connect_timeout=settings.handshake_timeout,
        )
    record.forwarded = (result.to_backend, result.to_client)
    record.reason = result.ended


def _proxy_header(
    record: ConnectionRecord, ident: PeerIdentity, addresses: tuple[tuple[str, int], tuple[str, int]]
) -> bytes:
    try:
        return ProxyHeader(
            source=addresses[0],
            destination=addresses[1],
            tls_version=record.tls_version,
            cipher=record.cipher,
            common_name=ident.common_name,
            sans=(*(f"URI:{uri}" for uri in ident.uris), *(f"DNS:{name}" for name in ident.dns)),
            resumed=record.resumed,
        ).encode()
    except ValueError as exc:  # a name too long for a TLV: never cut short
        why = f"the certificate's identity does not fit a PROXY v2 header: {exc}"
        refuse(record, Outcome.FORBIDDEN, Code.UNFORWARDABLE, why)


def _identity_headers(tls: TLSConnection, kind: str, identity: PeerIdentity) -> Headers:
    """The headers every forwarded request carries, computed once per connection."""
    if kind == "http-header":
        return [(XFCC, xfcc_value(identity))]
    chain = tls.verified_chain() or []  # leaf to trust anchor; neither is sent in Client-Cert-Chain
    return client_cert_headers(identity.der, [cert.public_bytes(Encoding.DER) for cert in chain[1:-1]])
