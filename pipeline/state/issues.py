"""Newsletter issues in the state store: allocation, approval, and what was issued."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select, update

from pipeline.errors import UsageError
from pipeline.state import schema
from pipeline.state.store import StateStore, from_utc_text, utc_text

_issues = schema.issues
_items = schema.issue_items
_runs = schema.send_runs


@dataclass(frozen=True)
class IssueRecord:
    number: int
    subject: str
    created_at: datetime
    intro_hash: str | None
    intro: str | None  # JSON {"html": ..., "text": ...}
    agenda: str  # JSON list of item snapshots
    tracks: str  # JSON list of track ids with items in this issue
    items: tuple[tuple[str, str], ...]  # (item id, item snapshot JSON) in order
    approved_by: str | None = None
    approved_at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.approved_by is not None


def _entry(entry_ids: dict[str, str], item_id: str) -> str:
    """The key of an issued item: its feed entry id (as migration 5 fills in a missing one)."""
    return entry_ids.get(item_id) or f"id:{item_id}"


def _snapshot_hash(snapshot: str) -> str | None:
    return json.loads(snapshot).get("content_hash") or None


class IssueStore:
    """Newsletter issues in the state store."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.conn = state.conn

    def issued_content_hashes(self) -> set[str]:
        """The texts of issued items: a copy of one, under any name, is not mailed again."""
        rows = self.conn.execute(
            select(_items.c.content_hash).where(_items.c.content_hash.is_not(None))
        )
        return {value for (value,) in rows}

    def issued_entry_ids(self) -> set[str]:
        """Feed entry ids of issued items: an item's identity whatever its file is called now
        (a new file under the id of one that moved is a new item)."""
        return {value for (value,) in self.conn.execute(select(_items.c.entry_id))}

    def intro_used(self, intro_hash: str) -> bool:
        found = self.conn.execute(select(exists().where(_issues.c.intro_hash == intro_hash)))
        return bool(found.scalar())

    @contextmanager
    def allocate(
        self,
        candidates: list[tuple[str, str]],
        make_subject: Callable[[int], str],
        created_at: datetime,
        intro: tuple[str, str] | None,
        agenda: str,
        tracks_of: Callable[[list[str]], str],
        entry_ids: dict[str, str] | None = None,
    ) -> Iterator[IssueRecord | None]:
        """Allocate the next issue with the candidates not yet in any issue, in one
        transaction that the caller's `with` body runs inside: it renders and checks the
        record, and an exception there rolls the allocation back (the issue is not made).

        `entry_ids` (item id -> feed entry id) keeps out an item issued under an earlier id.
        Yields None when every candidate was taken meanwhile (a concurrent compile) or there
        were none.
        """
        entry_ids = entry_ids or {}
        with self.state.transaction():
            taken = self.issued_entry_ids()
            fresh = [(i, snap) for i, snap in candidates if _entry(entry_ids, i) not in taken]
            if not fresh:
                yield None
                return
            number = (self.latest() or 0) + 1
            intro_hash, intro_json = intro if intro else (None, None)
            if intro_hash and self.intro_used(intro_hash):
                intro_hash, intro_json = None, None
            self.conn.execute(
                _issues.insert().values(
                    number=number,
                    subject=make_subject(number),
                    created_at=utc_text(created_at),
                    intro_hash=intro_hash,
                    intro=intro_json,
                    agenda=agenda,
                    tracks=tracks_of([i for i, _ in fresh]),
                )
            )
            self.conn.execute(
                _items.insert(),
                [
                    {
                        "item_id": item_id,
                        "issue": number,
                        "position": pos,
                        "snapshot": snap,
                        "entry_id": _entry(entry_ids, item_id),
                        "content_hash": _snapshot_hash(snap),
                    }
                    for pos, (item_id, snap) in enumerate(fresh)
                ],
            )
            yield self.get(number)

    def approve(self, number: int, by: str, at: datetime) -> None:
        self.conn.execute(
            update(_issues)
            .where(_issues.c.number == number)
            .values(approved_by=by, approved_at=utc_text(at))
        )

    def send_begun(self, number: int) -> bool:
        """Whether a send of the issue has begun (a send run was recorded)."""
        return bool(self.conn.execute(select(exists().where(_runs.c.issue == number))).scalar())

    def unsent(self) -> list[IssueRecord]:
        """Issues whose send has not begun, oldest first: concepts and approved ones."""
        rows = self.conn.execute(
            select(_issues.c.number)
            .where(_issues.c.number.not_in(select(_runs.c.issue)))
            .order_by(_issues.c.number)
        ).all()
        return [record for (n,) in rows if (record := self.get(n)) is not None]

    def discard(self, number: int) -> None:
        """Remove an issue that was never sent: its items are free for the next one.
        Inside a transaction."""
        self.conn.execute(delete(_items).where(_items.c.issue == number))
        self.conn.execute(delete(_issues).where(_issues.c.number == number))

    def get(self, number: int) -> IssueRecord | None:
        c = _issues.c
        row = self.conn.execute(
            select(
                c.number,
                c.subject,
                c.created_at,
                c.intro_hash,
                c.intro,
                c.agenda,
                c.tracks,
                c.approved_by,
                c.approved_at,
            ).where(c.number == number)
        ).first()
        if row is None:
            return None
        items = tuple(
            (item_id, snapshot)
            for item_id, snapshot in self.conn.execute(
                select(_items.c.item_id, _items.c.snapshot)
                .where(_items.c.issue == number)
                .order_by(_items.c.position)
            )
        )
        return IssueRecord(
            row.number,
            row.subject,
            from_utc_text(row.created_at),
            row.intro_hash,
            row.intro,
            row.agenda,
            row.tracks,
            items,
            row.approved_by,
            from_utc_text(row.approved_at) if row.approved_at else None,
        )

    def chosen(self, number: int | None) -> IssueRecord:
        """Issue `number`, or the latest when None: the one a command names (a usage error
        when there is none)."""
        if number is None:
            number = self.latest()
            if number is None:
                raise UsageError(
                    "er is nog geen nieuwsbrief samengesteld (eerst: krimppost newsletter compile)"
                )
        record = self.get(number)
        if record is None:
            known = ", ".join(str(n) for n in self.numbers()) or "geen"
            raise UsageError(f"nieuwsbrief {number} bestaat niet (wel: {known})")
        return record

    def numbers(self) -> list[int]:
        return [
            n for (n,) in self.conn.execute(select(_issues.c.number).order_by(_issues.c.number))
        ]

    def latest(self) -> int | None:
        return self.conn.execute(select(func.max(_issues.c.number))).scalar()

    def summaries(self, approved_only: bool = False) -> list[tuple[int, str, datetime]]:
        """Number, subject and moment of each issue, newest first; with `approved_only`,
        of the approved ones (a concept is not on the site)."""
        c = _issues.c
        query = select(c.number, c.subject, c.created_at).order_by(c.number.desc())
        if approved_only:
            query = query.where(c.approved_by.is_not(None))
        return [
            (n, subject, from_utc_text(created)) for n, subject, created in self.conn.execute(query)
        ]
