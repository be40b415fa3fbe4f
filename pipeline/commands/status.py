"""`krimppost status`: what the service does and what waits for a person."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.commands.check import horizon_lines, local_horizons
from pipeline.config import Config, load_config
from pipeline.content.model import ItemState
from pipeline.content.reader import read_content
from pipeline.delivery.returns import COMPLAINT_LIMIT
from pipeline.delivery.subscribers import STATUS_LABELS as SUBSCRIBER_LABELS
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.errors import Problem
from pipeline.horizon import Horizons, count_before
from pipeline.schedule import RunLog, ServiceLock, ServicePaths, next_runs
from pipeline.state import DatabaseError, IssueStore, StateStore, StoreAddress
from pipeline.state.deliveries import DeliveryLog, unfinished
from pipeline.state.leader import POLL as LEADER_POLL
from pipeline.state.leader import Holder, holder
from pipeline.state.returns import ReturnRows


@dataclass
class Status:
    service_pid: int | None
    next_runs: list[tuple[str, datetime | None]]
    last_runs: dict[str, dict[str, Any]]
    problems: tuple[Problem, ...]
    embargoed: list[tuple[str, datetime]]
    drafts_waiting: list[str] = field(default_factory=list)
    # With PostgreSQL: the host of the active scheduler, by its own last heartbeat.
    scheduler: Holder | None = None
    shared_store: bool = False
    unsent_issues: list[tuple[int, str]] = field(default_factory=list)  # never begun
    unfinished_sends: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    uncertain: list[tuple[int, int]] = field(default_factory=list)  # (issue, recipients)
    failed: list[tuple[int, int]] = field(default_factory=list)  # retries used up
    auto_send: bool = False
    subscribers: dict[str, int] = field(default_factory=dict)
    next_change: datetime | None = None  # as the last build decided
    approval: bool = False  # [newsletter] approval: an issue goes out only once approved
    newsletter_slot: bool = False  # the service has a newsletter slot (schedule.newsletter)
    # Never begun, split by approval: (number, subject, created) and (…, by, at).
    awaiting_approval: list[tuple[int, str, datetime]] = field(default_factory=list)
    approved_unsent: list[tuple[int, str, str, datetime]] = field(default_factory=list)
    horizons: Horizons | None = None
    before_horizon: tuple[int, int] = (0, 0)  # published items before (newsletter, social)
    complaints: tuple[int, int, int] | None = None  # (last issue, complaints, sent)

    def _active_scheduler(self) -> str:
        held = self.scheduler
        if held is None:
            return "dienst: nog nooit actief geweest (start met `krimppost run`)"
        silent = (datetime.now(UTC) - held.heartbeat).total_seconds()
        seen = held.heartbeat.astimezone().isoformat(timespec="seconds")
        if silent > 3 * LEADER_POLL:
            return (
                f"dienst: geen actieve planner; laatst actief op {held.host} (pid {held.pid}), "
                f"laatste teken {seen}"
            )
        return f"dienst: actief op {held.host} (pid {held.pid}), laatste teken {seen}"

    def lines(self) -> list[str]:
        out = []
        if self.shared_store:
            out.append(self._active_scheduler())
        elif self.service_pid:
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
        if self.approval:
            out += self._approval_lines()
        else:
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
        out += self._complaint_lines()
        out += self._horizon_lines()
        return out

    def _complaint_lines(self) -> list[str]:
        if self.complaints is None:
            return []
        number, complaints, sent = self.complaints
        rate = complaints / sent if sent else 0.0
        line = (
            f"klachten over nieuwsbrief {number}: {complaints} van {sent} verzonden "
            f"({_percent(rate, 2)}; grens van Gmail {_percent(COMPLAINT_LIMIT, 1)})"
        )
        if rate >= COMPLAINT_LIMIT:
            line += ": te hoog, bekijk de inhoud en de lijst voor de volgende verzending"
        return [line]

    def _approval_lines(self) -> list[str]:
        out = []
        if self.awaiting_approval:
            out.append(
                f"  wachten op goedkeuring: {len(self.awaiting_approval)} (bekijk: krimppost "
                "newsletter send N --test ADRES; goedkeuren: krimppost newsletter approve N "
                "--by NAAM)"
            )
            out += [
                f"    #{n}: {subject} (gemaakt {_moment(created)})"
                for n, subject, created in self.awaiting_approval
            ]
        if self.approved_unsent:
            how = "versturen: krimppost newsletter send N"
            if self.auto_send and self.newsletter_slot:
                how += ", of de dienst bij het volgende nieuwsbriefmoment"
            out.append(f"  goedgekeurd, nog niet verstuurd: {len(self.approved_unsent)} ({how})")
            out += [
                f"    #{n}: {subject} (goedgekeurd door {by}, {_moment(at)})"
                for n, subject, by, at in self.approved_unsent
            ]
        return out

    def _horizon_lines(self) -> list[str]:
        if self.horizons is None:
            return []
        return horizon_lines(self.horizons, self.before_horizon)


def _percent(fraction: float, decimals: int) -> str:
    return f"{fraction * 100:.{decimals}f}".replace(".", ",") + "%"


def _moment(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


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
    result.approval = config.newsletter.approval
    result.newsletter_slot = bool(config.schedule.newsletter)
    # Before any build: the horizons as the first build would set them, now.
    first_published = [i.published_at for i in content.published(now)]
    first_build = None
    address = StoreAddress.of(config)
    if address.exists():
        with StateStore(address) as state:
            first_build = state.first_build()
            result.shared_store = not address.is_sqlite
            result.scheduler = holder(state.conn)
            if first_build is not None:  # what the site has published, as the store says
                first_published = [r.first_published for r in state.items().values() if r.live]
            issues = IssueStore(state)
            progress = _send_progress(state)
            result.auto_send = config.schedule.auto_send
            moment = state.next_change()
            result.next_change = moment.astimezone(config.site.tz) if moment else None
            result.unsent_issues = [
                (n, subject) for n, subject, _ in issues.summaries() if n not in progress
            ]
            tz = config.site.tz
            for record in issues.unsent():
                if record.approved:
                    assert record.approved_by is not None and record.approved_at is not None
                    result.approved_unsent.append(
                        (
                            record.number,
                            record.subject,
                            record.approved_by,
                            record.approved_at.astimezone(tz),
                        )
                    )
                else:
                    result.awaiting_approval.append(
                        (record.number, record.subject, record.created_at.astimezone(tz))
                    )
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
            result.subscribers = _subscriber_counts(state, config)
            result.complaints = ReturnRows(state.conn).complaint_rate()
    reach = result.horizons = local_horizons(config, first_build, now)
    result.before_horizon = (
        count_before(first_published, reach.newsletter),
        count_before(first_published, reach.social),
    )
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
        return DeliveryLog(state.conn).progress()
    except DatabaseError:
        return {}


def _subscriber_counts(state: StateStore, config: Config) -> dict[str, int]:
    try:
        counts = SubscriberStore(state, config).counts()
    except DatabaseError:
        return {}
    return {status: n for status, n in sorted(counts.items()) if n}  # the ones there are
