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

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Delivery statuses that are no outcome yet: the recipient still has to get the issue.
WAITING = ("pending", "deferred", "sending")


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


def _track_condition(tracks: list[str]) -> tuple[str, list[str]]:
    """SQL (over subscribers `s`) matching subscribers who chose any of these tracks."""
    parts = ["s.tracks = '*'"] + ["instr(s.tracks, ?) > 0" for _ in tracks]
    return "(" + " OR ".join(parts) + ")", [f",{t}," for t in tracks]


class DeliveryLog:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # what status and the scheduler read --------------------------------------------------

    def progress(self) -> dict[int, dict[str, int]]:
        """Recipients per delivery status of every issue whose send has begun."""
        progress: dict[int, dict[str, int]] = {
            n: {} for (n,) in self.db.execute("SELECT DISTINCT issue FROM send_runs")
        }
        for issue, status, count in self.db.execute(
            "SELECT issue, status, COUNT(*) FROM deliveries GROUP BY issue, status"
        ):
            progress.setdefault(issue, {})[status] = count
        return progress

    # a send run ------------------------------------------------------------------------

    def begin_run(self, issue: int, tracks: list[str], stamp: str, resend_uncertain: bool) -> Begun:
        """Reconcile the log with the subscribers and open a run, in the caller's transaction.

        A `sending` row found here was in flight when the previous run died: it becomes
        `uncertain`. Every active subscriber of the issue's tracks gets a `pending` row
        unless an earlier run reached an outcome that stands.
        """
        db = self.db
        match, args = _track_condition(tracks)
        new_uncertain = db.execute(
            "UPDATE deliveries SET status = 'uncertain', updated_at = ?"
            " WHERE issue = ? AND status = 'sending'",
            (stamp, issue),
        ).rowcount
        retry = ("skipped", "failed", "deferred", "pending") + (
            ("uncertain",) if resend_uncertain else ()
        )
        marks = ", ".join("?" for _ in retry)
        db.execute(
            "INSERT INTO deliveries (issue, subscriber, status, updated_at)"
            f" SELECT ?, s.id, 'pending', ? FROM subscribers s WHERE s.status = 'active' AND {match}"
            " ON CONFLICT (issue, subscriber) DO UPDATE SET status = 'pending', run_attempts = 0,"
            f" next_attempt = NULL, updated_at = excluded.updated_at WHERE status IN ({marks})",
            (issue, stamp, *args, *retry),
        )
        skipped = db.execute(
            "UPDATE deliveries SET status = 'skipped', updated_at = ?"
            " WHERE issue = ? AND status IN ('pending', 'deferred', 'failed') AND NOT EXISTS"
            f" (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber"
            f" AND s.status = 'active' AND {match})",
            (stamp, issue, *args),
        ).rowcount
        counts = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM deliveries WHERE issue = ? GROUP BY status",
                (issue,),
            ).fetchall()
        )
        run_id = db.execute(
            "INSERT INTO send_runs (issue, started) VALUES (?, ?)", (issue, stamp)
        ).lastrowid
        return Begun(
            run_id,
            new_uncertain,
            skipped,
            int(counts.get("pending", 0)),
            int(counts.get("sent", 0)),
        )

    def selections(self, issue: int) -> set[str]:
        """The distinct `tracks` values of this run's recipients."""
        rows = self.db.execute(
            "SELECT DISTINCT s.tracks FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = 'pending' AND s.status = 'active'",
            (issue,),
        ).fetchall()
        return {r[0] for r in rows}

    def page(
        self, issue: int, status: str, after: int, due: float | None, limit: int
    ) -> list[Recipient]:
        """Recipients in `status` after subscriber id `after` (deferred: those due by `due`)."""
        sql = (
            "SELECT d.subscriber, s.email, s.token, s.tracks, d.run_attempts, d.message_id"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = ? AND d.subscriber > ? AND s.status = 'active'"
        )
        args: list[Any] = [issue, status, after]
        if due is not None:
            sql += " AND d.next_attempt <= ?"
            args.append(due)
        sql += " ORDER BY d.subscriber LIMIT ?"
        args.append(limit)
        return [Recipient(*row) for row in self.db.execute(sql, args).fetchall()]

    def next_due(self, issue: int) -> float | None:
        """When the earliest deferred recipient may be tried again; None when none is left."""
        return self.db.execute(
            "SELECT MIN(next_attempt) FROM deliveries WHERE issue = ? AND status = 'deferred'",
            (issue,),
        ).fetchone()[0]

    # the journal's writes --------------------------------------------------------------

    def mark_sending(self, issue: int, subscriber: int, message_id: str, stamp: str) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = 'sending', message_id = ?, updated_at = ?"
            " WHERE issue = ? AND subscriber = ?",
            (message_id, stamp, issue, subscriber),
        )

    def record(
        self,
        issue: int,
        subscriber: int,
        status: str,
        reply: str,
        next_attempt: float | None,
        stamp: str,
    ) -> None:
        """An attempt's outcome; a bounce also ends the subscription."""
        self.db.execute(
            "UPDATE deliveries SET status = ?, reply = ?, attempts = attempts + 1,"
            " run_attempts = run_attempts + 1, next_attempt = ?, updated_at = ?"
            " WHERE issue = ? AND subscriber = ?",
            (status, reply[:500], next_attempt, stamp, issue, subscriber),
        )
        if status == "bounced":
            self.db.execute(
                "UPDATE subscribers SET status = 'bounced', status_changed_at = ?,"
                " status_reason = ? WHERE id = ? AND status = 'active'",
                (stamp, reply[:500], subscriber),
            )

    def mark_uncertain(self, issue: int, subscriber: int, reply: str, stamp: str) -> None:
        # Not a run attempt: an uncertain recipient is not retried within the run.
        self.db.execute(
            "UPDATE deliveries SET status = 'uncertain', reply = ?, attempts = attempts + 1,"
            " updated_at = ? WHERE issue = ? AND subscriber = ?",
            (reply, stamp, issue, subscriber),
        )

    # the end of a run ------------------------------------------------------------------

    def skip_unsubscribed(self, issue: int, stamp: str) -> int:
        """Skip the recipients who unsubscribed (or were removed) while the run went on."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'skipped', updated_at = ?"
            " WHERE issue = ? AND status IN ('pending', 'deferred') AND NOT EXISTS"
            " (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber"
            " AND s.status = 'active')",
            (stamp, issue),
        ).rowcount

    def uncertain_addresses(self, issue: int) -> list[str]:
        rows = self.db.execute(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = 'uncertain' ORDER BY s.email",
            (issue,),
        ).fetchall()
        return [r[0] for r in rows]

    def not_attempted(self, issue: int) -> int:
        """Recipients an aborted run left pending or deferred."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE issue = ? AND status IN ('pending', 'deferred')",
                (issue,),
            ).fetchone()[0]
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
        self.db.execute(
            "UPDATE send_runs SET finished = ?, sent = ?, failed = ?, bounced = ?,"
            " skipped = ?, uncertain = ? WHERE id = ?",
            (stamp, sent, failed, bounced, skipped, uncertain, run_id),
        )
