"""Describing and checking artefacts offline: the fields people read, never key material."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, Profile, parse_san
from mtls_ref.shared.pki.checks import check_certificate
from mtls_ref.shared.pki.inspect import describe_file, render_report
from mtls_ref.shared.pki.keys import load_certificates, load_private_key

from .support.pki import NOW, Pki


def test_show_certificate_fields(pki: Pki) -> None:
    """A leaf report has subject, issuer, validity, key, SANs, EKU, key usage, fingerprint."""
    report = describe_file(pki.client.cert)
    assert report.kind == "certificate"
    item = report.items[0]
    assert item["subject"] == "CN=alice"
    assert "Intermediate" in item["issuer"]
    assert item["key"] == "ECDSA P-256"
    assert item["sans"] == ["URI:spiffe://mtls-ref.test/alice", "email:alice@mtls-ref.test"]
    assert item["extended_key_usage"] == ["clientAuth"]
    assert item["key_usage"] == ["digitalSignature"]
    assert item["basic_constraints"] == "CA:FALSE"
    assert len(item["sha256_fingerprint"].split(":")) == 32
    text = render_report(report)
    assert "Extended key usage:   clientAuth" in text


def test_show_chain_csr_and_key(pki: Pki) -> None:
    """Chains list each certificate; CSRs show requests; keys show no secret bytes."""
    chain = describe_file(pki.server.chain)
    assert chain.kind == "chain" and len(chain.items) == 2
    assert chain.items[1]["basic_constraints"] == "CA:TRUE, pathlen:0"
    csr = describe_file(pki.server.csr)
    assert csr.kind == "csr"
    assert csr.items[0]["signature_valid"] is True
    assert "DNS:localhost" in csr.items[0]["requested_sans"]
    key = describe_file(pki.server.key)
    assert key.kind == "private key"
    assert key.items[0]["key"] == "ECDSA P-256"
    dumped = key.to_json() + render_report(key)
    secret = load_private_key(pki.server.key).private_numbers().private_value  # type: ignore[union-attr]
    assert format(secret, "x") not in dumped.lower().replace(":", "")
    assert "PRIVATE KEY-----" not in dumped
    json.loads(chain.to_json())


def checks_by_name(**kwargs: object) -> dict[str, bool]:
    return {c.name: c.ok for c in check_certificate(**kwargs)}  # type: ignore[arg-type]


def test_verify_good_client_passes_every_check(pki: Pki) -> None:
    """A correct client leaf passes chain, validity, purpose, key and SAN checks."""
    checks = check_certificate(
        load_certificates(pki.client.chain),
        trust=[pki.ca.root],
        key=load_private_key(pki.client.key),
        purpose="client",
    )
    assert [c.name for c in checks] == ["chain", "sent chain", "validity", "purpose", "key", "subjectAltName"]
    assert all(c.ok for c in checks), [c.line() for c in checks]


def test_verify_reports_each_failure_with_a_fix(pki: Pki) -> None:
    """Wrong purpose, wrong key, foreign CA and missing intermediate each fail with a fix."""
    server_leaf = load_certificates(pki.server.cert)
    checks = check_certificate(
        server_leaf, trust=[pki.ca.root], purpose="client", key=load_private_key(pki.client.key)
    )
    failed = {c.name: c for c in checks if not c.ok}
    assert set(failed) == {"chain", "sent chain", "purpose", "key"}  # leaf alone lacks the intermediate
    assert "NAME-chain.pem" in failed["sent chain"].fix
    assert "lacks clientAuth" in failed["purpose"].detail
    assert "mtls-certs issue client" in failed["purpose"].fix
    assert "include the missing intermediate" in failed["chain"].fix
    foreign = check_certificate(load_certificates(pki.foreign_client.cert), trust=[pki.ca.root])
    chain_check = foreign[0]
    assert not chain_check.ok and "Foreign Root CA" in chain_check.detail


def test_verify_validity_boundaries(tmp_path: Path) -> None:
    """A certificate is valid at its last second and expired one second later."""
    pki = PKIConfig(dir=tmp_path)
    ca = CertificateAuthority.create(pki, now=NOW - dt.timedelta(days=10))
    files = ca.issue(Profile.CLIENT, "c", out_dir=tmp_path, now=NOW, days=1, sans=[parse_san("DNS:c.test")])
    chain = load_certificates(files.chain)
    end = NOW + dt.timedelta(days=1)
    second = dt.timedelta(seconds=1)
    assert checks_by_name(chain=chain, trust=[ca.root], now=end)["validity"]
    assert not checks_by_name(chain=chain, trust=[ca.root], now=end + second)["validity"]
    assert not checks_by_name(chain=chain, trust=[ca.root], now=NOW - second)["validity"]
    no_san = ca.issue(Profile.CLIENT, "nosan", out_dir=tmp_path, now=NOW)
    assert not checks_by_name(chain=load_certificates(no_san.cert), trust=[ca.root], now=NOW)[
        "subjectAltName"
    ]


@pytest.mark.parametrize("bad", ["missing.pem"])
def test_show_missing_file(tmp_path: Path, bad: str) -> None:
    """Showing a file that is not there names it."""
    from mtls_ref.shared.core.errors import CertificateError

    with pytest.raises(CertificateError, match="check the path"):
        describe_file(tmp_path / bad)


def test_verify_offline_explains_the_bad_set(tmp_path: Path) -> None:
    """Offline checks name the same problems the server refuses: CA leaf, revocation, wrong EKU."""
    from mtls_ref.shared.pki.badset import write_badset
    from mtls_ref.shared.pki.revocation import load_crls

    badset = write_badset(tmp_path / "set")
    trust = load_certificates(badset.path(badset.ca))
    crls = load_crls(badset.path(badset.crl))

    def failures(case: str) -> dict[str, str]:
        spec = badset.case(case)
        chain = load_certificates(badset.path(spec.cert or ""))
        return {
            c.name: c.detail
            for c in check_certificate(chain, trust=trust, purpose="client", crls=crls)
            if not c.ok
        }

    assert failures("good") == {}
    assert "revoked on" in failures("revoked")["revocation"]
    assert "a CA certificate (CA:TRUE, pathlen:0), not a leaf" in failures("ca-as-client")["purpose"]
    assert "lacks clientAuth" in failures("server-eku")["purpose"]
    assert "not valid before" in failures("not-yet-valid")["validity"]
    assert "holds the leaf but not its issuer" in failures("missing-intermediate")["sent chain"]
