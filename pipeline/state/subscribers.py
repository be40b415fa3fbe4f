"""The statements over subscribers, the suppression list and delivery_meta, for
pipeline/delivery/subscribers.py (which holds what they mean: consent, double opt-in,
imports). Methods that write expect to run inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, or_, select, update

from pipeline.state import schema
from pipeline.state.store import upsert_statement

_s = schema.subscribers
_sup = schema.suppressions
_meta = schema.delivery_meta
_ev = schema.mail_events

# The columns of a subscriber as delivery/subscribers.py reads them, in this order.
COLUMNS = (
    _s.c.id,
    _s.c.email,
    _s.c.status,
    _s.c.tracks,
    _s.c.token,
    _s.c.source,
    _s.c.consented_at,
    _s.c.consent_version,
    _s.c.confirmed_at,
    _s.c.status_changed_at,
    _s.c.status_reason,
    _s.c.paused_until,
)
# Set together whenever a request is forgotten or has been answered.
NO_REQUEST: dict[str, Any] = {
    "confirm_token": None,
    "requested_at": None,
    "requested_tracks": None,
    "requested_version": None,
}
# Set together when a change of address is confirmed, forgotten or withdrawn.
NO_ADDRESS_CHANGE: dict[str, Any] = {
    "new_email": None,
    "new_email_token": None,
    "new_email_requested_at": None,
}


class SubscriberRows:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # delivery_meta: secrets kept in the store ----------------------------------------------

    def meta(self, key: str) -> str | None:
        return self.conn.execute(select(_meta.c.value).where(_meta.c.key == key)).scalar()

    def add_meta(self, key: str, value: str) -> None:
        """Store the value unless the key has one (the first writer wins)."""
        self.conn.execute(
            upsert_statement(self.conn.dialect.name, _meta, ["key"], ()),
            [{"key": key, "value": value}],
        )

    # the suppression list ----------------------------------------------------------------

    def suppressed(self, digest: str) -> bool:
        return bool(self.conn.execute(select(exists().where(_sup.c.digest == digest))).scalar())

    def suppress(self, digest: str, at: str) -> None:
        self.conn.execute(
            upsert_statement(self.conn.dialect.name, _sup, ["digest"], ()),
            [{"digest": digest, "created_at": at}],
        )

    def unsuppress(self, digest: str) -> None:
        self.conn.execute(delete(_sup).where(_sup.c.digest == digest))

    def suppressed_count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(_sup)).scalar_one())

    # subscribers ----------------------------------------------------------------------------

    def by(self, column: str, value: object) -> tuple[Any, ...] | None:
        """The subscriber whose `column` (email_key, token, id) is `value`."""
        row = self.conn.execute(select(*COLUMNS).where(_s.c[column] == value)).first()
        return tuple(row) if row else None

    def page(self, status: str | None, after: int, limit: int) -> list[tuple[Any, ...]]:
        query = select(*COLUMNS).where(_s.c.id > after).order_by(_s.c.id).limit(limit)
        if status:
            query = query.where(_s.c.status == status)
        return [tuple(row) for row in self.conn.execute(query)]

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute(select(_s.c.status, func.count()).group_by(_s.c.status))
        return {status: int(n) for status, n in rows}

    def id_of(self, email_key: str) -> int | None:
        return self.conn.execute(select(_s.c.id).where(_s.c.email_key == email_key)).scalar()

    def insert(self, **values: Any) -> int:
        return int(self.conn.execute(_s.insert().values(**values).returning(_s.c.id)).scalar_one())

    def change(self, sid: int, **values: Any) -> None:
        self.conn.execute(update(_s).where(_s.c.id == sid).values(**values))

    def change_by_key(self, email_key: str, **values: Any) -> None:
        self.conn.execute(update(_s).where(_s.c.email_key == email_key).values(**values))

    def delete(self, sid: int) -> None:
        # its delivery log goes with it (ON DELETE CASCADE)
        self.conn.execute(delete(_s).where(_s.c.id == sid))

    def requested_since(self, since: str, box: str, local: str) -> list[str]:
        """Keys of the mailbox `box` (and of its `local+tag` variants) that asked for a
        confirmation mail after `since`. Every `local+…` key sorts between `local+` and
        `local,` (',' follows '+'): a range on the email_key index, not a scan."""
        rows = self.conn.execute(
            select(_s.c.email_key).where(
                _s.c.requested_at > since,
                or_(
                    _s.c.email_key == box,
                    and_(_s.c.email_key >= local + "+", _s.c.email_key < local + ","),
                ),
            )
        )
        return [key for (key,) in rows]

    def request(self, token: str) -> tuple[Any, ...] | None:
        """(id, status, requested_at, requested_tracks, requested_version) of a token."""
        row = self.conn.execute(
            select(
                _s.c.id,
                _s.c.status,
                _s.c.requested_at,
                _s.c.requested_tracks,
                _s.c.requested_version,
            ).where(_s.c.confirm_token == token)
        ).first()
        return tuple(row) if row else None

    def withdraw_request(self, token: str) -> None:
        """Forget a request: a subscriber made by it goes, an existing one keeps its state."""
        self.conn.execute(
            delete(_s).where(
                _s.c.confirm_token == token,
                _s.c.status == "pending",
                _s.c.confirmed_at.is_(None),
                _s.c.requested_at == _s.c.consented_at,
            )
        )
        self.conn.execute(update(_s).where(_s.c.confirm_token == token).values(**NO_REQUEST))

    def purge_requests(self, cutoff: str) -> int:
        """Forget requests made before `cutoff`; returns the pending subscribers deleted."""
        deleted = self.conn.execute(
            delete(_s).where(
                _s.c.status == "pending",
                _s.c.confirmed_at.is_(None),
                _s.c.requested_at.is_not(None),
                _s.c.requested_at < cutoff,
            )
        ).rowcount
        self.conn.execute(
            update(_s)
            .where(_s.c.requested_at.is_not(None), _s.c.requested_at < cutoff)
            .values(**NO_REQUEST)
        )
        return int(deleted)

    # the preference page: change of address, the data download --------------------------

    def address_change(self, sid: int) -> tuple[Any, ...] | None:
        """(new_email, new_email_token, new_email_requested_at) of a subscriber."""
        row = self.conn.execute(
            select(_s.c.new_email, _s.c.new_email_token, _s.c.new_email_requested_at).where(
                _s.c.id == sid
            )
        ).first()
        return tuple(row) if row else None

    def by_address_token(self, token: str) -> tuple[Any, ...] | None:
        """(id, new_email, new_email_requested_at) of a change-of-address token."""
        row = self.conn.execute(
            select(_s.c.id, _s.c.new_email, _s.c.new_email_requested_at).where(
                _s.c.new_email_token == token
            )
        ).first()
        return tuple(row) if row else None

    def forget_address_changes(self, cutoff: str) -> None:
        """Forget changes of address asked for before `cutoff` and never confirmed."""
        self.conn.execute(
            update(_s)
            .where(_s.c.new_email_requested_at.is_not(None), _s.c.new_email_requested_at < cutoff)
            .values(**NO_ADDRESS_CHANGE)
        )

    def mail_events(self, sid: int) -> list[tuple[Any, ...]]:
        """(issue, at, kind, code, decision, message) of the bounces and complaints of a
        subscriber, oldest first."""
        rows = self.conn.execute(
            select(_ev.c.issue, _ev.c.at, _ev.c.kind, _ev.c.code, _ev.c.decision, _ev.c.message)
            .where(_ev.c.subscriber == sid)
            .order_by(_ev.c.at, _ev.c.id)
        )
        return [tuple(row) for row in rows]
