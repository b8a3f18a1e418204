"""The one place the server's TLS engine is chosen (``[server] tls_engine``, ``--tls-engine``)."""

from __future__ import annotations

import ssl
from typing import Final

from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.tls.connection import ServerContext
from mtls_ref.shared.tls.context import server_context
from mtls_ref.shared.tls.openssl_context import library_versions, openssl_server_context
from mtls_ref.shared.tls.stream import EngineTraits

__all__ = ["ENGINES", "build_server_context", "describe_engine", "engine_traits"]

# What each engine can do and tell: asked here, never by comparing engine names elsewhere.
ENGINES: Final = {
    "openssl": EngineTraits(name="openssl", sends_ca_names=True, knows_verified_chain=True),
    # Python's ssl cannot send CA names, and 3.11 gives the peer's leaf only.
    "stdlib": EngineTraits(name="stdlib", sends_ca_names=False, knows_verified_chain=False),
}


def engine_traits(engine: str) -> EngineTraits:
    """The traits of a configured engine (config validation has already checked the name)."""
    return ENGINES[engine]


def build_server_context(config: ServerConfig) -> ServerContext:
    """A fresh server context of the configured engine (at start and on every reload)."""
    if config.tls_engine == "openssl":
        return openssl_server_context(config)
    return server_context(config)


def describe_engine(engine: str) -> str:
    """``openssl (pyOpenSSL 26.4.0, OpenSSL 4.0.3)`` or ``stdlib (OpenSSL 3.0.19 ...)``, for the banner."""
    if engine == "openssl":
        return f"openssl ({library_versions()})"
    return f"stdlib (Python ssl, {ssl.OPENSSL_VERSION})"
