"""The NSS key log (``--keylog``, SSLKEYLOGFILE format): session secrets on disk, for this user only.

Theory of operation
-------------------
Whoever reads the key log decrypts every captured connection, so the file is
opened once, by us, with ``O_NOFOLLOW`` (a symbolic link planted at the path is
refused, wherever it points) and ``O_CREAT`` mode 0600, and is then checked on
that open descriptor, not on the path, so nothing can be swapped in between:
a regular file, owned by this process's effective user, without group or
other permission bits. Anything else is a :class:`ConfigError` saying which
rule failed and what to do.

The two engines then log differently:

* openssl engine: :class:`KeyLogFile` keeps the checked descriptor and writes
  each line to it (``os.write``, unbuffered, appended). Before a line it
  compares the path with the descriptor (``lstat`` against ``fstat``: two
  system calls, for a debugging feature); if the file was moved away or
  deleted, it creates a new one with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and
  ``fchmod`` 0600 (never the umask's mode) and goes on there. If something
  else has taken the path, it is used only if it passes the same checks;
  otherwise lines keep going to the file already open, which still does.
* stdlib engine (and the client): CPython opens ``keylog_filename`` itself,
  following links, and keeps writing to the file it opened first, even after
  that file is moved away. :func:`set_stdlib_keylog` checks our own
  descriptor first, then hands the path to CPython, then checks that the path
  is still the file we checked (same device and inode, not a link), and
  refuses otherwise. A swap and a swap back between those two checks is not
  detected: on this engine the check narrows the window, it cannot close it.

Only the last path component is protected by ``O_NOFOLLOW``: put the key log in
a folder that only you can write to.
"""

from __future__ import annotations

import os
import ssl
import stat
from pathlib import Path
from typing import Final

from mtls_ref.shared.core.errors import ConfigError

__all__ = ["KeyLogFile", "open_keylog", "set_stdlib_keylog"]

MODE: Final = 0o600
# O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader forever; it is
# cleared again once the descriptor is known to be a regular file (where it means nothing).
_OPEN: Final = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_keylog(path: Path) -> int:
    """A descriptor on ``path``, created 0600 if missing, checked to be fit for secrets."""
    return _open_checked(path, os.O_CREAT)


def _open_checked(path: Path, create: int) -> int:
    try:
        fd = os.open(path, _OPEN | create, MODE)
    except OSError as exc:
        if path.is_symlink():  # O_NOFOLLOW's ELOOP: say what it means
            raise ConfigError(
                f"key log {str(path)!r} is a symbolic link; it is refused because the file it points to "
                "could be readable by others: give the real file's path, or a new file name"
            ) from exc
        raise ConfigError(
            f"cannot open key log {str(path)!r}: {exc.strerror or exc}; "
            "check that the folder exists and is writable"
        ) from exc
    try:
        _check(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check(fd: int, path: Path) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"key log {str(path)!r} is not a regular file; give the path of a file")
    euid = os.geteuid()
    if info.st_uid != euid:
        raise ConfigError(
            f"key log {str(path)!r} belongs to uid {info.st_uid}, not to this process's user (uid {euid}), "
            f"and its owner could read the session secrets: 'chown {euid} {path}' if it is yours, "
            "or pick a new file"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"key log {str(path)!r} is readable by others (mode {mode:o}); it would hold session secrets: "
            f"run 'chmod 600 {path}' or pick a new file"
        )


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` itself (not a link's target) is the file open as ``fd``."""
    try:
        here = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


def set_stdlib_keylog(ctx: ssl.SSLContext, path: Path) -> None:
    """Point ``ctx.keylog_filename`` at ``path`` after the checks (see the module docstring)."""
    fd = open_keylog(path)
    try:
        ctx.keylog_filename = str(path)
        if not _same_file(fd, path):
            ctx.keylog_filename = None  # type: ignore[assignment] # closes CPython's file; typeshed omits None
            raise ConfigError(
                f"key log {str(path)!r} was replaced while it was being opened (by a link or another "
                "file); make sure nothing else writes to that folder, or pick another file"
            )
    finally:
        os.close(fd)


class KeyLogFile:
    """An open key log for the openssl engine's callback; follows its path if the file is moved away."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1  # for __del__, should the open fail
        self._fd = open_keylog(path)

    def __repr__(self) -> str:
        return f"<KeyLogFile {str(self.path)!r} fd={self._fd}>"

    def __del__(self) -> None:
        # The descriptor lives as long as the TLS context whose callback holds this object.
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def write(self, line: bytes) -> None:
        """Append one line (OpenSSL gives it without the newline)."""
        if not _same_file(self._fd, self.path):
            self._follow_path()
        os.write(self._fd, line + b"\n")

    def _follow_path(self) -> None:
        try:
            fd = os.open(self.path, _OPEN | os.O_CREAT | os.O_EXCL, MODE)
            os.fchmod(fd, MODE)  # the umask may have taken bits away; never adds any
            os.set_blocking(fd, True)
        except FileExistsError:
            try:  # something else took the path: only a file that passes the checks gets secrets
                fd = _open_checked(self.path, 0)
            except ConfigError:
                return  # keep writing to the file already open: it was checked
        except OSError:
            return  # the folder is gone or read-only now: same
        os.close(self._fd)
        self._fd = fd
