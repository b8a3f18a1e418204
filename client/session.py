"""Connect, handshake, exchange lines, and say exactly how it went.

Theory of operation
-------------------
Under TLS 1.3 the client's handshake completes *before* the server has judged
the client certificate (the client's Finished travels with its Certificate and
CertificateVerify; the server answers with an alert, or not at all, later). So
the handshake succeeding proves nothing about our certificate: only a read
does. This session therefore never reports success before it has read from the
server: our server greets first; in ``raw`` mode (any other server, e.g.
``openssl s_server -rev``) the first reply to our first line serves; in ``http``
mode (nginx, any HTTPS service) the status line of ``GET /`` does. Every read
has a deadline.

The outcome is a :class:`ClientReport` whose ``result`` is one of the
documented exit codes (:class:`Exit`).
"""

from __future__ import annotations

import dataclasses
import enum
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio
from cryptography import x509

from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.core.errors import MTLSError, ProtocolError
from mtls_ref.shared.core.protocol import LineBuffer, Reply, encode_request, parse_reply
from mtls_ref.shared.pki.inspect import describe_certificate
from mtls_ref.shared.pki.keys import load_certificates
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.diagnose import (
    Category,
    Diagnosis,
    certificate_fact,
    diagnose_eof,
    diagnose_ssl_error,
    load_chain,
    topic_for,
)
from mtls_ref.shared.tls.trace import HandshakeRecorder, Role, TraceEvent, recording

__all__ = ["ClientReport", "Exit", "run_client"]

# Replies can be longer than requests (ECHO adds a prefix, WHOAMI is JSON):
# accept up to 64 KiB per reply line.
REPLY_MAX_LINE: Final = 65536
RECEIVE_SIZE: Final = 16384
DEFAULT_MESSAGES: Final = ("WHOAMI", "ECHO hello from mtls-client", "QUIT")


class Exit(enum.IntEnum):
    """The client's exit codes (documented in --help and the README)."""

    OK = 0
    FAILURE = 1  # unexpected
    USAGE = 2  # bad flags, config or local files
    CONNECT = 3  # cannot connect (refused, unreachable, DNS, timeout on connect)
    SERVER_UNTRUSTED = 4  # we refused the server's certificate
    CERT_REJECTED = 5  # the server refused our certificate (alert, or TLS 1.3 close)
    FORBIDDEN = 6  # authenticated, but the server's authorization refused us
    PROTOCOL = 7  # protocol error or timeout after the handshake


_CATEGORY_EXIT: Final = {
    Category.PEER_UNTRUSTED: Exit.SERVER_UNTRUSTED,
    Category.REJECTED_BY_PEER: Exit.CERT_REJECTED,
    Category.NEGOTIATION: Exit.PROTOCOL,
    Category.CLOSED: Exit.PROTOCOL,
    Category.OTHER: Exit.PROTOCOL,
}


@dataclass(slots=True, kw_only=True)
class ClientReport:
    """Everything the client learned; rendered as text or JSON by the CLI."""

    target: str
    server_name: str
    result: Exit = Exit.FAILURE
    summary: str = ""
    fix: str = ""
    alert: str | None = None
    tls_version: str | None = None
    cipher: str | None = None
    server_chain: list[dict[str, Any]] = field(default_factory=list)
    client_cert_requested: bool | None = None
    client_cert_sent: str | None = None
    greeting: str | None = None
    exchanges: list[tuple[str, str]] = field(default_factory=list)
    events: list[TraceEvent] = field(default_factory=list)
    tls13: bool | None = None
    version_label: str = ""
    # --http: the status line and, when the body names one (nginx's <title>), the reason.
    http_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "server_name": self.server_name,
            "result": self.result.name.lower(),
            "exit_code": int(self.result),
            "summary": self.summary,
            "fix": self.fix or None,
            "alert": self.alert,
            "tls_version": self.tls_version,
            "cipher": self.cipher,
            "server_chain": self.server_chain,
            "client_cert_requested": self.client_cert_requested,
            "client_cert_sent": self.client_cert_sent,
            "greeting": self.greeting,
            "exchanges": [{"request": q, "reply": a} for q, a in self.exchanges],
            "http_status": self.http_status,
            "trace": [e.to_dict() for e in self.events],
        }


