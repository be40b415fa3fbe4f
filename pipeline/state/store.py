"""The state store: what was published, and the output files the last build produced.

One SQLAlchemy Core layer for both databases: a SQLite file beside the project by default
(`[state] path`), or PostgreSQL (`[state] url`, or KRIMPPOST_STATE_URL; pipeline/state/
address.py). The tables are declared once (schema.py) and migrated in order
(migrations.py). Times are stored as UTC ISO-8601 text; arithmetic is done in UTC.

The connection runs in autocommit mode and `transaction()` opens a write transaction
explicitly, so that a read never holds a lock and a write waits for the one before it:
SQLite's BEGIN IMMEDIATE, and on PostgreSQL a transaction-scoped advisory lock that does
the same (writers one at a time, readers never blocked). Hot paths whose rows are their
own (the senders' claims) pass `exclusive=False`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    LargeBinary,
    MetaData,
    Table,
    Unicode,
    bindparam,
    create_engine,
    delete,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from pipeline.errors import KrimppostError, Problem
from pipeline.private import private_dir, private_sqlite
from pipeline.state import schema
from pipeline.state.address import StoreAddress
from pipeline.state.locks import OpenLock
from pipeline.state.migrations import LATEST, migrate, read_version

# Advisory lock keys: (kind, the store). The kind is in krimppost's own range; the store is
# its schema, so two stores in one database (a schema each) do not wait for each other.
WRITE_LOCK = 0x6B70_0001
MIGRATION_LOCK = 0x6B70_0002
STORE_KEY = "hashtext(current_schema())"


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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout = 30000")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(address: StoreAddress) -> Engine:
    """An engine for the store; no pool, so a forked worker shares no connection."""
    engine = create_engine(
        address.url, poolclass=NullPool, isolation_level="AUTOCOMMIT", **address.engine_args
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class StateStore:
    def __init__(self, target: StoreAddress | Any) -> None:
        """Open the store at `target`: a StoreAddress, or the path of a SQLite file."""
        address = target if isinstance(target, StoreAddress) else StoreAddress.sqlite(target)
        self.address = address
        self.path = address.path  # beside it: the lock files, caches and compiled templates
        # Addresses, tokens and the secrets: owner only, also for a store made before.
        # The folder is tightened only when it is krimppost's own, not a project root.
        if self.path.parent.name == ".krimppost" or not self.path.parent.exists():
            private_dir(self.path.parent)
        try:
            if address.is_sqlite:
                private_sqlite(self.path)
            self.engine = make_engine(address)
            self.conn = self.engine.connect()
            self.dialect = self.engine.dialect.name
            self._open()
        except (SQLAlchemyError, OSError) as exc:
            raise KrimppostError(
                [Problem(address.display, None, f"state store onbruikbaar: {_reason(exc)}")]
            ) from None

    @classmethod
    def of(cls, config: Any) -> StateStore:
        """The store a project's configuration names (StoreAddress.of)."""
        return cls(StoreAddress.of(config))

    def _open(self) -> None:
        if self.dialect == "sqlite":
            # Two processes may open a new store at once (the `run` service and its first
            # build job). SQLite waits for neither the switch to WAL ('database is locked')
            # nor our read of the schema version (both would migrate): one at a time.
            with OpenLock(self.path, timeout=30):
                self.conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                self._migrate()
        else:
            self.conn.execute(
                text(f"SELECT pg_advisory_lock(:k, {STORE_KEY})"), {"k": MIGRATION_LOCK}
            )
            try:
                self._migrate()
            finally:
                self.conn.execute(
                    text(f"SELECT pg_advisory_unlock(:k, {STORE_KEY})"), {"k": MIGRATION_LOCK}
                )

    def connect(self) -> Connection:
        """Another connection to the same store (for a thread of its own)."""
        return self.engine.connect()

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return read_version(self.conn)

    def _migrate(self) -> None:
        version = self.schema_version
        if version > LATEST:
            raise KrimppostError(
                [
                    Problem(
                        self.address.display,
                        None,
                        f"schemaversie {version} is nieuwer dan deze krimppost",
                    )
                ]
            )
        migrate(self.conn, version)

    def transaction(self, exclusive: bool = True) -> AbstractContextManager[Connection]:
        """A write transaction (see the module's doc); `exclusive=False` on PostgreSQL takes
        row locks only."""
        return transaction(self.conn, exclusive)

    # small helpers over the declared tables -------------------------------------------------

    def upsert(
        self,
        table: Table,
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        update_columns: Iterable[str] | None = None,
    ) -> None:
        """Insert rows, replacing the named columns (default: all others) of a row whose
        key exists; with `update_columns=()` an existing row is kept as it is."""
        if rows:
            self.conn.execute(upsert_statement(self.dialect, table, keys, update_columns), rows)

    def has_table(self, name: str) -> bool:
        return inspect(self.conn).has_table(name)

    # items -----------------------------------------------------------------------------

    def items(self) -> dict[str, ItemRecord]:
        t = schema.items
        rows = self.conn.execute(
            select(
                t.c.id,
                t.c.source,
                t.c.entry_id,
                t.c.first_published,
                t.c.content_hash,
                t.c.updated,
                t.c.live,
            )
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
        t = schema.items
        return self.conn.execute(select(t.c.last_good).where(t.c.id == item_id)).scalar()

    def save_item(self, record: ItemRecord, last_good: str | None) -> None:
        """Insert or update one item; call inside a transaction."""
        t = schema.items
        if last_good is None:
            self.conn.execute(
                update(t)
                .where(t.c.id == record.id)
                .values(live=int(record.live), withdrawn_at=None)
            )
            return
        self.upsert(
            t,
            [
                {
                    "id": record.id,
                    "source": record.source,
                    "entry_id": record.entry_id,
                    "first_published": utc_text(record.first_published),
                    "content_hash": record.content_hash,
                    "updated": utc_text(record.updated),
                    "live": int(record.live),
                    "withdrawn_at": None,
                    "last_good": last_good,
                }
            ],
            ["id"],
        )

    def withdraw(self, item_id: str, moment: datetime) -> None:
        t = schema.items
        self.conn.execute(
            update(t).where(t.c.id == item_id).values(live=0, withdrawn_at=utc_text(moment))
        )

    def aliases(self) -> dict[str, str]:
        """Old item id -> the id its file had after it moved."""
        t = schema.item_aliases
        return {old: new for old, new in self.conn.execute(select(t.c.old_id, t.c.new_id))}

    def move_item(self, old_id: str, new_id: str, moment: datetime) -> None:
        """The item `old_id` lives on as `new_id`; inside a transaction."""
        self.withdraw(old_id, moment)
        self.upsert(
            schema.item_aliases,
            [{"old_id": old_id, "new_id": new_id, "moved_at": utc_text(moment)}],
            ["old_id"],
        )

    # the scheduler's persisted jobs (APScheduler's own table) -----------------------------

    def _jobs(self, table: str) -> Table | None:
        if not self.has_table(table):  # no job table before the service first ran
            return None
        # APScheduler's own layout (apscheduler.jobstores.sqlalchemy), read and repaired here.
        return Table(
            table,
            MetaData(),
            Column("id", Unicode(191), primary_key=True),
            Column("next_run_time", Float(25)),
            Column("job_state", LargeBinary),
        )

    def persisted_jobs(self, table: str) -> list[tuple[str, bytes]]:
        """(id, pickled state) of every job in APScheduler's table; none before it exists."""
        t = self._jobs(table)
        if t is None:
            return []
        return [(i, s) for i, s in self.conn.execute(select(t.c.id, t.c.job_state))]

    def drop_job(self, table: str, job_id: str) -> None:
        t = self._jobs(table)
        if t is not None:
            self.conn.execute(delete(t).where(t.c.id == job_id))

    def replace_job(self, table: str, job_id: str, job_state: bytes) -> None:
        t = self._jobs(table)
        if t is not None:
            self.conn.execute(update(t).where(t.c.id == job_id).values(job_state=job_state))

    def job_times(self, table: str) -> list[tuple[str, float | None]]:
        """(id, next run as a POSIX time, None when paused) of every persisted job."""
        t = self._jobs(table)
        if t is None:
            return []
        rows = self.conn.execute(
            select(t.c.id, t.c.next_run_time).order_by(t.c.next_run_time.asc().nulls_last())
        )
        return [(i, n) for i, n in rows]

    # outputs ---------------------------------------------------------------------------

    def outputs(self, prefix: str = "") -> dict[str, tuple[str, str]]:
        """path -> (key, digest) of the files the builds produced (those under `prefix`)."""
        t = schema.outputs
        query = select(t.c.path, t.c.key, t.c.digest)
        if prefix:
            query = query.where(t.c.path.startswith(prefix, autoescape=True))
        return {p: (k, d) for p, k, d in self.conn.execute(query)}

    def note_outputs(self, paths: list[str]) -> None:
        """Record paths about to be written, with no key yet; inside a transaction."""
        self.upsert(
            schema.outputs, [{"path": p, "key": "", "digest": ""} for p in paths], ["path"], ()
        )

    def update_outputs(self, changed: dict[str, tuple[str, str]], removed: list[str]) -> None:
        """Record what the build changed in the set of produced files; inside a transaction."""
        t = schema.outputs
        self.upsert(
            t, [{"path": p, "key": k, "digest": d} for p, (k, d) in changed.items()], ["path"]
        )
        if removed:
            self.conn.execute(delete(t).where(t.c.path == _bind("path")), _rows("path", removed))

    def build_meta(self) -> dict[str, str]:
        return _key_values(self.conn, schema.build_meta)

    def next_change(self) -> datetime | None:
        """When the clock alone next changes what is published, as the last build decided
        (publish.Publication.next_change); None before the first build."""
        value = self.build_meta().get("next_change")
        return datetime.fromisoformat(value) if value else None

    def set_build_meta(self, values: dict[str, str]) -> None:
        """Inside a transaction."""
        self.upsert(schema.build_meta, [{"key": k, "value": v} for k, v in values.items()], ["key"])

    # facts of the project ------------------------------------------------------------------

    def first_build(self) -> datetime | None:
        """The clock of the project's first build: the horizons are counted from it."""
        value = _key_values(self.conn, schema.project).get("first_build")
        return from_utc_text(value) if value else None

    def note_first_build(self, now: datetime) -> None:
        """Inside a transaction; only the first call counts."""
        self.upsert(schema.project, [{"key": "first_build", "value": utc_text(now)}], ["key"], ())

    # the sync index of the social drafts ---------------------------------------------------

    def social_index(self) -> tuple[str, dict[str, SocialFolderRecord]]:
        """The fingerprint the index was recorded under, and its folders. A folder whose
        draft rows are not all there (deleted by hand) is left out: it is read again."""
        fingerprint = _key_values(self.conn, schema.social_index_meta).get("fingerprint", "")
        d, f = schema.social_drafts.c, schema.social_folders.c
        drafts: dict[str, dict[str, SocialDraftRecord]] = {}
        for folder, platform, *values in self.conn.execute(
            select(d.folder, d.platform, d.mtime_ns, d.size, d.inode, d.shown_digest, d.status)
        ):
            drafts.setdefault(folder, {})[platform] = SocialDraftRecord(*values)
        folders: dict[str, SocialFolderRecord] = {}
        for folder, entry_key, mtime_ns, published, count in self.conn.execute(
            select(f.folder, f.entry_key, f.mtime_ns, f.published, f.draft_count)
        ):
            own = drafts.get(folder, {})
            if len(own) == count:
                folders[folder] = SocialFolderRecord(entry_key, mtime_ns, published, own)
        return fingerprint, folders

    def update_social_index(
        self,
        fingerprint: str,
        changed: dict[str, SocialFolderRecord],
        removed: list[str],
    ) -> None:
        """Replace the rows of the `changed` folders, delete those of `removed`, and record
        the fingerprint; one transaction."""
        drafts, folders = schema.social_drafts, schema.social_folders
        with self.transaction():
            self.upsert(
                schema.social_index_meta, [{"key": "fingerprint", "value": fingerprint}], ["key"]
            )
            gone = [*changed, *removed]
            if gone:
                self.conn.execute(
                    delete(drafts).where(drafts.c.folder == _bind("f")), _rows("f", gone)
                )
            if removed:
                self.conn.execute(
                    delete(folders).where(folders.c.folder == _bind("f")), _rows("f", removed)
                )
            self.upsert(
                folders,
                [
                    {
                        "folder": folder,
                        "entry_key": r.entry_key,
                        "mtime_ns": r.mtime_ns,
                        "published": r.published,
                        "draft_count": len(r.drafts),
                    }
                    for folder, r in changed.items()
                ],
                ["folder"],
            )
            rows = [
                {"folder": folder, "platform": platform, **draft._asdict()}
                for folder, r in changed.items()
                for platform, draft in r.drafts.items()
            ]
            if rows:
                self.conn.execute(drafts.insert(), rows)

    def record_build(
        self, started: datetime, now: datetime, written: int, removed: int, errors: int
    ) -> None:
        self.conn.execute(
            schema.builds.insert().values(
                started=utc_text(started),
                finished=utc_text(datetime.now(UTC)),
                now=utc_text(now),
                written=written,
                removed=removed,
                errors=errors,
            )
        )


def _transaction(conn: Connection, exclusive: bool = True) -> Iterator[Connection]:
    if conn.dialect.name == "sqlite":  # one writer at a time whatever is asked
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")
        if exclusive:
            conn.execute(text(f"SELECT pg_advisory_xact_lock(:k, {STORE_KEY})"), {"k": WRITE_LOCK})
    try:
        yield conn
    except BaseException:
        conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


transaction = contextmanager(_transaction)


def set_durable(conn: Connection, durable: bool) -> None:
    """Whether the next commits on `conn` wait for the disk (the journal's durable claims)
    or not (outcomes, which may be lost: the row then stays `sending`)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
    else:
        conn.exec_driver_sql(f"SET synchronous_commit TO {'on' if durable else 'off'}")


def insert_for(dialect: str, table: Table) -> Any:
    """The dialect's own INSERT, which has ON CONFLICT."""
    return (sqlite if dialect == "sqlite" else postgresql).insert(table)


def upsert_statement(
    dialect: str, table: Table, keys: Sequence[str], update_columns: Iterable[str] | None
) -> Any:
    """INSERT … ON CONFLICT (keys) DO UPDATE / DO NOTHING, in the dialect's own words."""
    insert = insert_for(dialect, table)
    columns = (
        [c.name for c in table.columns if c.name not in keys]
        if update_columns is None
        else list(update_columns)
    )
    if not columns:
        return insert.on_conflict_do_nothing(index_elements=list(keys))
    return insert.on_conflict_do_update(
        index_elements=list(keys), set_={c: insert.excluded[c] for c in columns}
    )


def _bind(name: str) -> Any:
    return bindparam(name)


def _rows(name: str, values: Iterable[Any]) -> list[dict[str, Any]]:
    return [{name: v} for v in values]


def _key_values(conn: Connection, table: Table) -> dict[str, str]:
    return {k: v for k, v in conn.execute(select(table.c.key, table.c.value))}


def _reason(exc: BaseException) -> str:
    """The database's own words, without SQLAlchemy's advice links and statement dumps."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
