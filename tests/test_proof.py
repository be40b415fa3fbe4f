"""`krimppost newsletter send N --test ADRES [--tracks a,b]`: a proof over real SMTP.

Each test runs its own aiosmtpd server in a thread on a free loopback port (as in
tests/test_delivery.py, whose fixtures are copied here rather than imported).
"""

from __future__ import annotations

import asyncio
import base64
import email
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP
from click.testing import CliRunner
from sqlalchemy import text
from storesql import query

from conftest import REPO, VALID, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.commands.send import send
from pipeline.config import load_config
from pipeline.delivery.proof import send_proof
from pipeline.delivery.sender import send_issue
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.errors import KrimppostError
from pipeline.state import StateStore
from pipeline.state.address import ENV as STATE_URL
from pipeline.state.deliveries import DeliveryLog

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

NOW = "2026-11-27T12:00"
LABELS = {  # how each track's section starts in the text part
    "wrb": "WETENSCHAPPELIJKE REFLECTIEGROEP",
    "woningmarkt": "WONINGMARKT IN KRIMPREGIO'S",
    "energietransitie": "KLIMAAT- EN ENERGIETRANSITIE",
}
EVENT_TITLE = "Masterclass herstructurering"
UNSUBSCRIBE = "https://www.bevolkingsdaling.nl/afmelden/"
TOKEN = re.compile(r"afmelden/([A-Za-z0-9_-]{22})")
PROOF_ID = re.compile(r"<nieuwsbrief-0001\.proef\.[0-9a-f]{16}@bevolkingsdaling\.nl>")
EDITORS = ["redactie@example.nl", "eindredactie@example.nl"]


class Recorder:
    """An aiosmtpd handler that records accepted messages; `rcpt_policy` may refuse one."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.rcpt_policy: Callable[[str], str | None] = lambda address: None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        verdict = self.rcpt_policy(address)
        if verdict:
            return verdict
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            for address in envelope.rcpt_tos:
                self.messages.append((address, envelope.original_content))
        return "250 2.0.0 OK"

    def received(self) -> Counter[str]:
        with self.lock:
            return Counter(address for address, _ in self.messages)

    def raw_for(self, address: str) -> bytes:
        with self.lock:
            return next(d for a, d in self.messages if a == address)

    def message_for(self, address: str) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw_for(address), policy=policy.default)  # type: ignore[return-value]


class Sink:
    """aiosmtpd on 127.0.0.1, on a free port, in a thread with its own event loop."""

    def __init__(self, handler: Recorder) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> asyncio.base_events.Server:
            return await self.loop.create_server(
                lambda: SMTP(handler, hostname="sink.example.nl", enable_SMTPUTF8=True),  # type: ignore[arg-type]
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
    server = Sink(recorder)
    yield server
    server.close()


def item(n: int, track: str) -> str:
    return (
        VALID.replace("title: Een geldig item", f"title: 'Bericht {n} over {track}'")
        .replace("track: wrb", f"track: {track}")
        .replace("2026-11-01", f"2026-11-{n + 1:02d}")
    )


EVENT = f"""\
---
title: {EVENT_TITLE}
date: 2026-11-10
kind: event
track: woningmarkt
summary: Een middag over de particuliere voorraad.
event: {{start: 2027-01-21T13:30, location: "Glaspaleis, Heerlen"}}
---
Programma volgt.
"""


def set_smtp(root: Path, port: int, **options: object) -> None:
    """Replace the [smtp] section of the project's config.toml."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "rate_per_second": 0,
        "connections": 2,
        "timeout": 5,
        "retries": 1,
        "retry_delay": 0.05,
    }
    values.update(options)
    path = root / "config.toml"
    text = re.sub(r"(?ms)^\[smtp\]\n.*?(?=^\[|\Z)", "", path.read_text(encoding="utf-8"))
    lines = ["", "[smtp]"]
    for key, value in values.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    path.write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def require_approval(root: Path) -> None:
    path = root / "config.toml"
    text = path.read_text(encoding="utf-8")
    assert "approval = false" in text
    path.write_text(text.replace("approval = false", "approval = true"), encoding="utf-8")


def make_issue(project: Project, port: int, approval: bool = False) -> Project:
    """Issue 1: an item in every track, and an upcoming event in woningmarkt."""
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie", "wrb"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    project.write("woningmarkt/masterclass.md", EVENT)
    if approval:
        require_approval(project.root)
    build_at(project, NOW)
    report = compile_issue(project.root, datetime.fromisoformat(NOW))
    assert report.number == 1 and report.agenda == 1
    set_smtp(project.root, port)
    return project


@pytest.fixture
def issue_project(project: Project, sink: Sink) -> Project:
    return make_issue(project, sink.port)


def add_subscribers(root: Path, selections: list[str]) -> list[str]:
    """One subscriber per track selection (`""`: all tracks); returns their addresses."""
    addresses = [f"lezer{i:03d}@example.nl" for i in range(len(selections))]
    csv = root / "abonnees.csv"
    csv.write_text(
        "email,tracks\n"
        + "".join(f"{a},{s}\n" for a, s in zip(addresses, selections, strict=True)),
        encoding="utf-8",
    )
    config = load_config(root)
    with StateStore.of(config) as state:
        report = SubscriberStore(state, config).import_csv(csv, "abonnees.csv", datetime.now(UTC))
    assert report.added == len(selections) and not report.problems
    return addresses


