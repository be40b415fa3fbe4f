"""A disposable cache of parse results, so an unchanged `check` or `build` reads almost nothing.

One SQLite table, one row per file: its signature (size, modification and inode change time,
inode), the hash of its bytes, the output fingerprint it was parsed under
(`fingerprints.output_fingerprint`) and the pickled result. `load` reads the rows of the
current fingerprint in one query; `store` writes only the rows that changed, in one
transaction. A file is unchanged when its signature matches (no read at all), or else when
the hash of its bytes matches. It is only a cache: a missing, corrupt or locked file costs
time, never correctness, because every row is checked against the file it is for.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

from pipeline.private import DIR_MODE

_FORMAT = 4  # PRAGMA user_version: a file of another layout is emptied, not read
_SCHEMA = """
CREATE TABLE IF NOT EXISTS parsed (
    path TEXT PRIMARY KEY, signature TEXT NOT NULL, fingerprint TEXT NOT NULL,
    digest TEXT NOT NULL, result BLOB NOT NULL
)"""


class Cached(NamedTuple):  # a tuple: 5,000 are made on every build
    signature: str  # size, mtime, ctime and inode of the file when it was parsed
    digest: str  # of the file's bytes
    result: Any


class RenderCache:
    # Seconds to wait for another run's write (a cold build's 5,000 rows) before going without.
    timeout = 10.0

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self._present: frozenset[str] = frozenset()  # paths with a row, as loaded

    def _connect(self) -> sqlite3.Connection | None:
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            if db.execute("PRAGMA user_version").fetchone()[0] != _FORMAT:
                db.close()
                self._remove()  # another layout (an older krimppost's): start again
                db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                db.execute(f"PRAGMA user_version = {_FORMAT}")
            db.execute(_SCHEMA)
            return db
        except sqlite3.OperationalError:  # locked, or the disk is unwritable: go without
            return None
        except sqlite3.DatabaseError:  # not a database, or damaged: start again next run
            self._remove()
            return None
        except OSError:
            return None

    def _remove(self) -> None:
        # With the files an older layout kept beside it (its WAL and its pickled snapshot).
        for suffix in ("", "-journal", "-wal", "-shm", ".pickle"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def load(self) -> dict[str, Cached]:
        """Every row parsed under the current fingerprint. Rows of another fingerprint are
        read but not unpickled: the next `store` replaces or removes them."""
        if not self.path.exists():
            return {}
        db = self._connect()
        if db is None:
            return {}
        out: dict[str, Cached] = {}
        present = []
        try:
            rows = db.execute("SELECT path, signature, fingerprint, digest, result FROM parsed")
            for path, signature, fingerprint, digest, blob in rows:
                present.append(path)
                if fingerprint != self.fingerprint:
                    continue
                try:
                    out[path] = Cached(signature, digest, pickle.loads(blob))
                except Exception:  # a damaged row is a miss
                    continue
        except sqlite3.OperationalError:
            return {}
        except sqlite3.DatabaseError:
            self._remove()
            return {}
        finally:
            db.close()
        self._present = frozenset(present)
        return out

    def store(self, current: dict[str, Cached], changed: set[str]) -> None:
        """`current`: the entry of every file read this run; `changed`: those that differ
        from what `load` returned (every file, after a change of fingerprint). Nothing is
        written when nothing changed or vanished."""
        vanished = self._present - current.keys()
        if not changed and not vanished:
            return
        db = self._connect()
        if db is None:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?)",
                (
                    (
                        path,
                        current[path].signature,
                        self.fingerprint,
                        current[path].digest,
                        pickle.dumps(current[path].result, protocol=5),
                    )
                    for path in sorted(changed & current.keys())
                ),
            )
            db.executemany("DELETE FROM parsed WHERE path = ?", ((p,) for p in sorted(vanished)))
            db.execute("COMMIT")
        except sqlite3.Error:
            pass  # locked by another run, or the disk is full: the next run parses again
        finally:
            db.close()
