"""Two `krimppost run` against one PostgreSQL store: one is active, the other waits, never
do both run a job, and the second takes over when the first is killed. Two project folders
stand for two hosts (each its own outbox/ and local files), sharing the store."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_schedule import configure, wait_for

from conftest import REPO, VALID, Project, build_at

pytestmark = pytest.mark.parametrize("state_backend", ["postgresql"], indirect=True)


def start(root: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--root", str(root)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def events(log: Path, name: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if f"event={name}" in line]


def jobs_run(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("job=")]


def status(root: Path) -> str:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "status", "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout


def test_one_scheduler_is_active_and_the_other_takes_over_after_a_kill(
    state_backend: str, project: Project, tmp_path: Path
) -> None:
    configure(project, newsletter="", build_interval=1)
    project.write("wrb/eerste.md", VALID)
    build_at(project, "2026-11-27T12:00")  # the store exists and is migrated
    other_root = tmp_path / "tweede-host"
    shutil.copytree(project.root, other_root, ignore=shutil.ignore_patterns("outbox", ".krimppost"))
    first_log, second_log = tmp_path / "eerste.log", tmp_path / "tweede.log"
    first = start(project.root, first_log)
    second = None
    try:
        wait_for(lambda: events(first_log, "start"), 30)
        second = start(other_root, second_log)
        wait_for(lambda: events(second_log, "stand-by"), 30)
        # Both are up for a while; only the first runs the once-a-second build.
        time.sleep(4)
        assert jobs_run(first_log), first_log.read_text()
        assert not events(second_log, "start") and not jobs_run(second_log)
        assert "dienst: actief op" in (text := status(other_root)) and f"pid {first.pid}" in text
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        killed = time.monotonic()
        took = wait_for(lambda: events(second_log, "start"), 60)
        assert took < 60
        wait_for(lambda: jobs_run(second_log), 30)
        assert time.monotonic() - killed < 60
        assert f"pid {second.pid}" in status(project.root)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
