"""Hostile or odd item input (issue 13, items 4, 6 and 7): what `check` accepts, `build`
builds; what cannot be built is a `file:line` problem of that item in both, the rest built."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, VALID, Project
from pipeline.cli import cli

NOW = "2026-11-27T12:00"
EVENT = VALID.replace(
    "kind: news", "kind: event\nevent:\n  start: 2026-12-01T10:00\n  location: Assen"
)
PODCAST = VALID.replace(
    "kind: news",
    "kind: podcast\naudio:\n  url: https://example.nl/a.mp3\n  length: 1000\n"
    "  duration: '00:10:00'\n  type: audio/mpeg\ntranscript: false\n"
    "transcript_reason: Een testaflevering.",
)


def _title(value: str) -> str:
    return VALID.replace("title: Een geldig item", f"title: {value}")


def _tags(count: int) -> str:
    return VALID.replace(
        "kind: news", "kind: news\ntags: [" + ", ".join(f"t{i}" for i in range(count)) + "]"
    )


def _control(line: int, key: str, code: str) -> str:
    return f"{line}: '{key}' bevat een onzichtbaar stuurteken (U+{code})"


# (id, file text, the problem lines of content/bad.md, each as "LINE: start of message")
CASES: list[tuple[str, str, list[str]]] = [
    ("year-1", VALID.replace("2026-11-01", "0001-01-01"), ["3: 'date' '0001-01-01' ligt buiten"]),
    (
        "year-9999-offset",
        VALID.replace("2026-11-01", "9999-12-31T23:00-05:00"),
        ["3: 'date' '9999-12-31T23:00-05:00' ligt buiten"],
    ),
    ("year-1899", VALID.replace("2026-11-01", "1899-12-31"), ["3: 'date' '1899-12-31' ligt"]),
    (
        "publish-at-far",
        VALID.replace("kind: news", "kind: news\npublish_at: 9999-12-31T23:59+14:00"),
        ["5: 'publish_at' '9999-12-31T23:59+14:00' ligt buiten"],
    ),
    (
        "publish-at-early",
        VALID.replace("kind: news", "kind: news\npublish_at: 0001-01-01T00:00-12:00"),
        ["5: 'publish_at' '0001-01-01T00:00-12:00' ligt buiten"],
    ),
    (
        "event-start-year-1",
        EVENT.replace("2026-12-01T10:00", "0001-01-01T00:00"),
        ["6: 'event.start' '0001-01-01T00:00' ligt buiten"],
    ),
    (
        "event-end-far",
        EVENT.replace("location: Assen", "location: Assen\n  end: 9999-12-31T23:00"),
        ["8: 'event.end' '9999-12-31T23:00' ligt buiten"],
    ),
    ("title-bell", _title('"a\\x07b"'), [_control(2, "title", "0007")]),
    ("title-nul", _title('"a\\0b"'), [_control(2, "title", "0000")]),
    ("title-del", _title('"a\\x7fb"'), [_control(2, "title", "007F")]),
    ("title-c1", _title('"a\\x9bb"'), [_control(2, "title", "009B")]),
    ("title-fffe", _title('"a\\ufffeb"'), [_control(2, "title", "FFFE")]),
    ("title-surrogate", _title('"a\\ud800b"'), ["2: ongeldige YAML: ongeldige Unicode-escape"]),
    (
        "summary-escape",
        VALID.replace("summary: Een korte samenvatting.", 'summary: "kort\\x1bkort"'),
        [_control(6, "summary", "001B")],
    ),
    (
        "location-control",
        EVENT.replace("location: Assen", 'location: "Assen\\x0e"'),
        [_control(7, "event.location", "000E")],
    ),
    (
        "tag-control",
        VALID.replace("kind: news", 'kind: news\ntags: ["a\\x01"]'),
        ["5: 'tags' element 1 bevat een onzichtbaar stuurteken (U+0001)"],
    ),
    (
        "url-control",
        PODCAST.replace("https://example.nl/a.mp3", '"https://example.nl/a\\x02.mp3"'),
        [_control(6, "audio.url", "0002")],
    ),
    (
        "alt-control",
        VALID.replace("kind: news", 'kind: news\nimage: https://x.nl/a.png\nimage_alt: "\\x03"'),
        [_control(6, "image_alt", "0003")],
    ),
    (
        "social-control",
        VALID.replace("kind: news", 'kind: news\nsocial:\n  x: "post\\x04"'),
        [_control(6, "social.x", "0004")],
    ),
    ("body-too-big", VALID + "woord " * 200_000, ["8: de tekst is te lang: 1,2 MB"]),
    ("tags-5000", _tags(5_000), ["5: 'tags' heeft 5000 elementen; het maximum is 50"]),
    ("tags-51", _tags(51), ["5: 'tags' heeft 51 elementen; het maximum is 50"]),
    (
        "regions-many",
        VALID.replace("kind: news", "kind: news\nregions: [" + ", ".join(["r"] * 51) + "]"),
        ["5: 'regions' heeft 51 elementen"],
    ),
    (
        "attachments-many",
        VALID.replace(
            "kind: news",
            "kind: news\nattachments:\n"
            + "".join(f"  - {{title: b{i}, url: 'https://x.nl/{i}'}}\n" for i in range(101)),
        ),
        ["5: 'attachments' heeft 101 bijlagen; het maximum is 100"],
    ),
    (
        "audio-length-huge",
        PODCAST.replace("length: 1000", "length: 10000000000000000000000"),
        ["7: 'audio.length' is 10000000000000000000000 bytes; het maximum is"],
    ),
    ("title-long", _title("x" * 301), ["2: 'title' is te lang: 301 tekens, het maximum is 300"]),
    (
        "summary-long",
        VALID.replace("summary: Een korte samenvatting.", "summary: " + "x" * 2001),
        ["6: 'summary' is te lang: 2001 tekens"],
    ),
    (
        "social-long",
        VALID.replace("kind: news", "kind: news\nsocial:\n  x: " + "x" * 5001),
        ["6: 'social.x' is te lang: 5001 tekens"],
    ),
    (
        "tag-long",
        VALID.replace("kind: news", "kind: news\ntags: [" + "t" * 101 + "]"),
        ["5: 'tags' element 1 is te lang"],
    ),
    (
        "url-long",
        PODCAST.replace("https://example.nl/a.mp3", "https://example.nl/" + "a" * 2000),
        ["6: 'audio.url' is te lang"],
    ),
    # Shapes that were handled before and must stay so: a problem of their own, nothing else.
    ("no-front-matter", "Alleen tekst.\n", ["1: geen front matter"]),
    ("list-front-matter", "---\n- a\n- b\n---\ntekst\n", ["2: front matter moet uit sleutels"]),
    ("unclosed", "---\ntitle: a\n", ["1: front matter wordt niet afgesloten"]),
    ("kind-unknown", VALID.replace("kind: news", "kind: nieuws"), ["4: 'kind' moet een van"]),
    ("date-number", VALID.replace("2026-11-01", "20261101"), ["3: 'date' moet een datum"]),
    ("date-feb-30", VALID.replace("2026-11-01", "2026-02-30"), ["3: 'date' '2026-02-30' is geen"]),
    ("title-list", _title("[a, b]"), ["2: 'title' moet tekst zijn, niet een lijst"]),
    (
        "event-not-mapping",
        VALID.replace("kind: news", "kind: event\nevent: morgen"),
        ["5: 'event' moet een tabel"],
    ),
    (
        "event-every-bad-key",
        EVENT.replace("2026-12-01T10:00", "morgen").replace(
            "location: Assen", "location: Assen\n  registration_url: inschrijven\n  zaal: 3"
        ),
        [
            "6: 'event.start' 'morgen' is geen datum",
            "8: 'event.registration_url' moet een volledige http(s)-URL zijn",
            "9: 'event.zaal' onbekende sleutel 'zaal'",
        ],
    ),
    (
        "attachments-every-bad-one",
        VALID.replace(
            "kind: news",
            "kind: news\nattachments:\n  - {title: a, url: nope}\n  - {title: b}\n"
            "  - {titel: c, url: 'https://x.nl/'}\n  - {title: '', path: ../../x}",
        ),
        [
            "6: 'attachments.0.url' moet een volledige http(s)-URL zijn",
            "7: 'attachments.1' bijlage 2 heeft óf 'url' óf 'path' nodig",
            "8: 'attachments.2.titel' bijlage 3: onbekende sleutel 'titel'",
            "9: 'attachments.3.path' pad '../../x' verwijst naar een plek buiten content/",
            "9: 'attachments.3.title' mag niet leeg zijn",
        ],
    ),
    (
        "audio-every-bad-key",
        PODCAST.replace("length: 1000", "length: -1").replace("audio/mpeg", "text/html"),
        [
            "7: 'audio.length' moet een positief geheel aantal bytes zijn",
            "9: 'audio.type' moet een MIME-type voor audio zijn",
        ],
    ),
]


def _problems(output: str) -> list[str]:
    return sorted(line for line in output.splitlines() if line.startswith("content/"))


def _run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, "--root", str(root), "--now", NOW])
    return result.exit_code, result.output


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_and_build_agree(project: Project, text: str, expected: list[str]) -> None:
    project.write("good.md", VALID)
    project.write_bytes("bad.md", text.encode())
    check_code, check_out = _run(project.root, "check")
    build_code, build_out = _run(project.root, "build")
    assert "interne fout" not in check_out + build_out, build_out
    assert (check_code, build_code) == (1, 1)
    found = _problems(check_out)
    assert found == _problems(build_out)
    assert len(found) == len(expected), found
    for line, start in zip(found, sorted(expected), strict=True):
        assert line.startswith(f"content/bad.md:{start}"), (line, start)
    assert (project.root / "outbox/site/berichten/good/index.html").is_file()
    assert not (project.root / "outbox/site/berichten/bad/index.html").exists()


@pytest.mark.parametrize(
    "title",
    ['"Een\\nitem"', '"Een\\r\\n  item"', '"Een\\u2028item\\u2029"', '"Een\\titem\\x85"'],
)
def test_line_breaks_in_one_line_fields_are_folded(project: Project, title: str) -> None:
    project.write(
        "ev.md",
        EVENT.replace("title: Een geldig item", f"title: {title}").replace(
            "location: Assen", 'location: "Assen\\nCentrum"'
        ),
    )
    assert _run(project.root, "check")[0] == 0
    code, out = _run(project.root, "build")
    assert code == 0, out
    ics = (project.root / "outbox/site/berichten/ev/evenement.ics").read_bytes().decode()
    assert "SUMMARY:Een item\r\n" in ics and "LOCATION:Assen Centrum\r\n" in ics


def test_control_characters_in_the_body_are_dropped(project: Project) -> None:
    project.write_bytes(
        "a.md", (VALID + "a\x01b \x0c c \ufffe d &#1; e &#xFFFE; f\x7f g\x85\n").encode()
    )
    assert _run(project.root, "check")[0] == 0
    code, out = _run(project.root, "build")
    assert code == 0, out
    atom = (project.root / "outbox/site/feeds/atom.xml").read_text()
    assert "ab" in atom and "\x01" not in atom and "\ufffe" not in atom


def test_a_file_that_cannot_be_made_is_its_items_problem(project: Project) -> None:
    """Rendering one item's page fails anyway (here a template): that item's problem, the
    other pages are written, and the next build tries again."""
    project.write("good.md", VALID)
    project.write("boem.md", VALID)
    item = (REPO / "templates/site/item.html").read_text()
    (project.root / "templates/site").mkdir(parents=True)
    (project.root / "templates/site/item.html").write_text(
        item.replace(
            "{% set item = entry.item %}",
            '{% set item = entry.item %}{% if item.id == "boem" %}{{ 1 // 0 }}{% endif %}',
        )
    )
    code, out = _run(project.root, "build")
    assert code == 1 and "krimppost: interne fout" not in out, out
    assert _problems(out) == [
        "content/boem.md: interne fout bij het maken van outbox/site/berichten/boem/index.html: "
        "ZeroDivisionError: integer division or modulo by zero"
    ]
    assert (project.root / "outbox/site/berichten/good/index.html").is_file()
    assert _run(project.root, "build")[0] == 1  # made again, not skipped as unchanged
