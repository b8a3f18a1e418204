"""Cancellation as a caller expects it, whatever nurseries lie between."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import trio

__all__ = ["cancelled_alone"]


@contextlib.contextmanager
def cancelled_alone() -> Iterator[None]:
    """Cancelled from outside (the server's shutdown_grace), a nursery raises a group of its tasks'
    Cancelled; turn it back into one Cancelled, so ``except trio.Cancelled`` (the handler, which logs
    "server shutting down") sees it. A group holding anything else is raised as it is."""
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled, others = group.split(trio.Cancelled)
        if cancelled is None or others is not None:
            raise
        leaf: BaseException = cancelled
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None
