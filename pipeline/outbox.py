"""The one writer into outbox/: confined paths, atomic files, stale files removed last.

Files are staged as hidden temp files beside their destination; at the commit every one is
flushed to disk (`fsync`; worker processes flush their own before handing them over), then
they are renamed in order, and every folder that got a new name is
flushed, so the renames are durable too. A kill or a power cut at any
moment leaves every file whole, old or new; leftover temp files are swept at the start of
the next build or compile, and by a failing one. Only the outbox is flushed, never the
whole host's file systems (`os.sync`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import KrimppostError, Problem

TEMP_PREFIX = ".krimppost-tmp-"


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Outbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        self._staged: list[tuple[str, ...]] = []
        self._made_dirs: set[str] = set()
        self._barriers: list[int] = []
        self._durable: set[str] = set()  # temp files already flushed (by a worker)

    def path_for(self, relative: str) -> Path:
        return Path(self.text_path(relative))

    def text_path(self, relative: str) -> str:
        """Confine a relative POSIX path to the outbox (string ops: this runs per file)."""
        parts = relative.split("/")
        if (
            not relative
            or relative.startswith("/")
            or "\\" in relative
            or ".." in parts
            or "" in parts[:-1]
        ):
            raise KrimppostError([Problem(relative, None, "uitvoerpad buiten outbox/ geweigerd")])
        if os.sep == "/":  # already a clean POSIX path: no join per file
            return f"{self._root_text}/{relative}"
        return os.path.join(self._root_text, *parts)

    def exists(self, relative: str) -> bool:
        return os.path.exists(self.text_path(relative))

    def temp_path(self, relative: str) -> str:
        """Where `stage` puts the temp file of `relative` (this process's)."""
        return _temp_beside(self.text_path(relative))

    def _temp_for(self, target: str) -> str:
        directory = os.path.dirname(target)
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)
        return _temp_beside(target)

    def sweep_temp_files(self) -> None:
        if not self.root.exists():
            return
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    Path(dirpath, name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def session(self, state_path: Path) -> Iterator[Outbox]:
        """One writer's stay in the outbox (under the build lock).

        A marker beside the state store says a session was cut short (kill, power cut): only
        then is the outbox searched for its temp files (a walk of 5,000 folders costs
        0.15 s), before anything of this session makes new ones. A session that fails (a full
        disk, a file in the way) removes every temp file before its error goes on.
        """
        marker = state_path.with_name(state_path.name + ".building")
        if marker.exists():
            self.sweep_temp_files()
        marker.touch()
        try:
            yield self
        except BaseException:
            self.discard()
            with contextlib.suppress(OSError):  # the error in hand is the one to report
                self.sweep_temp_files()
                marker.unlink()
            raise
        marker.unlink(missing_ok=True)

    def stage(self, relative: str, data: bytes, expect: str | None = None) -> tuple[str, str]:
        """Stage a file for `commit`; with `expect` (the digest of the bytes it replaces) the
        rename is skipped when the target changed meanwhile, e.g. saved by hand."""
        staged = self.stage_file(relative, data)
        self._staged.append(staged if expect is None else (*staged, expect))
        return staged

    def stage_file(self, relative: str, data: bytes) -> tuple[str, str]:
        """Write a temp file beside the target without recording it; `adopt` it to commit."""
        target = self.text_path(relative)
        temp = self._temp_for(target)
        _write_temp(temp, data)
        return temp, target

    def take_staged(self) -> list[tuple[str, ...]]:
        """Hand over what this (worker's) outbox staged, flushed to disk, for another to
        `adopt(..., durable=True)` and commit."""
        staged, self._staged = self._staged, []
        make_durable(staged)
        return staged

    def adopt(self, staged: list[tuple[str, ...]], *, durable: bool = False) -> None:
        """Take over files staged by worker processes, to commit them with ours; `durable`:
        the worker flushed them already (`make_durable`)."""
        self._staged.extend(staged)
        if durable:
            self._durable.update(temp for temp, *_ in staged)

    def barrier(self) -> None:
        """Files staged after this point are moved into place only after every file staged
        before it (pages before the listings and feeds that link to them); within a batch
        the order is free."""
        if self._staged and (not self._barriers or self._barriers[-1] != len(self._staged)):
            self._barriers.append(len(self._staged))

    def write_now(self, relative: str, data: bytes) -> None:
        """Stage and commit a single file (fsync'ed on its own)."""
        target = self.text_path(relative)
        temp = self._temp_for(target)
        _write_temp(temp, data)
        _fsync_file(temp)
        os.replace(temp, target)
        _fsync_dir(os.path.dirname(target))

    def commit(self) -> int:
        """Make every staged file durable, move them into place in staging order, then make
        the renames durable."""
        if not self._staged:
            return 0
        make_durable([s for s in self._staged if s[0] not in self._durable])
        bounds = [0, *self._barriers, len(self._staged)]
        for start, end in itertools.pairwise(bounds):
            batch = self._staged[start:end]
            for staged in batch:
                _replace(staged)
            # Pages must be durable in place before the listings that link to them are.
            for folder in sorted(self._folders_of(batch)):
                _fsync_dir(folder)
        count = len(self._staged)
        self._staged = []
        self._barriers = []
        self._durable = set()
        return count

    def _folders_of(self, staged: list[tuple[str, ...]]) -> set[str]:
        """The folders of the targets and every folder between them and the outbox: a folder
        made for a new file is itself a new name in its parent."""
        folders: set[str] = set()
        root = self._root_text
        for _temp, target, *_ in staged:
            folder = os.path.dirname(target)
            while folder not in folders and len(folder) >= len(root):
                folders.add(folder)
                folder = os.path.dirname(folder)
        return folders

    def discard(self) -> None:
        for temp, *_ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self._staged = []
        self._barriers = []
        self._durable = set()

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


def make_durable(staged: list[tuple[str, ...]]) -> None:
    """Flush staged temp files to disk. A worker process does it for its own files before
    it hands them over, so the waits on the disk overlap with the other worker's rendering
    (see bench/README.md)."""
    for temp, *_ in staged:
        _fsync_file(temp)


def _temp_beside(target: str) -> str:
    directory, name = os.path.split(target)
    return os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{name}")


def _replace(staged: tuple[str, ...]) -> None:
    temp, target, *expect = staged
    if expect:
        try:
            with open(target, "rb") as fh:
                current = digest(fh.read())
        except FileNotFoundError:
            current = None
        if current != expect[0]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)  # an edit saved since it was read wins
            return
    os.replace(temp, target)


def _write_temp(temp: str, data: bytes) -> None:
    try:
        fh = open(temp, "wb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        os.makedirs(os.path.dirname(temp), exist_ok=True)
        fh = open(temp, "wb")  # noqa: SIM115
    with fh:
        fh.write(data)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str | Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
