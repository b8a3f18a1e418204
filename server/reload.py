"""Notice when the server's credential files change, cheaply (stat only, no reads)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileWatch"]

Signature = tuple[tuple[str, int, int, int] | tuple[str], ...]


class FileWatch:
    """Remembers (inode, size, mtime) of some files; :meth:`changed` says if any moved since."""

    def __init__(self, paths: Iterable[Path | None]) -> None:
        self.paths = [p for p in paths if p is not None]
        self._last = self.signature()

    def __repr__(self) -> str:
        return f"<FileWatch {len(self.paths)} files>"

    def signature(self) -> Signature:
        entries: list[tuple[str, int, int, int] | tuple[str]] = []
        for path in self.paths:
            try:
                st = path.stat()
            except OSError:
                entries.append((str(path),))  # missing: a change too, reported when the reload fails
                continue
            entries.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(entries)

    def changed(self) -> bool:
        current = self.signature()
        if current == self._last:
            return False
        self._last = current
        return True
