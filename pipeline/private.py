"""Files that hold personal data (the state store, subscriber exports): owner only.

Explicit modes on each file and folder rather than a process umask, which would change
every file the host process writes, not only ours.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
# SQLite gives its side files the mode of the database, but ones made before a store was
# tightened keep theirs.
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) for the owner only; tighten it if it exists."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path, DIR_MODE)


def private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600 before anything is written into it.

    An existing file is never opened here: closing any descriptor of an SQLite database
    drops every POSIX lock this process holds on it, those of its open connections too
    (the `run` service keeps one for its job store while it opens the state store)."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    tighten(path, FILE_MODE)


def private_sqlite(path: Path) -> None:
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            tighten(side, FILE_MODE)


def tighten(path: Path, mode: int) -> None:
    """Remove group and other bits (never adds any); a file owned by someone else is left."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        current = path.stat().st_mode & 0o777
        if current & ~mode:
            os.chmod(path, current & mode)
