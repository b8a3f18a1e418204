"""Connect, handshake, run one mode, and say exactly how it went.

Theory of operation
-------------------
Under TLS 1.3 the client's handshake completes *before* the server has judged
the client certificate (the client's Finished travels with its Certificate and
CertificateVerify; the server answers with an alert, or not at all, later). So
the handshake succeeding proves nothing about our certificate: only a read
does. This session therefore never reports success before a mode has read from
the server: our server greets first (``line_mode``); in ``raw`` mode (any other
server, e.g. ``openssl s_server -rev``) the first reply to our first line
serves; in ``http`` mode (nginx, any HTTPS service) the status of ``GET /``
does, and in ``http2`` and ``grpc`` the HTTP/2 response does.
Every wait has a deadline: the connect and the handshake here, each read
and write in the :class:`~.channel.Channel`.

The session is a pipeline of steps that each either return or raise
:class:`~.outcome.Stop` with the verdict already written into the
:class:`ClientReport`; ``run_client`` turns that into the report's ``result``
(one of the documented exit codes, :class:`Exit`) and adds what the handshake
trace saw, whatever the outcome.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import trio
from cryptography import x509

from mtls_ref.shared.core.addresses import HostPort
from mtls_ref.shared.core.config import ClientConfig
from mtls_ref.shared.pki.inspect import describe_certificate
from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.trace import HandshakeRecorder, Role, recording

from . import grpc_mode, http2_mode, http_mode, line_mode, raw_mode
from .channel import Channel
from .diagnosis import Verdicts
from .outcome import ClientReport, Exit, Stop, fail

__all__ = ["DEFAULT_MESSAGES", "MODES", "ClientReport", "Exit", "run_client"]

DEFAULT_MESSAGES: Final = ("WHOAMI", "ECHO hello from mtls-client", "QUIT")

Mode = Callable[[Channel, Sequence[str]], Awaitable[None]]
MODES: Final[Mapping[str, Mode]] = {
    "line": line_mode.exchange,
    "raw": raw_mode.exchange,
    "http": http_mode.exchange,
    "http2": http2_mode.exchange,
    "grpc": grpc_mode.exchange,
}


async def run_client(
    config: ClientConfig,
    context: ssl.SSLContext,
    *,
    messages: Sequence[str] = DEFAULT_MESSAGES,
    mode: str = "line",
) -> ClientReport:
    """Run one session against ``config.host:config.port``; never raises for network outcomes."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    report = ClientReport(target=str(HostPort(config.host, config.port)), server_name=config.expected_name)
    recorder = HandshakeRecorder(Role.CLIENT)
    try:
        with recording(recorder):
            await _session(
                config, context=context, mode=MODES[mode], messages=messages, report=report, recorder=recorder
            )
        report.result = Exit.OK
    except Stop as stop:
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


async def _session(
    config: ClientConfig,
    *,
    context: ssl.SSLContext,
    mode: Mode,
    messages: Sequence[str],
    report: ClientReport,
    recorder: HandshakeRecorder,
) -> None:
    verdicts = Verdicts(config, report, recorder)
    tcp = await _connect(config, report)
    tls = TLSConnection(tcp, context, server_side=False, server_hostname=config.expected_name)
    try:
        await _handshake(tls, config, report, verdicts)
        report.tls_version = tls.version()
        report.cipher = tls.cipher()
        await mode(Channel(tls, config=config, report=report, verdicts=verdicts), messages)
        report.summary = report.summary or "the server accepted our certificate and answered"
    finally:
        with trio.CancelScope(shield=True):
            await tls.aclose()


async def _connect(config: ClientConfig, report: ClientReport) -> trio.SocketStream:
    with trio.move_on_after(config.timeout):
        try:
            return await trio.open_tcp_stream(config.host, config.port)
        except OSError as exc:
            raise fail(
                report,
                Exit.CONNECT,
                summary=f"cannot connect to {HostPort(config.host, config.port)}: {_connect_error(exc)}",
                fix="is the server running? start ours with 'make run-server', or check --host/--port",
            ) from exc
    # Only reached when the deadline cancelled the connect attempt.
    raise fail(
        report,
        Exit.CONNECT,
        summary=f"no TCP connection to {HostPort(config.host, config.port)} within {config.timeout:g}s",
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
    tls: TLSConnection, config: ClientConfig, report: ClientReport, verdicts: Verdicts
) -> None:
    with trio.move_on_after(config.timeout) as scope:
        try:
            await tls.handshake()
        except trio.BrokenResourceError as exc:
            raise verdicts.handshake_broken(exc) from exc
    if scope.cancelled_caught:
        raise fail(
            report,
            Exit.PROTOCOL,
            summary=f"TLS handshake did not finish within {config.timeout:g}s",
            fix="is this a TLS port? try 'openssl s_client -connect HOST:PORT'",
        )
