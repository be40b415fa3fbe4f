"""The one writer into outbox/: confined paths, atomic files, stale files removed last.

Files are staged as hidden temp files beside their destination, flushed to disk together
(one `sync` instead of one `fsync` per file: 5,000 pages cost 0.5 s instead of 2.5 s here),
then renamed in order. A kill at any moment leaves every file whole, old or new; leftover
temp files are swept at the start of the next build.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

from pipeline.errors import KrimppostError, Problem

TEMP_PREFIX = ".krimppost-tmp-"


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Outbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._staged: list[tuple[Path, Path]] = []

    def path_for(self, relative: str) -> Path:
        """Confine a relative POSIX path to the outbox."""
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in relative:
            raise KrimppostError([Problem(relative, None, "uitvoerpad buiten outbox/ geweigerd")])
        return self.root.joinpath(*pure.parts)

    def sweep_temp_files(self) -> None:
        if not self.root.exists():
            return
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    Path(dirpath, name).unlink(missing_ok=True)

    def stage(self, relative: str, data: bytes) -> None:
        target = self.path_for(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}")
        with open(temp, "wb") as fh:
            fh.write(data)
        self._staged.append((temp, target))

    def write_now(self, relative: str, data: bytes) -> None:
        """Stage and commit a single file (fsync'ed on its own)."""
        target = self.path_for(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}")
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
        _fsync_dir(target.parent)

    def commit(self) -> int:
        """Make every staged file durable, then move them into place in staging order."""
        if not self._staged:
            return 0
        os.sync()
        dirs = set()
        for temp, target in self._staged:
            os.replace(temp, target)
            dirs.add(target.parent)
        for directory in dirs:
            _fsync_dir(directory)
        count = len(self._staged)
        self._staged = []
        return count

    def discard(self) -> None:
        for temp, _ in self._staged:
            temp.unlink(missing_ok=True)
        self._staged = []

    def remove(self, relatives: list[str]) -> int:
        """Delete files no longer produced, and folders left empty by that."""
        removed = 0
        for relative in sorted(relatives):
            path = self.path_for(relative)
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
