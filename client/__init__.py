"""The mTLS client: verifies the server, presents its certificate, shows the handshake."""

from .cli import main
from .session import ClientReport, Exit, run_client

__all__ = ["ClientReport", "Exit", "main", "run_client"]
