"""The returns mailbox (pipeline/delivery/mailbox.py) over a Maildir and a real Dovecot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_returns import set_bounces

from conftest import Project, free_port
from pipeline.config import load_config
from pipeline.delivery import mailbox
from pipeline.delivery.mailbox import open_mailbox
from pipeline.errors import KrimppostError

MAILS = [
    f"Subject: bericht {n}\r\nMessage-ID: <{n}@x>\r\n\r\ntekst {n}\r\n".encode() for n in range(3)
]


@pytest.fixture
def box(project: Project, bounce_mailbox):  # type: ignore[no-untyped-def]
    set_bounces(project.root, **bounce_mailbox.options(project.root))
    for mail in MAILS:
        bounce_mailbox.deliver(mail)
    bounce_mailbox.config = load_config(project.root)
    return bounce_mailbox


def test_messages_are_read_unchanged_and_reading_changes_nothing(box) -> None:  # type: ignore[no-untyped-def]
    with open_mailbox(box.config) as opened:
        assert [m.data for m in opened.messages()] == MAILS
    assert box.left() == MAILS and box.processed() == []
    if box.kind == "imap":
        assert not any("\\Seen" in flags for flags in box.seen_flags())


def test_processed_moves_one_message_to_verwerkt(box) -> None:  # type: ignore[no-untyped-def]
    with open_mailbox(box.config) as opened:
        keys = [m.key for m in opened.messages()]
        opened.processed(keys[1])
    assert box.left() == [MAILS[0], MAILS[2]]
    assert box.processed() == [MAILS[1]]


def test_a_message_over_the_limit_is_left_and_reported(box, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    big = b"Subject: groot\r\n\r\n" + b"x" * 5000 + b"\r\n"
    box.deliver(big)
    monkeypatch.setattr(mailbox, "MAX_MESSAGE", 4000)
    with open_mailbox(box.config) as opened:
        assert [m.data for m in opened.messages()] == MAILS
        assert len(opened.skipped) == 1 and "te groot" in opened.skipped[0]
    assert big in box.left()


def test_a_symlink_in_the_maildir_is_not_followed(project: Project, tmp_path: Path) -> None:
    from mailboxes import MaildirBox

    maildir = MaildirBox()
    set_bounces(project.root, **maildir.options(project.root))
    secret = tmp_path / "geheim.txt"
    secret.write_text("Subject: geheim\n\nniet voor jou\n")
    os.symlink(secret, project.root / "retour" / "new" / "0000.link")
    with open_mailbox(load_config(project.root)) as opened:
        assert list(opened.messages()) == []
        assert opened.skipped == ["new/0000.link: symbolische link, niet gevolgd"]


def test_a_missing_maildir_is_one_dutch_line(project: Project) -> None:
    set_bounces(project.root, mailbox="maildir:nergens")
    with pytest.raises(KrimppostError) as caught:
        open_mailbox(load_config(project.root))
    assert "is geen Maildir" in str(caught.value.problems[0])


def _imap_project(project: Project, server, **changes: object) -> Path:  # type: ignore[no-untyped-def]
    from mailboxes import ImapBox

    options = {**ImapBox(server).options(project.root), **changes}
    set_bounces(project.root, **options)
    return project.root


def _error(root: Path) -> str:
    with pytest.raises(KrimppostError) as caught, open_mailbox(load_config(root)):
        pass
    (problem,) = caught.value.problems
    return str(problem)


def test_a_wrong_imap_password_is_one_dutch_line(
    project: Project, imap_server, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KRIMPPOST_BOUNCE_PASSWORD", "fout")
    root = _imap_project(project, imap_server)
    assert _error(root).endswith(
        f"IMAP-server 127.0.0.1:{imap_server.port}: inloggen als retour@bevolkingsdaling.nl geweigerd"
    )


def test_an_untrusted_certificate_is_refused(project: Project, imap_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KRIMPPOST_BOUNCE_PASSWORD", "x")
    root = _imap_project(project, imap_server, ca_file="")
    assert f"127.0.0.1:{imap_server.port}: certificaat afgekeurd: " in _error(root)


def test_a_missing_password_variable_is_named(project: Project, imap_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("KRIMPPOST_BOUNCE_PASSWORD", raising=False)
    root = _imap_project(project, imap_server)
    assert "KRIMPPOST_BOUNCE_PASSWORD" in _error(root)


def test_a_refused_connection_fails_at_once_with_host_and_port(
    project: Project, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    monkeypatch.setenv("KRIMPPOST_BOUNCE_PASSWORD", "x")
    set_bounces(project.root, mailbox=f"imaps://a@127.0.0.1:{port}/INBOX")
    started = time.monotonic()
    assert _error(project.root).endswith(f"127.0.0.1:{port}: geen verbinding: verbinding geweigerd")
    assert time.monotonic() - started < 5
