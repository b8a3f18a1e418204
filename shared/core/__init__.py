"""The small core both sides stand on: errors, configuration, the line protocol, CLI plumbing.

Nothing here touches certificates or TLS; everything else in ``mtls_ref`` may import it.
"""

from mtls_ref.shared.core.config import ClientConfig, Config, PKIConfig, ServerConfig, load_config
from mtls_ref.shared.core.errors import (
    CertificateError,
    ConfigError,
    HandshakeError,
    MTLSError,
    ProtocolError,
)

__all__ = [
    "CertificateError",
    "ClientConfig",
    "Config",
    "ConfigError",
    "HandshakeError",
    "MTLSError",
    "PKIConfig",
    "ProtocolError",
    "ServerConfig",
    "load_config",
]
