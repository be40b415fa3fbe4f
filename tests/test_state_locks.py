"""Opening the state store must not drop the SQLite locks this process already holds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from pipeline.state import StateStore

OPEN_AND_CLOSE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("SELECT COUNT(*) FROM items").fetchone()
db.close()
"""


def test_opening_the_store_keeps_the_locks_of_another_connection(tmp_path: Path) -> None:
    """The `run` service keeps a connection to the store for its job store while it opens
    the state store, and job processes open and close theirs. Closing any descriptor of
    the file drops every POSIX lock of the process, SQLite's too: another process closing
    its connection then believes it is the last one and removes the write-ahead log under
    the service's open connection ('database disk image is malformed')."""
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    service = sqlite3.connect(path, isolation_level=None)  # in WAL mode, as the store set it
    service.execute("SELECT COUNT(*) FROM items").fetchone()
    wal = path.with_name(path.name + "-wal")
    assert wal.exists()
    StateStore(path).close()  # what the service does after every build
    subprocess.run([sys.executable, "-c", OPEN_AND_CLOSE, str(path)], check=True)
    assert wal.exists(), "the other process thought it was the last connection"
    service.close()
