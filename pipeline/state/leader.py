"""One active instance of a service per store, whatever the number of hosts.

On PostgreSQL a session-level advisory lock, held on a connection of its own for as long
as the service is active: when the process dies its connection closes and the database
frees the lock at once, so a waiting instance on another host takes over at its next try.
On SQLite the store is on one machine and the service's lock file does this already
(pipeline/schedule.py), so the lock is always granted here.

The holder also writes a row of `services` (host, pid, since, heartbeat), for `status`.
"""

from __future__ import annotations

import os
import socket
import zlib
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import Connection, select, text

from pipeline.state import schema
from pipeline.state.address import StoreAddress
from pipeline.state.store import STORE_KEY, make_engine, transaction, upsert_statement, utc_text

# How often a standby tries to become the active instance, and the active one checks that
# it still is: a standby takes over within this after the active one dies.
POLL = 5.0


class Holder(NamedTuple):
    host: str
    pid: int
    since: datetime
    heartbeat: datetime


def _key(name: str) -> int:
    # A stable number per service name, beside the store's own lock kinds (an int4).
    return 0x6B71_0000 + zlib.crc32(name.encode()) % 0xFFFF


class Leadership:
    def __init__(self, address: StoreAddress, name: str = "scheduler") -> None:
        self.name = name
        self.engine = make_engine(address)
        self.conn: Connection | None = None
        self.is_sqlite = address.is_sqlite

    def try_acquire(self) -> bool:
        """Become the active instance, if no other is; never waits."""
        if self.conn is None:
            self.conn = self.engine.connect()
        if not self.is_sqlite:
            got = self.conn.execute(
                text(f"SELECT pg_try_advisory_lock(:k, {STORE_KEY})"), {"k": _key(self.name)}
            ).scalar()
            if not got:
                return False
        self.beat(since=True)
        return True

    def holds(self) -> bool:
        """Whether this instance still is the active one: its connection (and with it the
        lock) is alive. Writes the heartbeat on the way."""
        if self.conn is None:
            return False
        try:
            self.beat()
        except Exception:  # the connection is gone: so is the lock
            return False
        return True

    def beat(self, since: bool = False) -> None:
        assert self.conn is not None
        now = utc_text(datetime.now(UTC))
        row = {
            "name": self.name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": now,
            "heartbeat": now,
        }
        keep = ("host", "pid", "since", "heartbeat") if since else ("heartbeat",)
        with transaction(self.conn, exclusive=False):
            self.conn.execute(
                upsert_statement(self.conn.dialect.name, schema.services, ["name"], keep), [row]
            )

    def release(self) -> None:
        if self.conn is not None:
            try:
                if not self.is_sqlite:
                    self.conn.execute(
                        text(f"SELECT pg_advisory_unlock(:k, {STORE_KEY})"), {"k": _key(self.name)}
                    )
            finally:
                self.conn.close()
                self.conn = None
        self.engine.dispose()


def holder(conn: Connection, name: str = "scheduler") -> Holder | None:
    """Who last held the service, by its own record (it may have died since: see the
    heartbeat)."""
    t = schema.services
    row = conn.execute(
        select(t.c.host, t.c.pid, t.c.since, t.c.heartbeat).where(t.c.name == name)
    ).first()
    if row is None:
        return None
    return Holder(
        row.host, row.pid, datetime.fromisoformat(row.since), datetime.fromisoformat(row.heartbeat)
    )
