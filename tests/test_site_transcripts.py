"""Podcast transcripts (issue 18, WCAG 2.1 SC 1.2.1): a podcast names a `*.transcript.md`
file or says why there is none; the episode page shows it in the page, podcast.xml links
it with `podcast:transcript`, an edit of it rebuilds the page, and a podcast without either
is a `check` error with file and line."""

from __future__ import annotations

from datetime import datetime

import feedparser
from lxml import etree

from conftest import Project, build_at
from pipeline.commands.check import check

PODCAST_NS = "https://podcastindex.org/namespace/1.0"


def podcast(extra: str) -> str:
    return (
        "---\ntitle: Aflevering 7\ndate: 2026-11-01\nkind: podcast\ntrack: woningmarkt\n"
        "summary: Een gesprek.\naudio:\n  url: https://cdn.example.nl/afl-7.mp3\n"
        "  length: 3400000\n  duration: '00:41:05'\n  type: audio/mpeg\n"
        f"{extra}---\nShownotes.\n"
    )


def test_the_transcript_is_in_the_page_in_a_text_file_and_in_the_podcast_feed(
    project: Project,
) -> None:
    project.write("woningmarkt/afl-7.md", podcast("transcript: afl-7.transcript.md\n"))
    project.write(
        "woningmarkt/afl-7.transcript.md", "**Gast:** Krimp is geen *probleem* maar een opgave.\n"
    )
    report = build_at(project)
    assert report.problems == ()
    assert [e.id for e in report.publication.entries] == ["woningmarkt-afl-7"]  # not an item
    folder = project.root / "outbox" / "site" / "berichten" / "woningmarkt-afl-7"
    page = (folder / "index.html").read_text()
    details = page[page.index('<details class="transcript">') : page.index("</details>")]
    assert "<summary>Transcript van de aflevering</summary>" in details
    assert "<strong>Gast:</strong> Krimp is geen <em>probleem</em> maar een opgave." in details
    assert (
        folder / "transcript.txt"
    ).read_text() == "Gast: Krimp is geen probleem maar een opgave.\n"
    xml = (project.root / "outbox" / "site" / "feeds" / "podcast.xml").read_bytes()
    assert not feedparser.parse(xml).bozo
    (tag,) = etree.fromstring(xml).iter(f"{{{PODCAST_NS}}}transcript")
    assert tag.get("url") == (
        "https://www.bevolkingsdaling.nl/berichten/woningmarkt-afl-7/transcript.txt"
    )
    assert tag.get("type") == "text/plain"
    # An edit of the transcript alone is an edit of the episode.
    project.write("woningmarkt/afl-7.transcript.md", "**Gast:** Anders gezegd.\n")
    again = build_at(project, "2026-11-27T13:00")
    assert "site/berichten/woningmarkt-afl-7/index.html" in again.written
    assert "Anders gezegd." in (folder / "index.html").read_text()


def test_a_podcast_without_a_transcript_or_a_reason_is_a_check_error(project: Project) -> None:
    project.write("woningmarkt/afl-7.md", podcast(""))
    report = check(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    (problem,) = report.problems
    assert str(problem).startswith(
        "content/woningmarkt/afl-7.md:4: een podcast heeft een transcript nodig"
    )
    assert build_at(project).publication.entries == ()


def test_a_deliberate_exception_says_why_on_the_page_and_has_no_feed_transcript(
    project: Project,
) -> None:
    project.write(
        "woningmarkt/afl-7.md",
        podcast("transcript: false\ntranscript_reason: Een muziekaflevering zonder tekst.\n"),
    )
    assert build_at(project).problems == ()
    page = (
        project.root / "outbox" / "site" / "berichten" / "woningmarkt-afl-7" / "index.html"
    ).read_text()
    assert "Van deze aflevering is geen transcript: Een muziekaflevering zonder tekst." in page
    xml = (project.root / "outbox" / "site" / "feeds" / "podcast.xml").read_bytes()
    assert b"podcast:transcript" not in xml
