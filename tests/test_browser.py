"""A real browser does the mutual TLS: Debian's Chromium, headless, with its own NSS certificate store.

Nothing between the browser and the server is mocked or proxied: Chromium reads
the CA and the client's PKCS#12 bundle (written by our exporter) from an NSS
database in a throwaway ``HOME``, picks the certificate itself (the
``AutoSelectCertificateForUrls`` content setting, written into a throwaway
profile), and talks to our server over loopback. Selenium drives it through
Debian's chromedriver, so the DOM and the browser's own error page can be read.

Chromium, chromedriver and certutil/pk12util come from `make test-deps`; when
one is missing the tests are skipped, naming its Debian package.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from mtls_ref.shared.core.events import listening_port
from mtls_ref.shared.pki.bundle import write_bundle
from mtls_ref.shared.pki.keys import load_certificates, load_private_key

from .support.peers import peers_or_skip
from .support.pki import Pki
from .support.processes import read_until
from .support.tls import log_events, start_server

if TYPE_CHECKING:  # selenium is imported where a browser test runs, not when the module is collected
    from selenium.webdriver.chrome.webdriver import WebDriver

pytestmark = pytest.mark.interop

# The flags the machine's Chromium needs headless as root, with no network but loopback:
# without the background-networking ones it keeps trying to reach Google's hosts.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1600",
)
PASSPHRASE = "browser-test-passphrase"
# Chromium's error page for a handshake the server refused over the client certificate. It retries
# such a request on a new connection, and when that retry races the server's close the page says
# ERR_SOCKET_NOT_CONNECTED instead (against `openssl s_server -Verify 1` it always does), or, seen
# in 2 of 5 full-suite runs once the server offered h2, ERR_CONNECTION_CLOSED; the server's side
# (certificate_required on the wire, in the log) is asserted whatever the page says.
CLIENT_AUTH_ERRORS = ("ERR_BAD_SSL_CLIENT_AUTH_CERT", "ERR_SOCKET_NOT_CONNECTED", "ERR_CONNECTION_CLOSED")


@dataclass(frozen=True)
class Browser:
    chromium: str
    chromedriver: str
    certutil: str
    pk12util: str


@pytest.fixture(scope="session")
def browser_tools() -> Browser:
    """Debian's Chromium, chromedriver and NSS tools; a skip naming the missing ones' packages if not."""
    return Browser(*peers_or_skip("chromium", "chromedriver", "certutil", "pk12util"))


def nss_home(tools: Browser, pki: Pki, home: Path, *, with_client: bool) -> Path:
    """A HOME whose NSS database (where Chromium on Linux looks) trusts the test CA for websites
    and, with ``with_client``, holds alice's key and chain, imported from our PKCS#12 export."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    nss = f"sql:{db}"
    run = [tools.certutil, "-d", nss]
    subprocess.run([*run, "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run([*run, "-A", "-n", "mtls-ref test CA", "-t", "C,,", "-i", str(pki.ca_cert)], check=True)
    if with_client:
        bundle = home / "alice.p12"
        chain = load_certificates(pki.client.chain)
        key = load_private_key(pki.client.key, None)
        write_bundle(bundle, name="alice", key=key, cert=chain[0], chain=chain[1:], passphrase=PASSPHRASE)
        subprocess.run(
            [tools.pk12util, "-d", nss, "-i", str(bundle), "-W", PASSPHRASE], check=True, capture_output=True
        )
    return home


@contextmanager
def chromium(tools: Browser, home: Path, origin: str) -> Iterator[WebDriver]:
    """A headless Chromium using ``home``'s NSS database, picking a client certificate for ``origin``
    on its own (as the AutoSelectCertificateForUrls policy would) instead of asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = home / "profile"
    (profile / "Default").mkdir(parents=True)
    auto_select: dict[str, Any] = {f"{origin},*": {"setting": {"filters": [{}]}}}
    preferences = {"profile": {"content_settings": {"exceptions": {"auto_select_certificate": auto_select}}}}
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences), encoding="utf-8")
    options = webdriver.ChromeOptions()
    options.binary_location = tools.chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = Service(executable_path=tools.chromedriver, env={**os.environ, "HOME": str(home)})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def distinct_bytes(png: bytes) -> int:
    """How many different byte values a PNG's pixel data holds: a handful for a blank page."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat = 8, b""
    while pos < len(png):
        size = int.from_bytes(png[pos : pos + 4], "big")
        if png[pos + 4 : pos + 8] == b"IDAT":
            idat += png[pos + 8 : pos + 8 + size]
        pos += 12 + size
    return len(set(zlib.decompress(idat)))


def error_code(driver: Any) -> str:
    """The net error code Chromium's error page shows ("" on any other page)."""
    from selenium.webdriver.common.by import By

    shown = driver.find_elements(By.CSS_SELECTOR, ".error-code")
    return str(shown[0].text).strip() if shown else ""


def visit(tools: Browser, home: Path, port: int, screenshot: Path | None = None) -> dict[str, object]:
    """Open the page in Chromium; what the DOM says (and a screenshot), read in the browser."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    origin = f"https://localhost:{port}"
    with chromium(tools, home, origin) as driver:
        driver.get("about:blank")
        blank = driver.get_screenshot_as_png()
        seen: dict[str, object] = {"load_error": None}
        try:
            driver.get(f"{origin}/")
        except WebDriverException as failed:  # a failed load leaves the browser on its error page
            seen["load_error"] = failed.msg
        # chromedriver may return before the error page has its code: wait, bounded, for either.
        with contextlib.suppress(TimeoutException):
            WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.ID, "subject") or error_code(d))
        seen.update(url=driver.current_url, source=driver.page_source, error_code=error_code(driver))
        if driver.find_elements(By.ID, "subject"):
            seen["subject"] = driver.find_element(By.ID, "subject").text
            seen["spiffe"] = driver.find_element(By.ID, "spiffe-id").text
            seen["arrows"] = [
                (g.get_attribute("data-sender"), g.get_attribute("data-name"))
                for g in driver.find_elements(By.CSS_SELECTOR, "svg#handshake g.message")
            ]
        png = driver.get_screenshot_as_png()
        if screenshot is not None:
            screenshot.write_bytes(png)
        seen["blank_variety"], seen["page_variety"] = distinct_bytes(blank), distinct_bytes(png)
    return seen


def root_and_intermediate(pki: Pki, folder: Path) -> Path:
    """A CA file trusting the root and holding the intermediate: what lets a server that names
    no CAs in its CertificateRequest accept a browser that then sends its leaf alone."""
    bundle = folder / "ca-and-intermediate.pem"
    intermediate = pki.client.chain.read_bytes().split(b"-----END CERTIFICATE-----", 1)[1].lstrip()
    bundle.write_bytes(pki.ca_cert.read_bytes() + intermediate)
    return bundle


@pytest.mark.parametrize(
    ("engine", "tls_max"),
    [("openssl", "1.3"), ("openssl", "1.2"), ("stdlib", "1.3")],
    ids=["openssl-negotiated-tls13", "openssl-forced-tls12", "stdlib-tls13"],
)
async def test_chromium_shows_its_own_handshake(
    browser_tools: Browser, pki: Pki, tmp_path: Path, engine: str, tls_max: str
) -> None:
    """Chromium presents alice's certificate from its NSS store; the page it renders names her and
    draws the handshake it just did, client Certificate and CertificateVerify included."""
    home = nss_home(browser_tools, pki, tmp_path / "home", with_client=True)
    # The stdlib engine cannot name its CAs (Python's ssl has no call for it), and then Chromium
    # sends the leaf alone: that server must hold the intermediate itself (see the test below).
    ca = pki.ca_cert if engine == "openssl" else root_and_intermediate(pki, tmp_path)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(
            nursery, pki, tls_engine=engine, tls_max=tls_max, record_handshakes=True, ca=ca
        )
        seen = await trio.to_thread.run_sync(visit, browser_tools, home, port, tmp_path / "page.png")
        server.shutdown()
    assert seen.get("subject") == "CN=alice", (seen["load_error"], log)
    assert seen["spiffe"] == "spiffe://mtls-ref.test/alice"
    arrows = seen["arrows"]
    assert isinstance(arrows, list) and arrows[0] == ("client", "ClientHello")
    assert ("client", "Certificate") in arrows and ("client", "CertificateVerify") in arrows
    assert ("client", "ApplicationData") in arrows  # Chromium's GET, as its encrypted record
    assert f"TLSv{tls_max}" in str(seen["source"])
    assert '<span id="http-version">HTTP/2</span>' in str(seen["source"])  # Chromium offers h2 first
    accepted = [e for e in log_events(log, "connection") if e["outcome"] == "accepted"]
    assert accepted and accepted[0]["tls"] == f"TLSv{tls_max}" and accepted[0]["subject"] == "CN=alice"
    # The screenshot is of a rendered page, not an empty one (a blank one has a handful of byte values).
    assert int(str(seen["blank_variety"])) < 16
    assert int(str(seen["page_variety"])) > 64


async def test_chromium_sends_its_leaf_alone_when_the_server_names_no_ca(
    browser_tools: Browser, pki: Pki, tmp_path: Path
) -> None:
    """The stdlib engine sends no CA names; Chromium then presents its leaf without the intermediate,
    and a server trusting only the root refuses it, saying exactly that."""
    home = nss_home(browser_tools, pki, tmp_path / "home", with_client=True)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki, tls_engine="stdlib")
        seen = await trio.to_thread.run_sync(visit, browser_tools, home, port, None)
        server.shutdown()
    assert seen["error_code"] in CLIENT_AUTH_ERRORS, log
    refusal = [e for e in log_events(log, "connection") if e["outcome"] == "rejected"][-1]
    assert refusal["alert"] == "unknown_ca" and refusal["presented"] == ["CN=alice"]
    assert "no intermediate was sent with it" in refusal["reason"]


async def test_chromium_without_a_certificate_gets_its_error_page(
    browser_tools: Browser, pki: Pki, tmp_path: Path
) -> None:
    """No client certificate in the store: the server refuses with certificate_required, and Chromium
    shows its own error page for that alert."""
    home = nss_home(browser_tools, pki, tmp_path / "home", with_client=False)
    async with trio.open_nursery() as nursery:
        server, port, log = await start_server(nursery, pki)
        seen = await trio.to_thread.run_sync(visit, browser_tools, home, port, tmp_path / "error.png")
        server.shutdown()
    assert seen["error_code"] in CLIENT_AUTH_ERRORS, log
    assert "subject" not in seen
    refusals = [e for e in log_events(log, "connection") if e["outcome"] == "rejected"]
    assert refusals, log
    assert refusals[-1]["alert"] == "certificate_required"
    assert "sent no certificate" in refusals[-1]["reason"]
    assert int(str(seen["page_variety"])) > int(str(seen["blank_variety"]))


def test_chromedriver_matches_chromium(browser_tools: Browser) -> None:
    """Debian's driver for Debian's browser: Selenium is handed both, so it fetches nothing, and a
    version skew (one package upgraded alone) is named here rather than failing the tests above."""
    chromium_version = subprocess.run(
        [browser_tools.chromium, "--version"], capture_output=True, text=True, check=True
    )
    driver_version = subprocess.run(
        [browser_tools.chromedriver, "--version"], capture_output=True, text=True, check=True
    )
    major = chromium_version.stdout.split()[1].split(".")[0]
    assert driver_version.stdout.split()[1].startswith(major + "."), (
        chromium_version.stdout,
        driver_version.stdout,
    )


REPO = Path(__file__).resolve().parent.parent


def documented_nss_commands() -> str:
    """docs/browser.md's Chromium-on-Linux import commands, as written there."""
    doc = (REPO / "docs" / "browser.md").read_text(encoding="utf-8")
    blocks = [block.split("```", 1)[0] for block in doc.split("```sh\n")[1:]]
    found = [block for block in blocks if "pk12util" in block and "certutil" in block]
    assert len(found) == 1, "docs/browser.md: expected one sh block with the certutil/pk12util imports"
    return "\n".join(line.strip() for line in found[0].splitlines())


def documented_imports(home: Path) -> None:
    """`make certs`, then docs/browser.md's import commands verbatim, into a throwaway ``home``."""
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "certs"], check=True, timeout=240)
    home.mkdir(parents=True)
    subprocess.run(
        ["bash", "-euc", documented_nss_commands()],
        cwd=REPO,
        env={**os.environ, "HOME": str(home)},
        stdin=subprocess.DEVNULL,  # certutil prompts for a password if a command is wrong: fail instead
        check=True,
        capture_output=True,
        timeout=120,
    )


