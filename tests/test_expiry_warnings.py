"""Expired and soon-expiring credentials are said out loud: by mtls-certs as it makes a CA or signs
under one, and by the server's start-up banner (not only by /healthz)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mtls_ref.server.app import Server
from mtls_ref.server.log import EventLog
from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, Profile, parse_san
from mtls_ref.shared.pki.cli import main
from mtls_ref.shared.pki.expiry import EXPIRY_WARNING, expiry_warning, outlives_issuer
from mtls_ref.shared.pki.keys import load_certificates, utcnow
from mtls_ref.shared.pki.revocation import build_crl

from .support.pki import Pki
from .support.tls import server_config

SECOND = dt.timedelta(seconds=1)


def certs(pki_dir: Path, *args: str | Path) -> int:
    return main(["--pki-dir", str(pki_dir), *[str(a) for a in args]])


def warnings(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The warning lines mtls-certs wrote to stderr since the last call."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]


def test_warning_boundaries(pki: Pki) -> None:
    """A certificate is "expired" from its notAfter on, "expires in" within 30 days of it, and
    unmentioned a second before that window: times pinned a second either side."""
    ca = load_certificates(pki.ca_cert)[0]
    end = ca.not_valid_after_utc
    assert expiry_warning("the root CA", ca, end - EXPIRY_WARNING - SECOND) is None
    assert expiry_warning("the root CA", ca, end - EXPIRY_WARNING) == (
        f"the root CA {ca.subject.rfc4514_string()} expires in 30 days, on {end:%Y-%m-%d %H:%M} UTC"
    )
    assert expiry_warning("the root CA", ca, end - SECOND) == (
        f"the root CA {ca.subject.rfc4514_string()} expires in less than a minute, "
        f"on {end:%Y-%m-%d %H:%M} UTC"
    )
    assert expiry_warning("the root CA", ca, end) == (
        f"the root CA {ca.subject.rfc4514_string()} expired on {end:%Y-%m-%d %H:%M} UTC"
    )


def test_a_leaf_that_outlives_its_ca_is_named(pki: Pki) -> None:
    """outlives_issuer names the first CA of the chain to end; a leaf ending with or before it is fine."""
    leaf = load_certificates(pki.client.cert)[0]
    ca = load_certificates(pki.ca_cert)[0]
    assert outlives_issuer(leaf, [ca]) is None
    assert outlives_issuer(ca, [leaf]) == (
        f"{ca.subject.rfc4514_string()} runs until {ca.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, past the end "
        f"of its CA CN=alice on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: peers refuse it from then on"
    )


def test_init_with_negative_days_warns_and_issue_warns_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`init --days -1` makes the CA it was asked for but says both CA certificates have expired;
    `issue` and `sign` under that CA say it again (and nothing about the leaf outliving it)."""
    pki_dir = tmp_path / "pki"
    assert certs(pki_dir, "init", "--intermediate", "--days", "-1") == 0
    said = warnings(capsys)
    assert len(said) == 2, said
    assert said[0].startswith("warning: the root CA O=mtls-ref,CN=mtls-ref Demo Root CA ")
    assert said[1].startswith("warning: the intermediate CA O=mtls-ref,CN=mtls-ref Demo Root CA ")
    for line in said:
        assert " expired on " in line
        assert line.endswith(
            ": no peer verifies what it signs; make a new CA ('mtls-certs init --force --days N') "
            "and reissue its leaves"
        )
    assert certs(pki_dir, "issue", "client", "alice") == 0
    assert warnings(capsys) == said
    assert (
        certs(pki_dir, "sign", pki_dir / "alice.csr", "--profile", "client", "--out", tmp_path / "a.pem") == 0
    )
    assert [line for line in warnings(capsys) if "expired on" in line] == said


