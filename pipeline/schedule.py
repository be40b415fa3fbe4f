"""`krimppost run`: one APScheduler 3 scheduler calling the same functions as the CLI.

Jobs live in the state store (SQLAlchemyJobStore) so they survive restarts; job functions
are module-level and take only the project root, so they pickle by reference. Builds are
triggered by file changes (watchdog, debounced), by a fallback interval and by a one-off
job at every upcoming embargo moment; the newsletter runs on a cron in the site's zone.
"""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from pipeline.config import Config, load_config
from pipeline.errors import KrimppostError, Problem
from pipeline.private import DIR_MODE, FILE_MODE

log = logging.getLogger("krimppost.run")

BUILD_JOB = "build"
WATCH_JOB = "build-wijziging"
NEWSLETTER_JOB = "nieuwsbrief"
RESUME_JOB = "verzending-hervatten"
EMBARGO_PREFIX = "embargo-"
JOBS_TABLE = "apscheduler_jobs"


class WallClockCronTrigger(CronTrigger):
    """A cron trigger that fires once per wall-clock time, also when autumn repeats an hour.

    APScheduler 3.11 fires a 02:30 job twice on the last Sunday of October in
    Europe/Amsterdam (02:30 CEST and 02:30 CET); a daily job must run once.
    """

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        fire = super().get_next_fire_time(previous_fire_time, now)
        if previous_fire_time is None or fire is None:
            return fire
        tz = fire.tzinfo

        def wall(moment: datetime) -> tuple[int, ...]:
            return moment.astimezone(tz).timetuple()[:6]

        last_wall = wall(previous_fire_time)
        # Aware datetimes sharing a tzinfo compare by wall clock in Python, so all
        # arithmetic here is in UTC. Skip fire times whose wall-clock time is not after the
        # previous one (the repeated hour); probing a minute further always makes progress.
        probe = now.astimezone(UTC)
        for _ in range(2 * 24 * 60):
            if fire is None or wall(fire) > last_wall:
                return fire
            probe = max(probe, fire.astimezone(UTC)) + timedelta(minutes=1)
            # With a previous fire time APScheduler restarts from it, not from `now`.
            fire = super().get_next_fire_time(None, probe.astimezone(tz))
        return fire


def cron_trigger(expression: str, timezone: Any) -> WallClockCronTrigger:
    """Five crontab fields; day and weekday must BOTH match (APScheduler), so
    `0 10 1-7 * tue` is the first Tuesday of the month. Use weekday names, not numbers."""
    minute, hour, day, month, day_of_week = expression.split()
    return WallClockCronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=timezone
    )


# Job functions: module-level, arguments are plain strings (pickled by reference) ----------


def run_build(root: str) -> dict[str, Any]:
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


def run_newsletter(root: str, auto_send: bool) -> dict[str, Any]:
    from pipeline.commands.newsletter import compile_issue

    out: dict[str, Any] = {"result": "ok"}
    if auto_send:  # an earlier send cut short (kill, crash, reboot) goes first
        out.update(resume_sends(root))
    report = compile_issue(Path(root), datetime.now(UTC))
    out.update({"nummer": report.number, "berichten": report.items})
    if report.number is not None and auto_send:
        out.update(_send(root, report.number))
    return out


def unfinished_sends(root: str) -> list[int]:
    """Issues whose send has begun and left recipients without an outcome."""
    from pipeline.state import WAITING, IssueStore, StateStore

    config = load_config(Path(root))
    path = config.path(config.state.path)
    if not path.exists():
        return []
    with StateStore(path) as state:
        progress = IssueStore(state).send_progress()
    return sorted(n for n, counts in progress.items() if any(counts.get(s) for s in WAITING))


def resume_sends(root: str) -> dict[str, Any]:
    """Finish every begun send, oldest issue first (with auto_send only: see Service.start)."""
    numbers = unfinished_sends(root)
    out: dict[str, Any] = {"hervat": numbers} if numbers else {}
    totals: dict[str, int] = {}
    for number in numbers:
        log.info(_line(event="verzending-hervat", nummer=number))
        for key, value in _send(root, number).items():
            totals[key] = totals.get(key, 0) + value
    if totals:
        out["hervat_resultaat"] = totals
    return out


def run_resume(root: str) -> dict[str, Any]:
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


# The service ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePaths:
    lock: Path
    runs: Path
    jobs_url: str

    @classmethod
    def of(cls, config: Config) -> ServicePaths:
        state = config.path(config.state.path)
        return cls(
            lock=state.with_name(state.name + ".scheduler.lock"),
            runs=state.with_name(state.name + ".runs.json"),
            jobs_url=f"sqlite:///{state}",
        )


class ServiceLock:
    """Exactly one scheduler per state store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise KrimppostError(
                [
                    Problem(
                        str(self.path),
                        None,
                        f"krimppost run draait al voor deze state store (pid {pid or '?'})",
                    )
                ]
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @staticmethod
    def holder(path: Path) -> int | None:
        """The pid of a running service, or None."""
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


class RunLog:
    """The last result of each job, for `status`; one small JSON file written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}

    def record(self, job: str, entry: dict[str, Any]) -> None:
        with self._lock:
            data = self.read()
            data[job] = entry
            temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(temp, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, self.path)


