"""The approval gate in `krimppost run`: a newsletter slot sends only an approved issue.

The service runs in a subprocess against aiosmtpd on loopback. A slot is made to come due
as in tests/test_schedule.py: the service is started once (it persists its newsletter job),
stopped, and its persisted slot moved a minute into the past; the next start runs that
missed slot once (within newsletter_grace_time).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from storesql import execute, scalar
from test_delivery import Recorder, Sink, add_subscribers, item, set_smtp
from test_schedule import AMS, configure, in_feed, start_service, stop, wait_for

from conftest import REPO, Project, build_at
from pipeline.commands.newsletter import compile_issue

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

# Beside the store's local anchor (the SQLite file, or where it would be): the service's
# record of its runs, whatever the database.
STATE = ".krimppost/state.sqlite"
ISSUE_OF = re.compile(rb"<nieuwsbrief-(\d{4})\.")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sink(recorder: Recorder) -> Iterator[Sink]:
    server = Sink(recorder, enable_SMTPUTF8=True)
    yield server
    server.close()


def newsletter_settings(project: Project, **values: bool) -> None:
    """Set keys of [newsletter] (the test config has `approval = false` in it)."""
    path = project.root / "config.toml"
    text = path.read_text(encoding="utf-8").replace("approval = false\n", "", 1)
    keys = "".join(f"{k} = {str(v).lower()}\n" for k, v in values.items())
    path.write_text(text.replace("[newsletter]\n", "[newsletter]\n" + keys, 1), encoding="utf-8")


def krimppost(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--root", str(project.root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},  # at call time: the test's store
        capture_output=True,
        text=True,
        timeout=120,
    )


def issues_received(recorder: Recorder) -> Counter[int]:
    """How many messages of each issue the server accepted."""
    with recorder.lock:
        return Counter(int(ISSUE_OF.search(data)[1]) for _, data in recorder.messages)  # type: ignore[index]


def last_newsletter_run(project: Project) -> dict[str, object] | None:
    try:
        runs = (project.root / f"{STATE}.runs.json").read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return json.loads(runs).get("nieuwsbrief")


def move_slot_back(project: Project) -> None:
    """Put the persisted newsletter slot a minute in the past (the column APScheduler
    queries and the pickled job state it restores)."""
    root = project.root
    blob = scalar(root, "SELECT job_state FROM apscheduler_jobs WHERE id = 'nieuwsbrief'")
    assert blob is not None, "no persisted newsletter job"
    job_state = pickle.loads(blob)
    job_state["next_run_time"] = datetime.now(AMS) - timedelta(minutes=1)
    moved = execute(
        root,
        "UPDATE apscheduler_jobs SET next_run_time = :next, job_state = :state"
        " WHERE id = 'nieuwsbrief'",
        next=job_state["next_run_time"].timestamp(),
        state=pickle.dumps(job_state, pickle.HIGHEST_PROTOCOL),
    )
    assert moved == 1


def slot(project: Project) -> str:
    """One newsletter slot of the service; returns the service's log."""
    move_slot_back(project)
    before = last_newsletter_run(project)
    service = start_service(project)
    try:
        wait_for(lambda: last_newsletter_run(project) not in (None, before), 90)
    finally:
        code, err = stop(service)
    assert code == 0, err
    (result,) = [line for line in err.splitlines() if line.startswith("job=nieuwsbrief ")]
    assert " result=ok " in result, err
    return err


def service_project(project: Project, port: int) -> list[str]:
    """Three items, approval on, auto_send on, six subscribers; the service started once
    (its first build, and its newsletter job persisted) and stopped."""
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    configure(project, newsletter="0 10 1-7 * tue", auto_send=True)
    newsletter_settings(project, approval=True)
    set_smtp(project.root, port, connections=1)
    addresses = add_subscribers(project.root, 6)
    service = start_service(project)
    try:
        wait_for(lambda: in_feed(project, "energietransitie-bericht-2"), 60)
    finally:
        code, err = stop(service)
    assert code == 0, err
    return addresses


