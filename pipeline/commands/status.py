"""`krimppost status`: what the service does and what waits for a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.content.model import ItemState
from pipeline.content.reader import read_content
from pipeline.delivery.log import DeliveryLog, unfinished
from pipeline.delivery.subscribers import STATUS_LABELS as SUBSCRIBER_LABELS
from pipeline.errors import Problem
from pipeline.schedule import RunLog, ServiceLock, ServicePaths, next_runs
from pipeline.state import IssueStore, StateStore


@dataclass
class Status:
    service_pid: int | None
    next_runs: list[tuple[str, datetime | None]]
    last_runs: dict[str, dict[str, Any]]
    problems: tuple[Problem, ...]
    embargoed: list[tuple[str, datetime]]
    drafts_waiting: list[str] = field(default_factory=list)
    unsent_issues: list[tuple[int, str]] = field(default_factory=list)  # never begun
    unfinished_sends: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    uncertain: list[tuple[int, int]] = field(default_factory=list)  # (issue, recipients)
    failed: list[tuple[int, int]] = field(default_factory=list)  # retries used up
    auto_send: bool = False
    subscribers: dict[str, int] = field(default_factory=dict)
    next_change: datetime | None = None  # as the last build decided

    def lines(self) -> list[str]:
        out = []
        if self.service_pid:
            out.append(f"dienst: draait (pid {self.service_pid})")
        else:
            out.append("dienst: draait niet (start met `krimppost run`)")
        out.append("volgende taken:")
        for job, moment in self.next_runs or [("(geen)", None)]:
            out.append(f"  {job}: {moment.isoformat(timespec='seconds') if moment else '-'}")
        out.append("laatste resultaten:")
        for job, entry in sorted(self.last_runs.items()) or [("(nog geen)", {})]:
            detail = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("job",))
            out.append(f"  {job}: {detail}")
        out.append(f"inhoudsfouten: {len(self.problems)}")
        out += [f"  {p}" for p in self.problems[:20]]
        if len(self.problems) > 20:
            out.append(f"  … en {len(self.problems) - 20} meer (krimppost check)")
        out.append(
            "volgende wijziging van de site (embargo of einde evenement, volgens de laatste "
            "build): "
            + (
                self.next_change.isoformat(timespec="minutes")
                if self.next_change is not None and self.next_change.year < 9999
                else "geen"
            )
        )
        out.append(f"onder embargo: {len(self.embargoed)}")
        out += [
            f"  {moment.isoformat(timespec='minutes')}  {item_id}"
            for item_id, moment in self.embargoed
        ]
        out.append(f"social-concepten te beoordelen: {len(self.drafts_waiting)}")
        out += [f"  {d}" for d in self.drafts_waiting[:20]]
        unsent = len(self.unsent_issues) + len(self.unfinished_sends)
        out.append(f"nieuwsbrieven nog niet verstuurd: {unsent}")
        out += [f"  #{n}: {subject}" for n, subject in self.unsent_issues]
        if self.unfinished_sends:
            out.append(
                "  onvoltooide verzendingen (een onderbroken verzending maakt de dienst af bij "
                "de start en bij het volgende nieuwsbriefmoment):"
                if self.auto_send
                else "  onvoltooide verzendingen (verder met: krimppost newsletter send N):"
            )
        for n, counts in self.unfinished_sends:
            line = (
                f"  nieuwsbrief {n}: {counts.get('sent', 0)} verstuurd, "
                f"{counts.get('pending', 0) + counts.get('deferred', 0)} wachtend"
            )
            if counts.get("sending"):
                line += f", {counts['sending']} onderweg (onzeker als de verzending toen stopte)"
            out.append(line)
        out.append(f"onzekere ontvangers: {sum(count for _, count in self.uncertain)}")
        out += [
            f"  nieuwsbrief {n}: {count} (opnieuw versturen: krimppost newsletter send {n}"
            " --resend-uncertain)"
            for n, count in self.uncertain
        ]
        # An outcome, but not a delivery: visible until a person sends again.
        out.append(f"mislukte ontvangers: {sum(count for _, count in self.failed)}")
        out += [
            f"  nieuwsbrief {n}: {count} (opnieuw proberen: krimppost newsletter send {n})"
            for n, count in self.failed
        ]
        counts = (
            ", ".join(
                f"{SUBSCRIBER_LABELS.get(k, k)} {v}" for k, v in sorted(self.subscribers.items())
            )
            or "geen"
        )
        out.append(f"abonnees: {counts}")
        return out


def status(root: Path, now: datetime) -> Status:
    config = load_config(root)
    now = config.moment(now)
    paths = ServicePaths.of(config)
    content = read_content(config)
    embargoed = sorted(
        ((i.id, i.published_at) for i in content.items if i.state(now) is ItemState.EMBARGOED),
        key=lambda pair: pair[1],
    )
    result = Status(
        service_pid=ServiceLock.holder(paths.lock),
        next_runs=next_runs(config),
        last_runs=RunLog(paths.runs).read(),
        problems=content.problems,
        embargoed=embargoed,
    )
    result.drafts_waiting = _drafts_waiting(config)
    state_path = config.path(config.state.path)
    if state_path.exists():
        with StateStore(state_path) as state:
            issues = IssueStore(state)
            progress = _send_progress(state)
            result.auto_send = config.schedule.auto_send
            moment = state.next_change()
            result.next_change = moment.astimezone(config.site.tz) if moment else None
            result.unsent_issues = [
                (n, subject) for n, subject, _ in issues.summaries() if n not in progress
            ]
            result.unfinished_sends = [
                (n, counts) for n, counts in sorted(progress.items()) if unfinished(counts)
            ]
            result.uncertain = [
                (n, counts["uncertain"])
                for n, counts in sorted(progress.items())
                if counts.get("uncertain")
            ]
            result.failed = [
                (n, counts["failed"])
                for n, counts in sorted(progress.items())
                if counts.get("failed")
            ]
            result.subscribers = _subscriber_counts(state)
    return result


def _drafts_waiting(config: Any) -> list[str]:
    try:
        from pipeline.social import review
    except ImportError:
        return []
    from datetime import UTC

    now = datetime.now(UTC)
    views = [
        *review.list_views(config, now, "pending")[0],
        *review.list_views(config, now, "stale")[0],
    ]
    return [f"{v.draft.id} ({v.status_label})" for v in views]


def _send_progress(state: StateStore) -> dict[int, dict[str, int]]:
    try:
        return DeliveryLog(state.db).progress()
    except Exception:
        return {}


def _subscriber_counts(state: StateStore) -> dict[str, int]:
    try:
        rows = state.db.execute(
            "SELECT status, COUNT(*) FROM subscribers GROUP BY status"
        ).fetchall()
    except Exception:
        return {}
    return {status: count for status, count in rows}
