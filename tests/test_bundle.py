"""PKCS#12 bundles for browsers: written 0600 with a passphrase, read back by openssl and by `show`."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from mtls_ref.shared.core.cli_support import module_command
from mtls_ref.shared.pki.cli import main

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.interop


def certs(pki_dir: Path, *args: str) -> int:
    return main(["--pki-dir", str(pki_dir), *args])


def openssl_pkcs12(
    openssl: str, bundle: Path, passphrase_file: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl, "pkcs12", "-in", str(bundle), "-passin", f"file:{passphrase_file}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_demo_writes_a_client_bundle_openssl_reads(tmp_path: Path, openssl: str) -> None:
    """`mtls-certs demo` (make certs) writes client.p12 and its passphrase, both 0600; openssl opens
    it with that passphrase and finds the client leaf, its chain to the root, and the matching key."""
    assert certs(tmp_path, "demo") == 0
    bundle, secret = tmp_path / "client.p12", tmp_path / "client.p12.passphrase"
    for path in (bundle, secret):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = openssl_pkcs12(openssl, bundle, secret, "-info", "-noout")
    assert info.returncode == 0, info.stderr
    assert "AES-256-CBC" in info.stderr
    chain = openssl_pkcs12(openssl, bundle, secret, "-nokeys")
    assert chain.stdout.count("BEGIN CERTIFICATE") == 3
    assert "subject=CN = client" in chain.stdout
    key = openssl_pkcs12(openssl, bundle, secret, "-nocerts", "-nodes")
    ours = subprocess.run(
        [openssl, "pkey", "-pubout"], input=key.stdout, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    leaf = subprocess.run(
        [openssl, "x509", "-pubkey", "-noout", "-in", str(tmp_path / "client.pem")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert ours == leaf
    assert certs(tmp_path, "demo") == 0  # a second run keeps the bundle
    assert openssl_pkcs12(openssl, bundle, secret, "-info", "-noout").returncode == 0


def test_export_with_a_passphrase_file_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """export takes the passphrase from a file, refuses to overwrite, and show reads the bundle back
    (with its passphrase; without it, one clear error)."""
    assert certs(tmp_path, "init", "--intermediate") == 0
    assert certs(tmp_path, "issue", "client", "alice", "--san", "URI:spiffe://example.test/alice") == 0
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse\n")
    assert certs(tmp_path, "export", "alice", "--p12", "--passphrase-file", str(secret)) == 0
    assert certs(tmp_path, "export", "alice", "--p12", "--passphrase-file", str(secret)) == 3  # exists
    capsys.readouterr()
    bundle = tmp_path / "alice.p12"
    assert certs(tmp_path, "show", str(bundle), "--passphrase-file", str(secret)) == 0
    shown = capsys.readouterr().out
    assert "PKCS#12 bundle" in shown and "Friendly name:        alice" in shown
    assert "Private key:          ECDSA P-256" in shown and "URI:spiffe://example.test/alice" in shown
    assert certs(tmp_path, "show", str(bundle)) == 3
    assert "give its passphrase with --passphrase-file" in capsys.readouterr().err
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("nope\n")
    assert certs(tmp_path, "show", str(bundle), "--passphrase-file", str(wrong)) == 3
    assert "wrong passphrase" in capsys.readouterr().err


def test_export_generates_and_prints_a_passphrase(tmp_path: Path) -> None:
    """Without --passphrase-file a passphrase is generated and printed once: it opens the bundle."""
    assert certs(tmp_path, "init") == 0
    assert certs(tmp_path, "issue", "client", "bob") == 0
    done = subprocess.run(
        module_command("mtls_ref.shared.pki.cli", "--pki-dir", str(tmp_path), "export", "bob", "--p12"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    passphrase = done.stdout.split("shown once: ", 1)[1].split()[0]
    secret = tmp_path / "told.txt"
    secret.write_text(passphrase + "\n")
    assert certs(tmp_path, "show", str(tmp_path / "bob.p12"), "--passphrase-file", str(secret)) == 0


def docs_console_block(page: str, after: str) -> tuple[str, list[str]]:
    """The console block of docs/{page} whose first line is ``$ {after}...``: that command, and the
    lines it shows as output up to a "..." line (the rest elided)."""
    doc = (REPO / "docs" / page).read_text(encoding="utf-8")
    start = doc.index(f"$ {after}")
    block = doc[start : doc.index("```", start)].splitlines()
    shown = block[1:]
    return block[0].removeprefix("$ "), shown[: shown.index("...")] if "..." in shown else shown


def test_documented_show_of_the_demo_bundle_runs_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/certificates.md's `mtls-certs show certs/client.p12 --passphrase-file ...` after `mtls-certs
    demo`, run as written from that folder: it opens with the file demo wrote and prints what the page
    shows, three certificates (leaf, intermediate, root) as the page says the bundle holds."""
    command, shown = docs_console_block("certificates.md", "mtls-certs show certs/client.p12")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_CONFIG", raising=False)
    assert main(["demo"]) == 0
    capsys.readouterr()
    argv = command.split()
    assert argv[0] == "mtls-certs", command
    assert main(argv[1:]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[: len(shown)] == shown
    assert "  Certificates:         3" in shown
