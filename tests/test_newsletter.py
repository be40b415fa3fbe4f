"""`krimppost newsletter compile`: issues, MJML/HTML/text parts, the .eml and the web version."""

from __future__ import annotations

import email
import html as htmllib
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from email import policy
from pathlib import Path

import pytest

from conftest import REPO, VALID, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.errors import KrimppostError

NOW = "2026-11-27T12:00"


def item(n: int, track: str = "wrb", extra: str = "") -> str:
    return (
        VALID.replace("title: Een geldig item", f"title: 'Bericht {n}: coöperatie & krimp'")
        .replace("track: wrb", f"track: {track}{extra}")
        .replace("2026-11-01", f"2026-11-{n % 25 + 1:02d}")
    )


def compile_at(project: Project, now: str = NOW):  # type: ignore[no-untyped-def]
    build_at(project, now)  # an issue takes only items whose pages a build put online
    return compile_issue(project.root, datetime.fromisoformat(now))


def issue_files(project: Project, number: int) -> Path:
    return project.root / "outbox" / "newsletters" / f"{number:04d}"


@pytest.fixture
def newsletter_project(project: Project) -> Project:
    project.write("wrb/een.md", item(1))
    project.write("woningmarkt/twee.md", item(2, "woningmarkt"))
    project.write("energietransitie/drie.md", item(3, "energietransitie"))
    project.write("wrb/alleen-online.md", item(4, extra="\nnewsletter: false"))
    project.write("wrb/embargo.md", item(5, extra="\npublish_at: 2027-01-01T09:00"))
    project.write("wrb/concept.md", item(6, extra="\ndraft: true"))
    project.write(
        "woningmarkt/masterclass.md",
        """\
---
title: Masterclass herstructurering
date: 2026-10-01
kind: event
track: woningmarkt
summary: Een middag over de particuliere voorraad.
image: https://www.example.nl/masterclass.png
image_alt: Rij huizen in Heerlen
event: {start: 2027-01-21T13:30, location: "Glaspaleis, Heerlen"}
---
Programma volgt.
""",
    )
    return project


def test_compile_after_build(newsletter_project: Project) -> None:
    project = newsletter_project
    build_at(project)
    report = compile_at(project)
    assert report.number == 1
    folder = issue_files(project, 1)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "message.eml",
        "message.html",
        "message.mjml",
        "message.txt",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["issue"] == 1
    assert manifest["subject"] == "Nieuwsbrief Bevolkingsdaling #1 – november 2026"
    assert manifest["created_at"] == "2026-11-27T11:00:00+00:00"
    assert sorted(manifest["items"]) == [
        "energietransitie-drie",
        "woningmarkt-masterclass",
        "woningmarkt-twee",
        "wrb-een",
    ]
    assert manifest["agenda"] == ["woningmarkt-masterclass"]
    assert set(manifest["sizes"]) == {"message.eml", "message.html", "message.mjml", "message.txt"}
    web = project.root / "outbox/site/nieuwsbrief/1/index.html"
    assert web.is_file()
    archive = (project.root / "outbox/site/nieuwsbrief/index.html").read_text()
    assert 'href="/nieuwsbrief/1/"' in archive
    assert "Nieuwsbrief Bevolkingsdaling #1 – november 2026" in archive
    assert b"/nieuwsbrief/1/" in (project.root / "outbox/site/nieuwsbrief/rss.xml").read_bytes()
    # A later build keeps the web version and the archive entry.
    build_at(project)
    assert web.is_file()
    assert (
        'href="/nieuwsbrief/1/"'
        in (project.root / "outbox/site/nieuwsbrief/index.html").read_text()
    )


def test_second_compile_makes_nothing_and_a_new_item_makes_the_next(
    newsletter_project: Project,
) -> None:
    project = newsletter_project
    assert compile_at(project).number == 1
    again = compile_at(project)
    assert again.number is None
    assert again.summary().startswith("geen nieuwe berichten")
    assert not issue_files(project, 2).exists()
    project.write("wrb/nieuw.md", item(7))
    third = compile_at(project, "2026-12-01T10:00")
    assert third.number == 2
    manifest = json.loads((issue_files(project, 2) / "manifest.json").read_text())
    assert manifest["items"] == ["wrb-nieuw"]
    # The agenda repeats upcoming events, even when announced before.
    assert manifest["agenda"] == ["woningmarkt-masterclass"]
    assert manifest["subject"] == "Nieuwsbrief Bevolkingsdaling #2 – december 2026"
    # The embargoed item arrives once its moment has passed.
    assert compile_at(project, "2027-01-02T10:00").number == 3
    assert json.loads((issue_files(project, 3) / "manifest.json").read_text())["items"] == [
        "wrb-embargo"
    ]


