"""The agenda (issue 18): upcoming events by start date, then past ones marked "afgelopen"
latest first; an event's page says it is over once it is; agenda.ics keeps the events of
the last 12 months; the home page shows upcoming only. And the typography: tables scroll in
a named, focusable region, words are hyphenated instead of broken anywhere."""

from __future__ import annotations

import re

import icalendar

from conftest import REPO, Project, build_at


def event(title: str, start: str, date: str = "2025-06-01") -> str:
    return (
        f"---\ntitle: {title}\ndate: {date}\nkind: event\ntrack: woningmarkt\n"
        f"summary: Een bijeenkomst.\nevent:\n  start: {start}\n  location: Heerlen\n"
        "  registration_url: https://example.org/aanmelden\n---\nProgramma.\n"
    )


def write_events(project: Project) -> None:
    project.write("woningmarkt/later.md", event("Later evenement", "2027-03-01T10:00"))
    project.write("woningmarkt/binnenkort.md", event("Binnenkort", "2026-12-10T10:00"))
    project.write("woningmarkt/vorige-maand.md", event("Vorige maand", "2026-10-15T10:00"))
    project.write("woningmarkt/vorig-jaar.md", event("Lang geleden", "2025-09-01T10:00"))


def test_the_agenda_lists_upcoming_by_date_then_past_marked_latest_first(project: Project) -> None:
    write_events(project)
    build_at(project, "2026-11-27T12:00")
    page = (project.root / "outbox" / "site" / "agenda" / "index.html").read_text()
    titles = re.findall(r'<a href="/berichten/[^"]+/">([^<]+)</a>', page)
    assert titles == ["Binnenkort", "Later evenement", "Vorige maand", "Lang geleden"]
    past = page[page.index("Afgelopen evenementen") :]
    assert past.count('<span class="label-afgelopen">afgelopen</span>') == 2
    assert "Binnenkort" not in past
    home = (project.root / "outbox" / "site" / "index.html").read_text()
    agenda = home[home.index('id="agenda-kop"') : home.index('id="nieuw-kop"')]
    assert "Binnenkort" in agenda and "Vorige maand" not in agenda


def test_an_event_page_says_it_is_over_once_it_is(project: Project) -> None:
    write_events(project)
    build_at(project, "2026-12-01T12:00")
    page = project.root / "outbox" / "site" / "berichten" / "woningmarkt-binnenkort" / "index.html"
    assert "Dit evenement is afgelopen" not in page.read_text()
    assert "https://example.org/aanmelden" in page.read_text()
    report = build_at(project, "2026-12-11T12:00")
    assert "site/berichten/woningmarkt-binnenkort/index.html" in report.written
    text = page.read_text()
    assert "Dit evenement is afgelopen" in text
    assert "https://example.org/aanmelden" not in text  # no registering for what is over
    assert (
        "Dit evenement is afgelopen"
        in (
            project.root / "outbox" / "site" / "berichten" / "woningmarkt-vorig-jaar" / "index.html"
        ).read_text()
    )


def test_agenda_ics_keeps_the_events_of_the_last_twelve_months(project: Project) -> None:
    write_events(project)
    build_at(project, "2026-11-27T12:00")
    cal = icalendar.Calendar.from_ical(
        (project.root / "outbox" / "site" / "agenda.ics").read_bytes()
    )
    summaries = [str(e["summary"]) for e in cal.walk("VEVENT")]
    assert summaries == ["Vorige maand", "Binnenkort", "Later evenement"]


def test_wide_tables_scroll_in_a_named_focusable_region(project: Project) -> None:
    project.write(
        "wrb/tabel.md",
        "---\ntitle: Met tabel\ndate: 2026-11-01\nkind: news\ntrack: wrb\nsummary: x\n---\n"
        "| Gemeente | Woningbouwcorporatieverenigingsbestuursvergadering |\n|---|---|\n"
        "| Heerlen | 12 |\n",
    )
    build_at(project, "2026-11-27T12:00")
    page = (project.root / "outbox" / "site" / "berichten" / "wrb-tabel" / "index.html").read_text()
    assert '<div class="tabel" role="region" aria-label="Tabel 1" tabindex="0"><table>' in page
    assert "</table></div>" in page
    feed = (project.root / "outbox" / "site" / "feeds" / "atom.xml").read_text()
    assert "role=&quot;region&quot;" not in feed and 'role="region"' not in feed
    css = (REPO / "templates" / "static" / "stijl.css").read_text()
    rules = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    assert "overflow-wrap: anywhere" not in rules and "hyphens: auto" in rules
    assert '<html lang="nl">' in page
