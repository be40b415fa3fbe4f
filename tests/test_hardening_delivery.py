"""Issue 13, unattended sending: broken SMTP connections (item 13), an interrupted automatic
send that the service completes (item 3), a corrupted job row (item 12).

The misbehaving server is a small SMTP server on raw loopback sockets, so it can stop at
any byte of a conversation; the well-behaved one is aiosmtpd (see test_delivery.py).
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from storesql import execute, query, scalar
from test_delivery import (
    NOW,
    Recorder,
    Sink,
    add_subscribers,
    item,
    newsletter_project,
    set_smtp,
)
from test_schedule import configure, start_service, stop, wait_for

from conftest import REPO, Project, build_at
from pipeline.config import load_config
from pipeline.state import DatabaseError, StoreAddress

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")


def env() -> dict[str, str]:
    """A child's environment: read when it starts, so it names the store the test uses."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


# What the raw server does with a recipient on the n-th time it sees its DATA:
#   None            accept (250 after the dot)
#   "mid-data"      read a few hundred bytes of the message, then close (the rest unread)
#   "no-354"        never answer the DATA command (the client times out before the body)
#   "after-dot"     read the whole message with its dot, then close without a reply
#   "stall-after"   read the whole message with its dot and never reply (client times out)
Behaviour = Callable[[str, int], str | None]


