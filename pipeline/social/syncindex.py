"""The sync index of the social drafts: what the last sync left in every item folder, so that
a build reads only the folders that changed since (see `drafts.sync_drafts`).

Two tables of the state store (`social_folders`, `social_drafts`, migration 6) and the
fingerprint of the global inputs they were recorded under. Only a cache: when its rows are
gone, the next build reads every draft and records them again.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.config import Config
from pipeline.social.reviewpage import FolderInfo
from pipeline.state import SocialFolderRecord, StateStore, StoreAddress

# Where the index lived before it was a table: removed when found.
OLD_INDEX_NAME = "social-index.pickle"
GONE = "-"  # the entry key of a folder whose item is not live


class SyncIndex:
    """The index as read at the start of a sync: `fingerprint` and the `folders` recorded."""

    def __init__(self, fingerprint: str, folders: dict[str, SocialFolderRecord]) -> None:
        self.fingerprint = fingerprint
        self.folders = folders

    @classmethod
    def read(cls, state: StateStore) -> SyncIndex:
        return cls(*state.social_index())

    @classmethod
    def read_if_present(cls, config: Config) -> SyncIndex:
        """For the review commands: an empty index when there is no state store yet (they
        read every draft then, as they must anyway)."""
        address = StoreAddress.of(config)
        if not address.exists():
            return cls("", {})
        with StateStore(address) as state:
            return cls.read(state)

    def save(
        self, state: StateStore, fingerprint: str, folders: dict[str, SocialFolderRecord]
    ) -> None:
        """Record `folders` under `fingerprint`, writing only the rows that differ."""
        changed = {f: r for f, r in folders.items() if self.folders.get(f) != r}
        removed = [f for f in self.folders if f not in folders]
        if changed or removed or fingerprint != self.fingerprint:
            state.update_social_index(fingerprint, changed, removed)
        self.fingerprint, self.folders = fingerprint, folders


def remove_old_index(state_path: Path) -> None:
    state_path.with_name(OLD_INDEX_NAME).unlink(missing_ok=True)


def folder_holds(root: str, folder: str, record: SocialFolderRecord) -> bool:
    """The folder and every draft in it are as the index recorded them (this runs for
    every folder on every build: plain string paths, no formatting)."""
    directory = f"{root}/{folder}"
    try:
        if os.stat(directory).st_mtime_ns != record.mtime_ns:
            return False  # a file added, removed or replaced
        for platform, draft in record.drafts.items():
            st = os.stat(f"{directory}/{platform}.md")
            if (
                st.st_mtime_ns != draft.mtime_ns
                or st.st_size != draft.size
                or st.st_ino != draft.inode
            ):
                return False
    except OSError:
        return False
    return True


def info_of(record: SocialFolderRecord) -> FolderInfo:
    """What the review pages need of a folder, from its record."""
    return FolderInfo(
        record.published, {p: (d.shown_digest, d.status) for p, d in record.drafts.items()}
    )
