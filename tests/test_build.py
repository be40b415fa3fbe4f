"""`krimppost build`: publishing rules, permanent ids, byte-identical rebuilds, last good versions."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import VALID, Project, build_at, outbox_files
from pipeline.config import load_config
from pipeline.errors import KrimppostError

EVENT = """\
---
title: "Masterclass: sloop & transformatie"
date: 2026-11-10
kind: event
track: woningmarkt
summary: Een middag over de woningvoorraad.
event:
  start: 2027-01-21T13:30
  end: 2027-01-21T17:00
  location: Glaspaleis, Heerlen
  registration_url: https://aanmelden.example.nl/masterclass
---
Programma volgt.
"""

PODCAST = """\
---
title: Podcast aflevering 4
date: 2026-10-01T09:00
kind: podcast
track: woningmarkt
summary: Over de woning van morgen.
audio:
  url: https://cdn.example.nl/afl-4.mp3
  length: 3400000
  duration: "00:41:05"
  type: audio/mpeg
transcript: false
transcript_reason: Een testaflevering zonder gesproken tekst.
---
Luister mee.
"""


def page(project: Project, item_id: str) -> str:
    return (project.root / "outbox/site/berichten" / item_id / "index.html").read_text()


def feed_ids(project: Project, name: str = "feeds/feed.json") -> list[str]:
    data = json.loads((project.root / "outbox/site" / name).read_text())
    return [i["url"].rstrip("/").rsplit("/", 1)[1] for i in data["items"]]


def test_first_build_publishes_site_feeds_and_calendar(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    project.write("woningmarkt/masterclass.md", EVENT)
    project.write("woningmarkt/podcast.md", PODCAST)
    report = build_at(project)
    assert report.problems == ()
    assert sorted(report.publication.new) == [
        "woningmarkt-masterclass",
        "woningmarkt-podcast",
        "wrb-a",
    ]
    files = outbox_files(project.root)
    for path in [
        "site/index.html",
        "site/archief/index.html",
        "site/trajecten/wrb/index.html",
        "site/soorten/evenementen/index.html",
        "site/nieuwsbrief/index.html",
        "site/404.html",
        "site/robots.txt",
        "site/sitemap.xml",
        "site/static/stijl.css",
        "site/feeds/rss.xml",
        "site/feeds/atom.xml",
        "site/feeds/feed.json",
        "site/feeds/wrb/atom.xml",
        "site/feeds/woningmarkt/feed.json",
        "site/feeds/energietransitie/rss.xml",
        "site/feeds/podcast.xml",
        "site/agenda.ics",
        "site/berichten/wrb-a/index.html",
        "site/berichten/woningmarkt-masterclass/evenement.ics",
    ]:
        assert path in files, path
    html = page(project, "woningmarkt-masterclass")
    assert "donderdag 21 januari 2027" in html
    assert "13:30–17:00 uur" in html
    assert "Glaspaleis, Heerlen" in html
    assert 'href="https://aanmelden.example.nl/masterclass"' in html
    assert "10 november 2026" in html
    assert '<audio controls preload="none" src="https://cdn.example.nl/afl-4.mp3">' in page(
        project, "woningmarkt-podcast"
    )


def test_rebuild_without_change_is_byte_identical_and_writes_nothing(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    project.write("woningmarkt/masterclass.md", EVENT)
    build_at(project)
    before = outbox_files(project.root)
    second = build_at(project)
    assert second.skipped  # nothing changed: stops before reading content
    assert second.written == [] and second.removed == []
    assert outbox_files(project.root) == before
    # Even rendering everything again from the state store gives the same bytes.
    shutil.rmtree(project.root / "outbox")
    build_at(project)
    assert outbox_files(project.root) == before


def test_entry_id_survives_edits_and_updated_moves(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    build_at(project, "2026-11-27T12:00")
    first = json.loads((project.root / "outbox/site/feeds/feed.json").read_text())["items"][0]
    edited = VALID.replace("Een geldig item", "Een nieuwe titel").replace("Tekst", "Andere tekst")
    project.write("wrb/a.md", edited.replace("tags", "x") + "\nMeer.\n")
    report = build_at(project, "2026-11-28T08:00")
    assert report.publication.changed == ["wrb-a"] and report.publication.new == []
    second = json.loads((project.root / "outbox/site/feeds/feed.json").read_text())["items"][0]
    assert second["id"] == first["id"] == "tag:www.bevolkingsdaling.nl,2026-11-01:wrb-a"
    assert second["title"] == "Een nieuwe titel"
    assert second["date_published"] == first["date_published"] == "2026-11-01T00:00:00+01:00"
    assert second["date_modified"] == "2026-11-28T08:00:00+01:00"
    assert "bijgewerkt op <time" in page(project, "wrb-a")


def test_embargo_before_and_after(project: Project) -> None:
    project.write(
        "wrb/geheim.md", VALID.replace("kind: news", "kind: news\npublish_at: 2026-12-01T09:00")
    )
    project.write("wrb/open.md", VALID)
    build_at(project, "2026-12-01T08:59")
    files = outbox_files(project.root)
    assert not any("geheim" in path for path in files)
    assert not any(b"geheim" in data for data in files.values())
    assert feed_ids(project) == ["wrb-open"]
    report = build_at(project, "2026-12-01T09:00")
    assert report.publication.new == ["wrb-geheim"]
    assert feed_ids(project) == ["wrb-geheim", "wrb-open"]
    assert b"wrb-geheim" in (project.root / "outbox/site/sitemap.xml").read_bytes()


def test_drafts_appear_nowhere(project: Project) -> None:
    project.write("wrb/concept.md", VALID.replace("kind: news", "kind: news\ndraft: true"))
    build_at(project)
    assert not any(b"wrb-concept" in data for data in outbox_files(project.root).values())


def test_withdrawal_on_delete_and_on_draft(project: Project) -> None:
    project.write("wrb/weg.md", VALID)
    project.write("wrb/concept.md", VALID)
    project.write("wrb/blijft.md", VALID)
    build_at(project)
    assert feed_ids(project) == ["wrb-weg", "wrb-concept", "wrb-blijft"]
    (project.root / "content/wrb/weg.md").unlink()
    project.write("wrb/concept.md", VALID.replace("kind: news", "kind: news\ndraft: true"))
    report = build_at(project)
    assert sorted(report.publication.withdrawn) == ["wrb-concept", "wrb-weg"]
    assert feed_ids(project) == ["wrb-blijft"]
    assert not (project.root / "outbox/site/berichten/wrb-weg").exists()
    assert "site/berichten/wrb-weg/index.html" in report.removed


def test_broken_edit_keeps_last_good_version(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    project.write("wrb/b.md", VALID)
    build_at(project)
    good = page(project, "wrb-a")
    project.write("wrb/a.md", VALID.replace("kind: news", "kind: nieuws").replace("Tekst", "Kapot"))
    project.write("wrb/c.md", VALID)
    report = build_at(project)
    assert [str(p).split(":")[0] for p in report.problems] == ["content/wrb/a.md"]
    assert report.publication.kept == ["wrb-a"]
    assert page(project, "wrb-a") == good
    assert feed_ids(project) == ["wrb-c", "wrb-b", "wrb-a"]
    # Once fixed, the new version replaces it.
    project.write("wrb/a.md", VALID.replace("Tekst", "Hersteld"))
    assert build_at(project).publication.changed == ["wrb-a"]
    assert "Hersteld" in page(project, "wrb-a")


def test_titles_are_escaped_everywhere(project: Project) -> None:
    title = 'Vragen & antwoorden: <krimp> "x" {{ y }}'
    project.write("wrb/a.md", VALID.replace("title: Een geldig item", f"title: '{title}'"))
    build_at(project)
    html = page(project, "wrb-a")
    assert "<h1>Vragen &amp; antwoorden: &lt;krimp&gt; &#34;x&#34; {{ y }}</h1>" in html
    assert "<krimp>" not in html
    atom = (project.root / "outbox/site/feeds/atom.xml").read_text()
    assert '<title>Vragen &amp; antwoorden: &lt;krimp&gt; "x" {{ y }}</title>' in atom
    assert (
        json.loads((project.root / "outbox/site/feeds/feed.json").read_text())["items"][0]["title"]
        == title
    )


def test_body_scripts_never_reach_the_outbox(project: Project) -> None:
    body = '<script>alert(1)</script>\n\n<img src="x.png" onerror="alert(2)">\n\n[klik](javascript:alert(3))\n'
    project.write("wrb/a.md", VALID + body)
    build_at(project)
    # The site's own scripts (the phone menu, the search page) and Pagefind's files are
    # what may run; nothing from an item's body.
    own = (
        b'<script src="/static/menu.js" defer></script>',
        b'<script type="module" src="/static/zoeken.js"></script>',
    )
    for path, data in outbox_files(project.root).items():
        if path.startswith(("site/static/", "site/zoeken/index/")):
            continue
        lowered = data.lower()
        for tag in own:
            lowered = lowered.replace(tag, b"")
        assert b"<script" not in lowered, path
        assert b"onerror" not in lowered, path
        assert b"javascript:" not in lowered, path


def test_assets_are_published_only_for_live_items(project: Project) -> None:
    project.write_bytes("afbeeldingen/open.png", b"\x89PNG open")
    project.write_bytes("afbeeldingen/geheim.png", b"\x89PNG geheim")
    project.write(
        "wrb/a.md",
        VALID.replace("kind: news", "kind: news\nimage: /afbeeldingen/open.png\nimage_alt: Foto"),
    )
    project.write(
        "wrb/b.md",
        VALID.replace(
            "kind: news",
            "kind: news\npublish_at: 2027-06-01T09:00\nimage: /afbeeldingen/geheim.png\nimage_alt: Foto",
        ),
    )
    build_at(project)
    assert (
        project.root / "outbox/site/bestanden/afbeeldingen/open.png"
    ).read_bytes() == b"\x89PNG open"
    assert not (project.root / "outbox/site/bestanden/afbeeldingen/geheim.png").exists()
    assert (
        '<meta property="og:image" content="https://www.bevolkingsdaling.nl/bestanden/afbeeldingen/open.png">'
        in page(project, "wrb-a")
    )


def test_template_change_rerenders_and_a_broken_template_is_reported(project: Project) -> None:
    project.write("wrb/a.md", VALID)
    build_at(project)
    templates = project.root / "templates" / "site"
    templates.mkdir(parents=True)
    (templates / "404.html").write_text(
        '{% extends "site/base.html" %}{% block main %}<h1>Weg</h1>{% endblock %}'
    )
    report = build_at(project)
    assert report.written == ["site/404.html"]
    (templates / "404.html").write_text("{% if %}")
    with pytest.raises(KrimppostError) as info:
        build_at(project)
    assert str(info.value).endswith(
        "404.html:1: fout in sjabloon: Expected an expression, got 'end of statement block'"
    )


def test_second_build_waits_then_refuses(project: Project) -> None:
    import os
    import subprocess
    import sys
    from datetime import datetime

    from conftest import REPO
    from pipeline.commands.build import build

    project.write("wrb/a.md", VALID)
    config = load_config(project.root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from pipeline.state import BuildLock\n"
            "with BuildLock(Path(sys.argv[1]), 5):\n    print('held', flush=True); time.sleep(30)",
            str(config.path(config.state.path)),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(KrimppostError) as info:
            build(project.root, datetime(2026, 11, 27, 12), lock_timeout=0.3)
        assert "er draait al een build voor dit project" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    build(project.root, datetime(2026, 11, 27, 12), lock_timeout=5)


def test_a_touched_file_or_the_clock_passing_an_event_rebuilds(project: Project) -> None:
    project.write("woningmarkt/masterclass.md", EVENT)
    build_at(project, "2027-01-21T12:00")
    assert build_at(project, "2027-01-21T16:59").skipped
    after = build_at(project, "2027-01-21T17:01")  # the event has ended: agenda and home change
    assert not after.skipped
    # agenda.ics keeps it (a year): the agenda page and the event's own page say it is over.
    assert "site/agenda/index.html" in after.written
    assert "site/berichten/woningmarkt-masterclass/index.html" in after.written
    project.write("woningmarkt/masterclass.md", EVENT + "Meer.\n")
    assert not build_at(project, "2027-01-21T17:02").skipped


def test_feed_length_from_config(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("length = 50", "length = 3"))
    for n in range(5):
        project.write(f"wrb/item-{n}.md", VALID.replace("2026-11-01", f"2026-11-0{n + 1}"))
    build_at(project)
    assert feed_ids(project) == ["wrb-item-4", "wrb-item-3", "wrb-item-2"]
    assert len(feed_ids(project, "feeds/wrb/feed.json")) == 3


def test_an_approved_draft_edited_by_hand_between_builds_goes_back_to_review(
    project: Project,
) -> None:
    """The build checks the draft files in a second process while it reads the content."""
    from datetime import datetime

    from pipeline.social import review

    project.write("wrb/a.md", VALID)
    build_at(project)
    config = load_config(project.root)
    review.approve(
        config, "wrb-a/mastodon", "Fatima", datetime.fromisoformat("2026-11-27T12:30+01:00")
    )
    draft = project.root / "outbox" / "social" / "wrb-a" / "mastodon.md"
    head, _sep, _text = draft.read_text(encoding="utf-8").partition("\n---\n")
    draft.write_text(f"{head}\n---\nMet de hand herschreven.\n", encoding="utf-8")
    # Another item, in another month, so that a build runs.
    project.write("wrb/b.md", VALID.replace("2026-11-01", "2026-10-01"))
    report = build_at(project, "2026-11-27T13:00")
    assert "1 na bewerking terug ter beoordeling" in report.social
    assert draft.read_text(encoding="utf-8").endswith("\n---\nMet de hand herschreven.\n")
    page = project.root / "outbox" / "social" / "maanden" / "2026-11.html"
    assert "Met de hand herschreven." in page.read_text(encoding="utf-8")
