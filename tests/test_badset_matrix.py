"""Every bad credential, both TLS versions: refused, explained on both sides, with the exit code."""

from __future__ import annotations

import pytest
import trio

from mtls_ref.client.cli import main as client_main
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.pki.badset import Manifest
from mtls_ref.shared.tls.context import ALPN_LINE, client_context

from .support.tls import log_events, start_server_with

# case -> (exit, alert, what the client says about its certificate, what the server log says)
EXPECTED: dict[str, tuple[Exit, str | None, str, str]] = {
    "good": (Exit.OK, None, "accepted our certificate", "client said QUIT"),
    "no-cert": (
        Exit.CERT_REJECTED,
        "*",
        "requires a client certificate and we sent none",
        "the client sent no certificate",
    ),
    "untrusted-ca": (
        Exit.CERT_REJECTED,
        "unknown_ca",
        "our certificate was issued by O=mtls-ref,CN=Untrusted Other Root CA",
        "was issued by O=mtls-ref,CN=Untrusted Other Root CA, "
        "but the trusted CA is O=mtls-ref,CN=mtls-ref Badset Root CA",
    ),
    "expired": (
        Exit.CERT_REJECTED,
        "certificate_expired",
        "our certificate expired on",
        "CN=expired expired on",
    ),
    "not-yet-valid": (
        Exit.CERT_REJECTED,
        "bad_certificate",
        "our certificate is not valid until",
        "CN=not-yet-valid is not valid until",
    ),
    "server-eku": (
        Exit.CERT_REJECTED,
        "unsupported_certificate",
        "our certificate has EKU serverAuth, which lacks clientAuth",
        "CN=server-eku has EKU serverAuth, which lacks clientAuth",
    ),
    "self-signed": (
        Exit.CERT_REJECTED,
        "unknown_ca",
        "our certificate is self-signed",
        "CN=self-signed is self-signed",
    ),
    "revoked": (
        Exit.CERT_REJECTED,
        "certificate_revoked",
        "is on its CA's revocation list",
        "CN=revoked (serial",
    ),
    "missing-intermediate": (
        Exit.CERT_REJECTED,
        "unknown_ca",
        "no intermediate was sent with it",
        "no intermediate was sent with it",
    ),
    "ca-as-client": (
        Exit.CERT_REJECTED,
        "unsupported_certificate",
        "is a CA certificate (CA:TRUE), not a client certificate",
        "is a CA certificate (CA:TRUE), not a client certificate",
    ),
    "not-allowed": (
        Exit.FORBIDDEN,
        None,
        "refused by the server's authorization",
        "no allow rule matched identity [CN:not-allowed, URI:spiffe://badset.test/outsider/not-allowed]",
    ),
}
TLS_CASES = list(EXPECTED)


def client_for(manifest: Manifest, case: str, port: int, tls: str) -> ClientConfig:
    spec = manifest.case(case)
    return ClientConfig(
        host="127.0.0.1",
        port=port,
        server_name="localhost",
        ca=manifest.path(manifest.ca),
        cert=manifest.path(spec.cert) if spec.cert else None,
        key=manifest.path(spec.key) if spec.key else None,
        tls_min=tls,
        tls_max=tls,
        timeout=5.0,
    )


async def connect(config: ClientConfig) -> ClientReport:
    with trio.fail_after(15):
        return await run_client(config, client_context(config, alpn=[ALPN_LINE]), messages=["QUIT"])


@pytest.mark.usefixtures("tls_engine")
@pytest.mark.parametrize("case", TLS_CASES)
async def test_matrix_row(badset: Manifest, tls_version: str, case: str) -> None:
    """The server refuses (or admits, for the control) with the right alert; both sides say why."""
    exit_code, alert, client_says, server_says = EXPECTED[case]
    if alert == "*":
        alert = "certificate_required" if tls_version == "1.3" else "handshake_failure"
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server_with(nursery, **badset.server_settings())
        report = await connect(client_for(badset, case, port, tls_version))
        server.shutdown()
    assert report.result is exit_code, report.summary
    assert report.alert == alert
    assert client_says in report.summary
    if exit_code is not Exit.OK:
        assert report.fix, "every failure comes with a fix"
    entry = log_events(log, "connection")[0]
    assert server_says in entry["reason"]
    expected_outcome = {Exit.OK: "accepted", Exit.FORBIDDEN: "forbidden"}.get(exit_code, "rejected")
    assert entry["outcome"] == expected_outcome
    if expected_outcome == "rejected":
        assert entry["alert"] == alert


def test_key_mismatch_is_refused_locally(badset: Manifest, capsys: pytest.CaptureFixture[str]) -> None:
    """A certificate with someone else's key never reaches the server: exit 2 with the reason."""
    spec = badset.case("key-mismatch")
    code = client_main(
        [
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--ca",
            str(badset.path(badset.ca)),
            "--cert",
            str(badset.path(spec.cert or "")),
            "--key",
            str(badset.path(spec.key or "")),
        ]
    )
    assert code == Exit.USAGE
    assert "does not belong to certificate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("server-wrong-name", "does not name the host we connected to"),
        ("server-untrusted", "was issued by O=mtls-ref,CN=Untrusted Other Root CA, but the trusted CA is"),
        ("server-expired", "CN=server-expired expired on"),
    ],
)
@pytest.mark.usefixtures("tls_engine")
async def test_bad_server_certificates_are_diagnosed(
    badset: Manifest, tls_version: str, case: str, says: str
) -> None:
    """From the client's side: wrong name, unknown CA, expired: exit 4 and the reason."""
    spec = badset.case(case)
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server_with(
            nursery,
            cert=badset.path(spec.cert or ""),
            key=badset.path(spec.key or ""),
            ca=badset.path(badset.ca),
        )
        report = await connect(client_for(badset, "good", port, tls_version))
        server.shutdown()
    assert report.result is Exit.SERVER_UNTRUSTED
    assert says in report.summary
    assert report.fix
