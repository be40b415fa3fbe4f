"""The statements over what came back after sending (mail_events), for
pipeline/delivery/returns.py, which holds what they mean. Methods that write expect to run
inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, exists, func, select, update

from pipeline.state import schema

_e = schema.mail_events
_d = schema.deliveries


class ReturnRows:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def seen(self, message: str, subscriber: int) -> bool:
        """Whether this returned mail was already counted for this subscriber."""
        query = select(exists().where(_e.c.message == message, _e.c.subscriber == subscriber))
        return bool(self.conn.execute(query).scalar())

    def add(self, **values: Any) -> None:
        self.conn.execute(_e.insert().values(**values))

    def count(self, subscriber: int, kind: str, since: str) -> int:
        query = select(func.count()).where(
            _e.c.subscriber == subscriber, _e.c.kind == kind, _e.c.at >= since
        )
        return int(self.conn.execute(query).scalar_one())

    def delivery_exists(self, issue: int, subscriber: int) -> bool:
        query = select(exists().where(_d.c.issue == issue, _d.c.subscriber == subscriber))
        return bool(self.conn.execute(query).scalar())

    def by_message_id(self, message_id: str) -> tuple[int, int] | None:
        """(issue, subscriber) of the delivery that sent this Message-ID."""
        row = self.conn.execute(
            select(_d.c.issue, _d.c.subscriber).where(_d.c.message_id == message_id).limit(1)
        ).first()
        return (int(row[0]), int(row[1])) if row else None

    def note_on_delivery(self, issue: int, subscriber: int, status: str, reply: str) -> None:
        """Write a later outcome into the delivery log's row of that delivery."""
        values: dict[str, Any] = {"reply": reply}
        if status:
            values["status"] = status
        self.conn.execute(
            update(_d).where(_d.c.issue == issue, _d.c.subscriber == subscriber).values(**values)
        )

    def complaint_rate(self) -> tuple[int, int, int] | None:
        """(issue, complaints about it, messages of it sent) for the last issue sent."""
        last = self.conn.execute(
            select(func.max(_d.c.issue)).where(_d.c.status.in_(("sent", "bounced")))
        ).scalar()
        if last is None:
            return None
        sent = self.conn.execute(
            select(func.count()).where(
                _d.c.issue == last, _d.c.status.in_(("sent", "bounced", "uncertain"))
            )
        ).scalar_one()
        # a complaint after the subscriber was erased is gone with its row; the suppression
        # entry remains, and so the rate can only be understated by erasures
        complaints = self.conn.execute(
            select(func.count(func.distinct(_e.c.subscriber))).where(
                _e.c.issue == last, _e.c.kind == "complaint"
            )
        ).scalar_one()
        return int(last), int(complaints), int(sent)
