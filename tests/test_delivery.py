"""`krimppost newsletter send`: delivery to a real SMTP server (aiosmtpd on 127.0.0.1).

Each test runs its own aiosmtpd server in a thread on a free loopback port; its handler
records every accepted message and can refuse (4xx/5xx) or drop connections on purpose.
"""

from __future__ import annotations

import asyncio
import email
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from click.testing import CliRunner
from sqlalchemy import text
from storesql import execute, query

from conftest import REPO, VALID, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.commands.send import send
from pipeline.config import load_config
from pipeline.delivery.sender import SendReport, send_issue
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.state import StateStore

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

NOW = "2026-11-27T12:00"
LABELS = {  # how each track's section starts in the text part
    "wrb": "WETENSCHAPPELIJKE REFLECTIEGROEP",
    "woningmarkt": "WONINGMARKT IN KRIMPREGIO'S",
    "energietransitie": "KLIMAAT- EN ENERGIETRANSITIE",
}
TOKEN = re.compile(r"afmelden/([A-Za-z0-9_-]{22})")

# Policy callables get (address, how many times the server has seen it at this stage) and
# return None (accept), an SMTP reply such as "451 4.3.0 later", or "DROP" (close the
# connection without a reply).
Policy = Callable[[str, int], str | None]


class Recorder:
    """An aiosmtpd handler that records accepted messages and misbehaves on request."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.rcpt_policy: Policy = lambda address, n: None
        self.data_policy: Policy = lambda address, n: None
        self.rcpt_seen: Counter[str] = Counter()
        self.data_seen: Counter[str] = Counter()
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        with self.lock:
            self.rcpt_seen[address] += 1
            verdict = self.rcpt_policy(address, self.rcpt_seen[address])
        if verdict == "DROP":
            server.transport.close()
            return "421 4.4.2 verbinding verbroken"
        if verdict:
            return verdict
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        address = envelope.rcpt_tos[0]
        with self.lock:
            self.data_seen[address] += 1
            verdict = self.data_policy(address, self.data_seen[address])
            if verdict in (None, "DROP"):
                # "DROP" after the data: the server has the message but the client never
                # hears so. Count it as delivered: a real server may well have queued it.
                self.messages.append((address, envelope.original_content))
        if verdict == "DROP":
            server.transport.close()
            return "421 4.4.2 verbinding verbroken"
        return verdict or "250 2.0.0 OK"

    def received(self) -> Counter[str]:
        with self.lock:
            return Counter(address for address, _ in self.messages)

    def message_for(self, address: str) -> email.message.EmailMessage:
        with self.lock:
            data = next(d for a, d in self.messages if a == address)
        return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]

    def raw_for(self, address: str) -> bytes:
        with self.lock:
            return next(d for a, d in self.messages if a == address)


class Sink:
    """aiosmtpd on 127.0.0.1, on a free port, in a thread with its own event loop."""

    def __init__(self, handler: Recorder, **smtp_options: object) -> None:
        self.handler = handler
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> asyncio.base_events.Server:
            return await self.loop.create_server(
                lambda: SMTP(handler, hostname="sink.example.nl", **smtp_options),  # type: ignore[arg-type]
                "127.0.0.1",
                0,
            )

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sink(recorder: Recorder):  # type: ignore[no-untyped-def]
    server = Sink(recorder, enable_SMTPUTF8=True)
    yield server
    server.close()


def item(n: int, track: str) -> str:
    return (
        VALID.replace("title: Een geldig item", f"title: 'Bericht {n} over {track}'")
        .replace("track: wrb", f"track: {track}")
        .replace("2026-11-01", f"2026-11-{n + 1:02d}")
    )


def set_smtp(root: Path, port: int, **options: object) -> None:
    """Replace the [smtp] section of the project's config.toml."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "rate_per_second": 0,
        "connections": 2,
        "max_per_connection": 100,
        "timeout": 5,
        "retries": 2,
        "retry_delay": 0.05,
    }
    values.update(options)
    path = root / "config.toml"
    text = re.sub(r"(?ms)^\[smtp\]\n.*?(?=^\[|\Z)", "", path.read_text(encoding="utf-8"))
    lines = ["", "[smtp]"]
    for key, value in values.items():
        lines.append(
            f"{key} = {value!r}".replace("'", '"') if isinstance(value, str) else f"{key} = {value}"
        )
    path.write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def newsletter_project(project: Project) -> Project:
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie", "wrb"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    build_at(project, NOW)
    report = compile_issue(project.root, datetime.fromisoformat(NOW))
    assert report.number == 1
    return project


