"""The state store: what was published, and the output files the last build produced.

SQLite through the stdlib, with a schema version and an ordered list of migrations, so
later features (newsletter issues, subscribers, deliveries, drafts) add tables the same way.
Times are stored as UTC ISO-8601 text; arithmetic is done in UTC.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from pipeline.errors import KrimppostError, Problem, UsageError
from pipeline.private import DIR_MODE, FILE_MODE, private_dir, private_sqlite

MIGRATIONS: tuple[str, ...] = (
    # 1: published items and produced outputs
    """
    CREATE TABLE items (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        first_published TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        updated TEXT NOT NULL,
        live INTEGER NOT NULL,
        withdrawn_at TEXT,
        last_good TEXT NOT NULL
    );
    CREATE INDEX items_source ON items (source);
    CREATE TABLE outputs (
        path TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        digest TEXT NOT NULL
    );
    CREATE TABLE builds (
        id INTEGER PRIMARY KEY,
        started TEXT NOT NULL,
        finished TEXT NOT NULL,
        now TEXT NOT NULL,
        written INTEGER NOT NULL,
        removed INTEGER NOT NULL,
        errors INTEGER NOT NULL
    );
    """,
    # 2: newsletter issues; an item's id is a primary key of issue_items, so it can be in
    # at most one issue whatever happens to concurrent compiles
    """
    CREATE TABLE issues (
        number INTEGER PRIMARY KEY,
        subject TEXT NOT NULL,
        created_at TEXT NOT NULL,
        intro_hash TEXT,
        intro TEXT,
        agenda TEXT NOT NULL,
        tracks TEXT NOT NULL
    );
    CREATE TABLE issue_items (
        item_id TEXT PRIMARY KEY,
        issue INTEGER NOT NULL REFERENCES issues (number),
        position INTEGER NOT NULL,
        snapshot TEXT NOT NULL
    );
    CREATE INDEX issue_items_issue ON issue_items (issue, position);
    """,
    # 3: delivery (pipeline/delivery/): subscribers with their consent record, a keyed-hash
    # suppression list, the delivery log per (issue, subscriber), and send runs
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT NOT NULL,
        email_key TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
        tracks TEXT NOT NULL,
        token TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        consented_at TEXT NOT NULL,
        consent_version TEXT NOT NULL,
        confirmed_at TEXT,
        status_changed_at TEXT NOT NULL,
        status_reason TEXT NOT NULL DEFAULT '',
        confirm_token TEXT UNIQUE,
        requested_at TEXT,
        requested_tracks TEXT,
        requested_version TEXT
    );
    CREATE INDEX subscribers_status ON subscribers (status, id);
    CREATE TABLE suppressions (
        digest TEXT PRIMARY KEY,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        issue INTEGER NOT NULL REFERENCES issues (number),
        subscriber INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'deferred',
                                               'failed', 'bounced', 'skipped', 'uncertain')),
        attempts INTEGER NOT NULL DEFAULT 0,
        run_attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt REAL,
        reply TEXT NOT NULL DEFAULT '',
        message_id TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (issue, subscriber)
    ) WITHOUT ROWID;
    CREATE INDEX deliveries_status ON deliveries (issue, status, subscriber);
    CREATE INDEX deliveries_subscriber ON deliveries (subscriber);
    CREATE TABLE send_runs (
        id INTEGER PRIMARY KEY,
        issue INTEGER NOT NULL REFERENCES issues (number),
        started TEXT NOT NULL,
        finished TEXT,
        sent INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        bounced INTEGER NOT NULL DEFAULT 0,
        skipped INTEGER NOT NULL DEFAULT 0,
        uncertain INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE delivery_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: what the last complete build saw, so a build with nothing to do stops early
    """
    CREATE TABLE build_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 5: item identity across moves (pipeline/publish.py): the id an item had before its file
    # moved points to the id it has now (its old URL redirects), and an issued item is known
    # by its feed entry id (the key now), so a moved item is never mailed twice and a new file
    # under a moved item's old id is a new item
    """
    CREATE TABLE item_aliases (
        old_id TEXT PRIMARY KEY,
        new_id TEXT NOT NULL,
        moved_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE issue_items_by_entry (
        entry_id TEXT PRIMARY KEY,
        item_id TEXT NOT NULL,
        issue INTEGER NOT NULL REFERENCES issues (number),
        position INTEGER NOT NULL,
        snapshot TEXT NOT NULL
    );
    INSERT INTO issue_items_by_entry (entry_id, item_id, issue, position, snapshot)
        SELECT COALESCE((SELECT entry_id FROM items WHERE id = item_id), 'id:' || item_id),
               item_id, issue, position, snapshot
        FROM issue_items;
    DROP TABLE issue_items;
    ALTER TABLE issue_items_by_entry RENAME TO issue_items;
    CREATE INDEX issue_items_issue ON issue_items (issue, position);
    """,
    # 6: the sync index of the social drafts (pipeline/social/syncindex.py): per item folder
    # what the last sync left in it, and the fingerprint of the inputs it was recorded under.
    # A cache: its rows may be deleted at any time (the next build reads every draft).
    """
    CREATE TABLE social_folders (
        folder TEXT PRIMARY KEY,
        entry_key TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        published TEXT,
        draft_count INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE social_drafts (
        folder TEXT NOT NULL,
        platform TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        size INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        shown_digest TEXT NOT NULL,
        status TEXT NOT NULL,
        PRIMARY KEY (folder, platform)
    ) WITHOUT ROWID;
    CREATE TABLE social_index_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 7: the horizon and approval (issue 15). `project` holds facts of the project itself:
    # `first_build`, the clock of its first build, from which the newsletter and social
    # horizons are counted; a store made before gets the moment of its earliest issue (or of
    # its first build), so nothing already issued falls before the horizon. An issue is a
    # concept until approved; one whose send had begun was sent before approval existed.
    """
    CREATE TABLE project (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO project (key, value)
        SELECT 'first_build', moment FROM (
            SELECT COALESCE((SELECT MIN(created_at) FROM issues), (SELECT MIN(now) FROM builds))
                AS moment
        ) WHERE moment IS NOT NULL;
    ALTER TABLE issues ADD COLUMN approved_by TEXT;
    ALTER TABLE issues ADD COLUMN approved_at TEXT;
    UPDATE issues SET
        approved_by = '(verstuurd voordat goedkeuring bestond)',
        approved_at = (SELECT MIN(started) FROM send_runs WHERE issue = issues.number)
        WHERE number IN (SELECT issue FROM send_runs);
    """,
)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_utc_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


class ItemRecord(NamedTuple):  # a tuple: every build reads one per item
    """What the store remembers of one item that has been published."""

    id: str
    source: str
    entry_id: str
    first_published: datetime
    content_hash: str
    updated: datetime
    live: bool


class SocialDraftRecord(NamedTuple):
    """A draft file as the last social sync left it: its signature and what the review
    pages show of it."""

    mtime_ns: int
    size: int
    inode: int
    shown_digest: str
    status: str


class SocialFolderRecord(NamedTuple):
    """An item folder of social drafts as the last sync left it."""

    entry_key: str
    mtime_ns: int
    published: str | None
    drafts: dict[str, SocialDraftRecord]  # platform -> its draft file


class StateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Addresses, tokens and the secrets: owner only, also for a store made before.
        # The folder is tightened only when it is krimppost's own, not a project root.
        if path.parent.name == ".krimppost" or not path.parent.exists():
            private_dir(path.parent)
        try:
            private_sqlite(path)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            # Two processes may open a new store at once (the `run` service and its first
            # build job). SQLite waits for neither the switch to WAL ('database is locked')
            # nor our read of the schema version (both would migrate): one at a time.
            with OpenLock(path, timeout=30):
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self.db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise KrimppostError(
                [Problem(str(path), None, f"state store onbruikbaar: {exc}")]
            ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise KrimppostError(
                [
                    Problem(
                        str(self.path),
                        None,
                        f"schemaversie {version} is nieuwer dan deze krimppost",
                    )
                ]
            )
        for number in range(version, len(MIGRATIONS)):
            # executescript commits any open transaction first, so the script carries its own.
            self.db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[number]}\nPRAGMA user_version = {number + 1};\nCOMMIT;"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # items -----------------------------------------------------------------------------

    def items(self) -> dict[str, ItemRecord]:
        rows = self.db.execute(
            "SELECT id, source, entry_id, first_published, content_hash, updated, live FROM items"
        )
        return {
            id_: ItemRecord(
                id_,
                source,
                entry_id,
                from_utc_text(first),
                content_hash,
                from_utc_text(updated),
                bool(live),
            )
            for id_, source, entry_id, first, content_hash, updated, live in rows
        }

    def last_good(self, item_id: str) -> str | None:
        row = self.db.execute("SELECT last_good FROM items WHERE id = ?", (item_id,)).fetchone()
        return row[0] if row else None

    def save_item(self, record: ItemRecord, last_good: str | None) -> None:
        """Insert or update one item; call inside a transaction."""
        if last_good is None:
            self.db.execute(
                "UPDATE items SET live = ?, withdrawn_at = NULL WHERE id = ?",
                (int(record.live), record.id),
            )
            return
        self.db.execute(
            """INSERT INTO items (id, source, entry_id, first_published, content_hash, updated,
                                  live, withdrawn_at, last_good)
               VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)
               ON CONFLICT (id) DO UPDATE SET source = excluded.source,
                   entry_id = excluded.entry_id, first_published = excluded.first_published,
                   content_hash = excluded.content_hash, updated = excluded.updated,
                   live = excluded.live, withdrawn_at = NULL, last_good = excluded.last_good""",
            (
                record.id,
                record.source,
                record.entry_id,
                utc_text(record.first_published),
                record.content_hash,
                utc_text(record.updated),
                int(record.live),
                last_good,
            ),
        )

    def withdraw(self, item_id: str, moment: datetime) -> None:
        self.db.execute(
            "UPDATE items SET live = 0, withdrawn_at = ? WHERE id = ?", (utc_text(moment), item_id)
        )

    def aliases(self) -> dict[str, str]:
        """Old item id -> the id its file had after it moved."""
        return dict(self.db.execute("SELECT old_id, new_id FROM item_aliases").fetchall())

    def move_item(self, old_id: str, new_id: str, moment: datetime) -> None:
        """The item `old_id` lives on as `new_id`; inside a transaction."""
        self.withdraw(old_id, moment)
        self.db.execute(
            "INSERT OR REPLACE INTO item_aliases (old_id, new_id, moved_at) VALUES (?, ?, ?)",
            (old_id, new_id, utc_text(moment)),
        )

    # the scheduler's persisted jobs (APScheduler's own table) -----------------------------

    def persisted_jobs(self, table: str) -> list[tuple[str, bytes]]:
        """(id, pickled state) of every job in APScheduler's table; none before it exists."""
        try:
            return self.db.execute(f"SELECT id, job_state FROM {table}").fetchall()
        except sqlite3.OperationalError:  # no job table yet
            return []

    def drop_job(self, table: str, job_id: str) -> None:
        self.db.execute(f"DELETE FROM {table} WHERE id = ?", (job_id,))

    def replace_job(self, table: str, job_id: str, job_state: bytes) -> None:
        self.db.execute(f"UPDATE {table} SET job_state = ? WHERE id = ?", (job_state, job_id))

    def job_times(self, table: str) -> list[tuple[str, float | None]]:
        """(id, next run as a POSIX time, None when paused) of every persisted job."""
        try:
            return self.db.execute(
                f"SELECT id, next_run_time FROM {table} ORDER BY next_run_time"
            ).fetchall()
        except sqlite3.OperationalError:  # no job table yet
            return []

    # outputs ---------------------------------------------------------------------------

    def outputs(self) -> dict[str, tuple[str, str]]:
        return {p: (k, d) for p, k, d in self.db.execute("SELECT path, key, digest FROM outputs")}

    def note_outputs(self, paths: list[str]) -> None:
        """Record paths about to be written, with no key yet; inside a transaction."""
        self.db.executemany(
            "INSERT OR IGNORE INTO outputs (path, key, digest) VALUES (?, '', '')",
            [(p,) for p in paths],
        )

    def update_outputs(self, changed: dict[str, tuple[str, str]], removed: list[str]) -> None:
        """Record what the build changed in the set of produced files; inside a transaction."""
        self.db.executemany(
            "INSERT OR REPLACE INTO outputs (path, key, digest) VALUES (?, ?, ?)",
            [(p, k, d) for p, (k, d) in changed.items()],
        )
        self.db.executemany("DELETE FROM outputs WHERE path = ?", [(p,) for p in removed])

    def build_meta(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM build_meta").fetchall())

    def next_change(self) -> datetime | None:
        """When the clock alone next changes what is published, as the last build decided
        (publish.Publication.next_change); None before the first build."""
        value = self.build_meta().get("next_change")
        return datetime.fromisoformat(value) if value else None

    def set_build_meta(self, values: dict[str, str]) -> None:
        """Inside a transaction."""
        self.db.executemany(
            "INSERT OR REPLACE INTO build_meta (key, value) VALUES (?, ?)", list(values.items())
        )

    # facts of the project ------------------------------------------------------------------

    def first_build(self) -> datetime | None:
        """The clock of the project's first build: the horizons are counted from it."""
        row = self.db.execute("SELECT value FROM project WHERE key = 'first_build'").fetchone()
        return from_utc_text(row[0]) if row else None

    def note_first_build(self, now: datetime) -> None:
        """Inside a transaction; only the first call counts."""
        self.db.execute(
            "INSERT OR IGNORE INTO project (key, value) VALUES ('first_build', ?)",
            (utc_text(now),),
        )

    # the sync index of the social drafts ---------------------------------------------------

    def social_index(self) -> tuple[str, dict[str, SocialFolderRecord]]:
        """The fingerprint the index was recorded under, and its folders. A folder whose
        draft rows are not all there (deleted by hand) is left out: it is read again."""
        row = self.db.execute(
            "SELECT value FROM social_index_meta WHERE key = 'fingerprint'"
        ).fetchone()
        drafts: dict[str, dict[str, SocialDraftRecord]] = {}
        for folder, platform, *values in self.db.execute(
            "SELECT folder, platform, mtime_ns, size, inode, shown_digest, status"
            " FROM social_drafts"
        ):
            drafts.setdefault(folder, {})[platform] = SocialDraftRecord(*values)
        folders: dict[str, SocialFolderRecord] = {}
        for folder, entry_key, mtime_ns, published, count in self.db.execute(
            "SELECT folder, entry_key, mtime_ns, published, draft_count FROM social_folders"
        ):
            own = drafts.get(folder, {})
            if len(own) == count:
                folders[folder] = SocialFolderRecord(entry_key, mtime_ns, published, own)
        return (row[0] if row else ""), folders

    def update_social_index(
        self,
        fingerprint: str,
        changed: dict[str, SocialFolderRecord],
        removed: list[str],
    ) -> None:
        """Replace the rows of the `changed` folders, delete those of `removed`, and record
        the fingerprint; one transaction."""
        gone = [(folder,) for folder in (*changed, *removed)]
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO social_index_meta (key, value) VALUES ('fingerprint', ?)",
                (fingerprint,),
            )
            self.db.executemany("DELETE FROM social_drafts WHERE folder = ?", gone)
            self.db.executemany(
                "DELETE FROM social_folders WHERE folder = ?", [(f,) for f in removed]
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO social_folders"
                " (folder, entry_key, mtime_ns, published, draft_count) VALUES (?, ?, ?, ?, ?)",
                [
                    (folder, r.entry_key, r.mtime_ns, r.published, len(r.drafts))
                    for folder, r in changed.items()
                ],
            )
            self.db.executemany(
                "INSERT INTO social_drafts"
                " (folder, platform, mtime_ns, size, inode, shown_digest, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (folder, platform, *draft)
                    for folder, r in changed.items()
                    for platform, draft in r.drafts.items()
                ],
            )

    def record_build(
        self, started: datetime, now: datetime, written: int, removed: int, errors: int
    ) -> None:
        self.db.execute(
            "INSERT INTO builds (started, finished, now, written, removed, errors) VALUES (?, ?, ?, ?, ?, ?)",
            (
                utc_text(started),
                utc_text(datetime.now(UTC)),
                utc_text(now),
                written,
                removed,
                errors,
            ),
        )


