"""The mTLS server: trio, client certificates required and verified."""

from .app import Server
from .cli import main

__all__ = ["Server", "main"]