class _Stop(Exception):
    """Internal: the session ends with ``result``; the report already says why."""

    def __init__(self, result: Exit) -> None:
        super().__init__(result.name)
        self.result = result


async def run_client(
    config: ClientConfig,
    context: ssl.SSLContext,
    *,
    messages: Sequence[str] = DEFAULT_MESSAGES,
    mode: str = "line",
) -> ClientReport:
    """Run one session against ``config.host:config.port``; never raises for network outcomes."""
    report = ClientReport(target=f"{config.host}:{config.port}", server_name=config.expected_name)
    recorder = HandshakeRecorder(Role.CLIENT)
    try:
        with recording(recorder):
            await _session(
                config=config, context=context, messages=messages, mode=mode, report=report, recorder=recorder
            )
        report.result = Exit.OK
    except _Stop as stop:
        report.result = stop.result
    finally:
        report.events = recorder.finish()
        report.tls13 = recorder.tls13
        report.version_label = recorder.version_label
        report.client_cert_requested = recorder.saw("CertificateRequest", Role.SERVER)
        sent = [e for e in report.events if e.name == "Certificate" and e.sender is Role.CLIENT]
        report.client_cert_sent = sent[0].detail if sent else None
        report.server_chain = [_chain_entry(der) for der in recorder.peer_certificates]
    return report


def _chain_entry(der: bytes) -> dict[str, Any]:
    info = describe_certificate(x509.load_der_x509_certificate(der))
    keep = ("subject", "issuer", "not_after", "days_left", "key", "sans", "sha256_fingerprint")
    return {k: info[k] for k in keep}


def _diagnose(
    exc: trio.BrokenResourceError, tls: TLSConnection, recorder: HandshakeRecorder, config: ClientConfig
) -> Diagnosis:
    """Diagnose a broken TLS stream from its ssl cause, what the trace saw, and the certificate involved."""
    cause = exc.__cause__
    if not isinstance(cause, ssl.SSLError):
        return Diagnosis(
            category=Category.CLOSED,
            summary="the connection broke (no TLS error was reported)",
            fix="see the server's log",
        )
    sent_empty = any(
        e.name == "Certificate" and e.sender is Role.CLIENT and e.detail.startswith("empty")
        for e in recorder.events
    )
    diagnosis = diagnose_ssl_error(cause, local=Role.CLIENT, sent_no_certificate=sent_empty)
    if tls.sent_alert and diagnosis.category is Category.PEER_UNTRUSTED:
        diagnosis = dataclasses.replace(diagnosis, alert=tls.sent_alert)  # what really went out
    fact = _certificate_fact(cause, diagnosis, recorder, config)
    return dataclasses.replace(diagnosis, summary=f"{diagnosis.summary}: {fact}") if fact else diagnosis


def _certificate_fact(
    cause: ssl.SSLError, diagnosis: Diagnosis, recorder: HandshakeRecorder, config: ClientConfig
) -> str | None:
    """The server's certificate when we refused it; our own when the server refused us."""
    try:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return certificate_fact(
                load_chain(recorder.peer_certificates),
                topic_for(verify_code=cause.verify_code),
                purpose="server",
                trusted=load_certificates(config.ca),
            )
        if diagnosis.category is Category.REJECTED_BY_PEER and config.cert is not None:
            own = load_certificates(config.cert)
            fact = certificate_fact(own, topic_for(alert=diagnosis.alert), purpose="client")
            return (
                f"our certificate {fact.removeprefix(own[0].subject.rfc4514_string() + ' ')}"
                if fact
                else None
            )
    except MTLSError:
        return None  # explaining is best effort; the diagnosis stands without it
    return None


