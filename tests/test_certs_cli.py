"""`mtls-certs` end to end, in-process, and judged by the real openssl CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtls_ref.shared.pki.cli import main
from mtls_ref.shared.pki.keys import load_certificates

pytestmark = pytest.mark.interop


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, timeout=60)


def certs(pki_dir: Path, *args: str | Path) -> int:
    return main(["--pki-dir", str(pki_dir), *[str(a) for a in args]])


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    pki_dir = tmp_path / "pki"
    assert certs(pki_dir, "init", "--intermediate") == 0
    return pki_dir


def test_openssl_verifies_our_chains_and_csrs(
    ca_dir: Path, openssl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`openssl verify` accepts our leaves via the intermediate; `openssl req -verify` our CSRs."""
    assert certs(ca_dir, "issue", "server", "web", "--san", "DNS:localhost", "--san", "IP:127.0.0.1") == 0
    out = capsys.readouterr().out
    assert "1. generated private key" in out and "4. wrote certificate" in out
    ok = run(
        openssl,
        "verify",
        "-CAfile",
        ca_dir / "ca.pem",
        "-untrusted",
        ca_dir / "intermediate.pem",
        ca_dir / "web.pem",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().endswith("web.pem: OK")
    # Negative control: without the intermediate the chain does not verify.
    broken = run(openssl, "verify", "-CAfile", ca_dir / "ca.pem", ca_dir / "web.pem")
    assert broken.returncode != 0
    assert "unable to get local issuer certificate" in broken.stdout + broken.stderr
    req = run(openssl, "req", "-in", ca_dir / "web.csr", "-noout", "-verify")
    assert req.returncode == 0
    assert "verify OK" in req.stdout + req.stderr


@pytest.mark.parametrize(
    ("role", "eku", "absent"),
    [
        ("server", "TLS Web Server Authentication", "Client"),
        ("client", "TLS Web Client Authentication", "Server"),
    ],
)
def test_openssl_text_shows_exactly_our_ekus(
    ca_dir: Path, openssl: str, role: str, eku: str, absent: str
) -> None:
    """`openssl x509 -text` lists only the role's EKU, with SAN non-critical and CA:FALSE critical."""
    assert certs(ca_dir, "issue", role, "x", "--san", "DNS:x.test") == 0
    text = run(openssl, "x509", "-in", ca_dir / "x.pem", "-text", "-noout").stdout
    eku_block = text.split("X509v3 Extended Key Usage:")[1].splitlines()[1].strip()
    assert eku_block == eku
    assert f"TLS Web {absent} Authentication" not in text
    assert "X509v3 Basic Constraints: critical\n                CA:FALSE" in text
    assert "X509v3 Subject Alternative Name: \n" in text  # not critical
    assert "X509v3 Key Usage: critical\n                Digital Signature" in text


def test_signs_csr_made_with_the_docs_commands(ca_dir: Path, openssl: str, tmp_path: Path) -> None:
    """`openssl genrsa` + `openssl req -new` (the docs' flow), signed by us, verified by openssl."""
    key, csr, out = tmp_path / "client_private_key.pem", tmp_path / "client_csr.pem", tmp_path / "client.pem"
    assert run(openssl, "genrsa", "-out", key, "2048").returncode == 0
    made = run(openssl, "req", "-new", "-key", key, "-out", csr, "-subj", "/CN=docs-client")
    assert made.returncode == 0, made.stderr
    assert (
        certs(ca_dir, "sign", csr, "--profile", "client", "--out", out, "--san", "email:docs@example.test")
        == 0
    )
    chain = tmp_path / "client-chain.pem"
    assert chain.exists()
    verify = run(
        openssl, "verify", "-CAfile", ca_dir / "ca.pem", "-untrusted", chain, "-purpose", "sslclient", out
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    wrong_purpose = run(
        openssl, "verify", "-CAfile", ca_dir / "ca.pem", "-untrusted", chain, "-purpose", "sslserver", out
    )
    assert wrong_purpose.returncode != 0
    assert certs(ca_dir, "verify", chain, "--key", key, "--purpose", "client") == 0


def test_sign_refuses_tampered_csr(
    ca_dir: Path, openssl: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CSR altered after signing is refused with exit code 3 and a reason."""
    key, csr = tmp_path / "k.pem", tmp_path / "r.der"
    run(openssl, "genrsa", "-out", key, "2048")
    run(openssl, "req", "-new", "-key", key, "-outform", "DER", "-out", csr, "-subj", "/CN=honest")
    csr.write_bytes(csr.read_bytes().replace(b"honest", b"hacked"))
    assert certs(ca_dir, "sign", csr, "--profile", "client") == 3
    assert "CSR signature does not verify" in capsys.readouterr().err


def test_sign_to_stdout_and_refuse_overwrite(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --out the PEM goes to stdout; an existing --out is never replaced without --force."""
    certs(ca_dir, "issue", "client", "bob")
    capsys.readouterr()
    target = tmp_path / "bob.pem"
    target.write_text("keep me")
    assert certs(ca_dir, "sign", ca_dir / "bob.csr", "--profile", "client", "--out", target) == 3
    assert target.read_text() == "keep me"
    assert "already exists" in capsys.readouterr().err
    assert certs(ca_dir, "issue", "client", "bob") == 3
    assert "refusing to overwrite" in capsys.readouterr().err


def test_sign_reports_on_stdout_like_issue_and_revoke(
    ca_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --out, what sign did (files written, what was signed) is on stdout, as issue and revoke
    print theirs; without --out stdout is the PEM alone, so the report moves to stderr."""
    certs(ca_dir, "issue", "client", "bob")
    capsys.readouterr()
    out = tmp_path / "bob.pem"
    assert (
        certs(
            ca_dir, "sign", ca_dir / "bob.csr", "--profile", "client", "--san", "DNS:bob.test", "--out", out
        )
        == 0
    )
    said = capsys.readouterr()
    assert said.out.splitlines()[0] == f"wrote {out} and chain {tmp_path / 'bob-chain.pem'}"
    assert said.out.splitlines()[1].startswith("signed CN=bob as client (serial ")
    assert said.err == ""
    assert certs(ca_dir, "sign", ca_dir / "bob.csr", "--profile", "client", "--san", "DNS:bob.test") == 0
    piped = capsys.readouterr()
    assert [c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(piped.out.encode())] == [
        "CN=bob",
        load_certificates(ca_dir / "intermediate.pem")[0].subject.rfc4514_string(),
    ]
    assert piped.err.startswith("signed CN=bob as client (serial ")


def test_show_json_and_text(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`show --json` is parseable; text shows labelled fields; keys show no PEM body."""
    certs(ca_dir, "issue", "client", "carol", "--san", "URI:spiffe://td/carol")
    capsys.readouterr()
    assert certs(ca_dir, "show", ca_dir / "carol.pem", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["items"][0]["sans"] == ["URI:spiffe://td/carol"]
    assert certs(ca_dir, "show", ca_dir / "carol.key") == 0
    out = capsys.readouterr().out
    assert "Public key SHA-256" in out and "BEGIN" not in out


def test_verify_failures_exit_nonzero(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify prints one FAIL line per problem with its fix and exits 1."""
    certs(ca_dir, "issue", "server", "srv", "--san", "DNS:localhost")
    capsys.readouterr()
    assert certs(ca_dir, "verify", ca_dir / "srv-chain.pem", "--purpose", "client") == 1
    out = capsys.readouterr().out
    assert "FAIL purpose: EKU is serverAuth, lacks clientAuth ->" in out
    assert "ok   chain" in out


def test_passphrase_file_encrypts_keys(ca_dir: Path, tmp_path: Path, openssl: str) -> None:
    """--passphrase-file writes PKCS#8 encrypted keys that openssl opens with the same passphrase."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert certs(ca_dir, "issue", "client", "dave", "--passphrase-file", secret) == 0
    key = ca_dir / "dave.key"
    assert key.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    opened = run(openssl, "pkey", "-in", key, "-passin", f"file:{secret}", "-noout")
    assert opened.returncode == 0, opened.stderr


def test_every_key_type_passes_openssl_verify(tmp_path: Path, openssl: str) -> None:
    """CA and leaves of each key type are accepted by openssl verify."""
    for key_type in ("rsa2048", "rsa3072", "rsa4096", "p256", "p384", "ed25519"):
        pki_dir = tmp_path / key_type
        assert main(["--pki-dir", str(pki_dir), "init", "--key-type", key_type]) == 0
        assert main(["--pki-dir", str(pki_dir), "issue", "client", "c", "--key-type", key_type]) == 0
        ok = run(openssl, "verify", "-CAfile", pki_dir / "ca.pem", pki_dir / "c.pem")
        assert ok.returncode == 0, (key_type, ok.stdout, ok.stderr)


def test_config_error_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad config file is one line on stderr and exit code 2, no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[pki]\nkey_type = 'dsa'\n")
    assert main(["--config", str(bad), "init"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key_type" in err and "Traceback" not in err


def test_demo_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mtls-certs demo` makes the PKI once, then keeps it."""
    assert main(["--pki-dir", str(tmp_path), "demo"]) == 0
    first = (tmp_path / "server.key").read_bytes()
    assert main(["--pki-dir", str(tmp_path), "demo"]) == 0
    assert (tmp_path / "server.key").read_bytes() == first
    assert "kept existing server certificate" in capsys.readouterr().out


def test_entry_point_runs_as_a_process(tmp_path: Path) -> None:
    """`python -m mtls_ref.shared.pki.cli --help` works outside pytest too."""
    done = run(sys.executable, "-P", "-m", "mtls_ref.shared.pki.cli", "--help")
    assert done.returncode == 0 and "mtls-certs" in done.stdout


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder``, with a file's bytes (None for a folder): to see that nothing moved."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


NOT_FILE_NAMES = ["../../trav/evil", "<b>x</b>", ".hidden", "", "a/b", "x" * 65, "caf\u00e9", "a b"]


@pytest.mark.parametrize("name", NOT_FILE_NAMES)
@pytest.mark.parametrize("mode", [[], ["--self-signed"]], ids=["ca", "self-signed"])
def test_issue_refuses_a_name_that_is_no_plain_file_name(
    tmp_path: Path, name: str, mode: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """issue NAME writes NAME.key/.csr/.pem: a path, markup, a hidden or empty name is refused, saying how
    to name it, and nothing is written anywhere (the PKI sits two folders down, so '../..' stays here)."""
    pki_dir = tmp_path / "a" / "b" / "pki"
    assert certs(pki_dir, "init") == 0
    capsys.readouterr()
    before = tree(tmp_path)
    assert certs(pki_dir, "issue", "client", name, *mode) == 3
    said = capsys.readouterr().err
    assert f"certificate name {name!r} cannot be used as a file name" in said, said
    assert "letters, digits, '.', '_' and '-'" in said and "mtls-certs sign" in said
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", ["../../trav/evil", ".hidden", ""])
def test_export_refuses_a_name_that_is_no_plain_file_name(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """export NAME reads NAME.pem/.key and writes NAME.p12 in the PKI folder: same rule, nothing written."""
    pki_dir = tmp_path / "a" / "b" / "pki"
    assert certs(pki_dir, "init") == 0
    trav = tmp_path / "a" / "trav"
    trav.mkdir()
    assert certs(trav, "init") == 0 and certs(trav, "issue", "client", "evil") == 0  # what '..' would reach
    capsys.readouterr()
    before = tree(tmp_path)
    assert certs(pki_dir, "export", name, "--p12") == 3
    assert f"certificate name {name!r} cannot be used as a file name" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_plain_file_names_are_issued(ca_dir: Path) -> None:
    """Letters, digits, '.', '_' and '-', up to 64 characters, make a leaf whose CN is the name."""
    for name in ("web-01.example_2", "x" * 64):
        assert certs(ca_dir, "issue", "client", name) == 0
        assert (ca_dir / f"{name}-chain.pem").is_file()


def test_issue_refuses_a_san_that_breaks_identity_formats(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue --san 'DNS:a.example;URI=...' stops before any file is written, naming the SAN and the rule."""
    before = tree(ca_dir)
    assert certs(ca_dir, "issue", "client", "eve", "--san", "DNS:a.example;URI=spiffe://td/admin") == 3
    said = capsys.readouterr().err
    assert "SAN 'DNS:a.example;URI=spiffe://td/admin' is not a host name" in said, said
    assert tree(ca_dir) == before


def csr_requesting(tmp_path: Path, *names: x509.GeneralName) -> Path:
    """A CSR for CN=eve, made with cryptography: openssl's -addext cannot spell a NUL."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eve")]))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "eve.csr"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize(
    ("requested", "named"),
    [
        (x509.DNSName("a.example;URI=spiffe://td/admin"), "'DNS:a.example;URI=spiffe://td/admin'"),
        (x509.UniformResourceIdentifier("spiffe://td/a\x00\x1b[2J"), "'URI:spiffe://td/a\\x00\\x1b[2J'"),
        (x509.RFC822Name("eve@exa_mple.com"), "'email:eve@exa_mple.com'"),
    ],
)
def test_sign_san_from_csr_refuses_the_csrs_bad_san(
    ca_dir: Path, tmp_path: Path, requested: x509.GeneralName, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--san-from-csr names the CSR's offending SAN (escaped, never raw on the terminal); nothing written."""
    csr = csr_requesting(tmp_path, x509.DNSName("eve.example"), requested)
    out = tmp_path / "eve.pem"
    assert certs(ca_dir, "sign", csr, "--profile", "client", "--san-from-csr", "--out", out) == 3
    said = capsys.readouterr().err
    assert f"the CSR requests SAN {named}, which " in said, said
    assert "\x00" not in said and "\x1b" not in said
    assert not out.exists()
    assert certs(ca_dir, "sign", csr, "--profile", "client", "--out", out) == 0  # its SANs ignored: fine
    said = capsys.readouterr().err
    assert f"ignoring the CSR's requested SANs (DNS:eve.example, {named})" in said, said
    assert "\x00" not in said and "\x1b" not in said
