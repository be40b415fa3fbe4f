"""`krimppost run`: the service. One APScheduler 3 scheduler calling the same functions as
the CLI, each job in a fresh process.

Jobs live in the state store (SQLAlchemyJobStore) so they survive restarts; job functions
are module-level and take only the project root, so they pickle by reference. Builds are
triggered by file changes (watchdog, debounced), by a fallback interval and by a one-off
job at the next moment the published set changes (an embargo lifts, an event ends: the
last build's decision, read from the state store); the newsletter runs on a cron in the
site's zone. With `[newsletter] approval` a slot sends only issues a person approved, and
makes a new concept only when none waits (`newsletter_now`).

The service itself has threads (the scheduler's, watchdog's), and a process with threads
must not fork (a child can inherit a lock held by another thread and hang). So every job
runs in a spawned interpreter (`workers.in_fresh_process`): it may fork its own render
workers, and what it loads is freed when it ends.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.config import load_config
from pipeline.errors import KrimppostError
from pipeline.schedule import (
    BOUNCES_JOB,
    BUILD_JOB,
    JOBS_TABLE,
    NEWSLETTER_JOB,
    NEXT_CHANGE_JOB,
    RESUME_JOB,
    WATCH_JOB,
    RunLog,
    ServiceLock,
    ServicePaths,
    cron_trigger,
    job_kind,
    line,
    repair_persisted_jobs,
)
from pipeline.state import IssueRecord, IssueStore, StateStore, StoreAddress
from pipeline.state.deliveries import DeliveryLog, unfinished
from pipeline.state.leader import POLL as LEADER_POLL
from pipeline.state.leader import Leadership, holder
from pipeline.workers import in_fresh_process

log = logging.getLogger("krimppost.run")


# The work of each job, as the CLI does it (run in the job's own process) ------------------


def build_now(root: str) -> dict[str, Any]:
    from pipeline.commands.build import build

    report = build(Path(root), datetime.now(UTC))
    if report.skipped:
        return {"result": "ok", "overgeslagen": "niets veranderd"}
    return {
        "result": "fouten" if report.problems else "ok",
        "online": len(report.publication.entries),
        "nieuw": len(report.publication.new),
        "gewijzigd": len(report.publication.changed),
        "ingetrokken": len(report.publication.withdrawn),
        "geschreven": len(report.written),
        "verwijderd": len(report.removed),
        "fouten": len(report.problems),
    }


def newsletter_now(root: str, auto_send: bool) -> dict[str, Any]:
    """A newsletter slot. With `[newsletter] approval` a compiled issue is a concept: the
    slot sends only issues a person approved (with auto_send), and while a concept waits
    it compiles nothing new (a second concept would only hide the first)."""
    from pipeline.commands.newsletter import compile_issue

    out: dict[str, Any] = {"result": "ok"}
    if auto_send:  # an earlier send cut short (kill, crash, reboot) goes first
        out.update(resume_sends(root))
    if not load_config(Path(root)).newsletter.approval:
        report = compile_issue(Path(root), datetime.now(UTC))
        out.update({"nummer": report.number, "berichten": report.items})
        if report.number is not None and auto_send:
            out.update(_send(root, report.number))
        return out
    if auto_send:
        out.update(send_approved(root))
    if (concept := concept_waiting(root)) is not None:
        return {**out, **_waits(concept)}
    try:
        report = compile_issue(Path(root), datetime.now(UTC))
    except KrimppostError:
        # A person compiled a concept between the look above and this compile.
        if (concept := concept_waiting(root)) is None:
            raise
        return {**out, **_waits(concept)}
    out.update({"nummer": report.number, "berichten": report.items})
    if report.number is not None:
        out.update(_waits(report.number))
    return out


def bounces_now(root: str) -> dict[str, Any]:
    from pipeline.commands.bounces import fetch

    report = fetch(Path(root), datetime.now(UTC))
    for decision in report.decisions:
        log.info(line(event="bounce", beslissing=str(decision)))
    for text in report.unreadable:
        log.warning(line(event="bounce", waarschuwing=text))
    return {"result": "ok", "verwerkt": len(report.decisions), "niet_aangeraakt": report.left}


def _waits(number: int) -> dict[str, Any]:
    log.info(
        line(
            event="wacht-op-goedkeuring",
            nummer=number,
            note=f"krimppost newsletter approve {number} --by NAAM",
        )
    )
    return {"wacht_op_goedkeuring": number}


def _unsent(root: str) -> list[IssueRecord]:
    """Issues whose send has not begun, oldest first."""
    config = load_config(Path(root))
    address = StoreAddress.of(config)
    if not address.exists():
        return []
    with StateStore(address) as state:
        return IssueStore(state).unsent()


def concept_waiting(root: str) -> int | None:
    """The oldest issue that waits for approval."""
    return next((r.number for r in _unsent(root) if not r.approved), None)


def send_approved(root: str) -> dict[str, Any]:
    """Send every approved issue whose send has not begun, oldest first (with auto_send).
    One that `newsletter approve` sends itself (send_on_approval) has begun by the time it
    would be sent here, and is left to that send (or to `resume_sends`, if cut short)."""
    numbers = [r.number for r in _unsent(root) if r.approved]
    out: dict[str, Any] = {}
    totals: dict[str, int] = {}
    for number in numbers:
        if number not in {r.number for r in _unsent(root)}:
            continue  # begun meanwhile
        log.info(line(event="verzending-goedgekeurd", nummer=number))
        out.setdefault("verstuurd_nummers", []).append(number)
        for key, value in _send(root, number).items():
            totals[key] = totals.get(key, 0) + value
    out.update(totals)
    return out


def unfinished_sends(root: str) -> list[int]:
    """Issues whose send has begun and left recipients without an outcome."""
    config = load_config(Path(root))
    address = StoreAddress.of(config)
    if not address.exists():
        return []
    with StateStore(address) as state:
        progress = DeliveryLog(state.conn).progress()
    return sorted(n for n, counts in progress.items() if unfinished(counts))


def resume_sends(root: str) -> dict[str, Any]:
    """Finish every begun send, oldest issue first (with auto_send only: see Service.start)."""
    numbers = unfinished_sends(root)
    out: dict[str, Any] = {"hervat": numbers} if numbers else {}
    totals: dict[str, int] = {}
    for number in numbers:
        log.info(line(event="verzending-hervat", nummer=number))
        for key, value in _send(root, number).items():
            totals[key] = totals.get(key, 0) + value
    if totals:
        out["hervat_resultaat"] = totals
    return out


def resume_now(root: str) -> dict[str, Any]:
    return {"result": "ok", **resume_sends(root)}


def _send(root: str, number: int) -> dict[str, Any]:
    from pipeline.delivery.sender import send_issue

    report = send_issue(Path(root), number)
    return {
        "verzonden": report.sent,
        "mislukt": report.failed,
        "gebouncet": report.bounced,
        "onzeker": len(report.uncertain),
    }


# The scheduler's job functions: each runs its work in a fresh process --------------------


def _in_own_process(function: Any, *args: Any) -> dict[str, Any]:
    result, lines = in_fresh_process(function, *args)
    for text in lines:
        log.info(text)
    return result  # type: ignore[no-any-return]


def run_build(root: str) -> dict[str, Any]:
    return _in_own_process(build_now, root)


def run_newsletter(root: str, auto_send: bool) -> dict[str, Any]:
    return _in_own_process(newsletter_now, root, auto_send)


def run_bounces(root: str) -> dict[str, Any]:
    return _in_own_process(bounces_now, root)


def run_resume(root: str) -> dict[str, Any]:
    return _in_own_process(resume_now, root)


# The service ------------------------------------------------------------------------------


class Service:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.config = load_config(self.root)
        self.paths = ServicePaths.of(self.config)
        self.address = StoreAddress.of(self.config)
        # One scheduler per store: on one machine the lock file; with PostgreSQL, on any
        # number of hosts, the database's advisory lock (the others wait as standbys).
        self.lock = ServiceLock(self.paths.lock) if self.address.is_sqlite else None
        self.leader: Leadership | None = None
        self.runs = RunLog(self.paths.runs)
        self.stop_event = threading.Event()
        self.scheduler: Any = None
        self.observer: Any = None
        self._starts: dict[str, float] = {}
        self.lost_leadership = False

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            EVENT_JOB_SUBMITTED,
        )
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        if self.lock is not None:
            self.lock.acquire()
        repair_persisted_jobs(self.config)
        sched = self.config.schedule
        self.scheduler = BackgroundScheduler(
            jobstores={
                # No pool: a connection per access, closed after it. A pooled one outlived
                # the scheduler's shutdown (APScheduler's loop can run once more after its
                # job store is disposed) and stayed open to the end of the process.
                "default": SQLAlchemyJobStore(
                    engine=create_engine(self.paths.jobs_url, poolclass=NullPool),
                    tablename=JOBS_TABLE,
                ),
                "memory": MemoryJobStore(),
            },
            # One worker: jobs write the same outbox; they queue rather than interleave.
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": sched.misfire_grace_time,
            },
            timezone=self.config.site.tz,
        )
        self.scheduler.add_listener(self._on_submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(self._on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_busy, EVENT_JOB_MAX_INSTANCES)
        root = str(self.root)
        # Paused first: jobs persisted by an earlier run are inspected before anything fires,
        # so a newsletter slot missed while the service was down is kept, not recomputed.
        self.scheduler.start(paused=True)
        self.scheduler.add_job(
            run_build,
            "interval",
            seconds=sched.build_interval,
            args=[root],
            id=BUILD_JOB,
            name="build (vast interval)",
            replace_existing=True,
            next_run_time=datetime.now(self.config.site.tz),  # build once at start
        )
        existing = self.scheduler.get_job(NEWSLETTER_JOB)
        if sched.newsletter:
            trigger = cron_trigger(sched.newsletter, self.config.site.tz)
            if existing is not None and str(existing.trigger) == str(trigger):
                existing.modify(
                    args=[root, sched.auto_send], misfire_grace_time=sched.newsletter_grace_time
                )
            else:
                self.scheduler.add_job(
                    run_newsletter,
                    trigger,
                    args=[root, sched.auto_send],
                    id=NEWSLETTER_JOB,
                    name="nieuwsbrief",
                    replace_existing=True,
                    misfire_grace_time=sched.newsletter_grace_time,
                )
        elif existing is not None:
            existing.remove()
        if self.config.bounces.mailbox:
            self.scheduler.add_job(
                run_bounces,
                "interval",
                seconds=self.config.bounces.interval,
                args=[root],
                id=BOUNCES_JOB,
                name="bounces ophalen",
                replace_existing=True,
                next_run_time=datetime.now(self.config.site.tz),  # what came while it was down
            )
        elif self.scheduler.get_job(BOUNCES_JOB) is not None:
            self.scheduler.remove_job(BOUNCES_JOB)
        if sched.auto_send:
            # A send the service would have made, cut short by a kill or a reboot, is
            # finished now rather than at the next slot. Without auto_send a person sends,
            # and `status` lists what was left unfinished.
            self.scheduler.add_job(
                run_resume,
                "date",
                run_date=datetime.now(self.config.site.tz),
                args=[root],
                id=RESUME_JOB,
                name="onderbroken verzending hervatten",
                jobstore="memory",
                replace_existing=True,
                misfire_grace_time=None,
            )
        self.scheduler.resume()
        self.plan_next_change()
        self._watch()
        log.info(
            line(
                event="start",
                pid=os.getpid(),
                root=root,
                jobs=[j.id for j in self.scheduler.get_jobs()],
            )
        )

    def await_leadership(self) -> bool:
        """Wait until this is the active scheduler of the store; False when stopped first.
        The store is opened (and migrated) first, so the services table exists."""
        StateStore(self.address).close()
        self.leader = Leadership(self.address)
        waiting = False
        while not self.leader.try_acquire():
            if not waiting:
                with StateStore(self.address) as state:
                    other = holder(state.conn)
                log.info(
                    line(
                        event="stand-by",
                        actief=f"{other.host} (pid {other.pid})" if other else "?",
                        note="neemt het over zodra die stopt",
                    )
                )
                waiting = True
            if self.stop_event.wait(LEADER_POLL):
                self.leader.release()
                return False
        return True

    def run_forever(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        if not self.await_leadership():
            return
        self.start()
        try:
            checked = time.monotonic()
            while not self.stop_event.wait(1):
                if time.monotonic() - checked < LEADER_POLL:
                    continue
                checked = time.monotonic()
                assert self.leader is not None
                if not self.leader.holds():
                    # Without the lock another host may take over: never both run jobs.
                    log.error(line(event="actief-verloren", note="verbinding met de store weg"))
                    self.lost_leadership = True
                    break
        finally:
            self.stop()

    def stop(self) -> None:
        log.info(line(event="stop", reason="signaal", note="lopende taak wordt afgemaakt"))
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # a running build finishes: nothing half-written
        if self.lock is not None:
            self.lock.release()
        if self.leader is not None:
            self.leader.release()
        log.info(line(event="gestopt"))

    # planning ----------------------------------------------------------------------------

    def plan_next_change(self) -> None:
        """A one-off build just after the next moment the published set changes, as the
        last build decided; none when nothing is due (the interval build still runs)."""
        address = StoreAddress.of(self.config)
        moment = None
        if address.exists():
            with StateStore(address) as state:
                moment = state.next_change()
        now = datetime.now(UTC)
        if moment is None or moment <= now or moment.year >= 9999:
            if self.scheduler.get_job(NEXT_CHANGE_JOB) is not None:
                self.scheduler.remove_job(NEXT_CHANGE_JOB)
            return
        self.scheduler.add_job(
            run_build,
            "date",
            run_date=moment + timedelta(seconds=1),
            args=[str(self.root)],
            id=NEXT_CHANGE_JOB,
            name=f"volgende wijziging {moment.isoformat()}",
            replace_existing=True,
            misfire_grace_time=None,  # if the service was down: publish at start, however late
        )

    def _watch(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        service = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                name = os.path.basename(str(event.src_path))
                if (
                    event.event_type in ("opened", "closed_no_write")
                    or name.startswith(".")
                    or name.endswith("~")
                ):
                    return
                service.trigger_build()

        self.observer = Observer()
        for folder in (self.config.content_dir, self.config.templates_dir):
            if folder.is_dir():
                self.observer.schedule(Handler(), str(folder), recursive=True)
        self.observer.daemon = True
        self.observer.start()

    def trigger_build(self) -> None:
        """Debounced: every change moves the pending build a little later."""
        run_at = datetime.now(self.config.site.tz) + timedelta(
            seconds=self.config.schedule.debounce
        )
        self.scheduler.add_job(
            run_build,
            "date",
            run_date=run_at,
            args=[str(self.root)],
            id=WATCH_JOB,
            name="build na wijziging",
            jobstore="memory",
            replace_existing=True,
            misfire_grace_time=None,
        )

    # listeners ---------------------------------------------------------------------------

    def _on_submitted(self, event: Any) -> None:
        self._starts[event.job_id] = time.perf_counter()

    def _on_done(self, event: Any) -> None:
        started = self._starts.pop(event.job_id, time.perf_counter())
        duration = time.perf_counter() - started
        kind = job_kind(event.job_id)
        entry: dict[str, Any] = {
            "job": kind,
            "start": datetime.fromtimestamp(time.time() - duration, UTC).isoformat(
                timespec="seconds"
            ),
            "duur": round(duration, 3),
        }
        if event.exception is not None:
            entry["result"] = "fout"
            entry["detail"] = (
                str(event.exception).splitlines()[0][:500]
                if str(event.exception)
                else repr(event.exception)
            )
        else:
            entry.update(event.retval or {})
        self.runs.record(kind, entry)
        log.info(line(**entry))
        if kind in (BUILD_JOB, NEXT_CHANGE_JOB, WATCH_JOB) and self.scheduler.running:
            self.plan_next_change()

    def _on_busy(self, event: Any) -> None:
        """A build came due while the same job was still running (a change saved during a
        build): APScheduler skips it, and a one-off job would be gone; so it is asked for
        again, until the running build is done."""
        if job_kind(event.job_id) in (WATCH_JOB, NEXT_CHANGE_JOB) and self.scheduler.running:
            self.trigger_build()

    def _on_missed(self, event: Any) -> None:
        log.info(
            line(job=job_kind(event.job_id), result="gemist", gepland=str(event.scheduled_run_time))
        )