class RawSMTP:
    """A threaded SMTP server on 127.0.0.1 that misbehaves per recipient on request."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.accepted: Counter[str] = Counter()  # the server has the whole message
        self.seen: Counter[str] = Counter()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closing.set()
        self.listener.close()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        # The client sends nothing after DATA until the 354, so the buffer is empty then
        # and a raw recv() reads the message's first bytes.
        reader = conn.makefile("rb")

        def line() -> bytes:
            out = reader.readline()
            if not out:
                raise EOFError
            return out

        def say(text: str) -> None:
            conn.sendall(text.encode() + b"\r\n")

        rcpt = ""
        try:
            say("220 raw.example.nl ESMTP")
            while True:
                command = line()
                verb = command[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-raw.example.nl\r\n250 8BITMIME\r\n")
                elif verb == b"MAIL":
                    rcpt = ""
                    say("250 OK")
                elif verb == b"RCPT":
                    rcpt = command.split(b"<", 1)[1].split(b">", 1)[0].decode()
                    say("250 OK")
                elif verb == b"DATA":
                    with self.lock:
                        self.seen[rcpt] += 1
                        what = self.behaviour(rcpt, self.seen[rcpt])
                    if what == "no-354":
                        self.closing.wait(30)
                        return
                    say("354 ga uw gang")
                    if what == "mid-data":
                        time.sleep(0.01)  # let the message arrive, then read only its start
                        conn.recv(300)
                        return  # closed with the rest of the message unread
                    while line() != b".\r\n":
                        pass
                    with self.lock:
                        self.accepted[rcpt] += 1
                    if what == "after-dot":
                        return
                    if what == "stall-after":
                        conn.settimeout(30)
                        conn.recv(1)  # until the client gives up and closes
                        return
                    say("250 2.0.0 OK")
                elif verb == b"RSET":
                    say("250 OK")
                elif verb == b"QUIT":
                    say("221 tot ziens")
                    return
                else:
                    say("502 onbekend")
        except (EOFError, OSError):
            pass
        finally:
            reader.close()
            conn.close()


def broken_project(project: Project, server: RawSMTP) -> list[str]:
    newsletter_project(project)
    set_smtp(project.root, server.port, timeout=0.5, retries=3, retry_delay=0.02)
    return add_subscribers(project.root, 300)


def run_send(root: Path) -> tuple[int, str]:
    from pipeline.commands.send import send

    result = CliRunner().invoke(send, ["--root", str(root)])
    return result.exit_code, result.output


def uncertain_rows(root: Path) -> set[str]:
    return {
        email
        for (email,) in query(
            root,
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.status = 'uncertain'",
        )
    }


def test_failures_before_the_dot_are_retried_and_only_a_sent_dot_is_uncertain(
    project: Project,
) -> None:
    faults: dict[str, str] = {}
    server = RawSMTP(lambda address, n: faults.get(address) if n == 1 else None)
    try:
        addresses = broken_project(project, server)
        for n, address in enumerate(addresses[5::23]):
            faults[address] = ("mid-data", "no-354", "after-dot", "stall-after")[n % 4]
        dotted = {a for a, f in faults.items() if f in ("after-dot", "stall-after")}
        assert len(faults) == 13 and len(dotted) == 6
        code, output = run_send(project.root)
    finally:
        server.close()
    assert uncertain_rows(project.root) == dotted, output
    # Everyone has the message exactly once; the uncertain ones too (the server has it).
    assert server.accepted == Counter({a: 1 for a in addresses}), output
    assert code == 1, output
    assert f"onzeker ({len(dotted)})" in output
    assert "krimppost newsletter send 1 --resend-uncertain" in output
    assert "300 verstuurd" not in output and "294 verstuurd" in output
    shown = status_output(project.root)  # a finished send, but uncertain ones need a person
    assert "nieuwsbrieven nog niet verstuurd: 0" in shown, shown
    assert (
        "onzekere ontvangers: 6\n  nieuwsbrief 1: 6 (opnieuw versturen: krimppost newsletter"
        " send 1 --resend-uncertain)" in shown
    ), shown


def test_a_run_whose_failures_were_all_before_the_dot_ends_with_exit_0(
    project: Project,
) -> None:
    faults: dict[str, list[str]] = {}

    def behaviour(address: str, n: int) -> str | None:
        plan = faults.get(address, [])
        return plan[n - 1] if n <= len(plan) else None

    server = RawSMTP(behaviour)
    try:
        addresses = broken_project(project, server)
        for n, address in enumerate(addresses[::17]):
            # closed mid-DATA on two attempts in a row, or DATA never answered once
            faults[address] = [["mid-data", "mid-data"], ["no-354"]][n % 2]
        code, output = run_send(project.root)
    finally:
        server.close()
    assert code == 0, output
    assert uncertain_rows(project.root) == set()
    assert server.accepted == Counter({a: 1 for a in addresses})
    assert "onzeker" not in output.split("nieuwsbrief 1:")[0]


# --- item 12: a corrupted row in the job table ---------------------------------------------


@pytest.mark.parametrize("job", ["nieuwsbrief", "build"])
def test_a_corrupted_job_row_is_dropped_and_recreated(project: Project, job: str) -> None:
    configure(project, newsletter="0 10 1-7 * tue")
    service = start_service(project)
    root = project.root

    def jobs() -> set[str]:
        if not StoreAddress.of(load_config(root)).exists():
            return set()
        try:
            return {job_id for (job_id,) in query(root, "SELECT id FROM apscheduler_jobs")}
        except DatabaseError:  # no job table until the scheduler has made it
            return set()

    try:
        wait_for(lambda: {"build", "nieuwsbrief"} <= jobs(), 30)
    finally:
        assert stop(service)[0] == 0
    corrupted = execute(
        root,
        "UPDATE apscheduler_jobs SET job_state = :blob WHERE id = :job",
        blob=b"\x80\x05kapot\x00",
        job=job,
    )
    assert corrupted == 1

    service = start_service(project)
    try:
        time.sleep(2.5)  # a crash loop would have ended the process by now
        assert service.poll() is None, service.communicate(timeout=10)[1]
    finally:
        code, err = stop(service)
    assert code == 0, err
    assert "Traceback" not in err
    dropped = [line for line in err.splitlines() if "taak-onleesbaar" in line]
    assert len(dropped) == 1 and f"job={job}" in dropped[0], err
    blob = scalar(root, "SELECT job_state FROM apscheduler_jobs WHERE id = :job", job=job)
    assert pickle.loads(blob)["id"] == job  # recreated, readable again


# --- item 3: an automatic send killed half-way is finished by the service ------------------


def delivery_counts(root: Path) -> Counter[str]:
    return Counter(dict(query(root, "SELECT status, COUNT(*) FROM deliveries GROUP BY status")))


def status_output(root: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "status", "--root", str(root)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def kill_the_newsletter_job_half_way(project: Project, recorder: Recorder) -> int:
    """Run the service's newsletter job (compile, then send) in a process of its own and
    kill -9 it half-way; returns how many messages the server has."""
    job = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pipeline.commands.run import run_newsletter;"
            " run_newsletter(sys.argv[1], True)",
            str(project.root),
        ],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill it between two messages (the rate leaves 40 ms between them), so nobody is
    # in flight and the test can ask for every recipient exactly once.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and job.poll() is None:
        got = sum(recorder.received().values())
        if got >= 10:  # the store exists: the project was built
            counts = delivery_counts(project.root)
            if counts["sent"] == got and not counts["sending"]:
                break
        time.sleep(0.002)
    job.send_signal(signal.SIGKILL)
    job.wait(10)
    sent = sum(recorder.received().values())
    assert 10 <= sent < 40
    return sent


def auto_send_project(project: Project, port: int) -> list[str]:
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    build_at(project, NOW)
    configure(project, newsletter="0 10 1-7 * tue", auto_send=True)
    set_smtp(project.root, port, rate_per_second=25, connections=1)
    return add_subscribers(project.root, 40)


def test_an_automatic_send_killed_half_way_is_shown_and_finished_by_the_service(
    project: Project,
) -> None:
    recorder = Recorder()
    sink = Sink(recorder)
    try:
        addresses = auto_send_project(project, sink.port)
        sent = kill_the_newsletter_job_half_way(project, recorder)

        shown = status_output(project.root)
        assert "nieuwsbrieven nog niet verstuurd: 1" in shown, shown
        assert f"nieuwsbrief 1: {sent} verstuurd, {40 - sent} wachtend" in shown, shown
        assert "maakt de dienst af" in shown

        service = start_service(project)
        try:
            wait_for(lambda: sum(recorder.received().values()) >= 40, 30, 0.05)
            wait_for(lambda: delivery_counts(project.root)["sent"] == 40, 10, 0.05)
        finally:
            code, err = stop(service)
        assert code == 0, err
        assert "event=verzending-hervat nummer=1" in err
    finally:
        sink.close()
    assert recorder.received() == Counter({a: 1 for a in addresses})  # 0 twice, 0 missing
    shown = status_output(project.root)
    assert "nieuwsbrieven nog niet verstuurd: 0" in shown, shown
    assert "onzekere ontvangers: 0" in shown


def test_the_next_newsletter_slot_finishes_a_cut_short_send_before_compiling(
    project: Project,
) -> None:
    from pipeline.commands.run import run_newsletter

    recorder = Recorder()
    sink = Sink(recorder)
    try:
        addresses = auto_send_project(project, sink.port)
        sent = kill_the_newsletter_job_half_way(project, recorder)
        project.write("wrb/nieuw.md", item(20, "wrb"))  # news for the next issue
        build_at(project, "2026-12-01T09:00")
        set_smtp(project.root, sink.port, connections=1)
        result = run_newsletter(str(project.root), True)  # what the slot runs
    finally:
        sink.close()
    per_issue = Counter(
        (address, re.search(rb"<nieuwsbrief-(\d{4})\.", data)[1])  # type: ignore[index]
        for address, data in recorder.messages
    )
    first = Counter(address for address, n in per_issue.elements() if n == b"0001")
    assert first == Counter({a: 1 for a in addresses})  # 0 twice, 0 missing
    assert max(per_issue.values()) == 1 and b"0002" in {n for _, n in per_issue}
    assert delivery_counts(project.root) == Counter({"sent": len(recorder.messages)})
    assert result["hervat"] == [1] and result["hervat_resultaat"]["verzonden"] == 40 - sent
    assert result["nummer"] == 2


def test_recipients_whose_retries_ran_out_stay_visible_in_status(project: Project) -> None:
    recorder = Recorder()
    sink = Sink(recorder)
    try:
        newsletter_project(project)
        set_smtp(project.root, sink.port, retries=2, retry_delay=0.01)
        addresses = add_subscribers(project.root, 10)
        later = addresses[3]
        recorder.rcpt_policy = lambda a, n: "451 4.3.0 later" if a == later else None
        code, output = run_send(project.root)
        assert code == 1, output
        shown = status_output(project.root)
        assert "nieuwsbrieven nog niet verstuurd: 0" in shown, shown  # everyone has an outcome
        assert (
            "mislukte ontvangers: 1\n  nieuwsbrief 1: 1 (opnieuw proberen: krimppost newsletter"
            " send 1)" in shown
        ), shown
        recorder.rcpt_policy = lambda a, n: None
        code, output = run_send(project.root)
        assert code == 0, output
    finally:
        sink.close()
    assert recorder.received() == Counter({a: 1 for a in addresses})
    assert "mislukte ontvangers: 0" in status_output(project.root)
