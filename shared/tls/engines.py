"""The one place the server's TLS engines are named (``[server] tls_engine``, ``--tls-engine``).

Each engine's traits are stated here. The stdlib engine's context builder lives in
shared/ (:mod:`.context`, which the client uses too); the openssl engine lives with
its only user, the server, whose engine package (:mod:`mtls_ref.server.engine`)
supplies its builder with :func:`supply_engine` when it is imported, so nothing in
shared/ imports server/ or pyOpenSSL.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from mtls_ref.shared.core.config import ServerConfig
from mtls_ref.shared.core.errors import ConfigError
from mtls_ref.shared.tls.context import server_context
from mtls_ref.shared.tls.stream import EngineTraits

__all__ = [
    "ENGINES",
    "ContextBuilder",
    "build_server_context",
    "describe_engine",
    "engine_traits",
    "supply_engine",
]

# What each engine can do and tell: asked here, never by comparing engine names elsewhere.
ENGINES: Final = {
    "openssl": EngineTraits(name="openssl", sends_ca_names=True, knows_verified_chain=True),
    # Python's ssl cannot send CA names, and 3.11 gives the peer's leaf only.
    "stdlib": EngineTraits(name="stdlib", sends_ca_names=False, knows_verified_chain=False),
}

# A fresh server context from the config (at start and on every reload); the adapter for its type
# is registered in connection.py.
ContextBuilder: TypeAlias = Callable[[ServerConfig], object]


@dataclass(frozen=True, slots=True)
class _Supplied:
    build: ContextBuilder
    libraries: Callable[[], str]  # what it runs on, for the banner


def _stdlib_libraries() -> str:
    return f"Python ssl, {ssl.OPENSSL_VERSION}"


_SUPPLIED: dict[str, _Supplied] = {"stdlib": _Supplied(server_context, _stdlib_libraries)}


def supply_engine(name: str, *, build: ContextBuilder, libraries: Callable[[], str]) -> None:
    """Make engine ``name`` (one of :data:`ENGINES`) buildable: its package calls this on import."""
    if name not in ENGINES:
        raise ValueError(f"unknown TLS engine {name!r}; known: {', '.join(ENGINES)}")
    _SUPPLIED[name] = _Supplied(build, libraries)


def _supplied(name: str) -> _Supplied:
    try:
        return _SUPPLIED[name]
    except KeyError:
        raise ConfigError(
            f"the {name} TLS engine is not loaded in this process (the server's engine package supplies it)"
        ) from None


def engine_traits(engine: str) -> EngineTraits:
    """The traits of a configured engine (config validation has already checked the name)."""
    return ENGINES[engine]


def build_server_context(config: ServerConfig) -> object:
    """A fresh server context of the configured engine (at start and on every reload)."""
    return _supplied(config.tls_engine).build(config)


def describe_engine(engine: str) -> str:
    """``openssl (pyOpenSSL 26.4.0, OpenSSL 4.0.3)`` or ``stdlib (Python ssl, OpenSSL 3.0.19 ...)``."""
    return f"{engine} ({_supplied(engine).libraries()})"
