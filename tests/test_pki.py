"""PKI: role-correct profiles, atomic 0600 key writes, no overwrites, every key type."""

from __future__ import annotations

import dataclasses
import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_ref.shared.core.config import KEY_TYPES, PKIConfig
from mtls_ref.shared.core.errors import CertificateError
from mtls_ref.shared.pki.authority import CertificateAuthority, Profile, make_csr, parse_san
from mtls_ref.shared.pki.inspect import format_san
from mtls_ref.shared.pki.keys import (
    atomic_write,
    generate_key,
    load_certificates,
    load_csr,
    load_private_key,
    read_passphrase,
    write_private_key,
)

from .support.pki import NOW, Pki


def ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(cls)


def assert_is_ca(cert: x509.Certificate, path_length: int) -> None:
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == path_length  # type: ignore[attr-defined]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign  # type: ignore[attr-defined]
    assert not ku.value.digital_signature  # type: ignore[attr-defined]
    ext(cert, x509.SubjectKeyIdentifier)
    ext(cert, x509.AuthorityKeyIdentifier)


def assert_is_leaf(cert: x509.Certificate, eku: x509.ObjectIdentifier) -> None:
    bc = ext(cert, x509.BasicConstraints)
    assert bc.critical and not bc.value.ca  # type: ignore[attr-defined]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign  # type: ignore[attr-defined]
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [eku]  # type: ignore[call-overload]
    san = ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    ext(cert, x509.SubjectKeyIdentifier)
    ext(cert, x509.AuthorityKeyIdentifier)


def test_ca_and_intermediate_profiles(pki: Pki) -> None:
    """Root: CA pathlen 1; intermediate: CA pathlen 0, signed by the root; both critical."""
    root = pki.ca.root
    assert_is_ca(root, 1)
    assert root.issuer == root.subject
    inter = pki.ca.signer_cert
    assert_is_ca(inter, 0)
    inter.verify_directly_issued_by(root)
    aki = ext(inter, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest  # type: ignore[attr-defined]


def test_leaves_carry_only_their_role_eku(pki: Pki) -> None:
    """Server leaves are serverAuth only, client leaves clientAuth only."""
    server = load_certificates(pki.server.cert)[0]
    client = load_certificates(pki.client.cert)[0]
    assert_is_leaf(server, ExtendedKeyUsageOID.SERVER_AUTH)
    assert_is_leaf(client, ExtendedKeyUsageOID.CLIENT_AUTH)
    server.verify_directly_issued_by(pki.ca.signer_cert)


def test_chain_file_is_leaf_then_intermediate(pki: Pki) -> None:
    """The chain file is what a peer sends: the leaf first, then the intermediate."""
    chain = load_certificates(pki.client.chain)
    assert [c.subject for c in chain] == [
        load_certificates(pki.client.cert)[0].subject,
        pki.ca.signer_cert.subject,
    ]


def test_issue_writes_key_csr_cert_with_safe_modes(pki: Pki) -> None:
    """Keys are 0600; the CSR is a real request for the same key and names."""
    assert stat.S_IMODE(pki.client.key.stat().st_mode) == 0o600
    csr = load_csr(pki.client.csr)
    assert csr.is_signature_valid
    key = load_private_key(pki.client.key)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert csr.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert not list(pki.dir.glob(".*.tmp")), "temporary files must not be left behind"


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_every_key_type_issues_and_verifies(tmp_path: Path, key_type: str) -> None:
    """Each key type makes a CA and a leaf that verifies against it."""
    pki = PKIConfig(dir=tmp_path, key_type=key_type)
    ca = CertificateAuthority.create(pki)
    files = ca.issue(
        Profile.CLIENT, "c", out_dir=tmp_path, key_type=key_type, sans=[parse_san("email:c@x.test")]
    )
    load_certificates(files.cert)[0].verify_directly_issued_by(ca.root)


def test_validity_follows_injected_clock(tmp_path: Path) -> None:
    """Certificates start exactly at the given `now` and last `days`."""
    ca = CertificateAuthority.create(PKIConfig(dir=tmp_path), now=NOW)
    key = generate_key("p256")
    cert = ca.sign(make_csr(key, "x"), Profile.CLIENT, days=2, now=NOW, serial=42)
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=2)
    assert cert.serial_number == 42


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    """A second init or issue refuses and leaves every existing byte in place."""
    pki = PKIConfig(dir=tmp_path)
    ca = CertificateAuthority.create(pki)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CertificateError, match=r"refusing to overwrite .*ca.key.*--force"):
        CertificateAuthority.create(pki)
    ca.issue(Profile.SERVER, "s", out_dir=tmp_path)
    cert_before = (tmp_path / "s.pem").read_bytes()
    (tmp_path / "s.key").unlink()  # even with only some files present, nothing is replaced
    with pytest.raises(CertificateError, match="refusing to overwrite"):
        ca.issue(Profile.SERVER, "s", out_dir=tmp_path)
    assert not (tmp_path / "s.key").exists()
    assert (tmp_path / "s.pem").read_bytes() == cert_before
    assert all(p.read_bytes() == data for p, data in before.items())


