"""SQL straight at a project's state store, for tests that look under the hood: the same
on SQLite and PostgreSQL (the store the project's config and KRIMPPOST_STATE_URL name).
Statements use `:name` parameters (sqlalchemy.text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text

from pipeline.config import load_config
from pipeline.state import StateStore


def _open(root: Path) -> StateStore:
    return StateStore.of(load_config(root))


def query(root: Path, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of a SELECT, as tuples."""
    with _open(root) as state:
        return [tuple(row) for row in state.conn.execute(text(sql), params)]


def scalar(root: Path, sql: str, **params: Any) -> Any:
    with _open(root) as state:
        return state.conn.execute(text(sql), params).scalar()


def execute(root: Path, sql: str, **params: Any) -> int:
    """Run a write (in a transaction of its own); the number of rows it touched."""
    with _open(root) as state, state.transaction():
        return state.conn.execute(text(sql), params).rowcount


def rows(root: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """`query` with `?` placeholders, filled in order (for short assertions)."""
    parts = sql.split("?")
    named = parts[0] + "".join(f":p{n}{part}" for n, part in enumerate(parts[1:]))
    return query(root, named, **{f"p{n}": value for n, value in enumerate(args)})
