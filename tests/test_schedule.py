"""`krimppost run` and `status`: the service in a subprocess, at second-scale intervals."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from storesql import execute, query, scalar

from conftest import REPO, VALID, Project
from pipeline.config import load_config
from pipeline.outbox import TEMP_PREFIX
from pipeline.schedule import JOBS_TABLE, cron_trigger
from pipeline.state import StateStore

AMS = ZoneInfo("Europe/Amsterdam")


def fires(expression: str, start: datetime, count: int) -> list[str]:
    trigger = cron_trigger(expression, AMS)
    out, previous, now = [], None, start
    for _ in range(count):
        moment = trigger.get_next_fire_time(previous, now)
        out.append(moment.astimezone(UTC).strftime("%m-%d %H:%M"))
        previous = now = moment
    return out


def test_daily_0230_across_dst_runs_once_a_day() -> None:
    # Spring: 02:30 does not exist on 29 March; the job runs once, right after the gap.
    assert fires("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=AMS), 4) == [
        "03-28 01:30",
        "03-29 01:30",
        "03-30 00:30",
        "03-31 00:30",
    ]
    # Autumn: 02:30 happens twice on 25 October; the job runs once (plain APScheduler: twice).
    assert fires("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=AMS), 4) == [
        "10-24 00:30",
        "10-25 00:30",
        "10-26 01:30",
        "10-27 01:30",
    ]


def test_daily_1000_across_dst_keeps_local_time() -> None:
    assert fires("0 10 * * *", datetime(2026, 3, 27, 12, tzinfo=AMS), 3) == [
        "03-28 09:00",
        "03-29 08:00",
        "03-30 08:00",
    ]
    assert fires("0 10 * * *", datetime(2026, 10, 23, 12, tzinfo=AMS), 3) == [
        "10-24 08:00",
        "10-25 09:00",
        "10-26 09:00",
    ]


def test_first_tuesday_of_the_month() -> None:
    assert fires("0 10 1-7 * tue", datetime(2026, 11, 27, tzinfo=AMS), 3) == [
        "12-01 09:00",
        "01-05 09:00",
        "02-02 09:00",
    ]


# The service in a subprocess -------------------------------------------------------------
#
# On SQLite and on PostgreSQL (tests/conftest.py: state_backend): the service, its job
# processes and this test share the store the environment names.

both_backends = pytest.mark.usefixtures("state_backend")


def configure(project: Project, **schedule: object) -> None:
    config = project.root / "config.toml"
    text = config.read_text()
    lines = []
    for key, value in {"build_interval": 300, "debounce": 0.5, **schedule}.items():
        lines.append(f"{key} = {json.dumps(value)}")
    start = text.index("[schedule]")
    end = text.index("\n[", start + 1)
    config.write_text(text[:start] + "[schedule]\n" + "\n".join(lines) + "\n" + text[end:])


def start_service(project: Project) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--root", str(project.root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, timeout: float, step: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s")


def in_feed(project: Project, item_id: str) -> bool:
    feed = project.root / "outbox/site/feeds/feed.json"
    try:
        return any(i["url"].endswith(f"/{item_id}/") for i in json.loads(feed.read_text())["items"])
    except (FileNotFoundError, ValueError):
        return False


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def first_stderr_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line the process writes to stderr, read in a thread so a silent process
    fails the test instead of hanging it."""
    got: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: got.put(process.stderr.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        return got.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no line on stderr within {timeout} s") from None


@both_backends
def test_service_builds_on_change_and_on_embargo(project: Project, state_backend: str) -> None:
    configure(project, newsletter="")
    project.write("wrb/eerste.md", VALID)
    service = start_service(project)
    try:
        wait_for(lambda: in_feed(project, "wrb-eerste"), 30)
        # A dropped file is in the feeds within 10 s.
        project.write("woningmarkt/nieuw.md", VALID.replace("track: wrb", "track: woningmarkt"))
        assert wait_for(lambda: in_feed(project, "woningmarkt-nieuw"), 10) < 10
        # An embargo 5 s ahead fires on time, not before.
        moment = (datetime.now(AMS) + timedelta(seconds=5)).replace(microsecond=0)
        embargoed = VALID.replace(
            "kind: news", f"kind: news\npublish_at: {moment.replace(tzinfo=None).isoformat()}"
        )
        project.write("wrb/embargo.md", embargoed)
        time.sleep(2)
        assert not in_feed(project, "wrb-embargo")
        wait_for(lambda: in_feed(project, "wrb-embargo"), 20)
        assert datetime.now(AMS) >= moment
        assert (datetime.now(AMS) - moment).total_seconds() < 8
        second = start_service(project)
        if state_backend == "sqlite":
            # A second service on the same state store refuses.
            _, err = second.communicate(timeout=60)
            assert second.returncode != 0
            assert "krimppost run draait al voor deze state store" in err
        else:
            # One on PostgreSQL (from any host) waits as a standby, naming the active one,
            # and runs no job while it waits.
            first_line = first_stderr_line(second, timeout=60)
            assert "event=stand-by" in first_line and f"(pid {service.pid})" in first_line
            code, err = stop(second)
            assert code == 0, err
            assert not [
                line for line in err.splitlines() if line.startswith(("job=", "event=start"))
            ], err
        status = subprocess.run(
            [sys.executable, "-m", "pipeline", "status", "--root", str(project.root)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        # On PostgreSQL the active scheduler may be on another host: status names it.
        running = {
            "sqlite": "dienst: draait",
            "postgresql": f"dienst: actief op {socket.gethostname()}",
        }
        assert f"{running[state_backend]} (pid {service.pid})" in status.stdout
        assert "  build: " in status.stdout
    finally:
        code, err = stop(service)
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("job=")]
    assert lines and all(" duur=" in line and " result=" in line for line in lines)


@both_backends
def test_restart_keeps_jobs_and_runs_a_missed_newsletter_once(project: Project) -> None:
    configure(project, newsletter="0 10 1-7 * tue", newsletter_grace_time=3600)
    project.write("wrb/a.md", VALID)
    project.write(
        "wrb/later.md", VALID.replace("kind: news", "kind: news\npublish_at: 2030-01-01T09:00")
    )

    def persisted() -> dict[str, float]:
        # APScheduler makes its table when the service first starts.
        with StateStore.of(load_config(project.root)) as state:
            if not state.has_table(JOBS_TABLE):
                return {}
            rows = state.conn.execute(text(f"SELECT id, next_run_time FROM {JOBS_TABLE}"))
            return {job_id: next_run for job_id, next_run in rows}

    service = start_service(project)
    try:
        wait_for(lambda: in_feed(project, "wrb-a"), 30)
        # After the build, the one-off build at the next change the build decided (the
        # embargo of 2030-01-01 09:00 CET plus a second).
        wait_for(lambda: persisted().get("volgende-wijziging") == 1893484801, 30)
    finally:
        assert stop(service)[0] == 0
    assert {"build", "nieuwsbrief", "volgende-wijziging"} <= set(persisted())
    # While the service is down, the newsletter slot passes: move the persisted slot (the
    # column APScheduler queries and the pickled job state it restores) a minute into the past.
    blob = scalar(project.root, "SELECT job_state FROM apscheduler_jobs WHERE id = 'nieuwsbrief'")
    job_state = pickle.loads(blob)
    job_state["next_run_time"] = datetime.now(AMS) - timedelta(minutes=1)
    moved = execute(
        project.root,
        "UPDATE apscheduler_jobs SET next_run_time = :next_run, job_state = :job_state"
        " WHERE id = 'nieuwsbrief'",
        next_run=job_state["next_run_time"].timestamp(),
        job_state=pickle.dumps(job_state, pickle.HIGHEST_PROTOCOL),
    )
    assert moved == 1
    service = start_service(project)
    try:
        issue = project.root / "outbox/newsletters/0001/manifest.json"
        wait_for(issue.exists, 30)
        time.sleep(3)
    finally:
        code, err = stop(service)
    assert code == 0
    assert not (project.root / "outbox/newsletters/0002").exists()
    assert sum(1 for line in err.splitlines() if line.startswith("job=nieuwsbrief")) == 1
    next_run = scalar(
        project.root, "SELECT next_run_time FROM apscheduler_jobs WHERE id = 'nieuwsbrief'"
    )
    assert next_run > time.time()
    assert query(
        project.root, "SELECT COUNT(*) FROM apscheduler_jobs WHERE id = 'volgende-wijziging'"
    ) == [(1,)]


def build_under_way(project: Project) -> bool:
    """Whether a process holds the project's build lock, the one every build takes, in
    whichever process it runs: probed with a non-blocking lock of our own, let go at once."""
    try:
        fd = os.open(project.root / ".krimppost" / "state.sqlite.build.lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@both_backends
def test_sigterm_during_a_build_lets_it_finish(project: Project) -> None:
    configure(project, newsletter="")
    for n in range(150):
        project.write(f"wrb/item-{n:03d}.md", VALID + "Tekst over krimp. " * 200)
    # Its own process group: SIGTERM goes to every process of the service, as systemctl
    # stop (KillMode=control-group, the unit's default) and Ctrl-C do, so a build that runs
    # in a child process of the service must survive the signal too.
    service = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--root", str(project.root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # The first build began (or the service died: then its error is the message).
        wait_for(lambda: build_under_way(project) or service.poll() is not None, 120, step=0.01)
        assert service.poll() is None, service.communicate()[1]
        os.killpg(service.pid, signal.SIGTERM)
        _, err = service.communicate(timeout=120)
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()
    assert service.returncode == 0, err
    # The signal landed during that build, and the build ran to its end before the service
    # stopped: its result line comes after the stop line.
    events = [line.split()[0] for line in err.splitlines() if line.startswith(("event=", "job="))]
    assert events[-3:] == ["event=stop", "job=build", "event=gestopt"], err
    assert events.count("job=build") == 1, err
    (result,) = [line for line in err.splitlines() if line.startswith("job=build ")]
    assert " result=ok " in result and " nieuw=150 " in result, result
    # What it wrote is whole and complete, and recorded as done: the next build has nothing to do.
    from test_crash import assert_whole

    assert not [p for p in (project.root / "outbox").rglob(f"{TEMP_PREFIX}*")]
    assert_whole(project.root)
    pages = project.root.glob("outbox/site/berichten/wrb-item-*/index.html")
    assert len(list(pages)) == 150
    assert in_feed(project, "wrb-item-149")
    from conftest import build_at

    assert build_at(project, datetime.now(UTC).isoformat()).skipped


@pytest.mark.parametrize("expression", ["0 10 * *", "61 10 * * *", "0 10 * * dinsdag"])
def test_bad_cron_is_a_config_error(project: Project, expression: str) -> None:
    configure(project, newsletter=expression)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "check", "--root", str(project.root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "'newsletter' in [schedule]" in result.stderr


@both_backends
def test_the_service_warns_about_nothing(project: Project) -> None:
    """Every job runs in a fresh process: nothing is forked from the threaded service (a
    DeprecationWarning under Python 3.12+), no library warning leaks from a job (twitter-
    text's pkg_resources), no connection is left open at the end (a ResourceWarning under
    3.13). With every warning shown, the service's output is its log lines only."""
    configure(project, newsletter="")
    project.write("wrb/eerste.md", VALID)
    service = subprocess.Popen(
        [sys.executable, "-X", "dev", "-m", "pipeline", "run", "--root", str(project.root)],
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: in_feed(project, "wrb-eerste"), 60)
        project.write("wrb/tweede.md", VALID.replace("Een geldig item", "Nog een item"))
        wait_for(lambda: in_feed(project, "wrb-tweede"), 60)
    finally:
        code, err = stop(service)
    assert code == 0, err
    others = [line for line in err.splitlines() if not line.startswith(("job=", "event="))]
    assert others == []
    assert sum(1 for line in err.splitlines() if line.startswith("job=build")) >= 2
