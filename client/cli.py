"""``mtls-client``: connect with a client certificate, show the handshake, exchange lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

import trio

from mtls_ref.shared.core.cli_support import ConfigFlags, add_exact_tls_flag, quiet_broken_pipe, run_cli
from mtls_ref.shared.core.config import ClientConfig, load_config
from mtls_ref.shared.core.errors import MTLSError
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE, client_context

from . import conformance, tunnel
from .h2_exchange import ALPN_OFFER
from .report import MACHINE_TRACES, TRACE_MODES, render_report, render_trace
from .session import DEFAULT_MESSAGES, Exit, run_client

__all__ = ["main"]

FLAGS: Final = ConfigFlags(section=ClientConfig)  # every [client] key with a help text

EXIT_CODES_HELP = "\n".join(
    f"  {code.value}  {text}"
    for code, text in (
        (Exit.OK, "success: the server accepted our certificate and answered"),
        (Exit.USAGE, "bad flags, config, or unreadable local certificate/key/CA"),
        (Exit.CONNECT, "cannot connect (refused, unreachable, name not found, timeout)"),
        (Exit.SERVER_UNTRUSTED, "we do not trust the server's certificate (the reason is printed)"),
        (Exit.CERT_REJECTED, "the server rejected our certificate (the alert is printed)"),
        (Exit.FORBIDDEN, "authenticated, but the server's authorization refused us"),
        (Exit.PROTOCOL, "protocol error or timeout after the handshake"),
        (Exit.NEGOTIATION, "refused before our certificate was sent: no TLS version or cipher in common"),
    )
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtls-client",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Connect to an mTLS server with a client certificate, verify the server "
        "(CA and hostname), show the TLS handshake as a sequence diagram, and exchange lines "
        "(mtls-server's line protocol; --http2 and --grpc work against mtls-server too, on the same "
        "port). Flags override the [client] section of the config.",
        epilog=f"exit codes:\n{EXIT_CODES_HELP}\n\n"
        "Against a server other than mtls-server, use --raw: each --send line is sent and one "
        "line read back (e.g. openssl s_server -rev), --http for HTTPS servers, --http2 for HTTP/2 "
        "ones, or --grpc for gRPC servers (Health/Check, then mtls-ref's Identity/WhoAmI).\n\n"
        "mtls-client conformance HOST:PORT --badset DIR checks that a server refuses every bad "
        "credential of a set made by 'mtls-certs badset DIR' (see 'mtls-client conformance --help').\n\n"
        "mtls-client tunnel --listen 127.0.0.1:PORT HOST:PORT carries plain local TCP over mutual "
        "TLS to HOST:PORT (see 'mtls-client tunnel --help').",
    )
    FLAGS.add_to(parser)
    parser.add_argument("--no-cert", action="store_true", help="present no client certificate")
    add_exact_tls_flag(parser)
    parser.add_argument(
        "--send",
        action="append",
        metavar="LINE",
        help=f"a line to send (repeatable; default: {' / '.join(DEFAULT_MESSAGES)})",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--raw",
        action="store_true",
        help="the server is not mtls-server: no greeting, one reply line per sent line",
    )
    modes.add_argument(
        "--http",
        action="store_true",
        help="the server speaks HTTPS (nginx, any web service): GET / and judge by the status",
    )
    modes.add_argument(
        "--http2",
        nargs="?",
        const="/",
        metavar="PATH",
        help="the same over HTTP/2 (ALPN h2): GET PATH (default /), print the status and the body",
    )
    modes.add_argument(
        "--grpc",
        action="store_true",
        help="gRPC over HTTP/2: grpc.health.v1.Health/Check, then mtls_ref.v1.Identity/WhoAmI; "
        "a gRPC status other than OK is printed with its message",
    )
    parser.add_argument(
        "--trace",
        choices=TRACE_MODES,
        default="terminal",
        help="how to show the handshake (default: terminal diagram); with mermaid or json, stdout "
        "carries the diagram alone (redirect it to a file) and the summary goes to stderr",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON report (includes the trace)")
    return parser


def _body(args: argparse.Namespace) -> int:
    no_cert = {"cert": "", "key": ""} if args.no_cert else {}
    overrides = FLAGS.overrides(args, tls_min=args.tls, tls_max=args.tls, **no_cert)
    try:
        config = load_config(args.config, overrides=overrides).client
        # Our server speaks the line protocol under ALPN mtls-ref/1; other servers get no ALPN offer.
        alpn = [ALPN_HTTP] if args.http else None if args.raw else [ALPN_LINE]
        if args.http2 is not None or args.grpc:
            alpn = ALPN_OFFER
        context = client_context(config, alpn=alpn)
    except MTLSError as exc:
        print(f"mtls-client: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    if config.keylog is not None:
        print(
            f"mtls-client: warning: writing TLS session secrets to {config.keylog} (0600): anyone holding "
            "that file can decrypt captured traffic; for debugging only",
            file=sys.stderr,
        )
    if args.http2 is not None and not args.http2.startswith("/"):
        said = f"--http2 takes a path starting with '/', not {args.http2!r}"
        print(f"mtls-client: error: {said}", file=sys.stderr)
        return Exit.USAGE
    messages = args.send if args.send is not None else list(DEFAULT_MESSAGES)
    mode = "http" if args.http else "raw" if args.raw else "grpc" if args.grpc else "line"
    if args.http2 is not None:
        mode, messages = "http2", [args.http2]
    report = trio.run(lambda: run_client(config, context, messages=messages, mode=mode))
    if args.trace in MACHINE_TRACES and not args.json:
        # stdout carries the diagram (or JSON) alone, so `> diagram.mmd` gives a file that
        # Mermaid (or a JSON reader) takes as it is; people read the rest on stderr.
        print(render_report(report, trace="off"), file=sys.stderr)
        print(render_trace(report, args.trace))
    else:
        print(render_report(report, trace=args.trace, as_json=args.json))
    return int(report.result)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mtls-client`` (and of ``mtls-client conformance ...``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["tunnel"]:
        return tunnel.main(args[1:])
    if args[:1] == ["conformance"]:
        try:
            code = conformance.main(args[1:])
            sys.stdout.flush()
        except BrokenPipeError:
            return quiet_broken_pipe()
        return code
    return run_cli(_body, build_parser(), args)


if __name__ == "__main__":
    raise SystemExit(main())
