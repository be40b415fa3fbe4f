"""What comes back after sending: `krimppost bounces fetch` over a real mailbox.

An issue goes out through aiosmtpd with a VERP return path per delivery; the mails that
come back (tests/fixtures/returns, in the formats of Postfix, Exim, Gmail, Outlook.com and
Yahoo) are filled in for a recipient and put in the returns mailbox — a Maildir, and an
IMAP folder on Debian's dovecot (tests/imapserver.py) — and `bounces fetch` reads them.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from storesql import query
from test_delivery import NOW, Recorder, Sink, add_subscribers, newsletter_project, set_smtp

from conftest import Project
from pipeline.cli import cli
from pipeline.commands.bounces import fetch
from pipeline.config import load_config
from pipeline.delivery import verp
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.state import StateStore

pytestmark = pytest.mark.usefixtures("state_backend")

FIXTURES = Path(__file__).parent / "fixtures" / "returns"
RETURN_PATH = "bounce+{id}@bevolkingsdaling.nl"
MAILTO = "afmelden@bevolkingsdaling.nl"


class EnvelopeRecorder(Recorder):
    """Records the envelope sender (MAIL FROM) of every accepted message too."""

    def __init__(self) -> None:
        super().__init__()
        self.senders: dict[str, str] = {}

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.senders[envelope.rcpt_tos[0]] = envelope.mail_from
        return await super().handle_DATA(server, session, envelope)


def set_bounces(root: Path, **options: object) -> None:
    """Replace the [bounces] section of the project's config.toml."""
    path = root / "config.toml"
    text = re.sub(r"(?ms)^\[bounces\]\n.*?(?=^\[|\Z)", "", path.read_text(encoding="utf-8"))
    lines = ["", "[bounces]"] + [
        f"{k} = {json.dumps(v)}" if isinstance(v, str) else f"{k} = {v}" for k, v in options.items()
    ]
    path.write_text(text.rstrip() + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def sent(project: Project, bounce_mailbox, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Issue 1 sent to three subscribers with VERP; the mailbox configured."""
    recorder = EnvelopeRecorder()
    sink = Sink(recorder)
    try:
        newsletter_project(project)
        set_smtp(project.root, sink.port)
        set_bounces(project.root, return_path=RETURN_PATH, **bounce_mailbox.options(project.root))
        addresses = add_subscribers(project.root, 3, [""])
        result = CliRunner().invoke(cli, ["newsletter", "send", "1", "--root", str(project.root)])
        assert result.exit_code == 0, result.output
    finally:
        sink.close()
    project.addresses = addresses  # type: ignore[attr-defined]
    project.recorder = recorder  # type: ignore[attr-defined]
    project.box = bounce_mailbox  # type: ignore[attr-defined]
    return project


def returned(project: Project, fixture: str, address: str, n: int = 1, verp_: bool = True) -> bytes:
    """A fixture filled in for the delivery of issue 1 to `address` (or, for an address
    that received nothing, to the first subscriber)."""
    recorder: EnvelopeRecorder = project.recorder  # type: ignore[attr-defined]
    about = address if address in recorder.senders else project.addresses[0]  # type: ignore[attr-defined]
    original = recorder.message_for(about)
    token = re.search(r"afmelden/([A-Za-z0-9_-]{22})", original["List-Unsubscribe"]).group(1)
    envelope = recorder.senders[about] if verp_ else "nieuwsbrief@bevolkingsdaling.nl"
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    for name, value in {
        "VERP": envelope,
        "RECIPIENT": address,
        "MESSAGE_ID": original["Message-ID"],
        "TOKEN": token,
        "MAILTO": MAILTO,
        "N": str(n),
    }.items():
        text = text.replace("{{" + name + "}}", value)
    return text.replace("\n", "\r\n").encode()


def status_of(root: Path, address: str) -> tuple[str, str]:
    rows = query(root, "SELECT status, status_reason FROM subscribers WHERE email = :e", e=address)
    return rows[0] if rows else ("(gewist)", "")


def events(root: Path) -> list[tuple]:
    return query(root, "SELECT kind, issue, code, decision FROM mail_events ORDER BY id")


def fetch_now(root: Path, now: datetime | None = None):  # type: ignore[no-untyped-def]
    return fetch(root, now or datetime.fromisoformat(NOW).replace(tzinfo=UTC) + timedelta(days=1))


def test_every_delivery_has_its_own_return_path_that_names_it(sent: Project) -> None:
    recorder: EnvelopeRecorder = sent.recorder  # type: ignore[attr-defined]
    config = load_config(sent.root)
    with StateStore.of(config) as state:
        key = verp.key_of(SubscriberStore(state, config))
    ids = dict(query(sent.root, "SELECT email, id FROM subscribers"))
    pattern = verp.matcher(config)
    assert pattern is not None
    assert len(set(recorder.senders.values())) == 3
    for address in sent.addresses:  # type: ignore[attr-defined]
        envelope = recorder.senders[address]
        assert envelope.startswith("bounce+") and envelope.endswith("@bevolkingsdaling.nl")
        assert address.split("@")[0] not in envelope  # opaque (tests/test_verp.py: numbers)
        found = pattern.fullmatch(envelope)
        assert found and verp.parse_id(key, found.group(1)) == (1, ids[address])
        # one changed letter is no longer an id of this store
        forged = found.group(1)[:-1] + ("a" if found.group(1)[-1] != "a" else "b")
        assert verp.parse_id(key, forged) is None


def test_a_postfix_hard_bounce_marks_the_right_subscriber_bounced(sent: Project) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, "postfix_hard.eml", bob))  # type: ignore[attr-defined]
    report = fetch_now(sent.root)
    assert [d.kind for d in report.decisions] == ["hard_bounce"]
    assert status_of(sent.root, bob) == ("bounced", "bounce 5.1.1")
    assert status_of(sent.root, anna)[0] == "active"
    assert events(sent.root) == [("hard_bounce", 1, "5.1.1", "5.1.1: als onbestelbaar gemarkeerd")]
    ((status, reply),) = query(
        sent.root,
        "SELECT d.status, d.reply FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
        " WHERE s.email = :e",
        e=bob,
    )
    assert status == "bounced" and reply.startswith("later teruggekomen: 5.1.1")
    assert len(sent.box.processed()) == 1 and sent.box.left() == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "fixture,code",
    [
        ("gmail_hard.eml", "5.1.1"),
        ("outlook_hard.eml", "5.1.10"),
        ("exim_hard.eml", "5.1.1"),
    ],
)
@pytest.mark.parametrize("with_verp", [True, False], ids=["verp", "zonder-verp"])
def test_hard_bounces_of_other_servers_are_found_with_and_without_verp(
    sent: Project, fixture: str, code: str, with_verp: bool
) -> None:
    _, bob, carol = sent.addresses  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, fixture, carol, verp_=with_verp))  # type: ignore[attr-defined]
    fetch_now(sent.root)
    assert status_of(sent.root, carol) == ("bounced", f"bounce {code}")
    assert status_of(sent.root, bob)[0] == "active"


def test_verp_names_the_recipient_even_when_the_dsn_is_mangled(sent: Project) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    mail = returned(sent, "postfix_hard.eml", bob)
    # a relay rewrote the report: it names another address, and no original headers
    mail = mail.replace(bob.encode(), b"iemand-anders@ontvanger.example")
    mail = re.sub(rb"Message-ID: <[^>]+>", b"Message-ID: <weg@x>", mail)
    sent.box.deliver(mail)  # type: ignore[attr-defined]
    fetch_now(sent.root)
    assert status_of(sent.root, bob)[0] == "bounced"
    assert status_of(sent.root, anna)[0] == "active"


def test_three_soft_bounces_within_the_window_mark_bounced_two_do_not(sent: Project) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    for n in (1, 2):
        sent.box.deliver(returned(sent, "postfix_soft.eml", anna, n))  # type: ignore[attr-defined]
        sent.box.deliver(returned(sent, "postfix_soft.eml", bob, n))  # type: ignore[attr-defined]
        fetch_now(sent.root, start + timedelta(days=10 * n))
    assert status_of(sent.root, anna)[0] == "active"
    assert status_of(sent.root, bob)[0] == "active"
    # anna's third within 30 days of the first two; bob's third 40 days after his first
    sent.box.deliver(returned(sent, "postfix_soft.eml", anna, 3))  # type: ignore[attr-defined]
    fetch_now(sent.root, start + timedelta(days=25))
    sent.box.deliver(returned(sent, "postfix_soft.eml", bob, 3))  # type: ignore[attr-defined]
    fetch_now(sent.root, start + timedelta(days=45))
    assert status_of(sent.root, anna) == ("bounced", "3 zachte bounces, laatste 4.2.2")
    assert status_of(sent.root, bob)[0] == "active"
    decisions = [e[3] for e in events(sent.root)]
    assert "4.2.2: zachte bounce 2 van 3 binnen 30 dagen" in decisions
    assert "4.2.2: zachte bounce 3 van 3 binnen 30 dagen: als onbestelbaar gemarkeerd" in decisions


def test_the_same_bounce_read_twice_counts_once(sent: Project) -> None:
    anna = sent.addresses[0]  # type: ignore[attr-defined]
    mail = returned(sent, "postfix_soft.eml", anna, 1)
    for _ in range(3):  # a move to `verwerkt` that failed, twice
        sent.box.deliver(mail)  # type: ignore[attr-defined]
    report = fetch_now(sent.root)
    assert [d.line for d in report.decisions][1:] == ["al eerder verwerkt; niets gewijzigd"] * 2
    assert status_of(sent.root, anna)[0] == "active"
    assert len(events(sent.root)) == 1


def test_a_delay_notice_is_read_and_counts_for_nothing(sent: Project) -> None:
    anna = sent.addresses[0]  # type: ignore[attr-defined]
    for n in range(4):
        mail = returned(sent, "postfix_delayed.eml", anna).replace(b".delay@", f".d{n}@".encode())
        sent.box.deliver(mail)  # type: ignore[attr-defined]
    report = fetch_now(sent.root)
    assert {d.kind for d in report.decisions} == {"notice"}
    assert status_of(sent.root, anna)[0] == "active" and events(sent.root) == []


@pytest.mark.parametrize("fixture", ["yahoo_complaint.eml", "outlook_complaint.eml"])
def test_an_arf_complaint_unsubscribes_and_suppresses(sent: Project, fixture: str) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, fixture, anna, verp_=False))  # type: ignore[attr-defined]
    fetch_now(sent.root)
    assert status_of(sent.root, anna) == ("unsubscribed", "klacht (feedbackrapport)")
    assert status_of(sent.root, bob)[0] == "active"
    config = load_config(sent.root)
    with StateStore.of(config) as state:
        assert SubscriberStore(state, config).is_suppressed(anna.lower())
    result = CliRunner().invoke(cli, ["subscribers", "add", anna, "--root", str(sent.root)])
    assert result.exit_code != 0  # a status of its own: not re-activated without --force
    assert events(sent.root)[0][:2] == ("complaint", 1)


def test_status_shows_the_complaint_rate_of_the_last_issue(sent: Project) -> None:
    anna = sent.addresses[0]  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, "yahoo_complaint.eml", anna))  # type: ignore[attr-defined]
    fetch_now(sent.root)
    result = CliRunner().invoke(cli, ["status", "--root", str(sent.root)])
    line = next(x for x in result.output.splitlines() if x.startswith("klachten"))
    assert line == (
        "klachten over nieuwsbrief 1: 1 van 3 verzonden (33,33%; grens van Gmail 0,3%): "
        "te hoog, bekijk de inhoud en de lijst voor de volgende verzending"
    )


def test_a_mailto_unsubscribe_works_from_the_subscribed_address_only(sent: Project) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    stranger = returned(sent, "mailto_unsubscribe.eml", "iemand@elders.example", 1)
    own = returned(sent, "mailto_unsubscribe.eml", anna.upper(), 2)
    sent.box.deliver(stranger)  # type: ignore[attr-defined]
    sent.box.deliver(own)  # type: ignore[attr-defined]
    report = fetch_now(sent.root)
    lines = sorted(str(d) for d in report.decisions)
    assert (
        lines[1]
        == "onbekende ontvanger: afmelding per e-mail: afzender is geen abonnee; niets gewijzigd"
    )
    assert status_of(sent.root, anna) == ("unsubscribed", "afmelden per e-mail")
    assert status_of(sent.root, bob)[0] == "active"


def test_a_mailto_unsubscribe_whose_sender_fails_dmarc_changes_nothing(sent: Project) -> None:
    anna = sent.addresses[0]  # type: ignore[attr-defined]
    forged = returned(sent, "mailto_unsubscribe.eml", anna).replace(b"dmarc=pass", b"dmarc=fail")
    sent.box.deliver(forged)  # type: ignore[attr-defined]
    fetch_now(sent.root)
    assert status_of(sent.root, anna)[0] == "active"


def test_a_mail_that_is_no_bounce_stays_where_it_is_untouched(sent: Project) -> None:
    anna = sent.addresses[0]  # type: ignore[attr-defined]
    reply = returned(sent, "autoreply.eml", anna)
    question = (
        b"From: Een lezer <vraag@ontvanger.example>\r\nTo: bounce@bevolkingsdaling.nl\r\n"
        b"Subject: Vraag over de nieuwsbrief\r\nMessage-ID: <vraag-1@x>\r\n\r\nHoe werkt dit?\r\n"
    )
    sent.box.deliver(reply)  # type: ignore[attr-defined]
    sent.box.deliver(question)  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, "postfix_hard.eml", anna))  # type: ignore[attr-defined]
    report = fetch_now(sent.root)
    assert report.left == 2 and len(report.decisions) == 1
    assert sorted(sent.box.left()) == sorted([reply, question])  # type: ignore[attr-defined]
    assert status_of(sent.root, anna)[0] == "bounced"


def test_fetch_command_prints_each_decision_and_a_summary(sent: Project) -> None:
    bob = sent.addresses[1]  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, "postfix_hard.eml", bob))  # type: ignore[attr-defined]
    result = CliRunner().invoke(cli, ["bounces", "fetch", "--root", str(sent.root)])
    assert result.exit_code == 0, result.output
    masked = bob[0] + "…@" + bob.split("@")[1]
    assert f"{masked}: harde bounce (nieuwsbrief 1): 5.1.1: als onbestelbaar gemarkeerd" in (
        result.output
    )
    assert "1 verwerkt: 1 harde bounces" in result.output


def test_fetch_without_a_mailbox_is_one_dutch_line(project: Project) -> None:
    result = CliRunner().invoke(cli, ["bounces", "fetch", "--root", str(project.root)])
    assert result.exit_code != 0
    assert "[bounces] mailbox is niet gezet" in result.output
    assert "Traceback" not in result.output


def test_a_hostile_mail_is_bounded_and_the_rest_is_processed(sent: Project) -> None:
    anna, bob, _ = sent.addresses  # type: ignore[attr-defined]
    # thousands of nested multiparts, and a header line of a megabyte
    nested = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(5000)
    )
    hostile = b"From: MAILER-DAEMON@x.example\r\nX-Long: " + b"a" * 1_000_000 + b"\r\n" + nested
    sent.box.deliver(hostile)  # type: ignore[attr-defined]
    sent.box.deliver(returned(sent, "postfix_hard.eml", bob))  # type: ignore[attr-defined]
    started = datetime.now()
    report = fetch_now(sent.root)
    assert (datetime.now() - started).total_seconds() < 30
    assert status_of(sent.root, bob)[0] == "bounced"
    assert status_of(sent.root, anna)[0] == "active"
    assert report.left + len(report.unreadable) == 1


def test_the_service_fetches_returns_on_its_interval(sent: Project) -> None:
    from test_schedule import configure, start_service, stop, wait_for

    bob = sent.addresses[1]  # type: ignore[attr-defined]
    configure(sent, newsletter="")
    set_bounces_interval(sent.root, 10)
    sent.box.deliver(returned(sent, "postfix_hard.eml", bob))  # type: ignore[attr-defined]
    service = start_service(sent)
    try:
        wait_for(lambda: status_of(sent.root, bob)[0] == "bounced", 60, 0.5)
        sent.box.deliver(returned(sent, "exim_hard.eml", sent.addresses[2]))  # type: ignore[attr-defined]
        wait_for(lambda: status_of(sent.root, sent.addresses[2])[0] == "bounced", 60, 0.5)  # type: ignore[attr-defined]
    finally:
        code, err = stop(service)
    assert code == 0, err
    assert "job=bounces" in err


def set_bounces_interval(root: Path, seconds: int) -> None:
    path = root / "config.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n[bounces]\n", f"\n[bounces]\ninterval = {seconds}\n"), "utf-8")