def test_eml_headers_and_structure(newsletter_project: Project) -> None:
    project = newsletter_project
    config = project.root / "config.toml"
    config.write_text(
        config.read_text().replace(
            'subject = "Nieuwsbrief {site} #{number} – {month} {year}"',
            'subject = "Nieuwsbrief {site} #{number} – {month} {year} 🏡 coöperatie"',
        )
    )
    compile_at(project)
    raw = (issue_files(project, 1) / "message.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Nieuwsbrief Bevolkingsdaling #1 – november 2026 🏡 coöperatie"
    assert msg["From"] == "Programma Bevolkingsdaling <nieuwsbrief@bevolkingsdaling.nl>"
    assert msg["Reply-To"] == "redactie@bevolkingsdaling.nl"
    assert msg["To"] == "abonnees@lijst.bevolkingsdaling.nl"
    assert msg["Date"] == "Fri, 27 Nov 2026 11:00:00 +0000"
    assert re.fullmatch(r"<[^@<>]+@bevolkingsdaling\.nl>", msg["Message-ID"])
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Id"] == "Programma Bevolkingsdaling <nieuwsbrief.bevolkingsdaling.nl>"
    assert msg["Precedence"] == "bulk"
    assert msg.get_content_type() == "multipart/alternative"
    text_part, html_part = msg.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    assert html_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert "=?" not in raw.split(b"\r\n\r\n", 1)[0].decode().split("Subject:")[0]
    # Raw bytes: never folded, never encoded-words.
    headers = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unsubscribe = re.search(r"^List-Unsubscribe: ([^\r\n]*)", headers, re.M)
    assert unsubscribe is not None
    assert unsubscribe.group(1).startswith("<https://")
    assert unsubscribe.group(1) == (
        "<https://www.bevolkingsdaling.nl/afmelden/>, <mailto:afmelden@bevolkingsdaling.nl?subject=afmelden>"
    )
    assert re.search(r"^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$", headers, re.M)


def test_every_item_in_both_parts_and_clean_html(newsletter_project: Project) -> None:
    project = newsletter_project
    compile_at(project)
    folder = issue_files(project, 1)
    html = (folder / "message.html").read_text()
    text = (folder / "message.txt").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    for item_id in manifest["items"]:
        url = f"https://www.bevolkingsdaling.nl/berichten/{item_id}/"
        assert url in html and url in text
    for n in (1, 2, 3):
        title = f"Bericht {n}: coöperatie & krimp"
        assert title in htmllib.unescape(html)
        assert title in text
    assert "Masterclass herstructurering" in text
    assert "donderdag 21 januari 2027, 13:30 uur" in text
    assert '<html lang="nl"' in html
    for img in re.findall(r"<img\b[^>]*>", html):
        assert re.search(r'\salt="[^"]+"', img), img
    for leftover in ("{{", "{%", "<mj-"):
        assert leftover not in html and leftover not in text
    assert "&#39;" not in text and "&amp;" not in text
    assert "%%AFMELDTOKEN%%" in html and "%%AFMELDTOKEN%%" in text  # filled in per recipient
    web = (project.root / "outbox/site/nieuwsbrief/1/index.html").read_text()
    assert "%%AFMELDTOKEN%%" not in web
    for line in text.splitlines():
        assert len(line) <= 72 or line.startswith("https://"), line


def test_intro_is_used_once(newsletter_project: Project) -> None:
    project = newsletter_project
    intro = project.root / "nieuwsbrief" / "voorwoord.md"
    intro.parent.mkdir()
    intro.write_text("Beste lezer,\n\nDit is het **laatste** nummer van 2026.\n")
    compile_at(project)
    assert "laatste</strong> nummer" in (issue_files(project, 1) / "message.html").read_text()
    project.write("wrb/nieuw.md", item(8))
    compile_at(project, "2026-12-02T10:00")
    assert "laatste" not in (issue_files(project, 2) / "message.html").read_text()
    intro.write_text("Een nieuw voorwoord.\n")
    project.write("wrb/nog-een.md", item(9))
    compile_at(project, "2026-12-03T10:00")
    assert "Een nieuw voorwoord." in (issue_files(project, 3) / "message.txt").read_text()


def test_size_budget(project: Project) -> None:
    for n in range(20):
        project.write(
            f"wrb/item-{n}.md",
            item(n).replace(
                "summary: Een korte samenvatting.",
                "summary: " + "Lange samenvatting over krimp en wonen. " * 6,
            ),
        )
    report = compile_at(project)
    assert report.items == 20
    assert report.size < 102_000
    assert report.warnings == []
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("size_budget = 102000", "size_budget = 40000"))
    project.write("wrb/meer.md", item(30))
    for n in range(20):
        project.write(
            f"energietransitie/x-{n}.md",
            item(n, "energietransitie").replace(
                "summary: Een korte samenvatting.", "summary: " + "Lang. " * 60
            ),
        )
    # Over the budget even with short teasers: refused, nothing made.
    with pytest.raises(KrimppostError, match=r"ook met korte teasers [\d.]+ bytes HTML zijn, meer"):
        compile_at(project, "2026-12-01T10:00")
    assert not issue_files(project, 2).exists()
    config.write_text(
        config.read_text()
        .replace("[newsletter]\n", "[newsletter]\nmax_items = 11\n")
        .replace("size_budget = 40000", "size_budget = 41000")
    )
    report = compile_at(project, "2026-12-01T10:00")
    assert report.warnings and "kortere teasers" in report.warnings[0]
    assert (
        json.loads((issue_files(project, 2) / "manifest.json").read_text())["short_teasers"] is True
    )


