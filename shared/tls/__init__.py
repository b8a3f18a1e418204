"""The connection: TLS contexts per role, the socket-backed stream, the handshake trace, diagnosis, identity.

``context`` is the one place TLS options are chosen; ``trace`` routes OpenSSL's
message callback to a ``recorder`` of the real handshake messages (``wire``
parses them, ``role`` says whose side) and ``render`` draws them; ``diagnose``
turns an ssl error or alert into a cause and a fix, from one record per OpenSSL
code (``codes``, ``reasons``); ``identity`` reads who the peer is and applies
the allow-list.
"""

from mtls_ref.shared.tls.connection import TLSConnection
from mtls_ref.shared.tls.context import ALPN_HTTP, ALPN_LINE, client_context, server_context

__all__ = ["ALPN_HTTP", "ALPN_LINE", "TLSConnection", "client_context", "server_context"]
