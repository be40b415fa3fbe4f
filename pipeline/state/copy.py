"""Copy a whole state store into an empty one: SQLite to PostgreSQL and back
(`krimppost state copy`).

The source is read in one snapshot and the target written in one transaction, a batch of
rows at a time, so memory does not grow with a table and a failure leaves the target as
empty as it was. Before that transaction commits, every table is read back from the target
and compared with the source: its row count and a digest of its rows in primary-key order,
each value written the same way whichever database it came from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import KrimppostError, Problem
from pipeline.state import schema
from pipeline.state.store import StateStore, _reason

BATCH = 1000  # rows per fetch from the source and per INSERT into the target

# The table of APScheduler's SQLAlchemyJobStore (pipeline/schedule.py JOBS_TABLE), not in
# schema.metadata: the scheduler makes it itself when it first runs. Copied when present,
# so the schedule survives the move.
JOBS_TABLE = "apscheduler_jobs"


def _jobs_table() -> Table:
    # APScheduler's own layout (apscheduler.jobstores.sqlalchemy, with its index): the
    # scheduler finds it made and uses it as its own.
    return Table(
        JOBS_TABLE,
        MetaData(),
        Column("id", String(191), primary_key=True),
        Column("next_run_time", Float(25), index=True),
        Column("job_state", LargeBinary, nullable=False),
    )


@dataclass(frozen=True)
class TableCopy:
    name: str
    rows: int
    digest: str  # sha256 hex of the rows in primary-key order (`_digest`)

    def line(self, width: int = 0) -> str:
        unit = "rij" if self.rows == 1 else "rijen"
        return f"{self.name:<{width}}  {self.rows:>8} {unit:<5}  {self.digest[:12]}"


@dataclass
class CopyReport:
    source: str  # the stores' `address.display`
    target: str
    tables: list[TableCopy] = field(default_factory=list)

    def lines(self) -> list[str]:
        width = max((len(t.name) for t in self.tables), default=0)
        return [t.line(width) for t in self.tables]

    def summary(self) -> str:
        total = sum(t.rows for t in self.tables)
        return (
            f"{len(self.tables)} tabellen, {_count(total)} gekopieerd van {self.source} naar "
            f"{self.target}; aantallen en digests gelijk"
        )


def _count(rows: int) -> str:
    return f"{rows} rij" if rows == 1 else f"{rows} rijen"


def copy_store(source: StateStore, target: StateStore) -> CopyReport:
    """Copy every table of `source` into `target`, which must hold no rows yet; checked by
    row counts and digests before the target's transaction commits. KrimppostError when
    the target is not empty, a row does not fit, or the copy differs from the source."""
    where = target.address.display
    if source.address.url == target.address.url:
        raise KrimppostError([Problem(where, None, "is dezelfde state store als de bron")])
    report = CopyReport(source.address.display, where)
    table = ""
    try:
        with _snapshot(source.conn), target.transaction():
            _refuse_unless_empty(target, _tables(target))
            tables = _tables(source)
            # The scheduler makes its table when it first runs, no migration does.
            if tables[-1].name == JOBS_TABLE and not target.has_table(JOBS_TABLE):
                tables[-1].create(target.conn)
            for t in tables:
                table = t.name
                report.tables.append(_copy_table(source.conn, target.conn, t))
            table = ""
            for t in tables:
                _continue_ids(source.conn, target.conn, t)
            for t, copied in zip(tables, report.tables, strict=True):
                table = t.name
                rows, digest = _digest(t, _ordered_rows(target.conn, t))
                if (rows, digest) != (copied.rows, copied.digest):
                    raise KrimppostError(
                        [
                            Problem(
                                where,
                                None,
                                f"tabel {t.name} wijkt na het kopiëren af van de bron "
                                f"({_count(rows)}, digest {digest[:12]}; de bron: "
                                f"{_count(copied.rows)}, digest {copied.digest[:12]}); "
                                "er is niets gekopieerd",
                            )
                        ]
                    )
    except SQLAlchemyError as exc:
        at = f" (tabel {table})" if table else ""
        raise KrimppostError(
            [
                Problem(
                    where,
                    None,
                    f"kopiëren mislukt{at}: {_reason(exc)}; er is niets gekopieerd",
                )
            ]
        ) from None
    return report


def store_digests(store: StateStore) -> list[TableCopy]:
    """The row count and digest of every table a copy carries, read in one snapshot."""
    with _snapshot(store.conn):
        return [
            TableCopy(t.name, *_digest(t, _ordered_rows(store.conn, t))) for t in _tables(store)
        ]


def _tables(store: StateStore) -> list[Table]:
    """The tables a copy carries, parents before children: every table of the schema but
    its version (the target has its own), and the scheduler's jobs once there are any."""
    tables = [t for t in schema.metadata.sorted_tables if t is not schema.version_table]
    if store.has_table(JOBS_TABLE):
        tables.append(_jobs_table())
    return tables


def _refuse_unless_empty(target: StateStore, tables: Iterable[Table]) -> None:
    full = [
        t.name for t in tables if target.conn.execute(select(1).select_from(t).limit(1)).first()
    ]
    if full:
        raise KrimppostError(
            [
                Problem(
                    target.address.display,
                    None,
                    "bevat al gegevens (tabel " + ", ".join(full) + "); kopieer alleen naar "
                    "een lege state store",
                )
            ]
        )