@pytest.fixture
def issue_project(project: Project, sink: Sink) -> Project:
    newsletter_project(project)
    set_smtp(project.root, sink.port)
    return project


SELECTIONS = ["", "wrb", "woningmarkt;energietransitie"]


def add_subscribers(root: Path, count: int, selections: list[str] = SELECTIONS) -> list[str]:
    """Import `count` subscribers through a CSV (one transaction); returns their addresses."""
    addresses = [f"lezer{i:05d}@example.nl" for i in range(count)]
    csv = root / "abonnees.csv"
    csv.write_text(
        "email,tracks\n"
        + "".join(f"{a},{selections[i % len(selections)]}\n" for i, a in enumerate(addresses)),
        encoding="utf-8",
    )
    config = load_config(root)
    with StateStore.of(config) as state:
        report = SubscriberStore(state, config).import_csv(csv, "abonnees.csv", datetime.now(UTC))
    assert report.added == count and not report.problems
    return addresses


def tokens(root: Path) -> dict[str, str]:
    return dict(query(root, "SELECT email, token FROM subscribers"))


def db_rows(root: Path, sql: str, **params: object) -> list[tuple]:
    return query(root, sql, **params)


def text_and_html(msg: email.message.EmailMessage) -> tuple[str, str]:
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    return parts["text/plain"], parts["text/html"]


# --- the happy path: 1,000 subscribers --------------------------------------------------


def test_thousand_subscribers_each_get_exactly_one_with_their_sections_and_token(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 1000)
    known = tokens(root)
    report = send_issue(root)
    assert (report.sent, report.failed, report.bounced, report.uncertain) == (1000, 0, 0, [])
    assert report.ok and report.renders == 3  # once per distinct track selection
    received = recorder.received()
    assert received == Counter({a: 1 for a in addresses})

    for i, address in enumerate(addresses):
        chosen = SELECTIONS[i % 3]
        want = set(LABELS) if not chosen else set(chosen.split(";"))
        msg = recorder.message_for(address)
        text, html = text_and_html(msg)
        token = known[address]
        assert msg["To"] == address
        assert f"<https://www.bevolkingsdaling.nl/afmelden/{token}>" in msg["List-Unsubscribe"]
        assert set(TOKEN.findall(text)) == {token}
        assert set(TOKEN.findall(html)) == {token}
        for track, label in LABELS.items():
            assert (label in text) == (track in want), (address, track)
        if i > 30:  # the full check on a sample is enough; the counts cover the rest
            break

    # every message carries its own token, and no two share a Message-ID
    ids = {recorder.message_for(a)["Message-ID"] for a in addresses[:50]}
    assert len(ids) == 50
    rows = db_rows(root, "SELECT status, COUNT(*) FROM deliveries GROUP BY status")
    assert rows == [("sent", 1000)]

    again = send_issue(root)  # a completed issue: nothing is sent
    assert (again.sent, again.recipients, again.already_sent) == (0, 0, 1000)
    assert sum(recorder.received().values()) == 1000


