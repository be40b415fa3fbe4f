"""The schema of the state store: a legacy SQLite store upgraded in place ends where a new
store made from schema.py begins, and a store at the latest version is left as it is.

pipeline/state/migrations.py keeps two things that must agree: the steps that upgrade an
existing store, and the declarations in schema.py a new store is made from. These tests
hold them together.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from conftest import Project
from pipeline.config import load_config
from pipeline.state import SQLITE_SCRIPTS, IssueStore, StateStore
from pipeline.state.migrations import LATEST

ITEM_ROWS = [
    (
        "wrb-x",
        "content/wrb/x.md",
        "tag:h,2026-11-01:wrb-x",
        "2026-11-01T00:00:00+00:00",
        "hash-x",
        "2026-11-02T00:00:00+00:00",
        1,
        None,
        '{"title": "X"}',
    ),
    (
        "wrb-y",
        "content/wrb/y.md",
        "tag:h,2026-11-03:wrb-y",
        "2026-11-03T00:00:00+00:00",
        "hash-y",
        "2026-11-03T00:00:00+00:00",
        0,
        "2026-11-20T00:00:00+00:00",
        '{"title": "Y"}',
    ),
]
OUTPUT_ROWS = [("site/index.html", "key-1", "digest-1")]


def legacy_store(path: Path, version: int) -> sqlite3.Connection:
    """A SQLite store as krimppost left it at schema `version` (1 to 7), by hand: the
    scripts of that time, each with the user_version it set."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(SQLITE_SCRIPTS[:version]):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
    return db


def shape(path: Path) -> dict[str, dict[str, Any]]:
    """Per table what the two ways to a store must agree on, as SQLAlchemy reflects it."""
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            tables = {}
            for table in found.get_table_names():
                primary_key = found.get_pk_constraint(table)["constrained_columns"]
                tables[table] = {
                    # SQLite reports a primary-key column of a rowid table as nullable unless
                    # it says NOT NULL, which schema.py's DDL does and the old scripts did
                    # not: the key itself is compared on its own, just below.
                    "columns": {
                        c["name"]: c["nullable"] and c["name"] not in primary_key
                        for c in found.get_columns(table)
                    },
                    "primary key": primary_key,
                    "indexes": sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in found.get_indexes(table)
                    ),
                    "unique": sorted(
                        tuple(u["column_names"]) for u in found.get_unique_constraints(table)
                    ),
                    # PRAGMA, not get_foreign_keys: the reflection misses the ON DELETE of an
                    # inline REFERENCES, which the old scripts use.
                    "foreign keys": sorted(
                        (row[3], row[2], row[4], row[6])  # from, table, to, on delete
                        for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({table})")
                    ),
                }
            return tables
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def new_shape(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("new") / "state.sqlite"
    with StateStore(path) as state:
        assert state.schema_version == LATEST
    return shape(path)


@pytest.mark.parametrize("version", range(1, len(SQLITE_SCRIPTS) + 1))
def test_a_legacy_sqlite_store_upgrades_to_the_schema_of_a_new_one(
    tmp_path: Path, version: int, new_shape: dict[str, dict[str, Any]]
) -> None:
    path = tmp_path / "state.sqlite"
    db = legacy_store(path, version)
    db.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ITEM_ROWS)
    db.executemany("INSERT INTO outputs VALUES (?, ?, ?)", OUTPUT_ROWS)
    db.close()
    with StateStore(path) as state:
        assert state.schema_version == LATEST
        items = state.items()
        last_good = {item_id: state.last_good(item_id) for item_id in items}
        outputs = state.outputs()
    upgraded = shape(path)
    assert sorted(upgraded) == sorted(new_shape)
    for table, expected in new_shape.items():
        assert upgraded[table] == expected, table
    # The rows it had are there as they were.
    assert {(r.id, r.source, r.entry_id, r.content_hash, r.live) for r in items.values()} == {
        (row[0], row[1], row[2], row[4], bool(row[6])) for row in ITEM_ROWS
    }
    assert items["wrb-y"].first_published.isoformat() == ITEM_ROWS[1][3]
    assert last_good == {row[0]: row[8] for row in ITEM_ROWS}
    assert outputs == {path: (key, digest) for path, key, digest in OUTPUT_ROWS}


