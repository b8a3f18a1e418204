"""The wheel as a user gets it: one import name, fixtures in a foreign project, no code run from the cwd."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from .support.planted import MARKER, leaves_marker, write_tree

REPO = Path(__file__).resolve().parent.parent
# What a wheel is built from: the packaging metadata and the three folders it maps to mtls_ref.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "server", "client", "shared")
INSTALL_TIMEOUT = 300

# A project whose own top-level packages are named like the folders of this repository,
# and whose `python -m server` would leave a marker if anything ever ran it.
FOREIGN_PACKAGES = {
    "server/__init__.py": "def name() -> str:\n    return 'their server'\n",
    "server/__main__.py": leaves_marker("their server/__main__.py") + "raise SystemExit(9)\n",
    "client/__init__.py": "GREETING = 'their client'\n",
    "shared/__init__.py": "",
    "shared/util.py": "def shout(text: str) -> str:\n    return text.upper()\n",
}

# Copied into docs/pytest-plugin.md: keep the two the same (tests/test_docs.py checks it).
FOREIGN_TESTS = '''
from client import GREETING
from server import name
from shared.util import shout


def test_their_own_packages_still_import():
    assert (name(), GREETING, shout("ok")) == ("their server", "their client", "OK")


def test_a_client_of_the_ca_is_accepted(mtls_server, mtls_ca):
    alice = mtls_ca.issue_client("alice", sans=["URI:spiffe://example.test/alice"])
    verdict = mtls_server.assert_accepted(mtls_ca.client_context(alice))
    assert "spiffe://example.test/alice" in verdict.greeting


def test_no_certificate_is_refused(mtls_server, mtls_ca):
    mtls_server.assert_refused(mtls_ca.client_context(None), reason="requires a client certificate")


def test_every_bad_credential_gets_its_verdict(mtls_server_factory, mtls_badset):
    server = mtls_server_factory(**mtls_badset.server_settings())
    for case in ("good", "expired", "untrusted-ca", "revoked", "not-allowed"):
        verdict = server.check(mtls_badset.client_context(case))
        assert verdict.accepted is (mtls_badset.expectation(case) == "accepted"), (case, verdict)
'''

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean copy of the sources (no stale build/ output can slip in)."""
    source = tmp_path_factory.mktemp("wheel-src")
    for name in WHEEL_SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, source],
        check=True,
        timeout=INSTALL_TIMEOUT,
        capture_output=True,
    )
    (built,) = out.glob("mtls_ref-*.whl")
    return built


def test_wheel_holds_only_mtls_ref(wheel: Path) -> None:
    """Every file in the wheel is under mtls_ref/ or its own metadata, and the three parts are there."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = archive.read(next(n for n in names if n.endswith(".dist-info/top_level.txt")))
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"mtls_ref", wheel.name.split("-py3")[0] + ".dist-info"}
    assert top_level.decode().split() == ["mtls_ref"]
    for module in ("server/cli", "client/cli", "shared/tls/context", "shared/testing/pytest_plugin"):
        assert f"mtls_ref/{module}.py" in names


def test_foreign_project_uses_the_fixtures(wheel: Path, tmp_path: Path) -> None:
    """A project with its own server/, client/ and shared/ packages runs our fixtures from the wheel."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(wheel), "pytest", "pytest-trio"],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    project = tmp_path / "project"
    write_tree(project, {**FOREIGN_PACKAGES, "tests/test_with_mtls.py": FOREIGN_TESTS})
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n", encoding="utf-8")
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
    assert not list(project.rglob(MARKER)), "a planted module ran"

