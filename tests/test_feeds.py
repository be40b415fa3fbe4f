"""Feeds read back as subscribers' software reads them, and validated against the specs."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import icalendar
import jsonschema
import pytest
import rnc2rng
from lxml import etree

from conftest import REPO, Project, build_at

# RFC 4287 appendix B, kept in the repository so a fresh clone needs nothing beside it.
SCHEMA_RNC = REPO / "tests" / "schemas" / "atom.rnc"
ATOM = {"a": "http://www.w3.org/2005/Atom"}
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"

MIXED = {
    "wrb/emoji.md": """\
---
title: "Krimp 👩‍👩‍👧‍👦 en gezinnen 🇳🇱: één vraag"
date: 2026-11-20T10:15
kind: finding
track: wrb
summary: Gezinnen in Zeeuws-Vlaanderen en de Achterhoek 🏡.
tags: [coöperatie, café, 👍]
---
Tekst met ZWJ 👨‍💻 en diakritische tekens: ë, ï, ü, é.
""",
    "woningmarkt/event.md": """\
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
---
Programma volgt.
""",
    "woningmarkt/voorbij.md": """\
---
title: Webinar dat al geweest is
date: 2026-09-01
kind: event
track: woningmarkt
summary: Terugblik.
event: {start: 2026-09-10T10:00, location: Online}
---
Terugblik.
""",
    "woningmarkt/podcast.md": """\
---
title: Podcast aflevering 4
date: 2026-10-01T09:00
kind: podcast
track: woningmarkt
summary: Over de woning van morgen.
image: https://cdn.example.nl/afl-4.jpg
image_alt: Omslag
audio:
  url: https://cdn.example.nl/afl-4.mp3
  length: 3400000
  duration: "00:41:05"
  type: audio/mpeg
transcript: false
transcript_reason: Een testaflevering zonder gesproken tekst.
---
Luister mee.
""",
    "energietransitie/embargo.md": """\
---
title: Nog niet
date: 2026-11-01
publish_at: 2026-12-15T09:00
kind: publication
track: energietransitie
summary: Embargo.
---
Geheim.
""",
    "energietransitie/concept.md": """\
---
title: Concept
date: 2026-11-01
draft: true
kind: news
track: energietransitie
summary: Concept.
---
Concept.
""",
    "energietransitie/geen-nieuwsbrief.md": """\