def test_an_issued_text_hash_in_a_snapshot_of_version_6_is_found_after_the_upgrade(
    tmp_path: Path,
) -> None:
    """Version 8 moved an issued item's text hash out of the snapshot's JSON (which only
    SQLite's json_extract read) into a column; what was issued before must still count, or
    a copy of an issued text would be mailed again."""
    path = tmp_path / "state.sqlite"
    db = legacy_store(path, 6)
    db.execute(
        "INSERT INTO issues (number, subject, created_at, agenda, tracks)"
        " VALUES (1, 'Nieuwsbrief', '2026-03-01T09:00:00+00:00', '[]', '[]')"
    )
    snapshots = [
        ("tag:h,2026-02-01:wrb-a", "wrb-a", {"title": "A", "content_hash": "hash-a"}),
        ("tag:h,2026-02-02:wrb-b", "wrb-b", {"title": "B"}),  # made before hashes were kept
    ]
    for position, (entry_id, item_id, snapshot) in enumerate(snapshots):
        db.execute(
            "INSERT INTO issue_items (entry_id, item_id, issue, position, snapshot)"
            " VALUES (?, ?, 1, ?, ?)",
            (entry_id, item_id, position, json.dumps(snapshot)),
        )
    db.close()
    with StateStore(path) as state:
        assert state.schema_version == LATEST
        issues = IssueStore(state)
        assert issues.issued_content_hashes() == {"hash-a"}
        assert issues.issued_entry_ids() == {entry_id for entry_id, _, _ in snapshots}
        record = issues.get(1)
    assert record is not None
    assert [item_id for item_id, _ in record.items] == ["wrb-a", "wrb-b"]


def _count_version_writes(state: StateStore) -> None:
    """A trigger that counts every write of the schema version's row."""
    run = state.conn.exec_driver_sql
    with state.transaction():
        run("CREATE TABLE version_writes (n INTEGER)")
        run("INSERT INTO version_writes VALUES (0)")
        if state.dialect == "sqlite":
            for event in ("INSERT", "UPDATE", "DELETE"):
                run(
                    f"CREATE TRIGGER version_{event} AFTER {event} ON krimppost_schema"
                    " BEGIN UPDATE version_writes SET n = n + 1; END"
                )
        else:
            run(
                "CREATE FUNCTION count_version_write() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN UPDATE version_writes SET n = n + 1; RETURN NULL; END $$"
            )
            run(
                "CREATE TRIGGER version_writes AFTER INSERT OR UPDATE OR DELETE"
                " ON krimppost_schema FOR EACH ROW EXECUTE FUNCTION count_version_write()"
            )


def _schema_state(state: StateStore) -> Any:
    """What any change of the schema changes: SQLite's schema cookie, and on PostgreSQL
    the catalog rows (new transaction ids) of the relations in the store's schema."""
    if state.dialect == "sqlite":
        return state.conn.exec_driver_sql("PRAGMA schema_version").scalar_one()
    rows = state.conn.execute(
        text(
            "SELECT relname, xmin::text FROM pg_class"
            " WHERE relnamespace = current_schema()::regnamespace ORDER BY relname"
        )
    )
    return [tuple(row) for row in rows]


def test_a_new_store_is_at_the_latest_version_and_reopening_migrates_nothing(
    project: Project, state_backend: str
) -> None:
    config = load_config(project.root)
    with StateStore.of(config) as state:
        assert state.dialect == state_backend
        assert state.schema_version == LATEST
        _count_version_writes(state)
        before = _schema_state(state)
    with StateStore.of(config) as state:
        assert state.schema_version == LATEST
        assert state.conn.execute(text("SELECT version FROM krimppost_schema")).all() == [(LATEST,)]
        assert state.conn.execute(text("SELECT n FROM version_writes")).scalar_one() == 0
        assert _schema_state(state) == before
        if state_backend == "sqlite":  # what an older krimppost reads
            assert state.conn.exec_driver_sql("PRAGMA user_version").scalar_one() == LATEST
