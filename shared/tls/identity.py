"""Who the peer is (from its verified certificate) and whether the allow-list admits it.

Authentication is TLS's job; this module does what comes after: name the
identity the certificate carries (subject, DNS/email/URI/IP SANs, SPIFFE ID,
serial, fingerprint) and apply the optional allow-list.

Allow-list rules are ``KIND:PATTERN`` with KIND one of ``CN``, ``DNS``,
``email``, ``URI``, ``IP``. How a pattern matches, per kind (docs/server.md, "Allow-list
rules"):

* always the whole value, never a prefix, never up to a trailing newline;
* a value holding a control character (C0, DEL, C1; NUL and newline among
  them) matches no rule at all;
* case: ``DNS`` names and the domain of an ``email`` compare with ASCII case
  folded (``A``-``Z`` only: the Kelvin sign is not ``K``); ``CN``, ``URI``
  (SPIFFE IDs included) and the local part of an ``email`` compare exactly;
* ``*`` matches a run of characters that does not cross the kind's separators:
  ``.`` in a ``DNS`` name (one label, as TLS wildcards), ``/`` in a ``URI``
  (one path segment), ``@`` and ``.`` in an ``email`` domain, ``@`` in its
  local part, ``.`` and ``:`` in an ``IP``; a ``CN`` has no separators;
* ``CN`` rules need exactly one CN: a subject with several (``CN=bob,CN=admin``)
  is matched by no CN rule, and the refusal says why.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.pki.inspect import fingerprint
from mtls_ref.shared.pki.keys import describe_key

__all__ = [
    "AllowList",
    "AllowRule",
    "Decision",
    "PeerIdentity",
    "identity_from_certificate",
    "identity_from_der",
]

RULE_KINDS: Final = ("CN", "DNS", "email", "URI", "IP")
# What '*' may not cross, per kind.
_SEPARATORS: Final = {"CN": "", "DNS": ".", "URI": "/", "IP": ".:"}
# C0 controls, DEL and C1 controls: no legitimate name holds one.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerIdentity:
    """What a verified peer certificate says about its holder."""

    subject: str
    common_names: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    serial: str
    sha256: str
    der: bytes = field(default=b"", repr=False)

    # What only whoami and the home page show is read from the DER when asked,
    # not on every connection (the hot path parses the least it can).
    def _certificate(self) -> x509.Certificate | None:
        return x509.load_der_x509_certificate(self.der) if self.der else None

    @property
    def issuer(self) -> str:
        cert = self._certificate()
        return cert.issuer.rfc4514_string() if cert else ""

    @property
    def not_after(self) -> str:
        cert = self._certificate()
        return cert.not_valid_after_utc.isoformat() if cert else ""

    @property
    def key(self) -> str:
        """``ECDSA P-256``, ``RSA 2048``..."""
        cert = self._certificate()
        return describe_key(cert.public_key()) if cert else "unknown"

    @property
    def common_name(self) -> str | None:
        """The CN, when the subject has exactly one (with several, none is *the* CN)."""
        return self.common_names[0] if len(self.common_names) == 1 else None

    @property
    def spiffe_id(self) -> str | None:
        return next((u for u in self.uris if u.startswith("spiffe://")), None)

    @property
    def label(self) -> str:
        """The shortest useful name for logs and refusals."""
        return self.spiffe_id or (f"CN={self.common_name}" if self.common_name else self.subject)

    def values(self, kind: str) -> tuple[str, ...]:
        """The identity's values of one rule kind."""
        if kind == "CN":
            return self.common_names
        return {"DNS": self.dns, "email": self.emails, "URI": self.uris, "IP": self.ips}[kind]

    def names(self) -> list[str]:
        """Every name, spelled as a rule would spell it."""
        return [f"{kind}:{value}" for kind in RULE_KINDS for value in self.values(kind)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": [n for n in self.names() if not n.startswith("CN:")],
            "spiffe_id": self.spiffe_id,
            "serial": self.serial,
            "sha256": self.sha256,
            "key": self.key,
            "not_after": self.not_after,
        }


def identity_from_certificate(cert: x509.Certificate, der: bytes | None = None) -> PeerIdentity:
    """Read the peer's leaf once, keeping what authorization and the log line need."""
    der = cert.public_bytes(Encoding.DER) if der is None else der
    names: dict[type, list[str]] = {x509.DNSName: [], x509.RFC822Name: [], x509.UniformResourceIdentifier: []}
    ips: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    for general_name in san:
        if isinstance(general_name, x509.IPAddress):
            ips.append(str(general_name.value))
        elif type(general_name) in names:
            names[type(general_name)].append(general_name.value)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return PeerIdentity(
        subject=cert.subject.rfc4514_string(),
        common_names=tuple(str(cn.value) for cn in cns),
        dns=tuple(names[x509.DNSName]),
        emails=tuple(names[x509.RFC822Name]),
        uris=tuple(names[x509.UniformResourceIdentifier]),
        ips=tuple(ips),
        serial=format(cert.serial_number, "X"),
        sha256=fingerprint(der),
        der=der,
    )


