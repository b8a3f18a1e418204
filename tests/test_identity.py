"""Peer identity from a certificate, and allow-list decisions."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.identity import AllowList, AllowRule, identity_from_der

from .support.pki import Pki


def identity(pki: Pki):  # type: ignore[no-untyped-def]
    cert = load_certificates(pki.client.cert)[0]
    return identity_from_der(cert.public_bytes(serialization.Encoding.DER))


def test_identity_fields(pki: Pki) -> None:
    """Subject, CN, SANs by type, SPIFFE ID, serial and fingerprint come from the leaf."""
    ident = identity(pki)
    assert ident.subject == "CN=alice"
    assert ident.common_name == "alice"
    assert ident.uris == ("spiffe://mtls-ref.test/alice",)
    assert ident.emails == ("alice@mtls-ref.test",)
    assert ident.spiffe_id == "spiffe://mtls-ref.test/alice"
    assert ident.label == "spiffe://mtls-ref.test/alice"
    assert ident.key == "ECDSA P-256"
    assert len(ident.sha256.split(":")) == 32
    assert ident.to_dict()["sans"] == ["email:alice@mtls-ref.test", "URI:spiffe://mtls-ref.test/alice"]


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        ([], True),
        (["CN:alice"], True),
        (["cn:alice"], True),  # the kind is case-insensitive
        (["CN:ALICE"], False),  # a CN compares exactly
        (["CN:bob"], False),
        (["CN:ali*"], True),
        (["URI:spiffe://mtls-ref.test/*"], True),
        (["URI:SPIFFE://mtls-ref.test/*"], False),  # URIs are case-sensitive
        (["URI:spiffe://other.test/*"], False),
        (["email:*@mtls-ref.test"], True),
        (["DNS:alice"], False),  # no DNS SAN at all
        (["CN:bob", "email:alice@mtls-ref.test"], True),
        (["URI:spiffe://mtls-ref.test/alice/extra"], False),  # exact, not prefix
    ],
)
def test_allow_list_decisions(pki: Pki, rules: list[str], allowed: bool) -> None:
    """Rules match exactly or by '*' wildcard, per kind; any matching rule admits."""
    assert AllowList.parse(rules).decide(identity(pki)).allowed is allowed


def test_refusal_reason_names_identity_and_rules(pki: Pki) -> None:
    """A refusal says which names the client had and which rules it missed."""
    decision = AllowList.parse(["CN:bob", "URI:spiffe://x/*"]).decide(identity(pki))
    assert not decision.allowed
    assert "URI:spiffe://mtls-ref.test/alice" in decision.reason
    assert "rules: CN:bob, URI:spiffe://x/*" in decision.reason


@pytest.mark.parametrize("bad", ["alice", "X:alice", "CN:", ":x"])
def test_bad_rules_are_config_errors(bad: str) -> None:
    """A malformed rule stops the server at start with the expected form."""
    with pytest.raises(ConfigError, match="is not KIND:PATTERN"):
        AllowRule.parse(bad)


def test_wildcard_is_not_a_regex() -> None:
    """Regex metacharacters in patterns are literal; only '*' is special."""
    rule = AllowRule.parse("CN:a.c")
    from mtls_ref.shared.tls.identity import PeerIdentity

    ident = PeerIdentity(subject="CN=abc", common_names=("abc",), serial="1", sha256="")
    assert not rule.matches(ident)
