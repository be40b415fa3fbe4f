"""A disposable cache of parse results keyed by file content, so an unchanged `check` is fast.

It is only a cache: a missing, corrupt or locked file costs time, never correctness.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any

_SCHEMA = "CREATE TABLE IF NOT EXISTS parsed (path TEXT PRIMARY KEY, key TEXT NOT NULL, result BLOB NOT NULL)"


class RenderCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            return db
        except sqlite3.DatabaseError:
            self._discard()
            return None
        except OSError:
            return None

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)

    def load(self, keys: dict[str, str]) -> dict[str, Any]:
        """Results whose stored key matches the current one."""
        db = self._connect()
        if db is None:
            return {}
        out: dict[str, Any] = {}
        try:
            for path, key, blob in db.execute("SELECT path, key, result FROM parsed"):
                if keys.get(path) == key:
                    try:
                        out[path] = pickle.loads(blob)
                    except Exception:
                        continue
        except sqlite3.DatabaseError:
            db.close()
            self._discard()
            return {}
        db.close()
        return out

    def store(self, entries: dict[str, tuple[str, Any]], keep: set[str]) -> None:
        """Save new results and forget files that no longer exist; one transaction."""
        db = self._connect()
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO parsed (path, key, result) VALUES (?, ?, ?)",
                [
                    (path, key, pickle.dumps(result, protocol=5))
                    for path, (key, result) in entries.items()
                ],
            )
            gone = [(p,) for (p,) in db.execute("SELECT path FROM parsed") if p not in keep]
            db.executemany("DELETE FROM parsed WHERE path = ?", gone)
            db.execute("COMMIT")
        except sqlite3.Error:
            pass
        finally:
            db.close()
