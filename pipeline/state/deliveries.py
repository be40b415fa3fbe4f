"""The delivery log in the state store: one row per (issue, subscriber), one per send run.

Every statement over the tables `deliveries` and `send_runs` is here, for the sender, its
journal, `status` and the scheduler alike, so the meaning of a status is written once.

Statuses: `sent`, `bounced`, `failed` (retries used up in a run; a later run tries again),
`skipped` (no longer subscribed) and `uncertain` (in flight when a run died or the
connection closed after the dot: needs a person, `--resend-uncertain`) end a recipient's
part of a send; `pending`, `deferred` (retried later in the run, see `next_attempt`) and
`sending` (DATA under way) do not: those are WAITING.

A send has begun once a `send_runs` row exists (written with the delivery rows).
Methods that write expect to run inside a transaction their caller holds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, exists, func, literal, or_, select, update

from pipeline.state import schema
from pipeline.state.store import insert_for

# Delivery statuses that are no outcome yet: the recipient still has to get the issue.
WAITING = ("pending", "deferred", "sending")

_d = schema.deliveries
_s = schema.subscribers
_runs = schema.send_runs


def db_now(conn: Connection):  # type: ignore[no-untyped-def]
    """The database's clock in POSIX seconds: heartbeats of runs on several machines are
    compared on one clock."""
    if conn.dialect.name == "sqlite":
        return (func.julianday("now") - 2440587.5) * 86400.0
    return func.extract("epoch", func.clock_timestamp())


def unfinished(counts: Mapping[str, int]) -> bool:
    """Whether a begun send (recipients per status) still has recipients WAITING."""
    return any(counts.get(status) for status in WAITING)


@dataclass(frozen=True)
class Recipient:
    """A row of the log with what a message to its subscriber needs."""

    subscriber: int
    email: str
    token: str
    tracks: str
    run_attempts: int
    message_id: str | None


@dataclass(frozen=True)
class Begun:
    """A send run's start: its id and what the log held for the issue."""

    run_id: int | None
    new_uncertain: int  # `sending` rows left by a run that died
    skipped: int
    pending: int
    already_sent: int


def _chose(tracks: list[str]):  # type: ignore[no-untyped-def]
    """Subscribers (`subscribers` table) who chose any of these tracks (stored `,a,b,`)."""
    return or_(
        _s.c.tracks == "*", *(_s.c.tracks.contains(f",{t},", autoescape=True) for t in tracks)
    )


def _active_of(tracks: list[str], stamp: str):  # type: ignore[no-untyped-def]
    """Active subscribers of these tracks whose pause (if any) has ended by `stamp` (UTC
    text): a paused subscriber stays `active`, and the pause ends by itself."""
    return and_(
        _s.c.status == "active",
        or_(_s.c.paused_until.is_(None), _s.c.paused_until <= stamp),
        _chose(tracks),
    )


