"""What a new user trips on: the demo, the trace of a negotiated version, piping, redirecting a diagram."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio
from cryptography import x509

from mtls_ref.client.conformance import run_conformance
from mtls_ref.client.report import render_report
from mtls_ref.client.session import ClientReport, Exit, run_client
from mtls_ref.shared.core.config import ClientConfig, PKIConfig
from mtls_ref.shared.pki.authority import CertificateAuthority, Profile, parse_san
from mtls_ref.shared.pki.badset import Manifest
from mtls_ref.shared.tls.context import ALPN_LINE, client_context
from mtls_ref.shared.tls.render import TLS13_PENDING_NOTE

from .support.nginx import mtls_nginx
from .support.pki import Pki
from .support.s_server import s_server
from .support.tls import client_config, log_events, start_server, start_server_with, with_version

REPO = Path(__file__).resolve().parent.parent


def test_make_demo_runs_as_the_readme_says() -> None:
    """`make demo`, exactly as the README's first command: exit 0, the exchange and the server's log."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), "demo"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "result: OK" in done.stdout
    assert "demo: the server's log of this connection:" in done.stdout
    assert "outcome=accepted" in done.stdout
    assert "Traceback" not in done.stderr


def assert_trace_is_tls12(report: ClientReport) -> None:
    """Everything the report says follows TLS 1.2: label, certificates both ways, records, no 1.3 note."""
    assert report.result is Exit.OK, report.summary
    assert report.tls_version == "TLSv1.2" and report.version_label == "TLS 1.2"
    assert report.server_chain and report.server_chain[0]["subject"] == "CN=server"
    assert report.client_cert_sent == "CN=alice + 1 CA cert"
    names = [(e.sender.value, e.name) for e in report.events]
    assert ("server", "ServerHelloDone") in names and ("client", "ApplicationData") in names
    text = render_report(report)
    assert "TLS 1.2 handshake, as recorded by the client" in text
    assert "empty: no certificate" not in text
    assert TLS13_PENDING_NOTE not in text


async def negotiate(config: ClientConfig, *, raw: bool) -> ClientReport:
    alpn = None if raw else [ALPN_LINE]
    with trio.fail_after(15):
        return await run_client(
            config,
            client_context(config, alpn=alpn),
            messages=["mtls"] if raw else ["WHOAMI", "QUIT"],
            mode="raw" if raw else "line",
        )


@pytest.mark.usefixtures("tls_engine")
async def test_negotiated_tls12_is_traced_as_tls12_by_our_server(pki: Pki) -> None:
    """Our server capped at TLS 1.2, the client offering 1.2-1.3 (not forced): the trace says 1.2."""
    async with trio.open_nursery() as nursery:
        server, port, _ = await start_server(nursery, pki, tls_max="1.2")
        report = await negotiate(client_config(pki, port=port), raw=False)
        server.shutdown()
    assert_trace_is_tls12(report)


@pytest.mark.interop
@pytest.mark.parametrize("forced", [False, True], ids=["negotiated", "forced"])
async def test_tls12_from_openssl_s_server_is_traced_as_tls12(pki: Pki, openssl: str, forced: bool) -> None:
    """openssl s_server -tls1_2, the client's range left open or forced to 1.2: the same true trace."""
    async with s_server(openssl, pki, "-tls1_2") as port:
        config = client_config(pki, port=port)
        report = await negotiate(with_version(config, "1.2") if forced else config, raw=True)
    assert_trace_is_tls12(report)


@pytest.mark.interop
async def test_negotiated_tls13_from_openssl_s_server(pki: Pki, openssl: str) -> None:
    """s_server free to choose picks 1.3, and the trace says 1.3 (the control for the 1.2 cases)."""
    async with s_server(openssl, pki) as port:
        report = await negotiate(client_config(pki, port=port), raw=True)
    assert report.result is Exit.OK, report.summary
    assert report.version_label == "TLS 1.3"
    assert report.server_chain[0]["subject"] == "CN=server"


