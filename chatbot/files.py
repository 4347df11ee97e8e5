"""Atomic file writes: a reader sees the old file or the new one, never a part of either."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

Writer = Callable[[IO[bytes]], None]


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | str | Writer,
    *,
    mode: int | None = None,
) -> None:
    """Replace ``path`` with ``data`` (bytes, or text written as UTF-8) or with what
    ``data(fh)`` writes to a binary file.

    The content goes to a hidden temp file in the same folder (``.NAME.XXXXXXXX.tmp``,
    so the rename stays on one file system and folder scans skip it), is fsynced, then
    ``os.replace``-d over ``path``, and the folder is fsynced. A failure or interruption
    before the rename leaves ``path`` as it was and removes the temp file (a killed process
    leaves it behind: hidden, and harmless). The new file gets ``mode`` if given, else the
    permissions ``open(path, "w")`` would give it (0o666 less the umask).
    """
    target = Path(path)
    folder = target.parent
    fd, tmp = _create_temp(folder, target.name)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def _create_temp(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty temp file next to ``name``, opened for writing (umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = folder / f".{name[:200]}.{secrets.token_hex(4)}.tmp"  # within NAME_MAX
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def is_temp_of(name: str, candidate: str) -> bool:
    """True if ``candidate`` is a file name :func:`atomic_write` uses for ``name``'s temp
    (also ``.NAME.tmp``, the fixed name earlier versions used; for names up to 200
    characters)."""
    return candidate.startswith(f".{name}.") and candidate.endswith(".tmp")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
