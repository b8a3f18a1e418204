"""The PROXY protocol version 2 header (HAProxy's specification, proxy-protocol.txt), sans-I/O.

Sent first on a forwarded connection, it tells the backend who the client is:
the addresses of the original connection and, in TLVs, what TLS established.

* ``PP2_TYPE_SSL`` (0x20): ``client`` bits (SSL, certificate presented on this
  connection), ``verify`` = 0 (the certificate verified), and the sub-TLVs
  ``SSL_VERSION`` (0x21, e.g. ``TLSv1.3``), ``SSL_CN`` (0x22), ``SSL_CIPHER``
  (0x23);
* a custom TLV, ``0xE0`` (the first of the range the specification leaves to
  applications), once per URI or DNS SAN of the client (URI SANs first, then
  DNS, each in the certificate's order), each value one SAN prefixed as the
  allow-list spells it
  (``URI:spiffe://example.org/alice``, then ``DNS:api.example``). A TLV is
  length-prefixed, so one SAN can never read as two, whatever it holds (an
  earlier version joined them with ``,``, which a SAN may contain).

A value longer than a TLV can hold (65,535 bytes) is an error, never cut
short: a truncated name could be another, shorter identity.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["SIGNATURE", "TLV_SANS", "ProxyHeader"]

SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_VERSION_PROXY: Final = 0x21  # version 2, command PROXY
_TCP4: Final = 0x11
_TCP6: Final = 0x21
TLV_SSL: Final = 0x20
TLV_SSL_VERSION: Final = 0x21
TLV_SSL_CN: Final = 0x22
TLV_SSL_CIPHER: Final = 0x23
TLV_SANS: Final = 0xE0  # PP2_TYPE_MIN_CUSTOM: ours, documented above
CLIENT_SSL: Final = 0x01
CLIENT_CERT_CONN: Final = 0x02
CLIENT_CERT_SESS: Final = 0x04
_MAX_VALUE: Final = 0xFFFF


def _tlv(kind: int, value: bytes) -> bytes:
    if len(value) > _MAX_VALUE:
        raise ValueError(f"a PROXY v2 TLV holds at most {_MAX_VALUE} bytes, not {len(value)}")
    return struct.pack("!BH", kind, len(value)) + value


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeader:
    """What the backend learns: the original addresses and the TLS facts of the client."""

    source: tuple[str, int]
    destination: tuple[str, int]
    tls_version: str | None
    cipher: str | None
    common_name: str | None
    sans: tuple[str, ...] = ()
    resumed: bool = False

    def encode(self) -> bytes:
        """The header's bytes: signature, version/command, family, length, addresses, TLVs.

        Raises ValueError when a value does not fit a TLV.
        """
        src, dst = ipaddress.ip_address(self.source[0]), ipaddress.ip_address(self.destination[0])
        if src.version != dst.version:  # an IPv4 client on a dual-stack socket: say it in IPv6 terms
            src, dst = (_as_v6(src), _as_v6(dst))
        family = _TCP4 if src.version == 4 else _TCP6
        addresses = src.packed + dst.packed + struct.pack("!HH", self.source[1], self.destination[1])
        ssl_sub = b"".join(
            _tlv(kind, text.encode())
            for kind, text in (
                (TLV_SSL_VERSION, self.tls_version),
                (TLV_SSL_CN, self.common_name),
                (TLV_SSL_CIPHER, self.cipher),
            )
            if text
        )
        client = CLIENT_SSL | (CLIENT_CERT_SESS if self.resumed else CLIENT_CERT_CONN)
        tlvs = _tlv(TLV_SSL, struct.pack("!BI", client, 0) + ssl_sub)
        tlvs += b"".join(_tlv(TLV_SANS, san.encode()) for san in self.sans)
        body = addresses + tlvs
        if len(body) > _MAX_VALUE:  # the header's own length field is 16 bits too
            raise ValueError(
                f"a PROXY v2 header holds at most {_MAX_VALUE} bytes after its 16, not {len(body)}"
            )
        return SIGNATURE + struct.pack("!BBH", _VERSION_PROXY, family, len(body)) + body


def _as_v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if isinstance(address, ipaddress.IPv6Address):
        return address
    return ipaddress.IPv6Address(f"::ffff:{address}")
