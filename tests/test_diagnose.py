"""Diagnosis from the one record per code: words, alert and certificate fact, without a handshake."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest

from mtls_ref.shared.core.config import PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, Profile, parse_san
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.codes import UNKNOWN_ALERT, VERIFY_CODES, Reason, Topic, VerifyCode
from mtls_ref.shared.tls.diagnose import (
    SENT_ALERTS,
    Category,
    certificate_fact,
    diagnose_eof,
    diagnose_ssl_error,
    topic_for,
)
from mtls_ref.shared.tls.reasons import LOCAL_REASONS, REASONS
from mtls_ref.shared.tls.trace import Role

from .support.pki import NOW, Pki


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code, exc.verify_message = code, message
    return exc


def reason_error(reason: str) -> ssl.SSLError:
    exc = ssl.SSLError(1, reason)
    exc.reason = reason
    return exc


def test_every_record_has_words_that_format() -> None:
    """Each record's words fill in with the fields diagnose gives them: no stray placeholder."""
    fields = {"peer": "client", "eku": "clientAuth", "role": "client"}
    records: list[VerifyCode | Reason] = [*VERIFY_CODES.values(), *REASONS.values()]
    for record in records:
        for words in (record.what, record.fix):
            assert "{" not in words.format(**fields), record


def test_a_verify_code_is_diagnosed_from_its_record() -> None:
    """Code 10 on the server: the record's words for the client, its alert, and its topic."""
    diagnosis = diagnose_ssl_error(verify_error(10, "certificate has expired"), local=Role.SERVER)
    assert diagnosis.category is Category.PEER_UNTRUSTED
    assert diagnosis.summary == "the client's certificate has expired (OpenSSL: certificate has expired)"
    assert diagnosis.alert == "certificate_expired"
    assert topic_for(verify_code=10) is Topic.VALIDITY
    purpose = diagnose_ssl_error(verify_error(26, "unsuitable certificate purpose"), local=Role.CLIENT)
    assert "its EKU lacks serverAuth" in purpose.summary and purpose.alert == "unsupported_certificate"


def test_an_unlisted_verify_code_keeps_openssls_words() -> None:
    """A code without a record is explained by OpenSSL's message, even one holding braces."""
    diagnosis = diagnose_ssl_error(verify_error(99, "odd {name}"), local=Role.SERVER)
    assert diagnosis.summary == (
        "the client's certificate failed verification: odd {name} (OpenSSL: odd {name})"
    )
    assert diagnosis.alert == "bad_certificate"
    assert topic_for(verify_code=99) is None


def test_sent_alerts_lists_only_known_alerts_the_same_under_both_versions() -> None:
    """Not TLS: no alert; a known alert as recorded; version-dependent or unknown: not listed."""
    assert SENT_ALERTS["WRONG_VERSION_NUMBER"] is None
    assert SENT_ALERTS["NO_SHARED_CIPHER"] == "handshake_failure"
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" not in SENT_ALERTS
    assert LOCAL_REASONS["RECORD_LAYER_FAILURE"].alert == UNKNOWN_ALERT
    assert "RECORD_LAYER_FAILURE" not in SENT_ALERTS


@pytest.mark.parametrize(("tls13", "alert"), [(True, "certificate_required"), (False, "handshake_failure")])
def test_no_client_certificate_names_the_alert_of_the_version(tls13: bool, alert: str) -> None:
    """OpenSSL refuses a client without a certificate: certificate_required, handshake_failure in 1.2."""
    exc = reason_error("PEER_DID_NOT_RETURN_A_CERTIFICATE")
    diagnosis = diagnose_ssl_error(exc, local=Role.SERVER, tls13=tls13)
    assert diagnosis.alert == alert and diagnosis.category is Category.PEER_UNTRUSTED


def test_a_generic_alert_after_an_empty_certificate_means_certificate_required() -> None:
    """handshake_failure after we sent no certificate is explained as the missing certificate."""
    exc = reason_error("SSLV3_ALERT_HANDSHAKE_FAILURE")
    plain = diagnose_ssl_error(exc, local=Role.CLIENT)
    empty = diagnose_ssl_error(exc, local=Role.CLIENT, sent_no_certificate=True)
    assert "no acceptable parameters" in plain.summary
    assert empty.summary == "the server requires a client certificate and we sent none"
    assert empty.alert == "handshake_failure" and empty.category is Category.REJECTED_BY_PEER
    assert topic_for(alert="unknown_ca") is Topic.ISSUER


def test_purpose_fact_says_nothing_when_the_leaf_has_the_usage(pki: Pki) -> None:
    """A leaf with the role's EKU is not blamed; one without it is, with its EKUs shown."""
    client = load_certificates(pki.client.cert)
    assert certificate_fact(client, Topic.PURPOSE, purpose="client") is None
    assert certificate_fact(client, Topic.PURPOSE, purpose="server") == (
        "CN=alice has EKU clientAuth, which lacks serverAuth"
    )


def test_validity_fact_shows_the_date(pki: Pki) -> None:
    """An expired leaf names its notAfter and how long ago it passed."""
    leaf = load_certificates(pki.client.cert)
    end = leaf[0].not_valid_after_utc
    fact = certificate_fact(leaf, "validity", purpose="client", now=end + dt.timedelta(days=2, hours=1))
    assert fact == f"CN=alice expired on {end:%Y-%m-%d %H:%M} UTC (2 days ago)"
    assert certificate_fact(leaf, "validity", purpose="client", now=end) is None


def test_issuer_fact_tells_a_same_named_ca_from_a_missing_intermediate(tmp_path: Path, pki: Pki) -> None:
    """A CA made again under the trusted name is called out by key id; a bare leaf lacks its intermediate."""
    name = "Remade Root CA"
    trusted = CertificateAuthority.create(PKIConfig(dir=tmp_path / "1", ca_common_name=name), now=NOW)
    remade = CertificateAuthority.create(PKIConfig(dir=tmp_path / "2", ca_common_name=name), now=NOW)
    files = remade.issue(Profile.CLIENT, "c", out_dir=tmp_path, now=NOW, sans=[parse_san("DNS:c.test")])
    fact = certificate_fact(load_certificates(files.cert), "issuer", purpose="client", trusted=[trusted.root])
    assert fact is not None and "the same name as the trusted CA, but signed with a different key" in fact
    leaf = load_certificates(pki.client.cert)
    bare = certificate_fact(leaf, "issuer", purpose="client", trusted=[pki.ca.root])
    assert bare is not None and bare.endswith("; no intermediate was sent with it")


def test_a_close_without_an_alert_is_not_called_a_certificate_rejection() -> None:
    """The pytest plugin's check() reads a close with no greeting this way: a server refusing a
    certificate sends an alert, so a bare close after the handshake is a close, whatever the version."""
    for tls13 in (True, False, None):
        diagnosis = diagnose_eof(tls13=tls13, after_handshake=True)
        assert diagnosis.category is Category.CLOSED
        assert "not a certificate rejection" in diagnosis.summary
