"""Peers nobody here wrote (nginx, HAProxy, redis, Chromium, the openssl and curl CLIs): found, never
installed (ports.py, processes.py and the per-peer modules run them on loopback).

``make test-deps`` installs them: .ci/test-peers.txt is the one list of the programs and the Debian
package of each, read here so a skip names the package that list installs. A test asks for a peer
through a sync fixture (tests/conftest.py), never in an async test body: pytest-trio loses the reason
of a skip raised there, and ``-ra`` shows only "Skipped".
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEER_LIST = REPO / ".ci" / "test-peers.txt"
# Debian keeps daemons (nginx, haproxy) in the sbin folders, which a non-root PATH leaves out;
# .ci/test-deps looks in the same places.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@functools.cache
def debian_packages() -> dict[str, str]:
    """Each program of .ci/test-peers.txt, and the Debian package that ships it."""
    packages = {}
    for line in PEER_LIST.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            program, package = line.split()
            packages[program] = package
    return packages


def find_peer(program: str) -> str | None:
    """Where ``program`` is (PATH, then the sbin folders), or None. It only looks: nothing is installed."""
    if program not in debian_packages():
        raise ValueError(
            f"{program!r} is not in {PEER_LIST}: add it with its Debian package, "
            "so that `make test-deps` installs it"
        )
    return shutil.which(program, path=os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN]))


def missing_message(programs: list[str]) -> str:
    """What is missing and the fix, e.g. "nginx is not installed: run 'make test-deps' (Debian package
    nginx)"."""
    packages = list(dict.fromkeys(debian_packages()[program] for program in programs))
    return (
        f"{', '.join(programs)} {'is' if len(programs) == 1 else 'are'} not installed: run 'make test-deps' "
        f"(Debian package{'' if len(packages) == 1 else 's'} {', '.join(packages)})"
    )


def under_ci() -> bool:
    """CI runs `make test-deps` before the tests, so there a missing peer is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def peers_or_skip(*programs: str) -> list[str]:
    """The paths of ``programs``; if any is missing, a skip naming each missing one and its Debian
    package (a failure under CI). Call it from a sync fixture, where pytest keeps the reason."""
    found = {program: find_peer(program) for program in programs}
    missing = [program for program, path in found.items() if path is None]
    if missing:
        if under_ci():
            pytest.fail(missing_message(missing), pytrace=False)
        pytest.skip(missing_message(missing))
    return [path for path in found.values() if path is not None]


def peer_or_skip(program: str) -> str:
    """The path of ``program``, or a skip that says which package to install (a failure under CI)."""
    (path,) = peers_or_skip(program)
    return path


def require_peer(program: str) -> str:
    """The path of ``program``, or a RuntimeError that says which package to install (for the bench)."""
    path = find_peer(program)
    if path is None:
        raise RuntimeError(missing_message([program]))
    return path