def test_raw_headers(issue_project: Project, recorder: Recorder) -> None:
    root = issue_project.root
    (address,) = add_subscribers(root, 1)
    send_issue(root)
    raw = recorder.raw_for(address)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    unsubscribe = [line for line in lines if line.startswith("List-Unsubscribe:")]
    assert len(unsubscribe) == 1
    token = tokens(root)[address]
    assert unsubscribe[0] == (
        f"List-Unsubscribe: <https://www.bevolkingsdaling.nl/afmelden/{token}>, "
        "<mailto:afmelden@bevolkingsdaling.nl?subject=afmelden>"
    )
    assert unsubscribe[0].split(": ", 1)[1].startswith("<https://")
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    # never folded: the line after it is another header
    index = lines.index(unsubscribe[0])
    assert not lines[index + 1].startswith((" ", "\t"))
    body_lines = raw.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines) <= 76
    mid = r"Message-ID: <nieuwsbrief-0001\.\d+\.[0-9a-f]{8}@bevolkingsdaling\.nl>"
    assert any(re.fullmatch(mid, line) for line in lines)
    assert any(re.fullmatch(r"Date: .+ \+0100", line) for line in lines)


def test_unsubscribed_bounced_and_suppressed_get_nothing(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 6)
    config = load_config(root)
    now = datetime.now(UTC)
    with StateStore.of(config) as state:
        store = SubscriberStore(state, config)
        store.unsubscribe(tokens(root)[addresses[0]], now, "test")
        store.remove(addresses[1], now)
        state.conn.execute(
            text("UPDATE subscribers SET status = 'bounced' WHERE email = :email"),
            {"email": addresses[2]},
        )
        store.request("nieuw@example.nl", "*", now)  # pending: not confirmed
    report = send_issue(root)
    assert report.sent == 3
    assert set(recorder.received()) == set(addresses[3:])


def test_subscriber_without_a_track_of_the_issue_gets_nothing(
    project: Project, recorder: Recorder, sink: Sink
) -> None:
    project.write("wrb/alleen.md", item(1, "wrb"))
    build_at(project, NOW)
    compile_issue(project.root, datetime.fromisoformat(NOW))
    set_smtp(project.root, sink.port)
    addresses = add_subscribers(project.root, 3, ["wrb", "woningmarkt", ""])
    report = send_issue(project.root)
    assert report.sent == 2
    assert set(recorder.received()) == {addresses[0], addresses[2]}


# --- refusals and broken connections -----------------------------------------------------


def test_451_is_retried_and_550_bounces_for_good(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 30)
    later = set(addresses[0:5])  # 451 twice, then accepted
    never = set(addresses[5:8])  # 451 forever: failed after the retries
    gone = set(addresses[8:12])  # 550: bounced
    data_later = set(addresses[12:14])  # 451 after the data, once

    def rcpt(address: str, n: int) -> str | None:
        if address in gone:
            return "550 5.1.1 onbekende ontvanger"
        if address in never or (address in later and n <= 2):
            return "451 4.3.0 probeer het later"
        return None

    recorder.rcpt_policy = rcpt
    recorder.data_policy = lambda a, n: (
        "451 4.3.0 tijdelijk" if a in data_later and n == 1 else None
    )
    report = send_issue(root)
    received = recorder.received()
    assert set(received) == set(addresses) - never - gone
    assert max(received.values()) == 1
    assert (report.sent, report.failed, report.bounced) == (23, 3, 4)
    assert not report.ok
    assert all(recorder.rcpt_seen[a] == 1 for a in gone)  # never retried
    assert all(recorder.rcpt_seen[a] == 3 for a in never)  # 1 + retries (2)
    statuses = dict(db_rows(root, "SELECT email, status FROM subscribers"))
    assert {a for a, s in statuses.items() if s == "bounced"} == gone
    rows = dict(
        (email_, (status, attempts, reply))
        for email_, status, attempts, reply in db_rows(
            root,
            "SELECT s.email, d.status, d.attempts, d.reply FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber",
        )
    )
    assert rows[addresses[8]] == ("bounced", 1, "550 5.1.1 onbekende ontvanger")
    assert rows[addresses[0]][:2] == ("sent", 3)
    assert rows[addresses[5]][0] == "failed"

    # next run: the failed ones are tried again (now accepted), bounced ones never
    recorder.rcpt_policy = lambda a, n: "550 5.1.1 onbekende ontvanger" if a in gone else None
    again = send_issue(root)
    assert (again.sent, again.bounced) == (3, 0)
    assert set(recorder.received()) == set(addresses) - gone
    assert max(recorder.received().values()) == 1
    assert all(recorder.rcpt_seen[a] == 1 for a in gone)


