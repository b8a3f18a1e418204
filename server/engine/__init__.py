"""The server's TLS engines: the openssl engine (pyOpenSSL) lives here, with its only user.

Importing this package supplies the openssl engine to the shared engine list
(:func:`~mtls_ref.shared.tls.engines.supply_engine`: its context builder) and
its adapter to :func:`~mtls_ref.shared.tls.connection.register_adapter` (the
stream for ``SSL.Context``), so shared/ never imports server/ and a client never
loads pyOpenSSL. The server asks for contexts through this package.
"""

from __future__ import annotations

import ssl
from typing import TypeAlias

import trio
from OpenSSL import SSL

from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.tls import engines
from mtls_ref.shared.tls.connection import register_adapter
from mtls_ref.shared.tls.engines import describe_engine, engine_traits
from mtls_ref.shared.tls.stream import TLSStream

from .openssl_context import library_versions, openssl_server_context
from .openssl_stream import OpenSSLSocketStream

__all__ = ["ServerContext", "build_server_context", "describe_engine", "engine_traits"]

# What the server hands each connection: a stdlib context or a pyOpenSSL one (tls_engine).
ServerContext: TypeAlias = ssl.SSLContext | SSL.Context


def _openssl_adapter(
    transport: trio.SocketStream, context: object, server_side: bool, server_hostname: str | None
) -> TLSStream:
    if not server_side or not isinstance(context, SSL.Context):
        raise TypeError("the openssl engine serves; clients use a stdlib context")
    return OpenSSLSocketStream.wrap(transport, context)


register_adapter(SSL.Context, _openssl_adapter)
engines.supply_engine("openssl", build=openssl_server_context, libraries=library_versions)


def build_server_context(config: ServerConfig) -> ServerContext:
    """A fresh server context of the configured engine (at start and on every reload)."""
    context = engines.build_server_context(config)
    if not isinstance(context, ssl.SSLContext | SSL.Context):  # an engine this server has no adapter for
        raise TypeError(f"the {config.tls_engine} engine built a {type(context).__qualname__}")
    return context