---
title: Alleen online
date: 2026-11-02
newsletter: false
kind: news
track: energietransitie
summary: Niet in de nieuwsbrief, wel in de feeds.
---
<script>alert(1)</script><img src=https://example.org/x.png onerror=alert(2)> [x](javascript:alert(3))
""",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = Project(tmp_path_factory.mktemp("feeds") / "project")
    for name, text in MIXED.items():
        project.write(name, text)
    project.write_bytes(
        "wrb/crlf.md",
        (
            "\ufeff---\r\ntitle: Windows-bestand\r\ndate: 2026-11-03\r\nkind: news\r\ntrack: wrb\r\n"
            "summary: Met BOM en CRLF.\r\n---\r\nTekst.\r\n"
        ).encode(),
    )
    report = build_at(project)
    assert report.problems == ()
    return project.root / "outbox" / "site"


@pytest.fixture(scope="module")
def atom_schema() -> etree.RelaxNG:
    # rnc2rng writes the schema's empty `local` namespace as an attribute lxml refuses.
    rng = rnc2rng.dumps(rnc2rng.load(str(SCHEMA_RNC))).replace('xmlns:local=""', "")
    return etree.RelaxNG(etree.fromstring(rng.encode()))


FEEDS = ["feeds", "feeds/wrb", "feeds/woningmarkt", "feeds/energietransitie"]
LIVE = {
    "wrb-emoji",
    "wrb-crlf",
    "woningmarkt-event",
    "woningmarkt-voorbij",
    "woningmarkt-podcast",
    "energietransitie-geen-nieuwsbrief",
}


@pytest.mark.parametrize("folder", FEEDS)
@pytest.mark.parametrize("name", ["rss.xml", "atom.xml"])
def test_feedparser_reads_every_feed(site: Path, folder: str, name: str) -> None:
    parsed = feedparser.parse((site / folder / name).read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title
    for entry in parsed.entries:
        assert entry.id.startswith("tag:www.bevolkingsdaling.nl,")
        assert entry.link.startswith("https://www.bevolkingsdaling.nl/berichten/")
        assert entry.published_parsed is not None
        if name == "atom.xml":
            assert entry.updated_parsed is not None
        slug = entry.link.rstrip("/").rsplit("/", 1)[1]
        assert slug in LIVE
        assert (site / "berichten" / slug / "index.html").is_file()


def test_all_feed_has_every_live_item_newest_first(site: Path) -> None:
    parsed = feedparser.parse((site / "feeds/atom.xml").read_bytes())
    slugs = [e.link.rstrip("/").rsplit("/", 1)[1] for e in parsed.entries]
    assert set(slugs) == LIVE
    assert slugs[0] == "wrb-emoji"
    emoji = parsed.entries[0]
    assert emoji.title == "Krimp 👩‍👩‍👧‍👦 en gezinnen 🇳🇱: één vraag"
    assert [t.term for t in emoji.tags] == [
        "Wetenschappelijke Reflectiegroep",
        "coöperatie",
        "café",
        "👍",
    ]
    assert "👨‍💻" in emoji.content[0].value
    assert emoji.summary == "Gezinnen in Zeeuws-Vlaanderen en de Achterhoek 🏡."


def test_rss_dates_are_rfc822_in_english(site: Path) -> None:
    root = etree.parse(str(site / "feeds/rss.xml")).getroot()
    dates = root.xpath("//item/pubDate/text()") + root.xpath("//channel/lastBuildDate/text()")
    assert "Fri, 20 Nov 2026 10:15:00 +0100" in dates
    assert all(d[:3] in {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"} for d in dates)
    assert root.xpath("//channel/link/text()") == ["https://www.bevolkingsdaling.nl/"]
    assert root.xpath("//channel/*[local-name()='link' and @rel='self']/@href") == [
        "https://www.bevolkingsdaling.nl/feeds/rss.xml"
    ]


@pytest.mark.parametrize("folder", FEEDS)
def test_atom_is_valid_against_rfc4287(site: Path, folder: str, atom_schema: etree.RelaxNG) -> None:
    doc = etree.parse(str(site / folder / "atom.xml"))
    assert atom_schema.validate(doc), atom_schema.error_log
    root = doc.getroot()
    # The two Schematron rules RELAX NG cannot express.
    assert root.xpath(
        "atom:author or not(atom:entry[not(atom:author)])", namespaces={"atom": ATOM["a"]}
    )
    for entry in root.findall("a:entry", ATOM):
        assert entry.xpath(
            "atom:link[@rel='alternate'] or atom:link[not(@rel)] or atom:content",
            namespaces={"atom": ATOM["a"]},
        )
        links = entry.findall("a:link", ATOM)
        assert all(link.get("rel") in {"alternate", "enclosure"} for link in links)
    assert root.find("a:link[@rel='self']", ATOM).get("href") == (
        f"https://www.bevolkingsdaling.nl/{folder}/atom.xml"
    )


def test_atom_enclosure_keeps_rel_and_type(site: Path) -> None:
    root = etree.parse(str(site / "feeds/woningmarkt/atom.xml")).getroot()
    (enclosure,) = root.findall("a:entry/a:link[@rel='enclosure']", ATOM)
    assert enclosure.get("href") == "https://cdn.example.nl/afl-4.mp3"
    assert enclosure.get("type") == "audio/mpeg"
    assert enclosure.get("length") == "3400000"


@pytest.mark.parametrize("folder", FEEDS)
def test_json_feed_follows_the_1_1_rules(site: Path, folder: str) -> None:
    schema = json.loads((REPO / "tests/schemas/jsonfeed-1.1.json").read_text())
    data = json.loads((site / folder / "feed.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert list(validator.iter_errors(data)) == []
    assert data["feed_url"] == f"https://www.bevolkingsdaling.nl/{folder}/feed.json"
    ids = [i["id"] for i in data["items"]]
    assert len(ids) == len(set(ids))


def test_json_feed_podcast_attachment(site: Path) -> None:
    data = json.loads((site / "feeds/woningmarkt/feed.json").read_text())
    podcast = next(i for i in data["items"] if i["title"] == "Podcast aflevering 4")
    assert podcast["attachments"] == [
        {
            "url": "https://cdn.example.nl/afl-4.mp3",
            "mime_type": "audio/mpeg",
            "size_in_bytes": 3400000,
            "duration_in_seconds": 2465,
        }
    ]


def test_podcast_feed_has_apple_tags(site: Path) -> None:
    root = etree.parse(str(site / "feeds/podcast.xml")).getroot()
    channel = root.find("channel")
    tag = lambda name: f"{{{ITUNES}}}{name}"  # noqa: E731
    assert (
        channel.find(tag("image"))
        .get("href")
        .endswith("/bestanden/afbeeldingen/podcast-omslag.png")
    )
    assert channel.find(tag("category")).get("text") == "Government"
    assert channel.find(tag("explicit")).text == "no"
    assert channel.find(tag("author")).text == "Programma Bevolkingsdaling"
    (item,) = channel.findall("item")
    enclosure = item.find("enclosure")
    assert enclosure.attrib == {
        "url": "https://cdn.example.nl/afl-4.mp3",
        "length": "3400000",
        "type": "audio/mpeg",
    }
    assert item.find(tag("duration")).text == "00:41:05"
    assert (site / "bestanden/afbeeldingen/podcast-omslag.png").read_bytes().startswith(b"\x89PNG")
    assert not feedparser.parse((site / "feeds/podcast.xml").read_bytes()).bozo


def test_agenda_has_upcoming_events_with_stable_uids(site: Path) -> None:
    cal = icalendar.Calendar.from_ical((site / "agenda.ics").read_bytes())
    events = cal.walk("VEVENT")
    # An event that ended in the last year stays (issue 18), soonest first.
    assert [str(e["summary"]) for e in events] == [
        "Webinar dat al geweest is",
        "Masterclass: sloop & transformatie",
    ]
    event = events[1]
    assert str(event["uid"]) == "tag:www.bevolkingsdaling.nl,2026-11-10:woningmarkt-event"
    start = event.decoded("dtstart")
    assert start.isoformat() == "2027-01-21T13:30:00+01:00"
    assert str(start.tzinfo) == "Europe/Amsterdam"
    assert str(event["location"]) == "Glaspaleis, Heerlen"
    (tz,) = cal.walk("VTIMEZONE")
    assert str(tz["tzid"]) == "Europe/Amsterdam"
    single = icalendar.Calendar.from_ical(
        (site / "berichten/woningmarkt-voorbij/evenement.ics").read_bytes()
    )
    assert str(single.walk("VEVENT")[0]["uid"]).endswith(":woningmarkt-voorbij")


def test_sitemap_and_robots(site: Path) -> None:
    root = etree.parse(str(site / "sitemap.xml")).getroot()
    locs = root.xpath(
        "//s:loc/text()", namespaces={"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    )
    for slug in LIVE:
        assert f"https://www.bevolkingsdaling.nl/berichten/{slug}/" in locs
    assert not any("embargo" in loc or "concept" in loc for loc in locs)
    assert (
        "Sitemap: https://www.bevolkingsdaling.nl/sitemap.xml" in (site / "robots.txt").read_text()
    )


def test_pages_are_dutch_accessible_and_discoverable(site: Path) -> None:
    for path in site.rglob("*.html"):
        html = path.read_text()
        tree = etree.HTML(html)
        assert tree.get("lang") == "nl", path
        assert len(tree.findall(".//h1")) == 1, path
        assert tree.find(".//main[@id='inhoud']") is not None, path
        assert tree.find(".//a[@href='#inhoud']") is not None, path
        assert tree.find(".//nav") is not None and tree.find(".//footer") is not None, path
        assert tree.xpath("//link[@rel='alternate' and @type='application/atom+xml']"), path
        assert tree.xpath("//meta[@property='og:title']"), path
        for img in tree.iter("img"):
            assert img.get("alt") is not None, path
        # Only the site's own script files (the phone menu, the search page), never inline.
        for script in tree.iter("script"):
            assert script.get("src") in ("/static/menu.js", "/static/zoeken.js"), path
            assert not (script.text or "").strip(), path
    item = (site / "berichten/wrb-emoji/index.html").read_text()
    assert '<time datetime="2026-11-20T10:15+01:00">20 november 2026</time>' in item