def test_dropped_connections_before_the_data_are_retried_without_duplicates(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 40)
    dropped = set(addresses[3::7])
    recorder.rcpt_policy = lambda a, n: "DROP" if a in dropped and n == 1 else None
    report = send_issue(root)
    assert report.sent == 40 and report.ok and not report.uncertain
    assert recorder.received() == Counter({a: 1 for a in addresses})
    assert recorder.connections > 2  # reconnected after each drop


def test_connection_dropped_after_the_data_is_uncertain_and_not_resent(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 20)
    lost = {addresses[4], addresses[11]}
    recorder.data_policy = lambda a, n: "DROP" if a in lost and n == 1 else None
    report = send_issue(root)
    assert sorted(report.uncertain) == sorted(lost)
    assert report.sent == 18
    assert recorder.received() == Counter({a: 1 for a in addresses})
    again = send_issue(root)
    assert again.sent == 0 and sorted(again.uncertain) == sorted(lost)
    assert recorder.received() == Counter({a: 1 for a in addresses})
    # the operator decides to resend: they get it again (a second copy, knowingly)
    resent = send_issue(root, resend_uncertain=True)
    assert resent.sent == 2 and not resent.uncertain
    assert {a: n for a, n in recorder.received().items() if n > 1} == {a: 2 for a in lost}


