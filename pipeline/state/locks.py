"""Advisory lock files beside the state store, for what happens on this machine: one build
(or other writer of outbox/) at a time, one `send`, and the moment a store is opened."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from pipeline.errors import KrimppostError, Problem
from pipeline.private import DIR_MODE, FILE_MODE


class FileLock:
    """An advisory lock file beside the state store: one holder per lock at a time.

    POSIX record locks, not flock: worker processes forked while the lock is held must not
    inherit it and keep it alive after the holder is killed.
    """

    suffix = ".lock"
    message = "er is al een andere krimppost bezig met dit project"

    def __init__(self, state_path: Path, timeout: float = 0) -> None:
        self.path = state_path.with_name(state_path.name + self.suffix)
        self.timeout = timeout
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise KrimppostError([Problem(str(self.path), None, self.message)]) from None
                time.sleep(0.1)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class BuildLock(FileLock):
    """One build (or other writer of outbox/) at a time per state store."""

    suffix = ".build.lock"
    message = "er draait al een build voor dit project; probeer het straks opnieuw"


class OpenLock(FileLock):
    """Held while a StateStore sets up its connection and migrates (a moment, not a session)."""

    suffix = ".open.lock"
