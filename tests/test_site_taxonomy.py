"""Regions and topics (issue 18): a page and three feeds per region and tag with the Dutch
spelling intact, stable ASCII slugs, links from item pages, the sitemap, and two spellings
of one slug reported by check and build with file and line (the items still publish)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import feedparser
import pytest
import test_feeds
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from conftest import Project, build_at
from pipeline.commands.check import check
from pipeline.content.taxonomy import slug_of


def item(title: str, regions: str, tags: str, date: str = "2026-11-01") -> str:
    return (
        f"---\ntitle: {title}\ndate: {date}\nkind: news\ntrack: wrb\nsummary: Samenvatting.\n"
        f"regions: [{regions}]\ntags: [{tags}]\n---\nTekst.\n"
    )


@pytest.fixture
def site(project: Project) -> Path:
    project.write(
        "wrb/een.md",
        item("Eerste", "Súdwest-Fryslân, Parkstad Limburg", "krimp, energiecoöperatie"),
    )
    project.write("wrb/twee.md", item("Tweede", "Súdwest-Fryslân", "krimp", "2026-11-02"))
    report = build_at(project)
    assert report.problems == ()
    return project.root / "outbox" / "site"


def test_every_region_and_topic_has_a_page_with_its_count_and_its_spelling(site: Path) -> None:
    index = (site / "regios" / "index.html").read_text()
    assert (
        '<a href="/regios/sudwest-fryslan/">Súdwest-Fryslân</a> <span class="aantal">(2 berichten)</span>'
        in index
    )
    assert (
        '<a href="/regios/parkstad-limburg/">Parkstad Limburg</a> <span class="aantal">(1 bericht)</span>'
        in index
    )
    page = (site / "regios" / "sudwest-fryslan" / "index.html").read_text()
    assert "<h1>Súdwest-Fryslân</h1>" in page
    assert page.index("Tweede") < page.index("Eerste")  # newest first
    assert 'href="/feeds/regios/sudwest-fryslan/atom.xml"' in page
    topics = (site / "onderwerpen" / "index.html").read_text()
    assert '<a href="/onderwerpen/energiecooperatie/">energiecoöperatie</a>' in topics
    assert (site / "onderwerpen" / "krimp" / "index.html").is_file()


def test_item_pages_link_their_regions_and_topics(site: Path) -> None:
    page = (site / "berichten" / "wrb-een" / "index.html").read_text()
    assert '<a href="/regios/sudwest-fryslan/">Súdwest-Fryslân</a>' in page
    assert '<a href="/onderwerpen/energiecooperatie/">energiecoöperatie</a>' in page


atom_schema = test_feeds.atom_schema  # the fixture


def test_region_feeds_read_back_with_the_dutch_spelling(
    site: Path, atom_schema: etree.RelaxNG
) -> None:
    folder = site / "feeds" / "regios" / "sudwest-fryslan"
    for name in ("rss.xml", "atom.xml"):
        feed = feedparser.parse(str(folder / name))
        assert not feed.bozo, feed.bozo_exception
        assert feed.feed.title == "Bevolkingsdaling: Súdwest-Fryslân"
        assert [e.title for e in feed.entries] == ["Tweede", "Eerste"]
    doc = etree.parse(str(folder / "atom.xml"))
    assert atom_schema.validate(doc), atom_schema.error_log
    data = json.loads((folder / "feed.json").read_text(encoding="utf-8"))
    assert data["title"] == "Bevolkingsdaling: Súdwest-Fryslân"
    assert data["home_page_url"] == "https://www.bevolkingsdaling.nl/regios/sudwest-fryslan/"
    assert len(data["items"]) == 2
    topic = feedparser.parse(str(site / "feeds" / "onderwerpen" / "energiecooperatie" / "rss.xml"))
    assert [e.title for e in topic.entries] == ["Eerste"]


def test_the_sitemap_lists_region_and_topic_pages(site: Path) -> None:
    sitemap = (site / "sitemap.xml").read_text()
    for path in ("regios/", "regios/sudwest-fryslan/", "onderwerpen/", "onderwerpen/krimp/"):
        assert f"<loc>https://www.bevolkingsdaling.nl/{path}</loc>" in sitemap, path


def test_two_spellings_of_one_slug_are_reported_with_file_and_line_and_still_publish(
    project: Project,
) -> None:
    project.write("wrb/een.md", item("Eerste", "Súdwest-Fryslân", "krimp"))
    project.write("wrb/twee.md", item("Tweede", "sudwest-fryslan", "Krimp", "2026-11-02"))
    report = check(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    lines = [str(p) for p in report.problems]
    assert any(
        re.fullmatch(
            r"content/wrb/twee\.md:7: 'regions': regio 'sudwest-fryslan' krijgt dezelfde pagina "
            r"\(regios/sudwest-fryslan/\) als 'Súdwest-Fryslân' in content/wrb/een\.md; .*",
            line,
        )
        for line in lines
    ), lines
    assert any(
        line.startswith("content/wrb/twee.md:8: 'tags': onderwerp 'Krimp'") for line in lines
    )
    built = build_at(project)
    assert {str(p) for p in built.problems} == set(lines)
    site = project.root / "outbox" / "site"
    assert (site / "berichten" / "wrb-twee" / "index.html").is_file()
    page = (site / "regios" / "sudwest-fryslan" / "index.html").read_text()
    assert "<h1>Súdwest-Fryslân</h1>" in page and "Tweede" in page and "Eerste" in page


@given(st.text(max_size=60))
def test_a_slug_is_ascii_stable_and_its_own_slug(name: str) -> None:
    slug = slug_of(name)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug)
    assert slug_of(slug) == slug
    assert slug_of(name.upper()) == slug or not name.isascii()