def _fail(
    report: ClientReport,
    result: Exit,
    diagnosis: Diagnosis | None = None,
    *,
    summary: str = "",
    fix: str = "",
) -> _Stop:
    if diagnosis is not None:
        summary, fix = diagnosis.summary, diagnosis.fix
        report.alert = diagnosis.alert
    report.summary, report.fix = summary, fix
    return _Stop(result)


async def _session(
    *,
    config: ClientConfig,
    context: ssl.SSLContext,
    messages: Sequence[str],
    mode: str,
    report: ClientReport,
    recorder: HandshakeRecorder,
) -> None:
    tcp = await _connect(config, report)
    tls = TLSConnection(tcp, context, server_side=False, server_hostname=config.expected_name)
    try:
        await _handshake(tls, config, report, recorder)
        report.tls_version = tls.version()
        report.cipher = tls.cipher()
        reader = _Reader(tls, config, report, recorder)
        if mode == "http":
            await _http_exchange(tls, reader, config, report)
        elif mode == "raw":
            await _raw_exchange(tls, reader, messages, report)
        else:
            await _line_protocol(tls, reader, messages, report)
        report.summary = report.summary or "the server accepted our certificate and answered"
    finally:
        with trio.CancelScope(shield=True):
            await tls.aclose(goodbye_within=1.0)


async def _connect(config: ClientConfig, report: ClientReport) -> trio.SocketStream:
    with trio.move_on_after(config.timeout):
        try:
            return await trio.open_tcp_stream(config.host, config.port)
        except OSError as exc:
            raise _fail(
                report,
                Exit.CONNECT,
                summary=f"cannot connect to {config.host}:{config.port}: {_connect_error(exc)}",
                fix="is the server running? start ours with 'make run-server', or check --host/--port",
            ) from exc
    # Only reached when the deadline cancelled the connect attempt.
    raise _fail(
        report,
        Exit.CONNECT,
        summary=f"no TCP connection to {config.host}:{config.port} within {config.timeout:g}s",
        fix="check the address and any firewall",
    )


