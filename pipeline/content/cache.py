"""A disposable cache of parse results, so an unchanged `check` or `build` reads almost nothing.

A file is unchanged when its size and modification time match (no read at all), or else
when the hash of its bytes matches. It is only a cache: a missing, corrupt or locked file
costs time, never correctness.
"""

from __future__ import annotations

import pickle
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_FORMAT = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS parsed (
    path TEXT PRIMARY KEY, signature TEXT NOT NULL, fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL, result BLOB NOT NULL
)"""


@dataclass(frozen=True)
class Cached:
    signature: str
    fingerprint: str
    digest: str
    blob: bytes

    def result(self) -> Any:
        return pickle.loads(self.blob)


class RenderCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            if db.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
                db.execute("DROP TABLE IF EXISTS parsed")
                db.execute(f"PRAGMA user_version = {_FORMAT}")
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

    def load(self) -> dict[str, Cached]:
        db = self._connect()
        if db is None:
            return {}
        try:
            rows = db.execute("SELECT path, signature, fingerprint, digest, result FROM parsed")
            return {row[0]: Cached(*row[1:]) for row in rows}
        except sqlite3.DatabaseError:
            self._discard()
            return {}
        finally:
            db.close()

    def store(
        self,
        fresh: dict[str, tuple[str, str, str, Any]],
        touched: dict[str, str],
        keep: set[str],
    ) -> None:
        """Save new results (path -> signature, fingerprint, digest, result), refresh the
        signatures of files whose bytes were unchanged, and forget vanished files."""
        db = self._connect()
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?)",
                [
                    (path, sig, fp, digest, pickle.dumps(result, protocol=5))
                    for path, (sig, fp, digest, result) in fresh.items()
                ],
            )
            db.executemany(
                "UPDATE parsed SET signature = ? WHERE path = ?",
                [(sig, path) for path, sig in touched.items()],
            )
            gone = [(p,) for (p,) in db.execute("SELECT path FROM parsed") if p not in keep]
            db.executemany("DELETE FROM parsed WHERE path = ?", gone)
            db.execute("COMMIT")
        except sqlite3.Error:
            pass
        finally:
            db.close()