@dataclass(frozen=True)
class IssueRecord:
    number: int
    subject: str
    created_at: datetime
    intro_hash: str | None
    intro: str | None  # JSON {"html": ..., "text": ...}
    agenda: str  # JSON list of item snapshots
    tracks: str  # JSON list of track ids with items in this issue
    items: tuple[tuple[str, str], ...]  # (item id, item snapshot JSON) in order
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.approved_by is not None


def _entry(entry_ids: dict[str, str], item_id: str) -> str:
    """The key of an issued item: its feed entry id (as migration 5 fills in a missing one)."""
    return entry_ids.get(item_id) or f"id:{item_id}"


_ISSUE_COLUMNS = (
    "number, subject, created_at, intro_hash, intro, agenda, tracks, approved_by, approved_at"
)


def _issue_from_row(row: tuple, items: tuple[tuple[str, str], ...]) -> IssueRecord:
    return IssueRecord(
        row[0],
        row[1],
        from_utc_text(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        items,
        row[7],
        from_utc_text(row[8]) if row[8] else None,
    )


class IssueStore:
    """Newsletter issues in the state store."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db

    def issued_content_hashes(self) -> set[str]:
        """The texts of issued items: a copy of one, under any name, is not mailed again."""
        rows = self.db.execute("SELECT json_extract(snapshot, '$.content_hash') FROM issue_items")
        return {row[0] for row in rows if row[0]}

    def issued_entry_ids(self) -> set[str]:
        """Feed entry ids of issued items: an item's identity whatever its file is called now
        (a new file under the id of one that moved is a new item)."""
        return {row[0] for row in self.db.execute("SELECT entry_id FROM issue_items")}

    def intro_used(self, intro_hash: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM issues WHERE intro_hash = ?", (intro_hash,)).fetchone()
            is not None
        )

    @contextmanager
    def allocate(
        self,
        candidates: list[tuple[str, str]],
        make_subject: Callable[[int], str],
        created_at: datetime,
        intro: tuple[str, str] | None,
        agenda: str,
        tracks_of: Callable[[list[str]], str],
        entry_ids: dict[str, str] | None = None,
    ) -> Iterator[IssueRecord | None]:
        """Allocate the next issue with the candidates not yet in any issue, in one
        transaction that the caller's `with` body runs inside: it renders and checks the
        record, and an exception there rolls the allocation back (the issue is not made).

        `entry_ids` (item id -> feed entry id) keeps out an item issued under an earlier id.
        Yields None when every candidate was taken meanwhile (a concurrent compile) or there
        were none.
        """
        entry_ids = entry_ids or {}
        with self.state.transaction():
            taken = self.issued_entry_ids()
            fresh = [(i, snap) for i, snap in candidates if _entry(entry_ids, i) not in taken]
            if not fresh:
                yield None
                return
            number = (self.db.execute("SELECT MAX(number) FROM issues").fetchone()[0] or 0) + 1
            intro_hash, intro_json = intro if intro else (None, None)
            if intro_hash and self.intro_used(intro_hash):
                intro_hash, intro_json = None, None
            self.db.execute(
                "INSERT INTO issues (number, subject, created_at, intro_hash, intro, agenda, tracks)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    make_subject(number),
                    utc_text(created_at),
                    intro_hash,
                    intro_json,
                    agenda,
                    tracks_of([i for i, _ in fresh]),
                ),
            )
            self.db.executemany(
                "INSERT INTO issue_items (item_id, issue, position, snapshot, entry_id)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (item_id, number, pos, snap, _entry(entry_ids, item_id))
                    for pos, (item_id, snap) in enumerate(fresh)
                ],
            )
            yield self.get(number)

    def approve(self, number: int, by: str, at: datetime) -> None:
        self.db.execute(
            "UPDATE issues SET approved_by = ?, approved_at = ? WHERE number = ?",
            (by, utc_text(at), number),
        )

    def send_begun(self, number: int) -> bool:
        """Whether a send of the issue has begun (a send run was recorded)."""
        row = self.db.execute("SELECT 1 FROM send_runs WHERE issue = ? LIMIT 1", (number,))
        return row.fetchone() is not None

    def unsent(self) -> list[IssueRecord]:
        """Issues whose send has not begun, oldest first: concepts and approved ones."""
        rows = self.db.execute(
            "SELECT number FROM issues WHERE number NOT IN (SELECT issue FROM send_runs)"
            " ORDER BY number"
        ).fetchall()
        return [record for (n,) in rows if (record := self.get(n)) is not None]

    def discard(self, number: int) -> None:
        """Remove an issue that was never sent: its items are free for the next one.
        Inside a transaction."""
        self.db.execute("DELETE FROM issue_items WHERE issue = ?", (number,))
        self.db.execute("DELETE FROM issues WHERE number = ?", (number,))

    def get(self, number: int) -> IssueRecord | None:
        row = self.db.execute(
            f"SELECT {_ISSUE_COLUMNS} FROM issues WHERE number = ?",
            (number,),
        ).fetchone()
        if row is None:
            return None
        items = tuple(
            self.db.execute(
                "SELECT item_id, snapshot FROM issue_items WHERE issue = ? ORDER BY position",
                (number,),
            ).fetchall()
        )
        return _issue_from_row(row, items)

    def chosen(self, number: int | None) -> IssueRecord:
        """Issue `number`, or the latest when None: the one a command names (a usage error
        when there is none)."""
        if number is None:
            number = self.latest()
            if number is None:
                raise UsageError(
                    "er is nog geen nieuwsbrief samengesteld (eerst: krimppost newsletter compile)"
                )
        record = self.get(number)
        if record is None:
            known = ", ".join(str(n) for n in self.numbers()) or "geen"
            raise UsageError(f"nieuwsbrief {number} bestaat niet (wel: {known})")
        return record

    def numbers(self) -> list[int]:
        return [row[0] for row in self.db.execute("SELECT number FROM issues ORDER BY number")]

    def latest(self) -> int | None:
        return self.db.execute("SELECT MAX(number) FROM issues").fetchone()[0]

    def summaries(self, approved_only: bool = False) -> list[tuple[int, str, datetime]]:
        """Number, subject and moment of each issue, newest first; with `approved_only`,
        of the approved ones (a concept is not on the site)."""
        where = " WHERE approved_by IS NOT NULL" if approved_only else ""
        return [
            (n, subject, from_utc_text(created))
            for n, subject, created in self.db.execute(
                f"SELECT number, subject, created_at FROM issues{where} ORDER BY number DESC"
            )
        ]


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
