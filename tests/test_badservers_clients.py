"""Clients nobody here wrote, judged by the bad servers through ``--run``'s own machinery, as measured.

Each configuration's verdicts are pinned row by row: correct options pass
every row a client can be judged on; switching verification off fails exactly
the rows verification exists for, and nothing else. The table in docs/troubleshooting.md
("Bad servers") is this file's expectations.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from mtls_ref.server.badservers import run_command, serve_bad_servers
from mtls_ref.shared.badservers import ROWS, Status
from mtls_ref.shared.pki.badset import Manifest

pytestmark = pytest.mark.interop

PER_ROW = 30.0
# What certificate verification is for: with it off, a client goes through all of these.
UNVERIFIED = (
    "wrong-name",
    "untrusted-root",
    "expired",
    "not-yet-valid",
    "missing-intermediate",
    "self-signed",
    "server-auth-missing",
    "sha1-signature",
    "rsa-1024",
)
FAIL, INFO = Status.FAIL, Status.INFORMATIONAL
# Without verification nothing checks names or revocation either: informational, not failed.
INSECURE = {**dict.fromkeys(UNVERIFIED, FAIL), "cn-only": INFO, "revoked": INFO}
CLIENTS = Path(__file__).parent / "support" / "python_clients.py"


async def verdicts_for(badset: Manifest, command: str) -> dict[str, Status]:
    """Every row's verdict for ``command``, keeping only those that are not a pass."""
    async with serve_bad_servers(badset) as served:
        verdicts = await run_command(served, command, badset, per_row=PER_ROW)
    assert [v.row for v in verdicts] == [row.name for row in ROWS]
    return {v.row: v.status for v in verdicts if v.status is not Status.PASS}


def curl_command(curl: str, *flags: str) -> str:
    return shlex.join([curl, "-sS", "--max-time", "10", *flags]) + " --cert {cert} --key {key} {url}"


async def test_curl_with_correct_options_passes_every_row(badset: Manifest, curl: str) -> None:
    """curl --cacert --crlfile: every must-refuse row refused; CN-only goes through (curl matches the CN)."""
    command = curl_command(curl) + " --cacert {ca} --crlfile {crl}"
    assert await verdicts_for(badset, command) == {"cn-only": INFO}


async def test_curl_insecure_fails_exactly_what_verification_is_for(badset: Manifest, curl: str) -> None:
    """curl -k goes through every bad certificate and still fails nothing else."""
    assert await verdicts_for(badset, curl_command(curl, "-k")) == INSECURE


def s_client(openssl: str, *flags: str) -> str:
    request = shlex.quote("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    argv = [openssl, "s_client", "-quiet", "-ign_eof", "-alpn", "http/1.1", *flags]
    return (
        f"printf {request} | {shlex.join(argv)} -connect {{host}}:{{port}} -servername {{host}} "
        "-verify_hostname {host} -CAfile {ca} -CRL {crl} -crl_check "
        "-cert {cert} -cert_chain {cert} -key {key}"
    )


async def test_s_client_with_verify_return_error_passes(badset: Manifest, openssl: str) -> None:
    """openssl s_client -verify_return_error refuses every bad certificate and reports every refusal."""
    assert await verdicts_for(badset, s_client(openssl, "-verify_return_error")) == {"cn-only": INFO}


async def test_s_client_without_verify_return_error_fails(badset: Manifest, openssl: str) -> None:
    """Without -verify_return_error s_client notes the verify error and carries on: a request goes out."""
    # Revoked too: it checked the CRL, printed the error and went on; from the server's side that
    # looks like a client that does not check revocation, hence informational.
    assert await verdicts_for(badset, s_client(openssl)) == INSECURE


def python_client(library: str, mode: str) -> str:
    argv = [sys.executable, str(CLIENTS), library, mode]
    return shlex.join(argv) + " {url} {ca} {cert} {key} {crl}"


@pytest.mark.parametrize(
    ("library", "mode", "expected"),
    [
        # urllib3 2 matches names in subjectAltName only; requests has no CRL option.
        ("requests", "verify", {"revoked": INFO}),
        ("requests", "insecure", INSECURE),
        # ssl.create_default_context() still falls back to the CN (hostname_checks_common_name).
        ("httpx", "verify-crl", {"cn-only": INFO}),
        ("httpx", "insecure", INSECURE),
    ],
)
async def test_python_http_clients(
    badset: Manifest, library: str, mode: str, expected: dict[str, Status]
) -> None:
    """requests and httpx: verify= passes, verify=False fails exactly the verification rows."""
    assert await verdicts_for(badset, python_client(library, mode)) == expected