def test_soon_expiring_ca_and_a_leaf_that_outlives_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CA made for 10 days is "expires in 10 days"; a year-long leaf under it is told it outlives
    its CA, and how to fix that; a 5-day leaf is told only about the CA."""
    pki_dir = tmp_path / "pki"
    assert certs(pki_dir, "init", "--days", "10") == 0
    (said,) = warnings(capsys)
    assert " expires in 10 days, on " in said and said.endswith(
        ": what it signs stops verifying then; make a new CA ('mtls-certs init --force --days N') "
        "and reissue its leaves"
    )
    assert certs(pki_dir, "issue", "server", "web", "--san", "DNS:localhost") == 0
    ca_warning, outlives = warnings(capsys)
    assert ca_warning == said
    assert outlives.startswith("warning: CN=web runs until ")
    assert outlives.endswith(": peers refuse it from then on; pass a shorter --days, or renew the CA first")
    assert certs(pki_dir, "issue", "server", "short", "--days", "5", "--san", "DNS:localhost") == 0
    assert warnings(capsys) == [said]


def test_a_healthy_ca_is_not_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Negative control: the default CA (ten years) and leaf (one year) make no warning at all."""
    pki_dir = tmp_path / "pki"
    assert certs(pki_dir, "init", "--intermediate") == 0
    assert certs(pki_dir, "issue", "client", "alice") == 0
    assert (
        certs(pki_dir, "sign", pki_dir / "alice.csr", "--profile", "client", "--out", tmp_path / "a.pem") == 0
    )
    assert certs(tmp_path / "demo", "demo") == 0
    assert warnings(capsys) == ["warning: no SAN: pass --san so clients can check the name"]


def banner(
    config_changes: dict[str, Any], pki: Pki, crls: tuple[x509.CertificateRevocationList, ...] = ()
) -> list[str]:
    """The text banner the server prints at start, with ``crls`` as the loaded CRLs."""
    lines: list[str] = []
    server = Server(
        dataclasses.replace(server_config(pki), **config_changes), log=EventLog("text", lines.append)
    )
    server.credentials = dataclasses.replace(server.credentials, crls=crls)
    server._log_start([("127.0.0.1", 8443)])
    return lines[0].splitlines()


def test_banner_names_expired_credentials(pki: Pki, tmp_path: Path) -> None:
    """A server started on an expired CA and server certificate (a year old CA made for a day) says
    so in its banner, one WARNING line each, before anyone asks /healthz."""
    old = PKIConfig(dir=tmp_path / "old", ca_days=1)
    then = utcnow() - dt.timedelta(days=365)
    ca = CertificateAuthority.create(old, intermediate=True, now=then)
    server = ca.issue(
        Profile.SERVER, "server", out_dir=old.dir, sans=[parse_san("DNS:localhost")], now=then, days=1
    )
    lines = banner({"cert": server.chain, "key": server.key, "ca": old.path(old.ca_cert)}, pki)
    found = [line for line in lines if line.startswith("  WARNING  ")]
    end = load_certificates(server.cert)[0].not_valid_after_utc
    assert found == [
        f"  WARNING          the server certificate CN=server expired on {end:%Y-%m-%d %H:%M} UTC",
        f"  WARNING          the client CA {ca.root.subject.rfc4514_string()} expired on "
        f"{ca.root.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
    ]


def test_banner_names_a_crl_about_to_go_stale(pki: Pki) -> None:
    """A CRL with three days to its next update is a banner WARNING; the session PKI's fresh
    credentials alone give none (negative control)."""
    assert [line for line in banner({}, pki) if "WARNING" in line] == []
    now = utcnow()
    crl = build_crl(pki.ca.signer_cert, pki.ca.signer_key, [], now=now - dt.timedelta(days=4), days=7)
    found = [line for line in banner({}, pki, (crl,)) if "WARNING" in line]
    due = crl.next_update_utc
    assert due is not None
    assert found == [
        f"  WARNING          the CRL of {pki.ca.signer_cert.subject.rfc4514_string()} is out of date in "
        f"3 days, on {due:%Y-%m-%d %H:%M} UTC (its next update)"
    ]
