"""The page a browser gets for ``GET /``: who you are, how you were verified, and your handshake.

Served when the request's ``Accept`` names ``text/html``; curl and other
clients keep the text page. Self-contained (inline CSS and SVG, no script, no
fetched resource), so a demo works offline and the response can carry a
``Content-Security-Policy`` that forbids scripts outright. Every value that
comes from a certificate or from the request is escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from typing import Final

from mtls_ref.server.render_svg import render_svg
from mtls_ref.shared.tls.identity import PeerIdentity

from .views import SessionInfo, shown_chain

__all__ = ["PAGE_HEADERS", "accepts_html", "forbidden_html", "home_html"]

# No script may run, nothing may be fetched, and the page is about one connection: never cache it.
PAGE_HEADERS: Final = (
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"vary", b"Accept"),
)
# The files `make certs` writes: the page's commands use them, relative to the repository.
DEMO_FILES: Final = {
    "ca": "certs/ca.pem",
    "leaf": "certs/client.pem",
    "chain": "certs/client-chain.pem",
    "intermediate": "certs/intermediate.pem",
    "key": "certs/client.key",
}
# A Host header is echoed into the commands only when it is a plain host[:port].
_HOST: Final = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
_HOST_PORT: Final = re.compile(r"(.+?)(?::(\d+))?")
_CSS: Final = (
    "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1f2328}"
    "h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}"
    "dl{display:grid;grid-template-columns:12rem 1fr;gap:.3rem 1rem}dt{color:#57606a}dd{margin:0;min-width:0}"
    "dd code{overflow-wrap:anywhere}"
    "code,pre{font-family:ui-monospace,monospace;font-size:13px}"
    "pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;white-space:pre-wrap;word-break:break-all}"
    ".ok{color:#1a7f37}.bad{color:#cf222e}.figure{overflow-x:auto}ol.chain{margin:0;padding-left:1.2rem}"
)


def accepts_html(accept: bytes) -> bool:
    """Whether an ``Accept`` header asks for HTML (browsers do; curl's ``*/*`` does not)."""
    for item in accept.lower().split(b","):
        media, *params = (part.strip() for part in item.split(b";"))
        if media not in (b"text/html", b"application/xhtml+xml"):
            continue
        quality = next((p.removeprefix(b"q=") for p in params if p.startswith(b"q=")), b"1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


def request_host(host: bytes | None, *, fallback: str) -> str:
    """The request's Host when it is a plain ``host[:port]``, else ``fallback``."""
    text = (host or b"").decode("ascii", "replace")
    return text if _HOST.fullmatch(text) else fallback


def home_html(info: SessionInfo, *, host: str, now: datetime | None = None) -> str:
    """The whole page for an allowed client."""
    ident = info.identity
    sections = [
        f'<h1>Hello, <span id="label">{escape(ident.label)}</span></h1>',
        f'<p class="ok">You are authenticated by mutual TLS: this server verified your client '
        f"certificate and {'resumed a session that verified it' if info.resumed else 'checked it just now'}."
        "</p>",
        "<h2>Who you are</h2>",
        _identity_list(ident, info, now or datetime.now(UTC)),
        "<h2>How you were verified</h2>",
        _verification_list(info),
        "<h2>This connection</h2>",
        _dl(
            [
                ("TLS version", escape(info.tls_version or "unknown")),
                ("Cipher", f"<code>{escape(info.cipher or 'unknown')}</code>"),
                ("ALPN", f"<code>{escape(alpn)}</code>" if (alpn := info.alpn()) else "none negotiated"),
                ("HTTP", f'<span id="http-version">{escape(info.http_version or "unknown")}</span>'),
                ("Session", "resumed (abbreviated handshake)" if info.resumed else "new (full handshake)"),
            ]
        ),
        "<h2>Your handshake</h2>",
        _handshake_section(info),
        "<h2>The same request from a terminal</h2>",
        _commands(host),
    ]
    return _document(f"mTLS: {ident.label}", sections)


def forbidden_html(info: SessionInfo, *, host: str) -> str:
    """The 403 page: authenticated, but the allow-list does not admit this identity."""
    ident = info.identity
    sections = [
        f'<h1>Forbidden: <span id="label">{escape(ident.label)}</span></h1>',
        '<p class="bad">Your certificate was verified (authentication passed), but this server\'s '
        "allow-list does not admit you (authorization failed).</p>",
        _dl([("Your names", _names(ident.names())), ("Why", escape(info.decision.told))]),
    ]
    return _document(f"mTLS: forbidden ({ident.label})", sections)


def _document(title: str, sections: Iterable[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n<p><small>mtls-ref: also try <code>/whoami</code> (JSON) and the line protocol.</small></p>"
        "\n</body></html>\n"
    )


def _dl(rows: Iterable[tuple[str, str]], *, id_: str = "") -> str:
    """A definition list of (label, already-escaped HTML) rows."""
    body = "".join(f"<dt>{escape(label)}</dt><dd>{value}</dd>" for label, value in rows)
    attribute = f' id="{id_}"' if id_ else ""
    return f"<dl{attribute}>{body}</dl>"


def _names(names: list[str]) -> str:
    return "<br>".join(f"<code>{escape(n)}</code>" for n in names) or "(none)"


def _days_left(ident: PeerIdentity, now: datetime) -> str:
    if not ident.not_after:
        return "unknown"
    until = datetime.fromisoformat(ident.not_after)
    days = (until - now).days
    return f"{escape(until.strftime('%Y-%m-%d %H:%M UTC'))} ({days} days left)"


def _identity_list(ident: PeerIdentity, info: SessionInfo, now: datetime) -> str:
    spiffe = f'<code id="spiffe-id">{escape(ident.spiffe_id)}</code>' if ident.spiffe_id else "none"
    sans = [n for n in ident.names() if not n.startswith("CN:")]
    return _dl(
        [
            ("Subject", f'<code id="subject">{escape(ident.subject)}</code>'),
            ("Subject alternative names", _names(sans)),
            ("SPIFFE ID", spiffe),
            ("Issuer", f"<code>{escape(ident.issuer)}</code>"),
            ("Chain, as verified", _chain(info)),
            ("SHA-256 fingerprint", f"<code>{escape(ident.sha256)}</code>"),
            ("Serial", f"<code>{escape(ident.serial)}</code>"),
            ("Key", escape(ident.key)),
            ("Valid until", _days_left(ident, now)),
        ],
        id_="identity",
    )


def _chain(info: SessionInfo) -> str:
    match shown_chain(info):
        case "resumed":
            return "verified when the resumed session was made (a resumption sends no certificates)"
        case list(chain):
            return (
                '<ol class="chain">' + "".join(f"<li><code>{escape(s)}</code></li>" for s in chain) + "</ol>"
            )
    return "this TLS engine does not report the verified chain (the openssl engine does)"


def _verification_list(info: SessionInfo) -> str:
    rule = info.decision.rule
    return _dl(
        [
            ("Trusted CA", f"<code>{escape(info.ca_subject)}</code>"),
            (
                "Checks",
                "every signature and validity period up to that CA; the leaf is for clientAuth; "
                "your CertificateVerify proved you hold the private key",
            ),
            ("Revocation (CRL)", _revocation(info)),
            (
                "Allow-list",
                f"admitted by rule <code>{escape(str(rule))}</code>"
                if rule
                else escape(info.decision.reason),
            ),
        ]
    )


def _revocation(info: SessionInfo) -> str:
    """Which CRLs are checked, never the server's file: its path is no business of the client."""
    if info.crl:
        return "on: " + "<br>".join(escape(line) for line in info.crl)
    return "off"


def _handshake_section(info: SessionInfo) -> str:
    recorder = info.handshake
    if recorder is None:
        return (
            "<p>This server does not keep handshake messages, so it cannot draw yours. Start it with "
            "<code>record_handshakes = true</code> in <code>[server]</code> (or "
            "<code>mtls-server --record-handshakes</code>) and reload this page.</p>"
        )
    events = recorder.finish()
    intro = (
        f"<p>The {escape(recorder.version_label)} messages of this very connection, as the server's OpenSSL "
        "sent and received them (the same ones <code>--trace</code> logs). "
        "<strong>Blue</strong>: what mutual TLS adds, your Certificate and the CertificateVerify that "
        "proves you hold its key. Hover a message for its time and details.</p>"
    )
    svg = render_svg(
        events,
        version_label=recorder.version_label,
        tls13=recorder.tls13,
        omitted=recorder.omitted,
        pending="ApplicationData: this page",
    )
    return intro + f'<div class="figure">{svg}</div>'


def _commands(host: str) -> str:
    parts = _HOST_PORT.fullmatch(host)
    name, port = (parts.group(1), parts.group(2) or "443") if parts else (host, "443")  # 443: HTTPS default
    connect = f"{name}:{port}"
    files = DEMO_FILES
    curl = (
        f"curl --cacert {files['ca']} --cert {files['chain']} --key {files['key']} "
        f"-H 'Accept: text/html' https://{host}/"
    )
    # s_client sends -cert's first certificate, then all of -cert_chain: the intermediate alone,
    # or the leaf goes twice.
    s_client = (
        f"printf 'GET / HTTP/1.1\\r\\nHost: {host}\\r\\nAccept: text/html\\r\\n"
        "Connection: close\\r\\n\\r\\n' |\n"
        f"  openssl s_client -quiet -connect {connect} -servername {name.strip('[]')} \\\n"
        "  -verify_return_error"
        f" -CAfile {files['ca']} -cert {files['leaf']} -cert_chain {files['intermediate']}"
        f" -key {files['key']}"
    )
    return (
        "<p>From the repository folder, with the files <code>make certs</code> wrote:</p>"
        f'<pre id="curl-command">{escape(curl)}</pre>'
        f'<pre id="s-client-command">{escape(s_client)}</pre>'
    )