def _connect_error(exc: OSError) -> str:
    """trio wraps per-address failures in a group; show the first real reason."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        reasons = {getattr(e, "strerror", None) or str(e) for e in cause.exceptions}
        return "; ".join(sorted(reasons))
    return exc.strerror or str(exc)


async def _handshake(
    tls: TLSConnection, config: ClientConfig, report: ClientReport, recorder: HandshakeRecorder
) -> None:
    with trio.move_on_after(config.timeout) as scope:
        try:
            await tls.handshake()
        except trio.BrokenResourceError as exc:
            if isinstance(exc.__cause__, ssl.SSLError):
                diagnosis = _diagnose(exc, tls, recorder, config)
                raise _fail(report, _CATEGORY_EXIT[diagnosis.category], diagnosis) from exc
            raise _fail(report, Exit.PROTOCOL, diagnose_eof(tls13=None, after_handshake=False)) from exc
    if scope.cancelled_caught:
        raise _fail(
            report,
            Exit.PROTOCOL,
            summary=f"TLS handshake did not finish within {config.timeout:g}s",
            fix="is this a TLS port? try 'openssl s_client -connect HOST:PORT'",
        )


class _Reader:
    """Reads reply lines, each within the deadline, turning TLS failures into diagnoses."""

    def __init__(
        self, tls: TLSConnection, config: ClientConfig, report: ClientReport, recorder: HandshakeRecorder
    ) -> None:
        self._tls = tls
        self.config = config
        self._timeout = config.timeout
        self._report = report
        self.recorder = self._recorder = recorder
        self._lines = LineBuffer(REPLY_MAX_LINE)
        self._ready: list[str] = []

    async def line(self, waiting_for: str) -> str:
        while not self._ready:
            with trio.move_on_after(self._timeout) as scope:
                try:
                    data = await self._tls.receive_some(RECEIVE_SIZE)
                except trio.BrokenResourceError as exc:
                    raise self._broken(exc) from exc
            if scope.cancelled_caught:
                raise _fail(
                    self._report,
                    Exit.PROTOCOL,
                    summary=f"no {waiting_for} from the server within {self._timeout:g}s",
                    fix="is this an mtls-ref server? for other servers use --raw",
                )
            if not data:
                first_read = self._report.greeting is None and not self._report.exchanges
                if first_read and self._recorder.tls13:
                    raise _fail(
                        self._report, Exit.CERT_REJECTED, diagnose_eof(tls13=True, after_handshake=True)
                    )
                raise _fail(
                    self._report,
                    Exit.PROTOCOL,
                    summary=f"the server closed the connection while we waited for {waiting_for}",
                    fix="see the server's log",
                )
            try:
                self._ready.extend(self._lines.feed(data))
            except ProtocolError as exc:
                raise _fail(
                    self._report,
                    Exit.PROTOCOL,
                    summary=f"bad reply from the server: {exc}",
                    fix="is this an mtls-ref server? for other servers use --raw",
                ) from exc
        return self._ready.pop(0)

    async def optional_line(self) -> str | None:
        """The next line, or None at the end of the stream, on a TLS error or at the deadline.

        For reading what is left of a reply after the verdict: the report is not touched.
        """
        while not self._ready:
            data = b""
            with trio.move_on_after(self._timeout):
                try:
                    data = bytes(await self._tls.receive_some(RECEIVE_SIZE))
                except trio.BrokenResourceError:
                    return None
            if not data:
                return None
            try:
                self._ready.extend(self._lines.feed(data))
            except ProtocolError:
                return None
        return self._ready.pop(0)

    def _broken(self, exc: trio.BrokenResourceError) -> _Stop:
        diagnosis = _diagnose(exc, self._tls, self._recorder, self.config)
        return _fail(self._report, _CATEGORY_EXIT[diagnosis.category], diagnosis)


async def _line_protocol(
    tls: TLSConnection, reader: _Reader, messages: Sequence[str], report: ClientReport
) -> None:
    greeting = await reader.line("a greeting")
    report.greeting = greeting
    reply = _parse(greeting, report)
    if not reply.ok and reply.code == "forbidden":
        raise _fail(
            report,
            Exit.FORBIDDEN,
            summary=f"authenticated, but refused by the server's authorization: {reply.text}",
            fix="ask for this identity to be added to the server's allow-list ([server] allow)",
        )
    if not reply.ok:
        raise _fail(
            report,
            Exit.PROTOCOL,
            summary=f"the server refused the session: {reply}",
            fix="see the server's log",
        )
    for message in messages:
        await _send(tls, message, report, reader)
        answer = await reader.line(f"a reply to {message!r}")
        report.exchanges.append((message, answer))
        parsed = _parse(answer, report)
        if parsed.ok and parsed.code == "bye":
            return
        if not parsed.ok and parsed.code in (
            "line-too-long",
            "bad-encoding",
            "idle-timeout",
            "shutting-down",
        ):
            raise _fail(
                report,
                Exit.PROTOCOL,
                summary=f"the server ended the session: {parsed}",
                fix="shorten the request, or retry",
            )


async def _http_exchange(
    tls: TLSConnection, reader: _Reader, config: ClientConfig, report: ClientReport
) -> None:
    """Any HTTPS server: GET / and judge by the status (nginx refuses bad certificates with 400/495/496)."""
    request = f"GET / HTTP/1.1\r\nHost: {config.expected_name}\r\nConnection: close\r\n\r\n"
    try:
        await tls.send_all(request.encode())
    except trio.BrokenResourceError as exc:
        diagnosis = _diagnose(exc, tls, reader.recorder, config)
        raise _fail(report, _CATEGORY_EXIT[diagnosis.category], diagnosis) from exc
    status = await reader.line("an HTTP status line")
    report.exchanges.append(("GET / HTTP/1.1", status))
    code = status.split(" ", 2)[1] if status.startswith("HTTP/") and status.count(" ") >= 1 else ""
    if not code.isdigit():
        raise _fail(
            report,
            Exit.PROTOCOL,
            summary=f"not an HTTP reply: {status[:80]!r}",
            fix="is this an HTTPS server? for line servers use --raw",
        )
    reason = await _http_body_reason(reader)
    report.http_status = " ".join(status.split(" ")[1:]) + (f": {reason}" if reason else "")
    said = f"HTTP {report.http_status}"
    if code in ("400", "495", "496"):
        # nginx answers a missing, unverifiable or expired certificate this way (495/496 are its own)
        raise _fail(
            report,
            Exit.CERT_REJECTED,
            summary=f"the server refused our certificate in HTTP: {said}",
            fix="present a valid client certificate from the CA the server trusts",
        )
    if code in ("401", "403"):
        raise _fail(
            report,
            Exit.FORBIDDEN,
            summary=f"the TLS handshake passed, but the server denied the request: {said}",
            fix="ask for this identity to be allowed (or check what else the server requires)",
        )
    if not code.startswith(("2", "3")):
        raise _fail(
            report,
            Exit.PROTOCOL,
            summary=f"the TLS handshake passed, but the server answered {said}",
            fix="see the server's log; GET / may not be served there",
        )


# The reason nginx (and many servers) put in an error page: <title>400 No required SSL ...</title>.
_HTML_TITLE: Final = re.compile(r"<title>\s*(?:\d{3}\s+)?(.*?)\s*</title>", re.IGNORECASE)
_BODY_LINES_READ: Final = 40  # an error page's title comes in its first lines


async def _http_body_reason(reader: _Reader) -> str | None:
    """The reason an HTML error page gives in its <title>, read from the rest of the reply (bounded)."""
    for _ in range(_BODY_LINES_READ):
        line = await reader.optional_line()
        if line is None:
            return None
        if match := _HTML_TITLE.search(line):
            return match.group(1) or None
    return None


async def _raw_exchange(
    tls: TLSConnection, reader: _Reader, messages: Sequence[str], report: ClientReport
) -> None:
    """Any server: send each message as a line and read one line back (proving acceptance).

    A reply in the line protocol's refusal form (``ERR forbidden ...``, as our server
    and servers written after it answer) is a refusal, not an answer.
    """
    for message in messages:
        await _send(tls, message, report, reader)
        reply = await reader.line(f"a reply to {message!r}")
        report.exchanges.append((message, reply))
        if reply.startswith("ERR forbidden"):
            raise _fail(
                report,
                Exit.FORBIDDEN,
                summary=f"authenticated, but the server refused: {reply}",
                fix="ask for this identity to be put on the server's allow-list",
            )
        if reply.startswith("ERR "):
            raise _fail(
                report, Exit.PROTOCOL, summary=f"the server answered an error: {reply}", fix="see its log"
            )


async def _send(tls: TLSConnection, message: str, report: ClientReport, reader: _Reader) -> None:
    try:
        data = encode_request(message, max_line=REPLY_MAX_LINE)
    except ProtocolError as exc:
        raise _fail(report, Exit.USAGE, summary=str(exc), fix="send one line per --send") from exc
    try:
        await tls.send_all(data)
    except trio.BrokenResourceError as exc:
        diagnosis = _diagnose(exc, tls, reader.recorder, reader.config)
        raise _fail(report, _CATEGORY_EXIT[diagnosis.category], diagnosis) from exc


def _parse(line: str, report: ClientReport) -> Reply:
    try:
        return parse_reply(line)
    except ProtocolError as exc:
        raise _fail(
            report,
            Exit.PROTOCOL,
            summary=f"unexpected reply: {exc}",
            fix="is this an mtls-ref server? for other servers use --raw",
        ) from exc
