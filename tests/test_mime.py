"""The fast per-recipient assembler parses to exactly what `message.build` produces."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.config import load_config
from pipeline.delivery.mime import Template, canonical_body, date_header, dot_stuff, qp_encode
from pipeline.render import message, templates
from pipeline.render.newsletter import TOKEN_PLACEHOLDER, render, view_of
from pipeline.state import IssueStore, StateStore

TOKEN = "AbCdEfGhIjKlMnOpQr-_12"
MID = "<nieuwsbrief-0001.17.0a1b2c3d@bevolkingsdaling.nl>"
WHEN = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def reference(template: Template, to: str, text: str, html: str) -> EmailMessage:
    built = message.build(
        template.config,
        template.envelope(to, TOKEN, MID, WHEN),
        text.replace(TOKEN_PLACEHOLDER, TOKEN),
        html.replace(TOKEN_PLACEHOLDER, TOKEN),
    )
    return parse(built.as_bytes())


def assert_same(fast: EmailMessage, slow: EmailMessage) -> None:
    assert list(fast.keys()) == list(slow.keys())
    for name in slow:
        if name == "Content-Type":
            assert fast.get_content_type() == slow.get_content_type() == "multipart/alternative"
            continue
        assert str(fast[name]) == str(slow[name]), name
    fast_parts, slow_parts = list(fast.iter_parts()), list(slow.iter_parts())
    assert len(fast_parts) == len(slow_parts) == 2
    for a, b in zip(fast_parts, slow_parts, strict=True):
        assert list(a.items()) == list(b.items())
        assert a.get_content() == b.get_content()


@pytest.fixture
def config(project: Project):  # type: ignore[no-untyped-def]
    return load_config(project.root)


def test_rendered_issue_assembles_to_the_same_message(project: Project) -> None:
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        project.write(
            f"{track}/bericht.md",
            f"""\
            ---
            title: "Bericht {n}: coöperatie & krimp"
            date: 2026-11-0{n + 1}
            kind: news
            track: {track}
            summary: Een samenvatting met een . aan het begin van niets = en "quotes".
            ---
            Tekst.
            """,
        )
    build_at(project)
    compile_issue(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    config = load_config(project.root)
    with StateStore(config.path(config.state.path)) as state:
        record = IssueStore(state).get(1)
    assert record is not None
    env = templates.environment(templates.template_dirs(config.templates_dir), config.site.tz)
    view = view_of(config, record)
    url = message.unsubscribe_base(config) + TOKEN_PLACEHOLDER
    for selection in ({"wrb"}, {"woningmarkt", "energietransitie"}, set(view.tracks)):
        rendered = render(env, config, view.for_tracks(selection), url)
        template = Template(config, record.subject, rendered.text, rendered.html)
        data = template.assemble("lezer@example.nl", TOKEN, MID, date_header(WHEN))
        fast = parse(data)
        assert_same(fast, reference(template, "lezer@example.nl", rendered.text, rendered.html))
        assert TOKEN_PLACEHOLDER.encode() not in data
        body = data.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
        assert b"\n" not in body.replace(b"\r\n", b"")  # CRLF only
        assert template.assemble("lezer@example.nl", TOKEN, MID, date_header(WHEN), True) == (
            dot_stuff(data)
        )


FRAGMENTS = [*"ab .=\t\r\n-éü€😀", "  ", "\n.", ".\n", "=\n", " \n", "From ", "x" * 80, "é" * 40]
TEXT = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(TEXT, min_size=1, max_size=4),
    html_pieces=st.lists(TEXT, min_size=1, max_size=3),
)
def test_any_text_assembles_to_the_same_message(pieces: list[str], html_pieces: list[str]) -> None:
    config = load_config(REPO)
    text = TOKEN_PLACEHOLDER.join(pieces)
    html = TOKEN_PLACEHOLDER.join(html_pieces)
    template = Template(config, "Onderwerp – met € en een heel lange titel " * 3, text, html)
    data = template.assemble("a.b+c@example.nl", TOKEN, MID, date_header(WHEN))
    assert_same(parse(data), reference(template, "a.b+c@example.nl", text, html))
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    stuffed = template.assemble("a.b+c@example.nl", TOKEN, MID, date_header(WHEN), True)
    assert stuffed == dot_stuff(data)
    assert not re.search(rb"(^|\r\n)\.(?!\.)", stuffed)


def test_long_address_and_slow_path_for_non_ascii(config) -> None:  # type: ignore[no-untyped-def]
    text, html = f"Afmelden: {TOKEN_PLACEHOLDER}\n", f"<a href='{TOKEN_PLACEHOLDER}'>x</a>"
    template = Template(config, "Nieuwsbrief", text, html)
    long = "heel.lang." * 6 + "adres@een-nogal-lang-domein.example.nl"
    data = template.assemble(long, TOKEN, MID, date_header(WHEN))
    assert_same(parse(data), reference(template, long, text, html))
    slow = parse(template.slow("jürgen@bücher.example.nl", TOKEN, MID, WHEN))
    assert slow["To"] == "jürgen@bücher.example.nl"
    parts = [p.get_content().replace("\r\n", "\n") for p in slow.iter_parts()]
    assert parts[0] == f"Afmelden: {TOKEN}\n"
    assert f"afmelden/{TOKEN}>" in slow["List-Unsubscribe"]


def test_qp_helpers() -> None:
    assert canonical_body("a\r\nb\rc") == b"a\nb\nc\n"
    assert qp_encode(b"x" * 100 + b"\n") == b"x" * 75 + b"=\r\n" + b"x" * 25 + b"\r\n"
    assert qp_encode(b"trailing \n") == b"trailing=20\r\n"
    # binascii alone makes these lines 78 characters long
    assert qp_encode(b"x" * 75 + b" \n") == b"x" * 75 + b"=\r\n=20\r\n"
    assert qp_encode("é".encode() * 12 + b"xxx\t\n") == b"=C3=A9" * 12 + b"xxx=\r\n=09\r\n"
    assert qp_encode("é".encode() * 12 + b"x\t\t\n") == (
        b"=C3=A9" * 12 + b"x\t=\r\n=09\r\n"  # never splits an escape
    )
    assert dot_stuff(b".a\r\nb\r\n..c\r\n") == b"..a\r\nb\r\n...c\r\n"


def test_the_join_never_makes_a_line_longer_than_76(config) -> None:  # type: ignore[no-untyped-def]
    for width in range(70, 80):
        text = "x" * width + TOKEN_PLACEHOLDER + "y" * width
        template = Template(config, "S", text, text)
        body = template.assemble("a@example.nl", TOKEN, MID, "d").split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