@pytest.mark.parametrize("reader", ["head -1", "head -c0"])
def test_mtls_certs_piped_into_head_exits_quietly(pki: Pki, reader: str) -> None:
    """`mtls-certs show CERT | head ...`: no BrokenPipeError traceback, whether the reader takes a line
    or is gone before the first write (head -c0 exits at once: the write surely finds the pipe closed)."""
    done = subprocess.run(
        [
            "bash",
            "-o",
            "pipefail",
            "-c",
            f'"$0" -P -m mtls_ref.shared.pki.cli show "$1" | {reader}',
            sys.executable,
            str(pki.client.cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    if reader == "head -1":
        assert done.stdout == f"{pki.client.cert}: certificate\n"
    else:
        assert done.returncode in (0, 141)  # 141: 128 + SIGPIPE, what a Unix tool reports there


def test_two_default_cas_have_different_names(tmp_path: Path) -> None:
    """`mtls-certs init` twice with the defaults: two roots with different names (the key id in the CN)."""
    names = []
    for folder in ("one", "two"):
        ca = CertificateAuthority.create(PKIConfig(dir=tmp_path / folder), intermediate=True)
        names.append(ca.root.subject.rfc4514_string())
        key_id = x509.SubjectKeyIdentifier.from_public_key(ca.root.public_key()).digest[:4].hex().upper()
        assert names[-1].endswith(f"CN=mtls-ref Demo Root CA {key_id}")
        assert (
            ca.chain[0].subject.rfc4514_string().endswith(f"CN=mtls-ref Demo Root CA {key_id} Intermediate")
        )
    assert names[0] != names[1]


@pytest.mark.usefixtures("tls_engine")
async def test_same_name_different_key_is_told_apart(tmp_path: Path) -> None:
    """A client from another CA that has the trusted CA's exact name: the refusal says 'different key',
    not 'no intermediate was sent'."""
    trusted = PKIConfig(dir=tmp_path / "trusted", ca_common_name="Twin Root CA")
    impostor = PKIConfig(dir=tmp_path / "impostor", ca_common_name="Twin Root CA")
    ca = CertificateAuthority.create(trusted, intermediate=True)
    other = CertificateAuthority.create(impostor, intermediate=True)
    assert ca.root.subject == other.root.subject
    server = ca.issue(Profile.SERVER, "server", out_dir=trusted.dir, sans=[parse_san("DNS:localhost")])
    client = other.issue(Profile.CLIENT, "eve", out_dir=impostor.dir)
    async with trio.open_nursery() as nursery:
        running, port, log = await start_server_with(
            nursery, cert=server.chain, key=server.key, ca=trusted.path(trusted.ca_cert)
        )
        config = ClientConfig(
            host="127.0.0.1",
            port=port,
            server_name="localhost",
            cert=client.chain,
            key=client.key,
            ca=trusted.path(trusted.ca_cert),
            timeout=5.0,
        )
        with trio.fail_after(15):
            await run_client(config, client_context(config, alpn=[ALPN_LINE]))
        running.shutdown()
    (refusal,) = log_events(log, "connection")
    assert refusal["alert"] == "unknown_ca"
    assert "the same name as the trusted CA, but signed with a different key" in refusal["reason"], refusal
    assert "no intermediate was sent" not in refusal["reason"]


@pytest.mark.interop
def test_crl_file_has_a_crl_for_every_ca(badset: Manifest, openssl: str) -> None:
    """The bad set's CRL file satisfies `openssl verify -crl_check_all`: the good client verifies,
    the revoked one is refused as revoked (a CRL from the root and one from the intermediate)."""
    crl = badset.path(badset.crl)
    assert crl.read_text().count("BEGIN X509 CRL") == 2
    ca, inter = badset.path(badset.ca), badset.path("ca/intermediate.pem")

    def verify(case: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                openssl,
                "verify",
                "-crl_check_all",
                "-CAfile",
                str(ca),
                "-untrusted",
                str(inter),
                "-CRLfile",
                str(crl),
                str(badset.path(badset.case(case).cert or "")),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    good = verify("good")
    assert good.returncode == 0 and good.stdout.strip().endswith(": OK"), good.stdout + good.stderr
    revoked = verify("revoked")
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr


@pytest.mark.interop
async def test_nginx_enforces_the_crl_and_conformance_reports_its_http_answers(
    badset: Manifest, nginx: str
) -> None:
    """nginx with ssl_crl set to the bad set's CRL file: the good control is accepted (no 'unable to get
    certificate CRL'), the revoked client refused; conformance names nginx's HTTP status and reason."""
    async with mtls_nginx(
        nginx,
        cert=badset.path(badset.server_cert),
        key=badset.path(badset.server_key),
        ca=badset.path(badset.ca),
        crl=badset.path(badset.crl),
    ) as (port, error_log):
        with trio.fail_after(120):
            rows = await run_conformance(badset, host="127.0.0.1", port=port, mode="http", versions=("1.3",))
        nginx_said = error_log.read_text(errors="replace")
    by_case = {row.case: row for row in rows}
    # Before the root had a CRL too, nginx refused the good control: "unable to get certificate CRL".
    assert by_case["good"].verdict == "pass", (by_case["good"], nginx_said)
    assert by_case["revoked"].verdict == "pass"
    assert by_case["revoked"].observed.startswith("refused, HTTP 400 Bad Request: "), by_case["revoked"]
    assert (
        by_case["no-cert"].observed == "refused, HTTP 400 Bad Request: No required SSL certificate was sent"
    )
