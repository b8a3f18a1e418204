"""The start-up banner: the security posture a server starts with, for the person reading its terminal.

The same posture goes to the ``listening`` event for machines; this module only
words it (and warns of what the operator should know: a status port open to
the network, a key log, credentials at or near their end).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mtls_ref.shared.pki.expiry import crl_warning, expiry_warning

from .metrics import Credentials

__all__ = ["expiry_warnings", "render_banner", "version_range"]


def version_range(low: str, high: str) -> str:
    """``1.2-1.3 (1.3 preferred)``, or ``1.2 only`` when the range is one version."""
    return f"{low} only" if low == high else f"{low}-{high} ({high} preferred)"


def render_banner(posture: dict[str, Any]) -> str:
    allow = posture["allow"]
    rules = ", ".join(allow) if isinstance(allow, list) else allow
    if posture["ca_names_advertised"]:
        ca_names = [
            f"  CA names sent    yes: CertificateRequest lists {posture['client_ca']},",
            "                   so clients that pick a certificate by issuer (browsers) find it",
        ]
    else:
        ca_names = [
            "  CA names sent    no: Python's ssl sends no certificate_authorities list in",
            "                   CertificateRequest, so clients that pick a certificate by CA name",
            "                   (browsers, some HTTP clients) get no hint; give them one explicitly",
            "                   (Chromium then sends its leaf alone: put the intermediate in the ca file)",
        ]
    return "\n".join(
        [
            "mtls-server security posture",
            f"  listening        {', '.join(posture['addresses'])}",
            f"  TLS engine       {posture['tls_engine']}",
            f"  TLS versions     {posture['tls']}",
            f"  client certs     {posture['client_cert']}, verified against {posture['client_ca']}",
            f"                   CA SHA-256 {posture['client_ca_sha256']}",
            f"  revocation (CRL) {posture['crl']}",
            f"  workers          {posture['workers']}; file descriptors {posture['fd_limit']}",
            f"  allow-list       {rules}",
            f"  ALPN             {', '.join(posture['alpn'])} (no ALPN: HTTP if it sends a request line)",
            *ca_names,
            *_status_line(posture.get("status")),
            *([f"  WARNING          {posture['status_warning']}"] if posture.get("status_warning") else []),
            *([f"  forwarding to    {posture['forward']}"] if posture.get("forward") else []),
            *(
                ["  handshakes       recorded per connection, for the browser page (GET / as HTML)"]
                if posture.get("record_handshakes")
                else []
            ),
            *([f"  WARNING          {posture['keylog_warning']}"] if posture.get("keylog_warning") else []),
            *(f"  WARNING          {warning}" for warning in posture.get("expiry_warnings") or []),
        ]
    )


def expiry_warnings(credentials: Credentials, now: dt.datetime) -> list[str]:
    """The loaded credentials that have expired or will within a month, in words, for the banner."""
    found = [
        expiry_warning("the server certificate", credentials.server_cert, now),
        *(expiry_warning("the client CA", ca, now) for ca in credentials.trust_anchors),
        *(crl_warning(crl, now) for crl in credentials.crls),
    ]
    return [warning for warning in found if warning is not None]


def _status_line(status: list[str] | None) -> list[str]:
    return [f"  status port      {', '.join(status)} and /healthz"] if status else []
