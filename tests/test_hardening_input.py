"""Issue 13: editor and operator input that `check` accepts always builds; what cannot be
built is a `file:line` problem of its own item in both commands, and no item stalls a build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import Project
from pipeline.cli import cli

NOW = "2026-11-27T12:00"


def invoke(project: Project, command: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [command, "--root", str(project.root), "--now", NOW])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ('title = "', '"Krimp\\r\\nBcc: iemand@example.nl'),
        ('title = "', '"Krimp\\nPost'),
        ('organisation = "', '"Ministerie\\u2028BZK'),
        ('label = "', '"Woning\\tmarkt'),
    ],
)
def test_control_character_in_config_string_is_a_config_line(
    project: Project, option: str, value: str
) -> None:
    config = project.root / "config.toml"
    text = config.read_text()
    start = text.index(option)
    number = text[:start].count("\n") + 1
    config.write_text(text[:start] + option[:-1] + value + text[start + len(option) :])
    for command in ("check", "build"):
        code, output = invoke(project, command)
        assert code == 2, output
        assert re.match(rf"config\.toml:{number}: '\w+' in \[[\w.]+\] mag geen regeleinde", output)
        assert "interne fout" not in output


GOOD = """\
---
title: Een goed item
date: 2026-11-01
kind: news
track: wrb
summary: Dit item moet altijd gebouwd worden.
---
Tekst.
"""

HEAD = "---\ntitle: T\ndate: 2026-11-01\nkind: news\ntrack: wrb\nsummary: S.\n"
EVENT = "---\ntitle: T\ndate: 2026-11-01\nkind: event\ntrack: wrb\nsummary: S.\n"
PODCAST = "---\ntitle: T\ndate: 2026-11-01\nkind: podcast\ntrack: wrb\nsummary: S.\n"
AUDIO = "audio:\n  url: https://example.nl/a.mp3\n  length: 1000\n  duration: '00:10:00'\n"
AUDIO += "  type: audio/mpeg\ntranscript: false\ntranscript_reason: geen\n"


def _list(key: str, n: int) -> str:
    return f"{key}: [" + ", ".join(f"x{i}" for i in range(n)) + "]\n"


def _attachments(n: int) -> str:
    return "attachments:\n" + "".join(
        f"  - {{title: B{i}, url: 'https://example.nl/{i}.pdf'}}\n" for i in range(n)
    )


# Every shape of a bad item: (name, file text, the problem lines it must give, as regexes).
BAD = [
    ("date-year-1", HEAD.replace("2026-11-01", "0001-01-01"), [r":3: 'date' .*1970 en 2999"]),
    ("date-9999-offset", HEAD.replace("2026-11-01", "9999-12-31T23:00-05:00"), [r":3: 'date'"]),
    ("date-1899", HEAD.replace("2026-11-01", "1899-12-31"), [r":3: 'date'"]),
    ("date-1939", HEAD.replace("2026-11-01", "1939-06-01"), [r":3: 'date'"]),
    (
        "title-bidi-override",
        HEAD.replace("title: T", 'title: "Titel \\u202egnp.exe"'),
        [r":2: 'title' .*U\+202E"],
    ),
    ("publish-at-far", HEAD + "publish_at: 3000-01-01T00:00\n", [r":7: 'publish_at'"]),
    (
        "event-start-year-1",
        EVENT + "event:\n  start: 0001-01-01T00:00\n  location: Assen\n",
        [r":8: 'event.start'"],
    ),
    (
        "event-end-9999",
        EVENT + "event:\n  start: 2026-12-01\n  end: 9999-12-31T23:59+14:00\n  location: A\n",
        [r":9: 'event.end'"],
    ),
    ("title-control", HEAD.replace("title: T", 'title: "T\\x01X"'), [r":2: 'title' .*U\+0001"]),
    ("summary-escape", HEAD.replace("summary: S.", 'summary: "S\\e."'), [r":6: 'summary'"]),
    ("tag-control", HEAD + 'tags: ["a\\x7fb"]\n', [r":7: 'tags' element 1 .*U\+007F"]),
    (
        "location-control",
        EVENT + 'event:\n  start: 2026-12-01\n  location: "A\\x1bB"\n',
        [r":9: 'event.location'"],
    ),
    ("body-too-big", HEAD + "---\n" + "woord " * 200_000, [r":8: de tekst is te lang: 1,2 MB"]),
    (
        "title-too-long",
        HEAD.replace("title: T", "title: " + "t" * 301),
        [r":2: 'title' is te lang"],
    ),
    ("summary-too-long", HEAD.replace("summary: S.", "summary: " + "s" * 2001), [r":6: "]),
    ("tags-too-many", HEAD + _list("tags", 51), [r":7: 'tags' heeft 51 elementen"]),
    ("regions-too-many", HEAD + _list("regions", 51), [r":7: 'regions' heeft 51"]),
    ("tag-too-long", HEAD + "tags: [" + "t" * 101 + "]\n", [r":7: 'tags' element 1 is te lang"]),
    ("attachments-too-many", HEAD + _attachments(101), [r":7: 'attachments' heeft 101"]),
    (
        "audio-length-huge",
        PODCAST + AUDIO.replace("length: 1000", "length: 10000000000000"),
        [r":9: 'audio.length' is 10000000000000 bytes"],
    ),
    (
        "social-too-long",
        HEAD + "social:\n  x: " + "p" * 5001 + "\n",
        [r":8: 'social.x' is te lang"],
    ),
    (
        "attachments-all-bad",
        HEAD
        + "attachments:\n  - {title: A, url: 'ftp://x'}\n  - {title: B}\n"
        + "  - {titel: C, path: c.pdf}\n  - {title: D, path: ../../etc/passwd}\n",
        [
            r":8: 'attachments.0.url'",
            r":9: 'attachments.1' bijlage 2 heeft óf 'url' óf 'path'",
            r":10: 'attachments.2.titel' bijlage 3: onbekende sleutel 'titel'",
            r":11: 'attachments.3.path' pad .* buiten content/",
        ],
    ),
    (
        "event-all-bad",
        EVENT + "event:\n  start: gisteren\n  plek: Assen\n  registration_url: x\n",
        [
            r":8: 'event.start'",
            r":9: 'event.plek' onbekende sleutel",
            r":10: 'event.registration_url'",
            r":7: 'event' mist verplichte sleutel 'location'",
        ],
    ),
    (
        "audio-all-bad",
        PODCAST + AUDIO.replace("length: 1000", "length: -1").replace("00:10:00", "tien"),
        [r":9: 'audio.length'", r":10: 'audio.duration'"],
    ),
    ("unknown-key", HEAD + "titel: X\n", [r":7: onbekende sleutel 'titel'"]),
    ("missing-key", HEAD.replace("summary: S.\n", ""), [r":1: verplichte sleutel 'summary'"]),
    ("wrong-type", HEAD.replace("title: T", "title: [a, b]"), [r":2: 'title' moet tekst zijn"]),
    ("bad-kind", HEAD.replace("kind: news", "kind: nieuws"), [r":4: 'kind'"]),
    ("no-front-matter", "Alleen tekst.\n", [r":1: "]),
    ("yaml-error", HEAD + "tags: [a\n", [r": ongeldige YAML"]),
    ("not-utf8", "---\ntitle: \xff\n", [r"geen geldige UTF-8"]),
]


def _problem_lines(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.startswith("content/"))


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in BAD], ids=[c[0] for c in BAD])
def test_check_and_build_agree_on_every_bad_item(
    project: Project, text: str, expected: list[str]
) -> None:
    project.write("goed.md", GOOD)
    if text.startswith("---") and "\n---\n" not in text[3:]:
        text += "---\nTekst.\n"
    project.write_bytes("slecht.md", text.encode("latin-1" if "\xff" in text else "utf-8"))
    check_code, check_out = invoke(project, "check")
    build_code, build_out = invoke(project, "build")
    assert (check_code, build_code) == (1, 1), check_out + build_out
    problems = _problem_lines(check_out)
    assert problems == _problem_lines(build_out)
    assert all(p.startswith("content/slecht.md") for p in problems), problems
    assert "interne fout" not in check_out + build_out
    for pattern in expected:
        assert any(re.search(pattern, p) for p in problems), (pattern, problems)
    assert (project.root / "outbox/site/berichten/goed/index.html").is_file()


# Odd input that is not wrong: line breaks in one-line fields fold into a space, control
# characters in the body are dropped; each builds, and its calendar and feeds are valid.
ODD = [
    (
        "title-newline",
        EVENT.replace("title: T", 'title: "Twee\nregels"')
        + "event:\n  start: 2026-12-01T10:00\n  location: Assen\n",
    ),
    ("location-u2028", EVENT + 'event:\n  start: 2026-12-01\n  location: "A\u2028B\tC"\n'),
    ("summary-block", HEAD.replace("summary: S.", "summary: |\n  Eerste regel.\n  Tweede.")),
    ("tag-tab", HEAD + 'tags: ["wonen\tkrimp", "a\u0085b"]\n'),
    ("body-controls", HEAD + "---\na\x01b \x0c c &#1; d &#x7f; e \x85 f\n"),
    (
        "dates-at-the-edges",
        EVENT.replace("2026-11-01", "1970-01-01")
        + "publish_at: 1970-01-01T00:00+14:00\n"
        + "event:\n  start: 2999-12-31T23:59-12:00\n  location: A\n",
    ),
]


@pytest.mark.parametrize("text", [c[1] for c in ODD], ids=[c[0] for c in ODD])
def test_odd_but_valid_input_builds(project: Project, text: str) -> None:
    from lxml import etree

    project.write("goed.md", GOOD)
    project.write_bytes("raar.md", (text if "\n---\n" in text[3:] else text + "---\nx\n").encode())
    check_code, check_out = invoke(project, "check")
    build_code, build_out = invoke(project, "build")
    assert (check_code, build_code) == (0, 0), check_out + build_out
    site = project.root / "outbox/site"
    assert (site / "berichten/raar/index.html").is_file()
    for feed in ("rss.xml", "atom.xml"):
        etree.parse(str(site / "feeds" / feed))
    # Dates as RFC 822 and RFC 3339 write them: whole-minute offsets only.
    rss = (site / "feeds/rss.xml").read_text()
    assert re.findall(r"<pubDate>[^<]*</pubDate>", rss)
    assert all(re.fullmatch(r"<pubDate>\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}</pubDate>", d)
               for d in re.findall(r"<pubDate>[^<]*</pubDate>", rss)), rss  # fmt: skip
    atom = (site / "feeds/atom.xml").read_text()
    for stamp in re.findall(r"<(?:updated|published)>([^<]*)<", atom):
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", stamp
        ), stamp
    agenda = (site / "agenda.ics").read_bytes()
    assert b"\x01" not in agenda and "\u2028".encode() not in agenda


def test_a_page_that_cannot_be_rendered_is_its_items_problem(project: Project) -> None:
    """A safety net under validation: one item's page failing is that item's problem."""
    project.write("goed.md", GOOD)
    project.write("kapot.md", GOOD.replace("Een goed item", "Kapot"))
    templates = project.root / "templates/site"
    templates.mkdir(parents=True)
    original = (Path(__file__).parents[1] / "templates/site/item.html").read_text()
    (templates / "item.html").write_text(
        original.replace(
            "{% block main %}",
            "{% block main %}{% if entry.item.title == 'Kapot' %}{{ 1 // 0 }}{% endif %}",
            1,
        )
    )
    code, output = invoke(project, "build")
    assert code == 1, output
    assert re.search(
        r"^content/kapot\.md: .*outbox/site/berichten/kapot/index\.html.*"
        r"ZeroDivisionError",
        output,
        re.M,
    ), output
    assert (project.root / "outbox/site/berichten/goed/index.html").is_file()
    assert not (project.root / "outbox/site/berichten/kapot/index.html").exists()
    code, output = invoke(project, "build")  # made again, not skipped as up to date
    assert "kapot" in output
