"""A credential file that is not there gets the hint that fits: the demo PKI's default paths
(certs/...) are made by 'make certs'; a path given explicitly was probably mistyped."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtls_ref.client.cli import main as client_main
from mtls_ref.server.cli import main as server_main

from .support.pki import Pki

MAKE_CERTS = "create the demo PKI with 'make certs' (or 'mtls-certs demo')"


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory: no mtls.toml and no certs/, so every default path is missing."""
    monkeypatch.chdir(tmp_path)
    for name in ("MTLS_CONFIG", "MTLS_SERVER_CERT", "MTLS_CLIENT_CERT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("main", [server_main, client_main], ids=["server", "client"])
def test_a_wrong_explicit_cert_path_is_told_to_check_the_path(
    main: object, pki: Pki, empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--cert` naming a file that does not exist: exit 2, "no such file: check the path", and no
    word of 'make certs' (which would not create that file)."""
    assert callable(main)
    wrong = empty_folder / "alice-chian.pem"
    role = "server" if main is server_main else "client"
    flags = ["--cert", str(wrong), "--key", str(pki.client.key), "--ca", str(pki.ca_cert), "--port", "1"]
    assert main(flags) == 2
    said = capsys.readouterr().err
    assert (
        f"{role} certificate {str(wrong)!r}: no such file: check the path (--cert or [{role}] cert)" in said
    )
    assert "make certs" not in said


@pytest.mark.parametrize("main", [server_main, client_main], ids=["server", "client"])
def test_the_default_cert_path_keeps_the_make_certs_hint(
    main: object, empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no flags in a folder without certs/, the first default path checked (the certificate
    for the server, the CA file for the client) is missing: the hint is to create the demo PKI."""
    assert callable(main)
    role, first, setting = (
        ("server", "certificate", "cert") if main is server_main else ("client", "CA file", "ca")
    )
    default = empty_folder / "certs" / ("server-chain.pem" if role == "server" else "ca.pem")
    assert main(["--port", "1"]) == 2
    said = capsys.readouterr().err
    assert f"{role} {first} {str(default)!r} not found; {MAKE_CERTS}, or set [{role}] {setting}" in said
    assert "check the path" not in said


def test_a_folder_given_as_cert_is_not_a_file(
    pki: Pki, empty_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path that exists but is a folder says so, rather than "no such file"."""
    flags = ["--cert", str(empty_folder), "--key", str(pki.server.key), "--ca", str(pki.ca_cert)]
    assert server_main([*flags, "--port", "1"]) == 2
    assert (
        f"server certificate {str(empty_folder)!r}: is not a file: check the path" in capsys.readouterr().err
    )
