"""Renderers on recorded events: arrows, annotations, the TLS 1.3 note, Mermaid and JSON."""

from __future__ import annotations

import json

from mtls_ref.shared.tls.render import TLS13_PENDING_NOTE, render_json, render_mermaid, render_terminal
from mtls_ref.shared.tls.trace import Role, TraceEvent

C, S = Role.CLIENT, Role.SERVER


def ev(sender: Role, name: str, kind: str = "handshake", detail: str = "", length: int = 10) -> TraceEvent:
    return TraceEvent(sender=sender, kind=kind, name=name, length=length, at=0.0, detail=detail)


RECORDED_13 = [
    ev(C, "ClientHello"),
    ev(S, "ServerHello"),
    ev(S, "CertificateRequest"),
    ev(S, "Certificate", detail="CN=server"),
    ev(S, "CertificateVerify"),
    ev(S, "Finished"),
    ev(C, "Certificate", detail="CN=alice + 1 CA cert"),
    ev(C, "CertificateVerify"),
    ev(C, "Finished"),
    ev(S, "Alert", kind="alert", detail="fatal unknown_ca", length=2),
]


def test_terminal_arrows_point_the_right_way() -> None:
    """Client messages point right, server messages left, one line each, in order."""
    lines = render_terminal(RECORDED_13, observer=C, version_label="TLS 1.3", tls13=True).splitlines()
    assert lines[0] == "TLS 1.3 handshake, as recorded by the client"
    arrows = [line for line in lines if line.startswith("|")]
    assert len(arrows) == len(RECORDED_13)
    assert arrows[0].startswith("|-- ClientHello ") and arrows[0].split("  ")[0].endswith("->|")
    assert arrows[1].startswith("|<-") and " ServerHello --|" in arrows[1]


def test_terminal_annotates_client_certificate_and_proof() -> None:
    """Where the client certificate and its CertificateVerify travel is said in words."""
    text = render_terminal(RECORDED_13, observer=S, version_label="TLS 1.3", tls13=True)
    assert "client certificate: CN=alice + 1 CA cert" in text
    assert "client proves it holds the certificate's private key" in text
    assert "server asks for a client certificate" in text
    assert "Alert (fatal unknown_ca)" in text


def test_tls13_note_follows_client_finished_only_in_tls13() -> None:
    """The 'client thinks it is done' note sits right after the client's Finished, TLS 1.3 only."""
    lines = render_terminal(RECORDED_13, observer=C, version_label="TLS 1.3", tls13=True).splitlines()
    finished = next(i for i, line in enumerate(lines) if line.startswith("|-- Finished"))
    assert TLS13_PENDING_NOTE in lines[finished + 1]
    tls12 = render_terminal(RECORDED_13, observer=C, version_label="TLS 1.2", tls13=False)
    assert TLS13_PENDING_NOTE not in tls12


def test_mermaid_sequence_diagram() -> None:
    """Mermaid output is a sequenceDiagram with one arrow per message; fatal alerts are crosses."""
    text = render_mermaid(RECORDED_13, version_label="TLS 1.3", tls13=True)
    lines = text.splitlines()
    assert lines[:3] == ["sequenceDiagram", "    participant Client", "    participant Server"]
    assert "    Client->>Server: ClientHello" in lines
    assert "    Server->>Client: CertificateRequest" in lines
    assert "    Server-xClient: Alert fatal unknown_ca" in lines
    assert sum(1 for line in lines if "->>" in line or "-x" in line) == len(RECORDED_13)
    assert not any(";" in line for line in lines)


def test_json_is_the_events() -> None:
    """JSON keeps every event with sender, kind, name, length and detail."""
    data = json.loads(render_json(RECORDED_13, observer=C, version_label="TLS 1.3"))
    assert data["observer"] == "client"
    assert [e["name"] for e in data["events"]] == [e.name for e in RECORDED_13]
    assert data["events"][-1] == {
        "sender": "server",
        "kind": "alert",
        "name": "Alert",
        "length": 2,
        "at": 0.0,
        "detail": "fatal unknown_ca",
    }


def test_empty_trace_says_so() -> None:
    """A connection that never got to TLS renders a clear placeholder."""
    assert "(no TLS messages were exchanged)" in render_terminal(
        [], observer=C, version_label="TLS", tls13=None
    )