def test_a_slot_makes_a_concept_sends_it_only_after_approval(
    project: Project, recorder: Recorder, sink: Sink
) -> None:
    addresses = service_project(project, sink.port)

    def issue(number: int) -> Path:
        return project.root / f"outbox/newsletters/{number:04d}/manifest.json"

    # The first slot compiles issue 1 as a concept and sends nothing.
    err = slot(project)
    assert issue(1).exists()
    assert "event=wacht-op-goedkeuring nummer=1 " in err, err
    assert recorder.messages == []

    # While it waits, a slot compiles nothing new, even with news, and sends nothing.
    project.write("wrb/nieuw.md", item(20, "wrb"))
    build_at(project, datetime.now(UTC).isoformat())
    err = slot(project)
    assert "event=wacht-op-goedkeuring nummer=1 " in err, err
    assert " wacht_op_goedkeuring=1" in err
    assert not issue(2).exists()
    assert recorder.messages == []
    status = krimppost(project, "status")
    assert "  wachten op goedkeuring: 1 " in status.stdout, status.stdout
    assert re.search(r"^    #1: .* \(gemaakt 20\d\d-", status.stdout, re.M), status.stdout

    approved = krimppost(project, "newsletter", "approve", "1", "--by", "Anna de Vries")
    assert approved.returncode == 0, approved.stderr
    assert recorder.messages == []  # send_on_approval is off: the next slot sends it
    status = krimppost(project, "status")
    assert "  goedgekeurd, nog niet verstuurd: 1 " in status.stdout, status.stdout
    assert "    #1: " in status.stdout and "goedgekeurd door Anna de Vries" in status.stdout

    # The next slot sends issue 1 to everyone, once; the news waiting since goes into
    # issue 2, a concept again: made, not sent.
    err = slot(project)
    assert "event=verzending-goedgekeurd nummer=1" in err, err
    assert recorder.received() == Counter({a: 1 for a in addresses})
    assert issues_received(recorder) == Counter({1: len(addresses)})
    assert issue(2).exists()
    assert "event=wacht-op-goedkeuring nummer=2 " in err, err

    # And a later slot neither sends issue 1 again nor the unapproved issue 2.
    err = slot(project)
    assert "event=wacht-op-goedkeuring nummer=2 " in err, err
    assert "verzending-goedgekeurd" not in err
    assert issues_received(recorder) == Counter({1: len(addresses)})


def test_send_on_approval_sends_at_approve_and_the_slot_does_not_send_again(
    project: Project, recorder: Recorder, sink: Sink
) -> None:
    from pipeline.commands.run import run_newsletter

    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    configure(project, newsletter="0 10 1-7 * tue", auto_send=True)
    newsletter_settings(project, approval=True, send_on_approval=True)
    set_smtp(project.root, sink.port, connections=1)
    addresses = add_subscribers(project.root, 6)
    build_at(project, "2026-11-27T12:00")
    assert compile_issue(project.root, datetime(2026, 11, 27, 12, tzinfo=UTC)).number == 1

    approved = krimppost(project, "newsletter", "approve", "1", "--by", "Anna")
    assert approved.returncode == 0, approved.stderr + approved.stdout
    assert recorder.received() == Counter({a: 1 for a in addresses})

    result = run_newsletter(str(project.root), True)  # what the slot runs
    assert "verstuurd_nummers" not in result and "verzonden" not in result, result
    assert result["nummer"] is None and "wacht_op_goedkeuring" not in result
    assert recorder.received() == Counter({a: 1 for a in addresses})


def test_with_approval_and_without_auto_send_a_slot_makes_a_concept_and_sends_nothing(
    project: Project, recorder: Recorder, sink: Sink
) -> None:
    from pipeline.commands.run import run_newsletter

    project.write("wrb/bericht-0.md", item(0, "wrb"))
    newsletter_settings(project, approval=True)
    set_smtp(project.root, sink.port, connections=1)
    add_subscribers(project.root, 3)
    build_at(project, "2026-11-27T12:00")

    result = run_newsletter(str(project.root), False)
    assert result["nummer"] == 1 and result["wacht_op_goedkeuring"] == 1
    assert krimppost(project, "newsletter", "approve", "1", "--by", "Anna").returncode == 0
    # Approved, but sending is a person's (no auto_send): the slot leaves it.
    result = run_newsletter(str(project.root), False)
    assert "verstuurd_nummers" not in result and result["nummer"] is None
    assert recorder.messages == []
    status = krimppost(project, "status").stdout
    assert "goedgekeurd, nog niet verstuurd: 1 (versturen: krimppost newsletter send N)" in status


def test_without_approval_a_slot_compiles_and_sends_as_before(
    project: Project, recorder: Recorder, sink: Sink
) -> None:
    from pipeline.commands.run import run_newsletter

    project.write("wrb/bericht-0.md", item(0, "wrb"))
    set_smtp(project.root, sink.port, connections=1)
    addresses = add_subscribers(project.root, 2)  # of wrb and of all tracks
    build_at(project, "2026-11-27T12:00")
    result = run_newsletter(str(project.root), True)
    assert result["nummer"] == 1 and result["verzonden"] == len(addresses)
    assert "wacht_op_goedkeuring" not in result
    assert recorder.received() == Counter({a: 1 for a in addresses})
