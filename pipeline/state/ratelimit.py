"""Rate limits kept in the state store, so that every `serve` process of a store (two
hosts behind one address) counts the same requests: a sliding window of the moments of
the last requests per key, on the database's clock."""

from __future__ import annotations

import math

from sqlalchemy import Connection, delete, func, select

from pipeline.state import schema
from pipeline.state.deliveries import db_now
from pipeline.state.store import transaction

_hits = schema.rate_hits


def allow(conn: Connection, key: str, limit: int, window: float) -> tuple[bool, int]:
    """Count one request of `key` if fewer than `limit` were counted in the last `window`
    seconds: (allowed, seconds until the next one would be). One write transaction, so two
    processes never both take the last place."""
    with transaction(conn):
        now = float(conn.execute(select(db_now(conn))).scalar_one())
        # Old rows of every key go too: the table holds one window's worth at most.
        conn.execute(delete(_hits).where(_hits.c.at <= now - window))
        count, oldest = conn.execute(
            select(func.count(), func.min(_hits.c.at)).where(_hits.c.key == key)
        ).one()
        if count < limit:
            conn.execute(_hits.insert().values(key=key, at=now))
            return True, 0
        return False, max(1, math.ceil(oldest + window - now))
