"""Several senders share one issue's recipients: `send --workers K`, separate `send`
processes (on SQLite and on PostgreSQL), workers killed with SIGKILL at random moments,
a run reaped while it stalled, and SMTP relays used in turn."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from storesql import query
from test_delivery import Recorder, Sink, add_subscribers, newsletter_project, set_smtp

from conftest import REPO, Project
from pipeline.config import load_config
from pipeline.state import StateStore, transaction
from pipeline.state.deliveries import DeliveryLog

pytestmark = pytest.mark.usefixtures("state_backend")


@dataclass
class Mail:
    root: Path
    recorder: Recorder
    sink: Sink


@pytest.fixture
def mail(project: Project) -> Iterator[Mail]:
    """Issue 1 compiled, and a mail sink that [smtp] points at."""
    recorder = Recorder()
    sink = Sink(recorder)
    newsletter_project(project)
    set_smtp(project.root, sink.port)
    yield Mail(project.root, recorder, sink)
    sink.close()


def cli(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "newsletter", *args, "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def statuses(root: Path) -> dict[str, int]:
    return dict(query(root, "SELECT status, COUNT(*) FROM deliveries GROUP BY status"))


def test_workers_share_the_recipients_and_the_report_counts_them_all(
    mail: Mail,
) -> None:
    root, recorder = mail.root, mail.recorder
    addresses = add_subscribers(root, 600, [""])
    # Paced, so the helper processes are up before the first one has sent everything.
    set_smtp(root, mail.sink.port, rate_per_second=200.0)
    process = cli(root, "send", "1", "--workers", "3")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    received = recorder.received()
    assert set(received) == set(addresses) and max(received.values()) == 1
    assert "600 verstuurd" in out
    runs = query(root, "SELECT id, parent, sent FROM send_runs ORDER BY id")
    parent = runs[0][0]
    assert [r[1] for r in runs] == [None, parent, parent]
    assert sum(r[2] for r in runs) == 600
    # The helpers really took part.
    assert all(r[2] > 0 for r in runs[1:]), runs


def test_three_senders_two_killed_at_random_each_recipient_gets_it_at_most_once(
    mail: Mail,
) -> None:
    root, recorder, sink = mail.root, mail.recorder, mail.sink
    addresses = add_subscribers(root, 600, [""])
    set_smtp(root, sink.port, rate_per_second=150.0, lease_seconds=3.0)
    senders = [cli(root, "send", "1") for _ in range(3)]
    rng = random.Random()
    for victim in senders[:2]:
        time.sleep(rng.uniform(0.3, 1.5))
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
    out, err = senders[2].communicate(timeout=180)
    received = recorder.received()
    assert max(received.values()) == 1  # nobody twice
    counts = statuses(root)
    assert set(counts) <= {"sent", "uncertain"}, counts  # everything has an outcome
    uncertain = {
        a
        for (a,) in query(
            root,
            "SELECT s.email FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber WHERE d.status = 'uncertain'",
        )
    }
    # Every recipient either got it or is listed as uncertain (in flight at a kill: at most
    # one per connection of a killed sender) — never silently left out.
    assert set(received) | uncertain == set(addresses)
    assert len(uncertain) <= 2
    if uncertain:
        assert senders[2].returncode == 1 and all(a in out for a in uncertain), out
    else:
        assert senders[2].returncode == 0, err


def test_a_run_reaped_while_it_stalled_may_not_send_what_it_had_claimed(
    mail: Mail,
) -> None:
    root = mail.root
    add_subscribers(root, 10, [""])
    config = load_config(root)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with StateStore.of(config) as state:
        log = DeliveryLog(state.conn)
        with transaction(state.conn):
            stalled = log.begin_run(1, [], stamp, False, lease=0.5).run_id
        assert stalled is not None
        with transaction(state.conn):
            mine = log.claim(1, stalled, 4)
        assert len(mine) == 4
        time.sleep(1.0)  # no heartbeat for longer than the lease
        with transaction(state.conn):
            other = log.begin_run(1, [], stamp, False, lease=0.5).run_id
        assert other is not None
        with transaction(state.conn):
            theirs = log.claim(1, other, 100)
        # The stalled run's claims passed to the other run, and it may not mark them.
        assert {r.subscriber for r in mine} <= {r.subscriber for r in theirs}
        with transaction(state.conn):
            assert not log.mark_sending(1, mine[0].subscriber, stalled, "<x@y>", stamp)
            assert log.mark_sending(1, mine[0].subscriber, other, "<x@y>", stamp)
        assert not log.heartbeat(stalled)  # and its heartbeat tells it to stop


def test_relays_are_used_in_turn_and_a_refusing_one_is_skipped(
    mail: Mail,
) -> None:
    root, recorder, sink = mail.root, mail.recorder, mail.sink
    add_subscribers(root, 60, [""])
    second = Recorder()
    other = Sink(second)
    refused = Sink(Recorder())
    dead_port = refused.port
    refused.close()  # nothing listens there any more: connections are refused
    try:
        set_smtp(
            root,
            sink.port,
            hosts=[f"127.0.0.1:{dead_port}", f"127.0.0.1:{other.port}"],
            connections=3,
            max_per_connection=5,
        )
        started = time.monotonic()
        process = cli(root, "send", "1")
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert time.monotonic() - started < 60
    finally:
        other.close()
    first_got, second_got = recorder.received(), second.received()
    assert sum(first_got.values()) + sum(second_got.values()) == 60
    assert not set(first_got) & set(second_got)
    assert first_got and second_got  # both relays that answer carried mail


def test_runs_that_stop_early_do_not_count_each_others_recipients_as_failed(
    mail: Mail,
) -> None:
    """Every worker stops at once when no relay answers; the recipients nobody tried are
    "nog niet verstuurd", once, and not also "mislukt" once per helper that saw them."""
    root = mail.root
    add_subscribers(root, 40, [""])
    refused = Sink(Recorder())
    refused.close()  # nothing listens there any more: every connection is refused
    set_smtp(root, refused.port)
    process = cli(root, "send", "1", "--workers", "3")
    out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "40 nog niet verstuurd" in err, err
    assert "0 verstuurd, 0 mislukt" in out, out
    assert [failed for (failed,) in query(root, "SELECT failed FROM send_runs")] == [0, 0, 0]
