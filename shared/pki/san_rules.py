"""What a subjectAltName value may hold before this CA certifies it.

A SAN ends up in identity formats that other software parses: the allow-list,
our log line, a PROXY v2 TLV (``URI:...,DNS:...``), Envoy's
``X-Forwarded-Client-Cert`` (``;URI=...;DNS=...``), a verifier's host name
match. A value holding a control character, whitespace, or another kind of
name (``DNS:a.example;URI=spiffe://td/admin``) can split or forge a field in
one of them, so the certs tool refuses such values outright:

* no value holds a control character (C0, DEL, C1) or whitespace;
* a DNS name is a host name: LDH labels (RFC 1123 §2.1: letters, digits and
  ``-``, not at either end) of 1-63 characters, at most 253 in all, without a
  trailing dot; the leftmost label may be ``*`` (RFC 6125 §6.4.3);
* an email address has exactly one ``@`` (a second one is how a matcher is
  made to read another domain; quoted local parts are not supported), a
  local part, and a host name as its domain;
* a URI is ASCII (RFC 3986: anything else is percent-encoded); ``;``, ``,``
  and ``=`` are legal in URIs and stay allowed, which is why whoever forwards
  a URI quotes it;
* an IP address is an address: no network (a CSR can encode one), no zone.

Each check returns the problem in words (``None`` when there is none), and the
caller says which SAN it is and where it came from.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Final

from cryptography import x509

__all__ = ["general_name_problem", "text_problem", "value_problem"]

_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
MAX_HOST_NAME: Final = 253  # RFC 1035 §2.3.4's 255 octets on the wire, less the length bytes
_HOST_RULE: Final = (
    "labels of letters, digits and '-' (1-63 characters each, not starting or ending with '-') "
    f"joined by '.', at most {MAX_HOST_NAME} characters"
)
_KINDS: Final = {
    x509.DNSName: "DNS",
    x509.IPAddress: "IP",
    x509.UniformResourceIdentifier: "URI",
    x509.RFC822Name: "email",
}


def text_problem(text: str) -> str | None:
    """The first control character or whitespace in ``text``, in words; None when it has none."""
    for position, char in enumerate(text):
        if char.isspace() or unicodedata.category(char) == "Cc":
            return (
                f"holds {char!r} at position {position}: no SAN value may hold a control character or "
                "whitespace; remove it"
            )
    return None


def is_host_name(name: str, *, wildcard: bool = False) -> bool:
    """LDH labels, 1-63 each, at most 253 in all; with ``wildcard``, the leftmost label may be ``*``."""
    if len(name) > MAX_HOST_NAME:
        return False
    if wildcard and name.startswith("*."):
        name = name[2:]
    return all(_LABEL.fullmatch(label) for label in name.split("."))


def value_problem(kind: str, value: str) -> str | None:
    """What is wrong with a ``kind`` (DNS, IP, URI, email) SAN ``value``, after :func:`text_problem`."""
    if kind == "DNS" and not is_host_name(value, wildcard=True):
        return (
            f"is not a host name: {_HOST_RULE}, optionally starting with '*.' (an internationalized "
            "name goes in its xn-- form); give another kind of name its own --san (URI:..., email:...)"
        )
    if kind == "email":
        return _email_problem(value)
    if kind == "URI" and not value.isascii():
        return "holds non-ASCII characters: percent-encode them (RFC 3986 §2.1)"
    if kind == "IP" and "%" in value:
        return "names a zone ('%...'): a certificate's IP address has none; give the address alone"
    return None


def _email_problem(value: str) -> str | None:
    local, _, domain = value.partition("@")
    if "@" not in value:
        return "has no '@': an email SAN is LOCAL@DOMAIN, e.g. email:alice@example.com"
    if "@" in domain:
        return "has more than one '@': an email SAN is LOCAL@DOMAIN with exactly one '@'"
    if not local:
        return "has no local part: an email SAN is LOCAL@DOMAIN, e.g. email:alice@example.com"
    if not local.isascii():
        return "holds non-ASCII characters in its local part, which a certificate's email address cannot"
    if not is_host_name(domain):
        return f"is not an email address: the domain {domain!r} is not a host name ({_HOST_RULE})"
    return None


def general_name_problem(name: x509.GeneralName) -> tuple[str, str | None]:
    """(the SAN as ``KIND:value``, its problem or None), for a name read from a CSR.

    Kinds other than DNS, IP, URI and email are shown as they are and not judged here.
    """
    kind = _KINDS.get(type(name))
    if kind is None:
        return str(name.value), None
    value = name.value
    if kind == "IP" and not isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return f"IP:{value}", "is a network, not an address: a certificate names addresses"
    shown = f"{kind}:{value}"
    return shown, text_problem(shown) or value_problem(kind, str(value))