@contextmanager
def _snapshot(conn: Connection) -> Iterator[None]:
    """One read transaction on `conn`: every table is read as it was at one moment, also
    while a sender or the web app writes (the build lock keeps out only builds)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # deferred: a read snapshot in WAL mode, no write lock
    else:
        conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.exec_driver_sql("ROLLBACK")


def _order(conn: Connection, table: Table) -> list[Any]:
    """The primary key (every column for a table without one), text compared by its bytes
    on both databases: SQLite's BINARY, PostgreSQL's "C" (its default collation may be a
    language's, which sorts differently)."""
    columns = list(table.primary_key.columns) or list(table.columns)
    if conn.dialect.name == "sqlite":
        return columns
    return [c.collate("C") if isinstance(c.type, String) else c for c in columns]


def _ordered_rows(conn: Connection, table: Table) -> Iterator[Any]:
    # yield_per streams: a server-side cursor on PostgreSQL, fetchmany on SQLite.
    statement = select(*table.columns).order_by(*_order(conn, table))
    yield from conn.execute(statement.execution_options(yield_per=BATCH))


def _copy_table(source: Connection, target: Connection, table: Table) -> TableCopy:
    hasher = _Hasher(table)
    names = [c.name for c in table.columns]
    batch: list[dict[str, Any]] = []
    for row in _ordered_rows(source, table):
        hasher.add(row)
        batch.append(dict(zip(names, row, strict=True)))
        if len(batch) >= BATCH:
            _insert(target, table, batch)
            batch = []
    if batch:
        _insert(target, table, batch)
    return TableCopy(table.name, hasher.rows, hasher.hexdigest())


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "postgresql":
        # With RETURNING, SQLAlchemy sends the batch as one INSERT … VALUES of many rows
        # ("insertmanyvalues", compiled once); without it psycopg sends a statement per row.
        first = next(iter(table.columns))
        conn.execute(table.insert().returning(first), rows).close()
    else:  # sqlite3's executemany is already fast
        conn.execute(table.insert(), rows)


def _digest(table: Table, rows: Iterable[Any]) -> tuple[int, str]:
    hasher = _Hasher(table)
    for row in rows:
        hasher.add(row)
    return hasher.rows, hasher.hexdigest()


class _Hasher:
    """sha256 over rows, each value written with its kind and length, so that no two
    different rows give the same bytes and equal values from either database do."""

    def __init__(self, table: Table) -> None:
        # A REAL column may hand back an int on SQLite (a value written as one).
        self.floats = [isinstance(c.type, Float) for c in table.columns]
        self.sha = hashlib.sha256()
        self.rows = 0

    def add(self, row: Iterable[Any]) -> None:
        parts = [_canonical(v, f) for v, f in zip(row, self.floats, strict=True)]
        self.sha.update(b"".join(parts) + b"\n")
        self.rows += 1

    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def _canonical(value: Any, is_float: bool) -> bytes:
    if value is None:
        return b"n;"
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int) and not is_float:
        data, kind = str(value).encode(), b"i"
    elif isinstance(value, int | float):
        data, kind = repr(float(value)).encode(), b"f"
    elif isinstance(value, str):
        data, kind = value.encode("utf-8"), b"s"
    elif isinstance(value, bytes | bytearray | memoryview):
        data, kind = bytes(value).hex().encode(), b"b"
    else:
        raise TypeError(f"unexpected value of type {type(value).__name__} in the state store")
    return kind + str(len(data)).encode() + b":" + data


# ids that continue after the copy -------------------------------------------------------


def _serial_column(table: Table) -> Column[Any] | None:
    """The column whose ids the database hands out (an integer single-column primary key
    with autoincrement: subscribers.id, builds.id, send_runs.id)."""
    column = table.autoincrement_column
    return column if column is not None and isinstance(column.type, Integer) else None


def _continue_ids(source: Connection, target: Connection, table: Table) -> None:
    """Make the target hand out ids above the copied ones, and above every id the source
    ever handed out: a subscriber's id is not reused, also after a removal before the copy
    (pipeline/state/schema.py). Explicit ids in an INSERT leave a PostgreSQL sequence
    where it was, so it would give 1 again."""
    column = _serial_column(table)
    if column is None:
        return
    high = max(_handed_out(source, table, column), _max_id(target, table, column))
    if target.dialect.name == "postgresql":
        # setval(s, n, true): the next id is n + 1; (s, 1, false): it is 1.
        target.execute(
            text("SELECT setval(pg_get_serial_sequence(:t, :c), :n, :called)"),
            {"t": table.name, "c": column.name, "n": max(high, 1), "called": high > 0},
        )
    elif table.dialect_options["sqlite"]["autoincrement"] and high:
        # SQLite gives a rowid table max + 1 by itself; an AUTOINCREMENT one keeps its
        # high-water mark in sqlite_sequence, which the inserts set to the largest copied id.
        sequence = {"t": table.name, "n": high}
        if not target.execute(
            text("UPDATE sqlite_sequence SET seq = MAX(seq, :n) WHERE name = :t"), sequence
        ).rowcount:
            target.execute(
                text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)"), sequence
            )


def _max_id(conn: Connection, table: Table, column: Column[Any]) -> int:
    return int(conn.execute(select(func.coalesce(func.max(column), 0))).scalar_one())


def _handed_out(conn: Connection, table: Table, column: Column[Any]) -> int:
    """The highest id the source's database has handed out for `column` (0: none, or not
    known)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence(:t, :c)::regclass)"),
            {"t": table.name, "c": column.name},
        ).scalar()
    elif table.dialect_options["sqlite"]["autoincrement"]:
        value = conn.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}
        ).scalar()
    else:
        value = None
    return int(value or 0)