# A server sees the same few client certificates over and over (every reconnect of every
# client), and reading one costs more than the rest of a connection's Python work; the
# identity is a frozen value of the exact DER bytes, so it is shared, never recomputed.
IDENTITY_CACHE_SIZE: Final = 512


@functools.lru_cache(maxsize=IDENTITY_CACHE_SIZE)
def identity_from_der(der: bytes) -> PeerIdentity:
    """:func:`identity_from_certificate` for a DER-encoded leaf (remembered per exact DER)."""
    return identity_from_certificate(x509.load_der_x509_certificate(der), der)


@dataclass(frozen=True, slots=True)
class AllowRule:
    """One ``KIND:PATTERN`` rule."""

    kind: str
    pattern: str
    # Compiled once at start-up: rules are matched on every connection.
    regexes: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _CONTROL.search(self.pattern):
            raise ConfigError(f"allow rule {str(self)!r} holds a control character; write the name as text")
        parts: tuple[re.Pattern[str], ...]
        if self.kind == "email":
            local, at, domain = self.pattern.rpartition("@")
            if not at:
                raise ConfigError(
                    f"allow rule {str(self)!r}: an email rule needs an '@' (e.g. email:*@example.org)"
                )
            parts = (_compile(local, "@", fold=False), _compile(domain, "@.", fold=True))
        else:
            parts = (_compile(self.pattern, _SEPARATORS[self.kind], fold=self.kind == "DNS"),)
        object.__setattr__(self, "regexes", parts)

    def __str__(self) -> str:
        return f"{self.kind}:{self.pattern}"

    @classmethod
    def parse(cls, text: str) -> AllowRule:
        kind, sep, pattern = text.partition(":")
        canonical = {k.lower(): k for k in RULE_KINDS}.get(kind.strip().lower())
        if not sep or canonical is None or not pattern:
            raise ConfigError(
                f"allow rule {text!r} is not KIND:PATTERN with KIND one of {', '.join(RULE_KINDS)} "
                "(for example 'CN:alice' or 'URI:spiffe://example.org/*')"
            )
        return cls(canonical, pattern)

    def matches(self, identity: PeerIdentity) -> bool:
        if self.kind == "CN" and len(identity.common_names) != 1:
            return False
        return any(self.matches_value(value) for value in identity.values(self.kind))

    def matches_value(self, value: str) -> bool:
        """Whether one name of this rule's kind matches (the rules in the module docstring)."""
        if _CONTROL.search(value):
            return False
        if self.kind == "email":
            local, at, domain = value.rpartition("@")
            return bool(at) and all(
                regex.fullmatch(part) for regex, part in zip(self.regexes, (local, domain), strict=True)
            )
        return self.regexes[0].fullmatch(value) is not None


def _compile(pattern: str, separators: str, *, fold: bool) -> re.Pattern[str]:
    """``*`` as a run of characters other than ``separators``; everything else literal."""
    star = f"[^{re.escape(separators)}]*" if separators else ".*"
    body = star.join(re.escape(part) for part in pattern.split("*"))
    # re.ASCII: IGNORECASE then folds A-Z only, never Unicode look-alikes (U+212A KELVIN SIGN).
    return re.compile(body, (re.IGNORECASE | re.ASCII) if fold else re.ASCII | re.DOTALL)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The allow-list's verdict: ``reason`` for the log, ``told`` for the client it refuses."""

    allowed: bool
    rule: AllowRule | None
    reason: str
    told: str = ""


@dataclass(frozen=True, slots=True)
class AllowList:
    """An ordered list of rules; empty admits every verified client."""

    rules: tuple[AllowRule, ...] = ()

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AllowList:
        return cls(tuple(AllowRule.parse(t) for t in texts))

    def decide(self, identity: PeerIdentity) -> Decision:
        if not self.rules:
            return Decision(allowed=True, rule=None, reason="no allow-list: every verified client")
        for rule in self.rules:
            if rule.matches(identity):
                return Decision(allowed=True, rule=rule, reason=f"matched rule {rule}")
        names = ", ".join(identity.names()) or identity.subject
        why = f"no allow rule matched identity [{names}]"
        if len(identity.common_names) > 1 and any(r.kind == "CN" for r in self.rules):
            why += f" (its subject has {len(identity.common_names)} CNs; CN rules need exactly one)"
        kinds = sorted({rule.kind for rule in self.rules}, key=RULE_KINDS.index)
        # The client learns which kinds of name would count, not the rules themselves.
        told = f"{why}; this server admits by {', '.join(kinds)} name"
        tried = ", ".join(str(r) for r in self.rules)
        return Decision(allowed=False, rule=None, reason=f"{why}; rules: {tried}", told=told)

    def describe(self) -> Sequence[str]:
        return [str(r) for r in self.rules]
