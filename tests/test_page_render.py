"""The browser page and its SVG diagram, on in-memory data: layout, escaping, content negotiation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mtls_ref.server.page import accepts_html, forbidden_html, home_html, request_host
from mtls_ref.server.render_svg import render_svg
from mtls_ref.server.views import SessionInfo, describe_crls
from mtls_ref.shared.tls.identity import AllowList, PeerIdentity, identity_from_certificate
from mtls_ref.shared.tls.trace import MAX_EVENTS, HandshakeRecorder, Role, TraceEvent

from .test_trace_render import RECORDED_13, ev

C, S = Role.CLIENT, Role.SERVER
HOSTILE = '<script>alert("x")</script> & </svg><img src=x onerror=alert(1)>'
SVG = "{http://www.w3.org/2000/svg}"


def hostile_identity() -> PeerIdentity:
    """A real certificate whose every name is markup, as a peer could make it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://t/<b>x</b>"), x509.DNSName("a<i>.test")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return identity_from_certificate(cert)


def info_for(
    identity: PeerIdentity, *, allow: tuple[str, ...] = (), recorder: HandshakeRecorder | None = None
) -> SessionInfo:
    return SessionInfo(
        identity=identity,
        decision=AllowList.parse(allow).decide(identity),
        tls_version="TLSv1.3",
        cipher="TLS_AES_256_GCM_SHA384",
        ca_subject=HOSTILE,
        alpn=lambda: "http/1.1",
        handshake=recorder,
        verified_chain=lambda: [identity.subject, "CN=Root <CA>"],
    )


class _Collect(HTMLParser):
    """Tags and text of a page, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.ids: dict[str, str] = {}
        self._open_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._open_id = dict(attrs).get("id")
        for name, _ in attrs:
            assert not name.startswith("on"), f"event handler attribute {name} on <{tag}>"

    def handle_endtag(self, tag: str) -> None:
        self._open_id = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open_id:
            self.ids[self._open_id] = self.ids.get(self._open_id, "") + data


def parse(page: str) -> _Collect:
    collected = _Collect()
    collected.feed(page)
    return collected


def arrow(message: ET.Element) -> ET.Element:
    """The <line> of one message's group in the SVG (every message is drawn as one)."""
    line = message.find(f"{SVG}line")
    assert line is not None, ET.tostring(message)
    return line


def test_svg_is_well_formed_and_marks_the_client_authentication() -> None:
    """One arrow per event, client Certificate and CertificateVerify singled out, the pending page last."""
    svg = render_svg(RECORDED_13, version_label="TLS 1.3", tls13=True, pending="ApplicationData: this page")
    root = ET.fromstring(svg)
    groups = [g for g in root.iter(f"{SVG}g") if "message" in g.get("class", "").split()]
    assert [g.get("data-name") for g in groups] == [e.name for e in RECORDED_13] + [
        "ApplicationData: this page"
    ]
    client_auth = [g.get("data-name") for g in groups if "client-auth" in g.get("class", "")]
    assert client_auth == ["Certificate", "CertificateVerify"]
    assert all(g.get("data-sender") == "client" for g in groups if "client-auth" in g.get("class", ""))
    alert = next(g for g in groups if g.get("data-name") == "Alert")
    assert "alert" in alert.get("class", "") and arrow(alert).get("marker-end") == "url(#x)"
    text = "".join(root.itertext())
    assert "encrypted from here on (TLS 1.3)" in text
    assert "the client's handshake is complete here" in text  # the TLS 1.3 note, wrapped but whole
    assert "sent after this diagram was drawn" in text
    ys = [float(arrow(g).attrib["y1"]) for g in groups]
    assert ys == sorted(ys) and len(set(ys)) == len(ys)  # top to bottom, no two on one row
    assert float(root.attrib["height"]) > ys[-1]


def test_svg_escapes_what_the_peer_chose() -> None:
    """A certificate subject full of markup stays text: the SVG parses and holds no foreign element."""
    events = [ev(C, "ClientHello"), ev(C, "Certificate", detail=HOSTILE)]
    svg = render_svg(events, version_label="TLS 1.2", tls13=False)
    root = ET.fromstring(svg)
    assert {el.tag.removeprefix(SVG) for el in root.iter()} <= {
        "svg",
        "style",
        "defs",
        "marker",
        "path",
        "rect",
        "text",
        "tspan",
        "line",
        "g",
        "title",
    }
    assert HOSTILE[:40] in "".join(root.itertext())