def test_broken_template_names_the_file(newsletter_project: Project) -> None:
    project = newsletter_project
    folder = project.root / "templates" / "newsletter"
    folder.mkdir(parents=True)
    (folder / "issue.mjml.j2").write_text("<mjml><mj-body>{% for x in %}</mj-body></mjml>")
    with pytest.raises(KrimppostError) as info:
        compile_at(project)
    assert "issue.mjml.j2:1: fout in sjabloon" in str(info.value)
    (folder / "issue.mjml.j2").write_text(
        "<mjml><mj-body><mj-sectoin></mj-sectoin></mj-body></mjml>"
    )
    with pytest.raises(KrimppostError) as info:
        compile_at(project)
    assert "templates/newsletter/issue.mjml.j2: onbekende MJML-tag <mj-sectoin>" in str(info.value)


def test_concurrent_compiles_never_share_an_item(newsletter_project: Project) -> None:
    project = newsletter_project
    for n in range(10, 40):
        project.write(f"wrb/extra-{n}.md", item(n))
    build_at(project, NOW)
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "newsletter",
                "compile",
                "--root",
                str(project.root),
                "--now",
                NOW,
            ],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    seen: list[str] = []
    for folder in sorted((project.root / "outbox/newsletters").iterdir()):
        seen += json.loads((folder / "manifest.json").read_text())["items"]
    assert len(seen) == len(set(seen)) == 34


def test_compile_needs_the_newsletter_config(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(
        config.read_text().replace('from_address = "nieuwsbrief@bevolkingsdaling.nl"\n', "")
    )
    project.write("wrb/a.md", VALID)
    with pytest.raises(KrimppostError) as info:
        compile_at(project)
    assert info.value.exit_code == 2
    assert "[newsletter] from_address ontbreekt" in str(info.value)


def test_an_issue_and_the_feed_agree_on_an_items_date(project: Project) -> None:
    """The issue takes its entries from the publication decision the feeds come from: an
    item whose `date` was changed after it went online keeps its first publication date in
    the feed, and so in the issue."""
    project.write("wrb/een.md", item(1))  # date 2026-11-02
    build_at(project, NOW)
    project.write("wrb/een.md", item(1).replace("2026-11-02", "2026-11-20"))
    report = compile_at(project)
    feed = json.loads((project.root / "outbox/site/feeds/feed.json").read_text())
    (entry,) = feed["items"]
    assert entry["date_published"].startswith("2026-11-02")
    text = (issue_files(project, report.number) / "message.txt").read_text()
    assert "2 november 2026" in text
    assert "20 november 2026" not in text