def test_atomic_write_refuses_existing_and_force_replaces(tmp_path: Path) -> None:
    """Without force an existing file stays; with force it is replaced whole, mode kept 0600."""
    target = tmp_path / "k.pem"
    target.write_bytes(b"old")
    with pytest.raises(CertificateError, match="already exists"):
        atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"old"
    write_private_key(target, generate_key("p256"), force=True)
    assert b"PRIVATE KEY" in target.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_passphrase_protected_keys(tmp_path: Path) -> None:
    """Encrypted keys are PKCS#8, load with the passphrase from a file or env, fail clearly without."""
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse\n")
    passphrase = read_passphrase(secret)
    assert passphrase == b"correct horse"
    path = tmp_path / "k.key"
    write_private_key(path, generate_key("p256"), passphrase=passphrase)
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    load_private_key(path, passphrase)
    env_pass = read_passphrase(None, environ={"MTLS_KEY_PASSPHRASE": "correct horse"})
    load_private_key(path, env_pass)
    with pytest.raises(CertificateError, match="is encrypted: give its passphrase"):
        load_private_key(path, None)
    with pytest.raises(CertificateError, match="wrong passphrase"):
        load_private_key(path, b"wrong")


def test_tampered_csr_is_refused(pki: Pki) -> None:
    """A CSR whose signature does not cover its content is not signed."""
    der = load_csr(pki.client.csr).public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"alice", b"mallo")
    assert tampered != der
    csr = x509.load_der_x509_csr(tampered)
    with pytest.raises(CertificateError, match="CSR signature does not verify"):
        pki.ca.sign(csr, Profile.CLIENT)


def test_profile_not_csr_decides_extensions(tmp_path: Path) -> None:
    """A CSR asking for CA powers still gets a plain client leaf."""
    ca = CertificateAuthority.create(PKIConfig(dir=tmp_path))
    key = generate_key("p256")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=sneaky"))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert = ca.sign(csr, Profile.CLIENT, sans=[parse_san("DNS:sneaky.test")])
    assert_is_leaf(cert, ExtendedKeyUsageOID.CLIENT_AUTH)


@pytest.mark.parametrize(
    ("text", "message"),
    [("localhost", "needs a type prefix"), ("IP:nope", "not an IP address"), ("X400:a", "unknown type")],
)
def test_bad_san_is_explained(text: str, message: str) -> None:
    """A malformed --san value says which forms are accepted."""
    with pytest.raises(CertificateError, match=message):
        parse_san(text)


HOST_RULE = "labels of letters, digits and '-'"
CONTROL_RULE = "no SAN value may hold a control character or whitespace"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # another kind of name smuggled into a DNS name: what a ';'-separated identity header would split
        ("DNS:a.example;URI=spiffe://td/admin", f"is not a host name: {HOST_RULE}"),
        ("DNS:a\x00.example", rf"'\\x00' at position 5: {CONTROL_RULE}"),
        ("DNS:a.example\n", rf"'\\n' at position 13: {CONTROL_RULE}"),
        ("DNS: a.example", rf"' ' at position 4: {CONTROL_RULE}"),
        ("DNS:-a.example", "is not a host name"),
        ("DNS:a..example", "is not a host name"),
        ("DNS:a.example.", "is not a host name"),
        ("DNS:" + "a" * 64 + ".example", "is not a host name"),
        ("DNS:" + "a" * 62 + ("." + "a" * 62) * 3 + ".example", "is not a host name"),  # 260 characters
        ("DNS:*.*.example", "is not a host name"),
        ("DNS:a.*.example", "is not a host name"),
        ("DNS:under_score.example", "is not a host name"),
        ("DNS:b\u00fccher.example", "is not a host name"),
        ("email:alice", "has no '@'"),
        ("email:@example.com", "has no local part"),
        ("email:a@evil.test@example.com", "has more than one '@'"),
        ("email:a@exa_mple.com", "the domain 'exa_mple.com' is not a host name"),
        ("email:a\t@example.com", rf"'\\t' at position 7: {CONTROL_RULE}"),
        ("URI:spiffe://td/a b", rf"' ' at position 17: {CONTROL_RULE}"),
        ("URI:spiffe://td/a\x7f", rf"'\\x7f' at position 17: {CONTROL_RULE}"),
        ("URI:spiffe://td/a\x9b", rf"'\\x9b' at position 17: {CONTROL_RULE}"),
        ("URI:spiffe://td/caf\u00e9", "holds non-ASCII characters"),
        ("IP:127.0.0.1 ", rf"' ' at position 12: {CONTROL_RULE}"),
        ("IP:fe80::1%eth0", "zone"),
    ],
)
def test_san_values_that_would_break_identity_formats_are_refused(text: str, message: str) -> None:
    """Each rule a SAN value must follow, named with the offending value."""
    with pytest.raises(CertificateError, match=message) as refused:
        parse_san(text)
    assert str(refused.value).startswith(f"SAN {text!r} ")


@pytest.mark.parametrize(
    "text",
    [
        "DNS:localhost",
        "DNS:*.example.com",
        "DNS:xn--bcher-kva.example",
        "DNS:" + "a" * 63 + ".example",
        "email:a.b+c@example.com",
        "URI:spiffe://td/a;b,c=d",  # legal in URIs: whoever forwards it quotes it
        "IP:::1",
        "IP:127.0.0.1",
    ],
)
def test_san_values_that_follow_the_rules_are_taken(text: str) -> None:
    """The controls: ordinary names of each kind, and the URI characters an identity header must quote."""
    assert format_san(parse_san(text)) == text


def test_load_errors_are_clear(tmp_path: Path) -> None:
    """Missing and non-PEM files are named with what was expected."""
    with pytest.raises(CertificateError, match="not found; check the path"):
        load_certificates(tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    with pytest.raises(CertificateError, match="no readable certificate"):
        load_certificates(junk)
    with pytest.raises(CertificateError, match="not a readable PEM private key"):
        load_private_key(junk)
    with pytest.raises(CertificateError, match=r"no CA at .*mtls-certs init"):
        CertificateAuthority.load(dataclasses.replace(PKIConfig(), dir=tmp_path / "none"))
