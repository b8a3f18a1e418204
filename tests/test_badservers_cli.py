"""``mtls-server badservers`` as a user runs it: a real process, a real client per row, the reports."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from mtls_ref.server.cli import main
from mtls_ref.shared.core.cli_support import SERVER_MODULE, module_command
from mtls_ref.shared.pki.badset import Manifest

# Our own client, as a user's CI would run it: a separate process per row.
OUR_CLIENT = shlex.join([sys.executable, "-P", "-m", "mtls_ref.client"]) + (
    " --host {host} --port {port} --ca {ca} --crl {crl} --cert {cert} --key {key}"
    " --http --trace off --timeout 5"
)


def badservers(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        module_command(SERVER_MODULE, "badservers", *args),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_run_prints_a_table_and_writes_junit(badset: Manifest, tmp_path: Path) -> None:
    """--run with our client: a row per bad server, all passing, exit 0, and JUnit XML for CI."""
    junit = tmp_path / "bad-servers.xml"
    rows = ("good", "wrong-name", "late-rejection", "no-cert-request")
    selected = [arg for row in rows for arg in ("--row", row)]
    done = badservers("--badset", str(badset.root), *selected, "--run", OUR_CLIENT, "--junit-xml", str(junit))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"$ {OUR_CLIENT}"
    assert lines[1].split() == ["row", "expected", "observed", "client", "verdict"]
    assert lines[-1] == "4 of 4 rows pass"
    assert "late-rejection        report-failure  server refused: alert unknown_ca; cert sent" in done.stdout
    suite = ET.parse(junit).getroot()
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("mtls-bad-servers", "4", "0")


def test_a_client_that_claims_success_fails_with_exit_1(badset: Manifest) -> None:
    """A 'client' that connects nowhere and exits 0 fails every row it claims, in the JSON too."""
    done = badservers(
        "--badset", str(badset.root), "--row", "good", "--row", "expired", "--run", "true", "--json"
    )
    assert done.returncode == 1
    assert '"verdict": "FAIL"' in done.stdout
    assert "reported success but never connected" in done.stdout


def test_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No bad set, an unknown row, an address off loopback: one line saying what to do, exit 2."""
    assert main(["badservers", "--badset", str(tmp_path), "--run", "true"]) == 2
    assert "make the set with 'mtls-certs badset DIR'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["badservers", "--badset", str(tmp_path), "--row", "nope"])
    assert stopped.value.code == 2
    assert "no bad-server row 'nope'; rows: good, wrong-name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["badservers", "--badset", str(tmp_path), "--host", "0.0.0.0"])  # noqa: S104 - refused, the point
    assert stopped.value.code == 2
    assert "is not a loopback address" in capsys.readouterr().err