async def test_the_documented_steps_in_chromium(browser_tools: Browser, tmp_path: Path) -> None:
    """docs/browser.md for Chromium on Linux, command for command: `make certs`, the certutil/pk12util
    imports of certs/ca.pem and certs/client.p12 (read from that page itself),
    `make run-server ARGS=--record-handshakes`, open the page."""
    await trio.to_thread.run_sync(documented_imports, tmp_path / "home")
    argv = ["make", "--no-print-directory", "-C", str(REPO), "run-server"]
    # --port 0 and JSON lines only so the test finds the port; the page's server uses 8443.
    argv.append("ARGS=--record-handshakes --port 0 --log-format json")
    server = await trio.lowlevel.open_process(argv, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert server.stderr is not None
        banner = await read_until(server.stderr, b'"event": "listening"', "make run-server")
        port = next((p for p in map(listening_port, banner.splitlines()) if p), None)
        assert port, banner.decode(errors="replace")
        seen = await trio.to_thread.run_sync(visit, browser_tools, tmp_path / "home", port, None)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # make and the server it started
        with trio.move_on_after(10):
            await server.wait()
        if server.returncode is None:
            os.killpg(server.pid, signal.SIGKILL)
            await server.wait()
    assert seen.get("subject") == "CN=client", seen["load_error"]
    assert seen["spiffe"] == "spiffe://mtls-ref.test/demo-client"
    assert ("client", "CertificateVerify") in seen["arrows"]  # type: ignore[operator]