def test_mail_from_refused_stops_the_run_and_leaves_the_rest_pending(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    add_subscribers(root, 5)

    async def refuse(server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        return "550 5.7.1 afzender niet toegestaan"

    recorder.handle_MAIL = refuse  # type: ignore[attr-defined]
    report = send_issue(root)
    assert report.sent == 0 and report.not_attempted == 5
    assert "afzender" in report.aborted and not report.ok


def test_unreachable_server_is_reported(project: Project) -> None:
    newsletter_project(project)
    with socket_port() as port:  # a port nobody listens on
        set_smtp(project.root, port, retries=1, retry_delay=0.01)
    add_subscribers(project.root, 3)
    report = send_issue(project.root)
    assert report.sent == 0 and "geen verbinding" in report.aborted
    assert report.not_attempted == 3


class socket_port:
    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


# --- connections, rate, DKIM, SMTPUTF8 ---------------------------------------------------


def test_connections_are_reused_up_to_max_per_connection(
    issue_project: Project, recorder: Recorder, sink: Sink
) -> None:
    root = issue_project.root
    set_smtp(root, sink.port, connections=1, max_per_connection=10)
    add_subscribers(root, 30)
    assert send_issue(root).sent == 30
    assert recorder.connections == 3


def test_rate_per_second_is_respected(
    issue_project: Project, recorder: Recorder, sink: Sink
) -> None:
    root = issue_project.root
    set_smtp(root, sink.port, rate_per_second=40)
    add_subscribers(root, 20)
    report = send_issue(root)
    assert report.sent == 20
    assert report.seconds >= 19 / 40


def test_dkim_signature_covers_one_click_headers_and_verifies(
    issue_project: Project, recorder: Recorder, sink: Sink, tmp_path: Path
) -> None:
    dkim = pytest.importorskip("dkim")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test key")
    key = tmp_path / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    root = issue_project.root
    set_smtp(
        root,
        sink.port,
        dkim_selector="nieuwsbrief",
        dkim_domain="bevolkingsdaling.nl",
        dkim_key_path=str(key),
    )
    (address,) = add_subscribers(root, 1)
    assert send_issue(root).sent == 1
    raw = recorder.raw_for(address)
    assert raw.startswith(b"DKIM-Signature:")
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nieuwsbrief._domainkey.bevolkingsdaling.nl."
        return record

    assert dkim.verify(raw, dnsfunc=dns)
    signature = email.message_from_bytes(raw, policy=policy.default)["DKIM-Signature"]
    signed = {h.strip().lower() for h in re.search(r"h=([^;]+)", signature).group(1).split(":")}
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "to", "subject"} <= signed


def test_non_ascii_address_goes_out_with_smtputf8(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    config = load_config(root)
    with StateStore.of(config) as state:
        store = SubscriberStore(state, config)
        store.add("jürgen@bücher.example.nl", None, datetime.now(UTC))
        store.add("anna@bücher.example.nl", None, datetime.now(UTC))
    report = send_issue(root)
    assert report.sent == 2
    received = recorder.received()
    assert received == Counter({"jürgen@bücher.example.nl": 1, "anna@xn--bcher-kva.example.nl": 1})
    text, _ = text_and_html(recorder.message_for("jürgen@bücher.example.nl"))
    token = tokens(root)["jürgen@bücher.example.nl"]
    assert set(TOKEN.findall(text)) == {token}


# --- the command ---------------------------------------------------------------------------


def test_send_command_summary_and_exit_codes(issue_project: Project, recorder: Recorder) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 4)
    recorder.rcpt_policy = lambda a, n: "550 5.1.1 weg" if a == addresses[0] else None
    result = CliRunner().invoke(send, ["--root", str(root)])
    assert result.exit_code == 1, result.output
    assert "3 verstuurd, 0 mislukt, 1 onbestelbaar, 0 overgeslagen, 0 onzeker" in result.output
    result = CliRunner().invoke(send, ["1", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "0 verstuurd" in result.output and "eerder al verstuurd: 3" in result.output
    result = CliRunner().invoke(send, ["7", "--root", str(root)])
    assert result.exit_code == 2
    assert "nieuwsbrief 7 bestaat niet" in result.output


def test_send_without_an_issue_is_a_usage_error(project: Project) -> None:
    result = CliRunner().invoke(send, ["--root", str(project.root)])
    assert result.exit_code == 2
    assert "nog geen nieuwsbrief" in result.output


def test_missing_password_variable_is_a_config_error(project: Project) -> None:
    newsletter_project(project)
    set_smtp(
        project.root, 25, username="nieuwsbrief", password_env="KRIMPPOST_TEST_GEEN_WACHTWOORD"
    )
    os.environ.pop("KRIMPPOST_TEST_GEEN_WACHTWOORD", None)
    result = CliRunner().invoke(send, ["--root", str(project.root)])
    assert result.exit_code == 2
    assert "KRIMPPOST_TEST_GEEN_WACHTWOORD" in result.output


# --- kill -9 at random moments, then resume ----------------------------------------------


def test_kill_at_random_points_and_resume_sends_everyone_at_most_once(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 240)
    rng = random.Random(int(os.environ.get("KRIMPPOST_KILL_SEED", "6")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = "import sys; from pipeline.commands.send import send; send(sys.argv[1:])"
    kills = 0
    for _ in range(5):
        before = sum(recorder.received().values())
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--root", str(root)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        target = before + rng.randint(0, 40)
        deadline = time.monotonic() + 30
        while (
            proc.poll() is None
            and sum(recorder.received().values()) < target
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)
        time.sleep(rng.random() * 0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    report: SendReport = send_issue(root)
    received = recorder.received()
    assert max(received.values()) == 1, "a subscriber got the issue twice"
    missed = set(addresses) - set(received)
    assert missed <= set(report.uncertain), "someone was missed without being listed"
    assert len(report.uncertain) <= kills * 2  # at most one per connection per kill
    statuses = Counter(s for (s,) in db_rows(root, "SELECT status FROM deliveries"))
    assert statuses["sent"] + statuses["uncertain"] == len(addresses)
    assert kills >= 3


def test_sending_row_left_by_a_crash_becomes_uncertain(issue_project: Project) -> None:
    root = issue_project.root
    addresses = add_subscribers(root, 3)
    send_issue(root)
    touched = execute(
        root,
        "UPDATE deliveries SET status = 'sending' WHERE subscriber ="
        " (SELECT id FROM subscribers WHERE email = :email)",
        email=addresses[1],
    )
    assert touched == 1
    report = send_issue(root)
    assert report.uncertain == [addresses[1]] and report.sent == 0