class DeliveryLog:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # what status and the scheduler read --------------------------------------------------

    def progress(self) -> dict[int, dict[str, int]]:
        """Recipients per delivery status of every issue whose send has begun."""
        progress: dict[int, dict[str, int]] = {
            n: {} for (n,) in self.conn.execute(select(_runs.c.issue).distinct())
        }
        for issue, status, count in self.conn.execute(
            select(_d.c.issue, _d.c.status, func.count()).group_by(_d.c.issue, _d.c.status)
        ):
            progress.setdefault(issue, {})[status] = count
        return progress

    def of_subscriber(self, subscriber: int) -> list[tuple[int, str, int, str, str]]:
        """(issue, status, attempts, reply, updated_at) of every issue sent (or meant) to a
        subscriber: their delivery log, for the download on the preference page."""
        rows = self.conn.execute(
            select(_d.c.issue, _d.c.status, _d.c.attempts, _d.c.reply, _d.c.updated_at)
            .where(_d.c.subscriber == subscriber)
            .order_by(_d.c.issue)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    # a send run ------------------------------------------------------------------------

    def reap(
        self, issue: int, lease: float, stamp: str, is_dead: Callable[[str, int], bool]
    ) -> int:
        """End the runs of `issue` that stopped saying they are alive (killed, or cut off
        for longer than `lease` seconds, or known dead by `is_dead(host, pid)`: a process
        of this machine that is gone), in the caller's transaction: what they had in flight
        (`sending`) becomes `uncertain`, what they had claimed and not begun is free for the
        others. Returns the number of new uncertain recipients."""
        age = db_now(self.conn) - _runs.c.heartbeat
        dead_ids = [
            run_id
            for run_id, host, pid, silent in self.conn.execute(
                select(_runs.c.id, _runs.c.host, _runs.c.pid, age).where(
                    _runs.c.issue == issue, _runs.c.finished.is_(None)
                )
            )
            if silent is None or silent > lease or is_dead(host or "", pid or 0)
        ]
        if not dead_ids:
            return 0
        uncertain = self.conn.execute(
            update(_d)
            .where(_d.c.issue == issue, _d.c.status == "sending", _d.c.claimed_by.in_(dead_ids))
            .values(status="uncertain", claimed_by=None, updated_at=stamp)
        ).rowcount
        self.conn.execute(
            update(_d)
            .where(
                _d.c.issue == issue,
                _d.c.claimed_by.in_(dead_ids),
                _d.c.status.in_(("pending", "deferred")),
            )
            .values(claimed_by=None, status="pending", next_attempt=None, updated_at=stamp)
        )
        # An outcome (sent, failed, …) stands whoever reached it: the claim goes.
        self.conn.execute(
            update(_d)
            .where(_d.c.issue == issue, _d.c.claimed_by.in_(dead_ids))
            .values(claimed_by=None)
        )
        self.conn.execute(update(_runs).where(_runs.c.id.in_(dead_ids)).values(finished=stamp))
        return uncertain

    def begin_run(
        self,
        issue: int,
        tracks: list[str],
        stamp: str,
        resend_uncertain: bool,
        lease: float = 60.0,
        host: str = "",
        pid: int = 0,
        parent: int | None = None,
        is_dead: Callable[[str, int], bool] = lambda host, pid: False,
    ) -> Begun:
        """Reconcile the log with the subscribers and open a run, in the caller's transaction.

        Runs that died are reaped first (`reap`). A `sending` row that no live run holds was
        in flight when its run died: it becomes `uncertain`. Every active subscriber of the
        issue's tracks gets a `pending` row unless an earlier run reached an outcome that
        stands; rows a live run holds are left to it. A subscriber paused beyond `stamp`
        gets none (and a waiting row of theirs is skipped).
        """
        conn = self.conn
        new_uncertain = self.reap(issue, lease, stamp, is_dead)
        new_uncertain += conn.execute(
            update(_d)
            .where(_d.c.issue == issue, _d.c.status == "sending", _d.c.claimed_by.is_(None))
            .values(status="uncertain", updated_at=stamp)
        ).rowcount
        retry = ("skipped", "failed", "deferred", "pending") + (
            ("uncertain",) if resend_uncertain else ()
        )
        insert = insert_for(conn.dialect.name, _d).from_select(
            ["issue", "subscriber", "status", "updated_at"],
            select(literal(issue), _s.c.id, literal("pending"), literal(stamp)).where(
                _active_of(tracks, stamp)
            ),
        )
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=["issue", "subscriber"],
                set_={
                    "status": "pending",
                    "run_attempts": 0,
                    "next_attempt": None,
                    "updated_at": insert.excluded.updated_at,
                },
                where=and_(_d.c.status.in_(retry), _d.c.claimed_by.is_(None)),
            )
        )
        still_chosen = exists().where(_s.c.id == _d.c.subscriber, _active_of(tracks, stamp))
        skipped = conn.execute(
            update(_d)
            .where(
                _d.c.issue == issue,
                _d.c.status.in_(("pending", "deferred", "failed")),
                _d.c.claimed_by.is_(None),
                ~still_chosen,
            )
            .values(status="skipped", updated_at=stamp)
        ).rowcount
        counts = {
            status: n
            for status, n in conn.execute(
                select(_d.c.status, func.count()).where(_d.c.issue == issue).group_by(_d.c.status)
            )
        }
        run_id = conn.execute(
            _runs.insert()
            .values(
                issue=issue,
                started=stamp,
                host=host,
                pid=pid,
                parent=parent,
                heartbeat=db_now(conn),
            )
            .returning(_runs.c.id)
        ).scalar_one()
        return Begun(
            run_id,
            new_uncertain,
            skipped,
            int(counts.get("pending", 0)),
            int(counts.get("sent", 0)),
        )

    def selections(self, issue: int) -> set[str]:
        """The distinct `tracks` values of this run's recipients."""
        rows = self.conn.execute(
            select(_s.c.tracks)
            .distinct()
            .join_from(_d, _s, _s.c.id == _d.c.subscriber)
            .where(_d.c.issue == issue, _d.c.status == "pending", _s.c.status == "active")
        )
        return {tracks for (tracks,) in rows}

    # claims: several runs share an issue's recipients -------------------------------------

    def claim(self, issue: int, run_id: int, limit: int) -> list[Recipient]:
        """Take up to `limit` pending recipients no run holds, lowest ids first, in the
        caller's transaction. Rows another transaction is claiming are skipped, not waited
        for (FOR UPDATE SKIP LOCKED; SQLite has one writer anyway)."""
        free = (
            select(_d.c.subscriber)
            .where(_d.c.issue == issue, _d.c.status == "pending", _d.c.claimed_by.is_(None))
            .order_by(_d.c.subscriber)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        taken = [
            s
            for (s,) in self.conn.execute(
                update(_d)
                .where(_d.c.issue == issue, _d.c.subscriber.in_(free.scalar_subquery()))
                .values(claimed_by=run_id)
                .returning(_d.c.subscriber)
            )
        ]
        if not taken:
            return []
        return self._recipients(
            and_(_d.c.issue == issue, _d.c.subscriber.in_(taken), _d.c.claimed_by == run_id)
        )

    def heartbeat(self, run_id: int) -> bool:
        """The run is alive; False when it was reaped meanwhile (it must stop sending)."""
        return bool(
            self.conn.execute(
                update(_runs)
                .where(_runs.c.id == run_id, _runs.c.finished.is_(None))
                .values(heartbeat=db_now(self.conn))
            ).rowcount
        )

    def left_to_others(self, issue: int, run_id: int) -> int:
        """Recipients without an outcome that this run does not hold: held by other runs
        (they may die: then they pass to this one), or free but locked while this run
        claimed (another run's transaction had them: SKIP LOCKED passed them by)."""
        return int(
            self.conn.execute(
                select(func.count()).where(
                    _d.c.issue == issue,
                    or_(
                        and_(_d.c.claimed_by.is_(None), _d.c.status == "pending"),
                        and_(_d.c.claimed_by != run_id, _d.c.status.in_(WAITING)),
                    ),
                )
            ).scalar_one()
        )

    def release(self, issue: int, run_id: int) -> None:
        """At the end of a run every claim of it goes: what has no outcome is free again,
        a failed one is tried by the next run, and one left `sending` (the journal failed)
        becomes uncertain at the next run's start."""
        self.conn.execute(
            update(_d).where(_d.c.issue == issue, _d.c.claimed_by == run_id).values(claimed_by=None)
        )

    def children(self, run_id: int) -> list[tuple[int, int, int, int, int, bool]]:
        """(sent, failed, bounced, skipped, uncertain, finished) of the runs `run_id`
        started (`send --workers`)."""
        c = _runs.c
        return [
            (r.sent, r.failed, r.bounced, r.skipped, r.uncertain, r.finished is not None)
            for r in self.conn.execute(
                select(c.sent, c.failed, c.bounced, c.skipped, c.uncertain, c.finished).where(
                    c.parent == run_id
                )
            )
        ]

    def _recipients(self, condition, limit: int | None = None) -> list[Recipient]:  # type: ignore[no-untyped-def]
        query = (
            select(
                _d.c.subscriber,
                _s.c.email,
                _s.c.token,
                _s.c.tracks,
                _d.c.run_attempts,
                _d.c.message_id,
            )
            .join_from(_d, _s, _s.c.id == _d.c.subscriber)
            .where(condition, _s.c.status == "active")
            .order_by(_d.c.subscriber)
            .limit(limit)
        )
        return [Recipient(*row) for row in self.conn.execute(query)]

    def due(self, issue: int, run_id: int, now: float, limit: int) -> list[Recipient]:
        """The run's deferred recipients whose next attempt is due by `now`."""
        return self._recipients(
            and_(
                _d.c.issue == issue,
                _d.c.status == "deferred",
                _d.c.claimed_by == run_id,
                _d.c.next_attempt <= now,
            ),
            limit,
        )

    def next_due(self, issue: int, run_id: int) -> float | None:
        """When the earliest deferred recipient of the run may be tried again; None when
        none is left."""
        return self.conn.execute(
            select(func.min(_d.c.next_attempt)).where(
                _d.c.issue == issue, _d.c.status == "deferred", _d.c.claimed_by == run_id
            )
        ).scalar()

    # the journal's writes --------------------------------------------------------------
    # One statement object each, built once: a send runs them once or twice per message,
    # and a reused statement skips SQLAlchemy's construction and cache-key work.

    def mark_sending(
        self, issue: int, subscriber: int, run_id: int, message_id: str, stamp: str
    ) -> bool:
        """Whether the run still holds the recipient (a run reaped while it stalled does
        not, and must not send: another has it now)."""
        values = {"i": issue, "s": subscriber, "run": run_id, "mid": message_id, "at": stamp}
        return bool(self.conn.execute(_MARK_SENDING, values).rowcount)

    def record(
        self,
        issue: int,
        subscriber: int,
        status: str,
        reply: str,
        next_attempt: float | None,
        stamp: str,
    ) -> None:
        """An attempt's outcome; a bounce also ends the subscription (two statements: the
        caller's transaction makes them one)."""
        values = {
            "i": issue,
            "s": subscriber,
            "st": status,
            "re": reply[:500],
            "next": next_attempt,
            "at": stamp,
        }
        self.conn.execute(_RECORD, values)
        if status == "bounced":
            self.conn.execute(_BOUNCED, values)

    def mark_uncertain(self, issue: int, subscriber: int, reply: str, stamp: str) -> None:
        values = {"i": issue, "s": subscriber, "re": reply, "at": stamp}
        self.conn.execute(_UNCERTAIN, values)

    # the end of a run ------------------------------------------------------------------

    def skip_unsubscribed(self, issue: int, stamp: str) -> int:
        """Skip the recipients who unsubscribed (or were removed) while the run went on."""
        active = exists().where(_s.c.id == _d.c.subscriber, _s.c.status == "active")
        return self.conn.execute(
            update(_d)
            .where(_d.c.issue == issue, _d.c.status.in_(("pending", "deferred")), ~active)
            .values(status="skipped", updated_at=stamp)
        ).rowcount

    def uncertain_addresses(self, issue: int) -> list[str]:
        rows = self.conn.execute(
            select(_s.c.email)
            .join_from(_d, _s, _s.c.id == _d.c.subscriber)
            .where(_d.c.issue == issue, _d.c.status == "uncertain")
            .order_by(_s.c.email)
        )
        return [email for (email,) in rows]

    def not_attempted(self, issue: int, run_id: int) -> int:
        """Recipients an aborted run left pending or deferred."""
        return int(
            self.conn.execute(
                select(func.count()).where(
                    _d.c.issue == issue,
                    _d.c.status.in_(("pending", "deferred")),
                    or_(_d.c.claimed_by == run_id, _d.c.claimed_by.is_(None)),
                )
            ).scalar_one()
        )

    def finish_run(
        self,
        run_id: int,
        stamp: str,
        sent: int,
        failed: int,
        bounced: int,
        skipped: int,
        uncertain: int,
    ) -> None:
        self.conn.execute(
            update(_runs)
            .where(_runs.c.id == run_id)
            .values(
                finished=stamp,
                sent=sent,
                failed=failed,
                bounced=bounced,
                skipped=skipped,
                uncertain=uncertain,
            )
        )


_ONE = and_(_d.c.issue == bindparam("i"), _d.c.subscriber == bindparam("s"))
_MARK_SENDING = (
    update(_d)
    .where(_ONE, _d.c.claimed_by == bindparam("run"), _d.c.status.in_(("pending", "deferred")))
    .values(status="sending", message_id=bindparam("mid"), updated_at=bindparam("at"))
)
_RECORD = (
    update(_d)
    .where(_ONE)
    .values(
        status=bindparam("st"),
        reply=bindparam("re"),
        attempts=_d.c.attempts + 1,
        run_attempts=_d.c.run_attempts + 1,
        next_attempt=bindparam("next", type_=_d.c.next_attempt.type),
        updated_at=bindparam("at"),
    )
)
_BOUNCED = (
    update(_s)
    .where(_s.c.id == bindparam("s"), _s.c.status == "active")
    .values(status="bounced", status_changed_at=bindparam("at"), status_reason=bindparam("re"))
)
# Not a run attempt: an uncertain recipient is not retried within the run.
_UNCERTAIN = (
    update(_d)
    .where(_ONE)
    .values(
        status="uncertain",
        reply=bindparam("re"),
        attempts=_d.c.attempts + 1,
        updated_at=bindparam("at"),
    )
)
