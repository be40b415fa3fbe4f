"""What the `run` service (commands/run.py) and `status` share: the job ids, the cron
trigger, the service's lock and paths, the log of last results, and the persisted jobs."""

from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from pipeline.config import Config
from pipeline.errors import KrimppostError, Problem
from pipeline.private import DIR_MODE, FILE_MODE
from pipeline.state import StateStore, StoreAddress

log = logging.getLogger("krimppost.run")

BUILD_JOB = "build"
WATCH_JOB = "build-wijziging"
NEWSLETTER_JOB = "nieuwsbrief"
RESUME_JOB = "verzending-hervatten"
NEXT_CHANGE_JOB = "volgende-wijziging"
BOUNCES_JOB = "bounces"
# Before 14: one job per embargo moment, now the one NEXT_CHANGE_JOB.
OLD_EMBARGO_PREFIX = "embargo-"
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
            jobs_url=StoreAddress.of(config).url,
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


def job_kind(job_id: str) -> str:
    return job_id


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


def line(**fields: Any) -> str:
    """One structured line: key=value pairs, values JSON-quoted when they contain spaces."""
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if not text or any(c.isspace() for c in text) or '"' in text:
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def repair_persisted_jobs(config: Config) -> list[str]:
    """Before the scheduler reads its persisted jobs: those of an older krimppost are brought
    up to date, and those that cannot be restored are deleted (returned).

    APScheduler raises on an unreadable row when a job is looked up by id (as `start`
    does for the newsletter), which would stop the service at every start. The jobs are
    made again by `start` and `plan_next_change`; a dropped newsletter job loses only a
    slot missed while the service was down, so a job whose function moved (the job
    functions were in `pipeline.schedule` before) is pointed at it instead.
    """
    import pickle

    from apscheduler.job import Job

    address = StoreAddress.of(config)
    if not address.exists():
        return []
    dropped = []
    with StateStore(address) as state:
        for job_id, blob in state.persisted_jobs(JOBS_TABLE):
            try:
                if job_id.startswith(OLD_EMBARGO_PREFIX):
                    raise ValueError("vervangen door de taak 'volgende-wijziging'")
                job_state = pickle.loads(blob)
                func = job_state.get("func") if isinstance(job_state, dict) else None
                if isinstance(func, str) and func.startswith(_OLD_JOBS_MODULE):
                    job_state["func"] = JOBS_MODULE + func[len(_OLD_JOBS_MODULE) :]
                    state.replace_job(JOBS_TABLE, job_id, pickle.dumps(job_state))
                Job.__new__(Job).__setstate__(job_state)
            except Exception as exc:
                state.drop_job(JOBS_TABLE, job_id)
                dropped.append(job_id)
                log.warning(
                    line(
                        event="taak-onleesbaar",
                        job=job_id,
                        detail=f"{type(exc).__name__}: {exc}"[:300],
                        actie="verwijderd; wordt opnieuw aangemaakt",
                    )
                )
    return dropped


JOBS_MODULE = "pipeline.commands.run:"
_OLD_JOBS_MODULE = "pipeline.schedule:"


def next_runs(config: Config) -> list[tuple[str, datetime | None]]:
    """Next run of every persisted job."""
    address = StoreAddress.of(config)
    if not address.exists():
        return []
    with StateStore(address) as state:
        rows = state.job_times(JOBS_TABLE)
    tz = config.site.tz
    return [
        (job_id, datetime.fromtimestamp(ts, UTC).astimezone(tz) if ts else None)
        for job_id, ts in rows
    ]
