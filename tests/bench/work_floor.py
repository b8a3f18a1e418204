"""The pyOpenSSL floor plus only the work any server with this one's behaviour must do per connection.

Run as ``python -m tests.bench.work_floor CERT KEY CA``; prints ``PORT <n>`` when listening.
Per connection, on the floor's accept loop and I/O (:mod:`.pyopenssl_floor`): the mTLS handshake,
the peer's identity read from its certificate (subject, URI SANs, serial), a greeting line naming
it, one request line answered, close_notify, and one JSON log line. Nothing else: no deadlines, no
handshake budget, no allow-list, no protocol state machine, no metrics. The bench reports ours
against it to show how much of the gap to the bare floor is the work the behaviour needs, and how
much the structure around it costs.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import trio
from cryptography import x509
from OpenSSL import SSL

from .pyopenssl_floor import main, read_line, retry, send_all

_JSON = json.JSONEncoder(default=str)


def _identity(conn: SSL.Connection) -> tuple[str, list[str], int]:
    peer = conn.get_peer_certificate(as_cryptography=True)
    if peer is None:
        return "", [], 0
    try:
        names = peer.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    return peer.subject.rfc4514_string(), uris, peer.serial_number


async def handle_with_work(sock: socket.socket, ctx: SSL.Context) -> None:
    conn = SSL.Connection(ctx, sock)
    conn.set_accept_state()
    started = time.monotonic()
    fields: dict[str, Any] = {"outcome": "closed"}
    try:
        await retry(sock, conn.do_handshake)
        subject, uris, serial = _identity(conn)
        await send_all(sock, conn, f"OK hello {subject}\n".encode())
        if await read_line(sock, conn) is None:
            return
        await send_all(sock, conn, b"OK pong\n")
        fields = {
            "outcome": "accepted",
            "tls": conn.get_protocol_version_name(),
            "cipher": conn.get_cipher_name(),
            "subject": subject,
            "sans": uris,
            "serial": serial,
            "requests": 1,
        }
        conn.shutdown()  # close_notify, one try that never waits (as ours)
    except (SSL.Error, OSError):
        pass
    finally:
        trio.lowlevel.notify_closing(sock)
        sock.close()
        fields["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        sys.stderr.write(_JSON.encode({"event": "connection", **fields}) + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    cert, key, ca = sys.argv[1:4]
    trio.run(main, cert, key, ca, handle_with_work)
