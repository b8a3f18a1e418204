"""Certificate facts: pure answers about validity, purpose, issuer and revocation, time given."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, LeafOptions, Profile, parse_san
from mtls_ref.shared.pki.facts import (
    SentIssuer,
    Timing,
    chain_to_anchor,
    key_matches,
    namesake,
    purpose_fit,
    revocation,
    self_issued,
    sent_issuer,
    validity,
)
from mtls_ref.shared.pki.keys import load_certificates, load_private_key
from mtls_ref.shared.pki.revocation import RevokedEntry, build_crl

from .support.pki import NOW, Pki

SECOND = dt.timedelta(seconds=1)


def test_validity_includes_both_ends_of_the_period(pki: Pki) -> None:
    """Valid at notBefore and at notAfter; a second outside either end is not yet valid or expired."""
    leaf = load_certificates(pki.client.cert)[0]
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    assert validity(leaf, now=start).timing is Timing.VALID
    assert validity(leaf, now=end).timing is Timing.VALID
    assert validity(leaf, now=start - SECOND).timing is Timing.NOT_YET_VALID
    late = validity(leaf, now=end + dt.timedelta(days=3, seconds=1))
    assert late.timing is Timing.EXPIRED
    assert (late.days_expired, late.days_left) == (3, -4)


def test_purpose_fit_per_role(pki: Pki) -> None:
    """A client leaf fits the client role only; a CA certificate fits neither, whatever its EKU."""
    client = load_certificates(pki.client.cert)[0]
    assert purpose_fit(client, "client").ok
    as_server = purpose_fit(client, "server")
    assert not as_server.ok and as_server.lacks_eku and not as_server.is_ca
    assert (as_server.wanted, as_server.ekus) == ("serverAuth", ("clientAuth",))
    intermediate = pki.ca.signer_cert
    as_leaf = purpose_fit(intermediate, "client")
    assert as_leaf.is_ca and not as_leaf.ok
    assert as_leaf.basic_constraints == "CA:TRUE, pathlen:0"


def test_a_leaf_without_eku_fits_any_role(tmp_path: Path) -> None:
    """No EKU extension means no restriction: both roles fit."""
    ca = CertificateAuthority.create(PKIConfig(dir=tmp_path), now=NOW)
    files = ca.issue(Profile.CLIENT, "any", out_dir=tmp_path, now=NOW, options=LeafOptions(ekus=()))
    leaf = load_certificates(files.cert)[0]
    for role in ("client", "server"):
        fit = purpose_fit(leaf, role)
        assert fit.ekus is None and fit.ok, fit


def test_chain_to_anchor_walks_the_pool(pki: Pki) -> None:
    """From the leaf through the intermediate to the root; a foreign leaf stops at itself."""
    leaf, intermediate = load_certificates(pki.client.chain)
    path = chain_to_anchor(leaf, pool=[intermediate], trust=[pki.ca.root])
    assert path.walked == (leaf, intermediate) and path.anchor == pki.ca.root
    alone = chain_to_anchor(leaf, pool=[], trust=[pki.ca.root])
    assert alone.anchor is None and alone.stuck_at == leaf
    foreign = load_certificates(pki.foreign_client.cert)[0]
    assert chain_to_anchor(foreign, pool=[intermediate], trust=[pki.ca.root]).anchor is None


def test_sent_issuer(pki: Pki) -> None:
    """The chain file carries the issuer, the leaf alone does not, and an anchor's own leaf needs nothing."""
    chain = load_certificates(pki.client.chain)
    root = [pki.ca.root]
    assert sent_issuer(chain, root) is SentIssuer.SENT
    assert sent_issuer(chain[:1], root) is SentIssuer.MISSING
    assert sent_issuer(chain[:1], [pki.ca.signer_cert]) is SentIssuer.NOT_NEEDED
    assert self_issued(pki.ca.root) and sent_issuer([pki.ca.root], []) is SentIssuer.NOT_NEEDED


def test_namesake_is_a_same_named_ca_with_another_key(tmp_path: Path) -> None:
    """A CA made again under the same name is told apart by key ids; the real issuer is no namesake."""
    name = "Same Name Root CA"
    first = CertificateAuthority.create(PKIConfig(dir=tmp_path / "1", ca_common_name=name), now=NOW)
    again = CertificateAuthority.create(PKIConfig(dir=tmp_path / "2", ca_common_name=name), now=NOW)
    assert first.root.subject == again.root.subject
    files = again.issue(Profile.CLIENT, "c", out_dir=tmp_path, now=NOW, sans=[parse_san("DNS:c.test")])
    leaf = load_certificates(files.cert)[0]
    found = namesake(leaf, [first.root])
    assert found is not None and found.trusted == first.root
    assert found.named_key_id != found.trusted_key_id
    assert all(len(key_id) == 8 for key_id in (found.named_key_id, found.trusted_key_id))
    assert namesake(leaf, [again.root]) is None


def test_revocation_reads_the_issuers_crl(pki: Pki) -> None:
    """Listed: revoked with its date; a CRL from another issuer says nothing about the leaf."""
    leaf = load_certificates(pki.client.cert)[0]
    entry = RevokedEntry(serial=leaf.serial_number, subject="CN=alice", revoked_at=NOW)
    ca = pki.ca
    listed = build_crl(ca.signer_cert, ca.signer_key, [entry], now=NOW, days=7)
    assert revocation(leaf, [listed]).revoked_at == NOW
    empty = build_crl(ca.signer_cert, ca.signer_key, [], now=NOW, days=7)
    assert revocation(leaf, [empty]) == dataclasses.replace(revocation(leaf, [listed]), revoked_at=None)
    assert ca.root_key is not None
    other = build_crl(ca.root, ca.root_key, [entry], now=NOW, days=7)
    assert not revocation(leaf, [other]).issuer_has_crl


@pytest.mark.parametrize(("key", "matches"), [("client", True), ("server", False)])
def test_key_matches(pki: Pki, key: str, matches: bool) -> None:
    """Only the key generated with the certificate's CSR matches it."""
    leaf = load_certificates(pki.client.cert)[0]
    files = pki.client if key == "client" else pki.server
    assert key_matches(leaf, load_private_key(files.key)) is matches
