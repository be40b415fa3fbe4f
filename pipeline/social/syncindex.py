"""The sync index of the social drafts: what the last sync left in every item folder, so that
a build reads only the folders that changed since (see `drafts.sync_drafts`)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.outbox import Outbox
from pipeline.private import DIR_MODE
from pipeline.social.draftfile import DRAFT_DIR, ITEM_ID
from pipeline.social.reviewpage import FolderInfo
from pipeline.workers import collector_paused

INDEX_NAME = "social-index.pickle"
GONE = "-"  # the entry key of a folder whose item is not live


class SyncIndex:
    """Per item folder, what `sync_drafts` left there: `[entry key, folder mtime,
    {platform: [[mtime, size, inode], shown digest, status]}, published]`, under a fingerprint
    of the global inputs; and of the review pages `{"base": digest of what every page depends
    on, "moment": when, "months": {month: page key}}`. Plain data in a pickle (JSON took twice
    as long to read and write) beside the state store, safe to delete (the next build reads
    every draft)."""

    VERSION = 6

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.fingerprint = ""
        self.folders: dict[str, list[Any]] = {}
        self.pages: dict[str, Any] = {}
        if path is None:
            return
        try:
            with open(path, "rb") as fh, collector_paused():  # 100,000 small objects
                data = pickle.load(fh)
        except Exception:  # missing or damaged: every draft is read again
            return
        if isinstance(data, dict) and data.get("version") == self.VERSION:
            folders = data.get("folders")
            if isinstance(folders, dict) and isinstance(data.get("fingerprint"), str):
                self.fingerprint = data["fingerprint"]
                self.folders = folders
                pages = data.get("pages")
                self.pages = pages if isinstance(pages, dict) else {}

    @classmethod
    def for_config(cls, config: Config) -> SyncIndex:
        return cls(config.path(config.state.path).with_name(INDEX_NAME))

    def save(self, fingerprint: str, folders: dict[str, list[Any]], pages: dict[str, Any]) -> None:
        if self.path is None or (
            fingerprint == self.fingerprint and folders == self.folders and pages == self.pages
        ):
            return
        document = {
            "version": self.VERSION,
            "fingerprint": fingerprint,
            "folders": folders,
            "pages": pages,
        }
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            temp.write_bytes(pickle.dumps(document, protocol=5))
            os.replace(temp, self.path)
        except OSError:
            temp.unlink(missing_ok=True)  # an index that cannot be written is not an error


@dataclass(frozen=True)
class FolderScan:
    """The draft folders on disk against the records of the sync index (`fingerprint`,
    `recorded` folders): only the differences, so that the common answer is a few bytes."""

    fingerprint: str
    recorded: int
    missing: frozenset[str]  # recorded, but no longer on disk
    extra: frozenset[str]  # on disk, not recorded
    changed: frozenset[str]  # recorded and on disk, but not as the record says

    def fits(self, index: SyncIndex) -> bool:
        return self.fingerprint == index.fingerprint and self.recorded == len(index.folders)

    def present(self, index: SyncIndex) -> set[str]:
        return (index.folders.keys() - self.missing) | self.extra

    def holding(self, index: SyncIndex) -> set[str]:
        return index.folders.keys() - self.missing - self.changed


def scan_folders(config: Config, index: SyncIndex | None = None) -> FolderScan:
    """One stat per folder and per draft file (24,000 on 5,000 items: 0.1 s); a build has a
    forked process do it while it reads the content."""
    index = index or SyncIndex.for_config(config)
    root = Outbox(config.outbox_dir).text_path(DRAFT_DIR)
    try:
        present = {e.name for e in os.scandir(root) if e.is_dir() and ITEM_ID.match(e.name)}
    except FileNotFoundError:
        present = set()
    changed = frozenset(
        folder
        for folder, record in index.folders.items()
        if folder in present and not folder_holds(root, folder, record)
    )
    return FolderScan(
        index.fingerprint,
        len(index.folders),
        frozenset(index.folders.keys() - present),
        frozenset(present - index.folders.keys()),
        changed,
    )


def folder_holds(root: str, folder: str, record: list[Any]) -> bool:
    """The folder and every draft in it are as the index recorded them (this runs for
    every folder on every build: plain string paths, no formatting)."""
    directory = f"{root}/{folder}"
    try:
        if os.stat(directory).st_mtime_ns != record[1]:
            return False  # a file added, removed or replaced
        for platform, (signature, *_rest) in record[2].items():
            st = os.stat(f"{directory}/{platform}.md")
            if (st.st_mtime_ns, st.st_size, st.st_ino) != tuple(signature):
                return False
    except (OSError, TypeError, AttributeError, IndexError, ValueError):
        return False
    return True


def info_of(record: list[Any]) -> FolderInfo:
    """What the review pages need of a folder, from its record."""
    return FolderInfo(record[3], {p: (d[1], d[2]) for p, d in record[2].items()})