def _job_kind(job_id: str) -> str:
    return "embargo" if job_id.startswith(EMBARGO_PREFIX) else job_id


def configure_logging(config: Config, stream: Any = None) -> None:
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handlers = [handler]
    if config.schedule.log_file:
        path = config.path(config.schedule.log_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=5, encoding="utf-8"
        )
        rotating.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(rotating)
    log.handlers = handlers
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _line(**fields: Any) -> str:
    """One structured line: key=value pairs, values JSON-quoted when they contain spaces."""
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if not text or any(c.isspace() for c in text) or '"' in text:
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def upcoming_embargoes(config: Config, now: datetime) -> list[datetime]:
    from pipeline.content.model import ItemState
    from pipeline.content.reader import read_content

    content = read_content(config)
    return sorted({i.published_at for i in content.items if i.state(now) is ItemState.EMBARGOED})


class Service:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.config = load_config(self.root)
        self.paths = ServicePaths.of(self.config)
        self.lock = ServiceLock(self.paths.lock)
        self.runs = RunLog(self.paths.runs)
        self.stop_event = threading.Event()
        self.scheduler: Any = None
        self.observer: Any = None
        self._starts: dict[str, float] = {}

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.events import (
            EVENT_JOB_ERROR,
            EVENT_JOB_EXECUTED,
            EVENT_JOB_MISSED,
            EVENT_JOB_SUBMITTED,
        )
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.lock.acquire()
        drop_unreadable_jobs(self.config.path(self.config.state.path))
        sched = self.config.schedule
        self.scheduler = BackgroundScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(url=self.paths.jobs_url, tablename=JOBS_TABLE),
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
        self.plan_embargoes()
        self._watch()
        log.info(
            _line(
                event="start",
                pid=os.getpid(),
                root=root,
                jobs=[j.id for j in self.scheduler.get_jobs()],
            )
        )

    def run_forever(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        try:
            while not self.stop_event.wait(1):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        log.info(_line(event="stop", reason="signaal", note="lopende taak wordt afgemaakt"))
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # a running build finishes: nothing half-written
        self.lock.release()
        log.info(_line(event="gestopt"))

    # planning ----------------------------------------------------------------------------

    def plan_embargoes(self) -> None:
        """A one-off build just after every upcoming embargo moment; stale ones removed."""
        now = datetime.now(UTC)
        try:
            moments = upcoming_embargoes(self.config, now)
        except KrimppostError as exc:
            log.info(_line(event="planning", result="fout", detail=str(exc)))
            return
        wanted = {f"{EMBARGO_PREFIX}{int(m.timestamp())}": m for m in moments}
        for job in self.scheduler.get_jobs(jobstore="default"):
            if job.id.startswith(EMBARGO_PREFIX) and job.id not in wanted:
                self.scheduler.remove_job(job.id)
        for job_id, moment in wanted.items():
            self.scheduler.add_job(
                run_build,
                "date",
                run_date=moment + timedelta(seconds=1),
                args=[str(self.root)],
                id=job_id,
                name=f"embargo {moment.isoformat()}",
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
        kind = _job_kind(event.job_id)
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
        log.info(_line(**entry))
        if kind in (BUILD_JOB, "embargo", WATCH_JOB) and self.scheduler.running:
            self.plan_embargoes()

    def _on_missed(self, event: Any) -> None:
        log.info(
            _line(
                job=_job_kind(event.job_id), result="gemist", gepland=str(event.scheduled_run_time)
            )
        )


def drop_unreadable_jobs(path: Path) -> list[str]:
    """Delete persisted jobs that cannot be restored, before the scheduler reads them.

    APScheduler raises on an unreadable row when a job is looked up by id (as `start`
    does for the newsletter), which would stop the service at every start. The jobs are
    made again by `start` and `plan_embargoes`; a dropped newsletter job loses only a slot
    missed while the service was down.
    """
    import pickle

    from apscheduler.job import Job

    from pipeline.state import StateStore

    if not path.exists():
        return []
    dropped = []
    with StateStore(path) as state:
        for job_id, blob in state.persisted_jobs(JOBS_TABLE):
            try:
                Job.__new__(Job).__setstate__(pickle.loads(blob))
            except Exception as exc:
                state.drop_job(JOBS_TABLE, job_id)
                dropped.append(job_id)
                log.warning(
                    _line(
                        event="taak-onleesbaar",
                        job=job_id,
                        detail=f"{type(exc).__name__}: {exc}"[:300],
                        actie="verwijderd; wordt opnieuw aangemaakt",
                    )
                )
    return dropped


def next_runs(config: Config) -> list[tuple[str, datetime | None]]:
    """Next run of every persisted job, read straight from the job store table."""
    import sqlite3

    path = config.path(config.state.path)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            f"SELECT id, next_run_time FROM {JOBS_TABLE} ORDER BY next_run_time"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    tz = config.site.tz
    return [
        (job_id, datetime.fromtimestamp(ts, UTC).astimezone(tz) if ts else None)
        for job_id, ts in rows
    ]