def tokens(root: Path) -> dict[str, str]:
    return dict(query(root, "SELECT email, token FROM subscribers"))


def delivery_state(root: Path) -> tuple[int, int, dict[int, dict[str, int]]]:
    """(rows in deliveries, rows in send_runs, DeliveryLog.progress())."""
    config = load_config(root)
    with StateStore.of(config) as state:
        deliveries = state.conn.execute(text("SELECT COUNT(*) FROM deliveries")).scalar_one()
        runs = state.conn.execute(text("SELECT COUNT(*) FROM send_runs")).scalar_one()
        return deliveries, runs, DeliveryLog(state.conn).progress()


def text_and_html(msg: email.message.EmailMessage) -> tuple[str, str]:
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    return parts["text/plain"], parts["text/html"]


def run_send(root: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(send, [*args, "--root", str(root)])


# --- who gets it, and what it leaves behind --------------------------------------------


def test_proof_goes_to_the_proof_addresses_only_and_leaves_the_delivery_log_alone(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    subscribers = add_subscribers(root, ["", "wrb", "woningmarkt;energietransitie"])
    report = send_proof(root, 1, [",".join(EDITORS), "anna@bücher.example.nl"])
    assert report.ok and report.sent == [*EDITORS, "anna@bücher.example.nl"]
    # the IDN domain goes out in punycode, as for a subscriber
    assert recorder.received() == Counter(
        {EDITORS[0]: 1, EDITORS[1]: 1, "anna@xn--bcher-kva.example.nl": 1}
    )
    ids = set()
    for address in EDITORS:
        msg = recorder.message_for(address)
        assert msg["Subject"] == "[PROEF] Nieuwsbrief Bevolkingsdaling #1 – november 2026"
        assert msg["To"] == address
        assert PROOF_ID.fullmatch(msg["Message-ID"]), msg["Message-ID"]
        ids.add(msg["Message-ID"])
        text, _ = text_and_html(msg)
        assert all(label in text for label in LABELS.values())  # default: every track
        assert EVENT_TITLE in text
    assert len(ids) == 2
    assert report.summary().startswith("proef van nieuwsbrief 1 (wrb, woningmarkt, ")
    assert "aan 3 adres(sen) verstuurd, 0 mislukt" in report.summary()

    assert delivery_state(root) == (0, 0, {})
    # the subscribers still get the issue, every one of them, with their own Message-IDs
    real = send_issue(root)
    assert real.sent == 3 and real.already_sent == 0
    assert set(recorder.received()) == {*EDITORS, "anna@xn--bcher-kva.example.nl", *subscribers}
    for address in subscribers:
        assert not PROOF_ID.fullmatch(recorder.message_for(address)["Message-ID"])


def test_proof_of_an_unapproved_issue_while_send_refuses_it(
    project: Project, sink: Sink, recorder: Recorder
) -> None:
    root = make_issue(project, sink.port, approval=True).root
    add_subscribers(root, [""])
    with pytest.raises(KrimppostError, match="niet goedgekeurd"):
        send_issue(root, 1)
    result = run_send(root, "1")
    assert result.exit_code == 1 and "niet goedgekeurd" in result.output
    assert recorder.received() == Counter()

    result = run_send(root, "1", "--test", EDITORS[0])
    assert result.exit_code == 0, result.output
    assert "proef van nieuwsbrief 1" in result.output
    assert "wacht nog op goedkeuring (krimppost newsletter approve 1 --by NAAM)" in result.output
    assert recorder.received() == Counter({EDITORS[0]: 1})
    assert delivery_state(root) == (0, 0, {})
    # without N: the latest issue, as for `send`
    assert run_send(root, "--test", EDITORS[1]).exit_code == 0
    assert recorder.received() == Counter({EDITORS[0]: 1, EDITORS[1]: 1})


# --- what it shows ---------------------------------------------------------------------


def test_tracks_limit_sections_and_agenda_as_for_a_subscriber_of_those_tracks(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    (wrb_reader, housing_reader) = add_subscribers(root, ["wrb", "woningmarkt"])
    assert send_proof(root, 1, ["wrb@example.nl"], "wrb").tracks == ("wrb",)
    assert send_proof(root, 1, ["woning@example.nl"], "woningmarkt").tracks == ("woningmarkt",)
    result = run_send(root, "1", "--test", "beide@example.nl", "--tracks", "wrb,energietransitie")
    assert result.exit_code == 0, result.output

    def text_of(address: str) -> str:
        return text_and_html(recorder.message_for(address))[0]

    shown = {
        "wrb@example.nl": {"wrb"},
        "woning@example.nl": {"woningmarkt"},
        "beide@example.nl": {"wrb", "energietransitie"},
    }
    for address, tracks in shown.items():
        text = text_of(address)
        for track, label in LABELS.items():
            assert (label in text) == (track in tracks), (address, track)
        # the event is a woningmarkt item and in the agenda: only with that track
        assert (EVENT_TITLE in text) == ("woningmarkt" in tracks), address

    # body for body what the subscribers of those tracks get, but for their token
    send_issue(root)
    known = tokens(root)
    for proof, reader in (("wrb@example.nl", wrb_reader), ("woning@example.nl", housing_reader)):
        theirs = text_and_html(recorder.message_for(reader))
        ours = text_and_html(recorder.message_for(proof))
        assert ours == tuple(part.replace(known[reader], "") for part in theirs)


def test_proof_carries_no_token_and_no_one_click_unsubscribe(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    add_subscribers(root, ["", "wrb"])
    assert send_proof(root, 1, [EDITORS[0]]).ok
    raw = recorder.raw_for(EDITORS[0])
    for token in tokens(root).values():
        assert token.encode() not in raw
    msg = recorder.message_for(EDITORS[0])
    text, html = text_and_html(msg)
    assert TOKEN.findall(text) == [] and TOKEN.findall(html) == []
    assert UNSUBSCRIBE in text and f'href="{UNSUBSCRIBE}"' in html
    assert "%%" not in text and "%%" not in html  # no placeholder left
    assert msg["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert msg["List-Unsubscribe-Post"] is None
    assert "mailto:" not in msg["List-Unsubscribe"]


def test_proof_is_dkim_signed_like_a_real_send(
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
    assert send_proof(root, 1, [EDITORS[0]]).ok
    raw = recorder.raw_for(EDITORS[0])
    assert raw.startswith(b"DKIM-Signature:")
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"nieuwsbrief._domainkey.bevolkingsdaling.nl."
        return record

    assert dkim.verify(raw, dnsfunc=dns)


def test_a_refused_proof_address_is_reported_and_the_others_get_it(
    issue_project: Project, recorder: Recorder
) -> None:
    root = issue_project.root
    recorder.rcpt_policy = lambda a: "550 5.1.1 onbekend" if a == EDITORS[0] else None
    result = run_send(root, "--test", ",".join(EDITORS))
    assert result.exit_code == 1, result.output
    assert f"niet verstuurd aan {EDITORS[0]}: geweigerd: 550 5.1.1 onbekend" in result.output
    assert "aan 1 adres(sen) verstuurd, 1 mislukt" in result.output
    assert recorder.received() == Counter({EDITORS[1]: 1})
    assert delivery_state(root) == (0, 0, {})


# --- usage errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--test", "redactie@example.nl,geen-adres"], "--test: ongeldig e-mailadres 'geen-adres'"),
        (["--test", " , "], "--test: geef minstens één e-mailadres"),
        (["--test", EDITORS[0], "--tracks", "wrb,krimp"], "--tracks: onbekend traject 'krimp'"),
        (["--tracks", "wrb"], "--tracks hoort bij --test"),
        (["--test", EDITORS[0], "--resend-uncertain"], "--resend-uncertain en --test gaan niet"),
        (["7", "--test", EDITORS[0]], "nieuwsbrief 7 bestaat niet (wel: 1)"),
    ],
)
def test_usage_errors_are_dutch_with_exit_status_2(
    issue_project: Project, recorder: Recorder, args: list[str], message: str
) -> None:
    add_subscribers(issue_project.root, [""])
    result = run_send(issue_project.root, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert recorder.received() == Counter()
    assert delivery_state(issue_project.root) == (0, 0, {})


def test_a_track_without_items_in_the_issue_is_refused(
    project: Project, sink: Sink, recorder: Recorder
) -> None:
    project.write("wrb/alleen.md", item(1, "wrb"))
    build_at(project, NOW)
    compile_issue(project.root, datetime.fromisoformat(NOW))
    set_smtp(project.root, sink.port)
    result = run_send(project.root, "--test", EDITORS[0], "--tracks", "woningmarkt")
    assert result.exit_code == 2, result.output
    assert "nieuwsbrief 1 heeft geen berichten in woningmarkt" in result.output
    assert "(wel in dit nummer: wrb)" in result.output
    assert recorder.received() == Counter()


def test_cli_in_a_subprocess(issue_project: Project, recorder: Recorder) -> None:
    def krimppost(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "newsletter", "send", *args],
            cwd=issue_project.root,
            capture_output=True,
            text=True,
            timeout=60,
            # Nothing of the test's environment but the store it uses (PostgreSQL or not).
            env={
                "PYTHONPATH": str(REPO),
                "PATH": "/usr/bin:/bin",
                **{k: v for k, v in os.environ.items() if k == STATE_URL or k.startswith("PG")},
            },
        )

    bad = krimppost("1", "--test", "nergens")
    assert bad.returncode == 2, bad.stderr
    assert "ongeldig e-mailadres 'nergens'" in bad.stderr and "Traceback" not in bad.stderr
    good = krimppost("1", "--test", EDITORS[0], "--tracks", "wrb")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("proef van nieuwsbrief 1 (wrb) aan 1 adres(sen) verstuurd")
    assert recorder.received() == Counter({EDITORS[0]: 1})
