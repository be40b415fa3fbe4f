"""Migrations of the state store: from any earlier schema to the one in schema.py.

A new store, SQLite or PostgreSQL, is made from schema.py at once. A SQLite store made by
an earlier krimppost has its schema version in `PRAGMA user_version` (1 to 7) and upgrades
in place: first the SQLite scripts of those versions, then the steps below, which go
through SQLAlchemy and so hold on both databases. Every later schema change is a step here
and the matching declaration in schema.py; tests/test_state_schema.py checks that the two
agree.

The version is kept in the table `krimppost_schema` (and on SQLite also in user_version,
so an older krimppost refuses a newer store instead of migrating it wrongly).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text, update

from pipeline.state import schema

# The schema versions 1 to 7, as SQLite scripts (the store was SQLite-only then).
SQLITE_SCRIPTS: tuple[str, ...] = (
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


def _issue_item_hashes(conn: Connection) -> None:
    """8: the text hash of an issued item in a column of its own (was: JSON in the
    snapshot, which only SQLite's json_extract read)."""
    conn.execute(text("ALTER TABLE issue_items ADD COLUMN content_hash TEXT"))
    table = schema.issue_items
    rows = conn.execute(select(table.c.entry_id, table.c.snapshot)).all()
    for entry_id, snapshot in rows:
        value = json.loads(snapshot).get("content_hash")
        if value:
            conn.execute(
                update(table).where(table.c.entry_id == entry_id).values(content_hash=value)
            )


def _send_claims(conn: Connection) -> None:
    """9: several senders share an issue: a delivery row names the run that claimed it,
    and a run says where it runs and when it was last alive."""
    conn.execute(text("ALTER TABLE deliveries ADD COLUMN claimed_by INTEGER"))
    for column, kind in (
        ("host", "TEXT"),
        ("pid", "INTEGER"),
        ("heartbeat", "FLOAT"),
        ("parent", "INTEGER"),
    ):
        conn.execute(text(f"ALTER TABLE send_runs ADD COLUMN {column} {kind}"))


def _shared_services(conn: Connection) -> None:
    """10: what several hosts share: the active scheduler, and serve's rate limits."""
    schema.services.create(conn)
    schema.rate_hits.create(conn)


def _desk(conn: Connection) -> None:
    """11: the desk's accounts, sessions and audit log."""
    for table in (schema.desk_users, schema.desk_sessions, schema.audit_log):
        table.create(conn)


def _mail_operations(conn: Connection) -> None:
    """12: the preference page's pause and change of address, and what came back after
    sending (bounces, complaints, mailto unsubscribes)."""
    for column in ("paused_until", "new_email", "new_email_token", "new_email_requested_at"):
        conn.execute(text(f"ALTER TABLE subscribers ADD COLUMN {column} TEXT"))
    # SQLite cannot add a UNIQUE column: a unique index (declared so in schema.py too).
    conn.execute(
        text("CREATE UNIQUE INDEX subscribers_new_email_token ON subscribers (new_email_token)")
    )
    schema.mail_events.create(conn)


# Step n (counted from 1) leads from schema version n - 1 to n; the first ones are the
# SQLite scripts above.
STEPS: tuple[Callable[[Connection], None], ...] = (
    _issue_item_hashes,
    _send_claims,
    _shared_services,
    _desk,
    _mail_operations,
)
LATEST = len(SQLITE_SCRIPTS) + len(STEPS)


def read_version(conn: Connection) -> int:
    """The schema version of the store behind `conn`; 0 for an empty database."""
    if inspect(conn).has_table("krimppost_schema"):
        return int(conn.execute(text("SELECT version FROM krimppost_schema")).scalar_one())
    if conn.dialect.name == "sqlite":
        return int(conn.execute(text("PRAGMA user_version")).scalar_one())
    return 0


def _write_version(conn: Connection, version: int) -> None:
    table = schema.version_table
    if not inspect(conn).has_table(table.name):
        table.create(conn)
    if conn.execute(table.update().values(version=version)).rowcount == 0:
        conn.execute(table.insert().values(version=version))
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"PRAGMA user_version = {int(version)}"))


def _begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.dialect.name == "sqlite" else "BEGIN")


def migrate(conn: Connection, version: int) -> None:
    """Bring the store from `version` to LATEST, each step in a transaction of its own, on
    a connection in autocommit mode (the caller holds the store's migration lock)."""
    if version == 0:  # a new store: the whole schema at once
        _begin(conn)
        schema.metadata.create_all(conn)
        _write_version(conn, LATEST)
        conn.exec_driver_sql("COMMIT")
        return
    for number in range(version, LATEST):
        if number < len(SQLITE_SCRIPTS):
            raw = conn.connection.driver_connection
            # executescript commits an open transaction first, so the script carries its own.
            raw.executescript(  # type: ignore[union-attr]
                f"BEGIN IMMEDIATE;\n{SQLITE_SCRIPTS[number]}\n"
                f"PRAGMA user_version = {number + 1};\nCOMMIT;"
            )
            continue
        _begin(conn)
        try:
            STEPS[number - len(SQLITE_SCRIPTS)](conn)
            _write_version(conn, number + 1)
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")