def test_svg_without_events_and_with_omitted_records() -> None:
    empty = ET.fromstring(render_svg([], version_label="TLS", tls13=None))
    assert "no TLS messages were recorded" in "".join(empty.itertext())
    some = ET.fromstring(render_svg(RECORDED_13[:2], version_label="TLS 1.3", tls13=True, omitted=7))
    assert "7 more records on this connection" in "".join(some.itertext())


def test_recorder_keeps_a_bounded_number_of_events() -> None:
    """A long-lived connection's records are counted past MAX_EVENTS, not kept."""
    recorder = HandshakeRecorder(Role.SERVER)
    recorder.tls13 = False
    header = bytes([23, 3, 3, 0, 40])
    for _ in range(MAX_EVENTS + 50):
        recorder.record("write", 0x0303, 256, 0, header)
    events = recorder.finish()
    assert len(events) == MAX_EVENTS
    assert recorder.omitted == 50


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # Chromium, Firefox
        (b"*/*", False),  # curl
        (b"", False),
        (b"application/json", False),
        (b"text/html;q=0", False),
        (b"TEXT/HTML; q=0.5", True),
        (b"text/html;q=bogus", False),
    ],
)
def test_accepts_html(accept: bytes, html: bool) -> None:
    assert accepts_html(accept) is html


@pytest.mark.parametrize(
    ("host", "used"),
    [
        (b"localhost:8443", "localhost:8443"),
        (b"127.0.0.1:9443", "127.0.0.1:9443"),
        (b"[::1]:8443", "[::1]:8443"),
        (b"example.test", "example.test"),
        (b'evil"><script>', "fallback"),
        (b"a b", "fallback"),
        (None, "fallback"),
    ],
)
def test_request_host(host: bytes | None, used: str) -> None:
    assert request_host(host, fallback="fallback") == used


def test_home_page_escapes_every_certificate_value() -> None:
    """Subject, SANs, issuer, chain and the diagram's details are text, never markup."""
    recorder = HandshakeRecorder(Role.SERVER)
    recorder.events.extend(
        [
            ev(C, "ClientHello"),
            TraceEvent(sender=C, kind="handshake", name="Certificate", length=10, at=0.0, detail=HOSTILE),
        ]
    )
    identity = hostile_identity()
    page = home_html(info_for(identity, recorder=recorder), host="localhost:8443")
    collected = parse(page)
    assert "script" not in collected.tags and "img" not in collected.tags
    assert collected.ids["subject"] == identity.subject
    assert HOSTILE in "".join(collected.text)
    assert collected.ids["spiffe-id"] == "spiffe://t/<b>x</b>"
    assert "29 days left" in page or "30 days left" in page


def test_home_page_without_recording_says_how_to_turn_it_on() -> None:
    page = home_html(info_for(hostile_identity()), host="localhost:8443")
    assert "<svg" not in page and "record_handshakes = true" in page


def test_commands_follow_the_host_the_browser_used() -> None:
    page = parse(home_html(info_for(hostile_identity()), host="[::1]:9443"))
    assert page.ids["curl-command"].endswith("https://[::1]:9443/")
    assert "-connect [::1]:9443 -servername ::1" in page.ids["s-client-command"]
    default_port = parse(home_html(info_for(hostile_identity()), host="example.test"))
    assert "-connect example.test:443" in default_port.ids["s-client-command"]


def test_revocation_row_names_each_crl_by_issuer_and_next_update() -> None:
    """The row says whose CRLs are checked and until when, one line per CRL."""
    key = ec.generate_private_key(ec.SECP256R1())
    crls = [
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .last_update(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
        .next_update(dt.datetime(2027, 3, day, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
        for name, day in (("Test Intermediate", 4), ("Test <Root>", 5))
    ]
    info = dataclasses.replace(info_for(hostile_identity()), crl=describe_crls(crls))
    page = home_html(info, host="localhost")
    assert (
        "<dd>on: CRL from CN=Test Intermediate, next update 2027-03-04<br>"
        "CRL from CN=Test \\&lt;Root\\&gt;, next update 2027-03-05</dd>"  # RFC 4514 escapes, then HTML
    ) in page


def test_forbidden_page_names_the_identity_and_why() -> None:
    identity = hostile_identity()
    info = info_for(identity, allow=("CN:alice",))
    collected = parse(forbidden_html(info, host="localhost:8443"))
    assert "script" not in collected.tags
    assert info.decision.told and info.decision.told in "".join(collected.text)
    assert collected.ids["label"] == "spiffe://t/<b>x</b>"
