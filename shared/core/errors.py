"""The project's one small exception hierarchy.

Every message says what happened, what was expected and what to do next; the
CLIs print ``str(exc)`` as one line and exit with ``exc.exit_code``. Lower
layers convert foreign exceptions here, once, keeping the cause (``from exc``).
"""

from __future__ import annotations

__all__ = [
    "CertificateError",
    "ConfigError",
    "HandshakeError",
    "MTLSError",
    "ProtocolError",
]


class MTLSError(Exception):
    """Base class: an expected failure with a message meant for people."""

    exit_code = 1


class ConfigError(MTLSError):
    """A config file, environment variable or flag is missing or wrong."""

    exit_code = 2


class CertificateError(MTLSError):
    """A key, CSR or certificate cannot be read, written, signed or trusted."""

    exit_code = 3


class HandshakeError(MTLSError):
    """The TLS handshake failed; the message carries the diagnosis."""

    exit_code = 4


class ProtocolError(MTLSError):
    """The peer broke the line protocol (or we would have)."""

    exit_code = 7
