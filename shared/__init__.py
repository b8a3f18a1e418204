"""Code both sides share: config, PKI, TLS contexts, identity, protocol, trace, diagnosis."""

from .config import ClientConfig, Config, PKIConfig, ServerConfig, load_config
from .errors import CertificateError, ConfigError, HandshakeError, MTLSError, ProtocolError

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
