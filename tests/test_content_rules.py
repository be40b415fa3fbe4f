"""Every content rule, each with a failing example and its exact message and line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from conftest import NOW, VALID, Project
from pipeline.config import load_config
from pipeline.content.model import ItemState
from pipeline.content.reader import read_content

AMS = ZoneInfo("Europe/Amsterdam")


def problems(project: Project, text: str, name: str = "item.md") -> list[str]:
    project.write(name, text)
    content = read_content(load_config(project.root), use_cache=False)
    return [str(p) for p in content.problems]


def front(**overrides: str | None) -> str:
    """A valid item with keys replaced (value None removes the key)."""
    keys = {
        "title": "Een geldig item",
        "date": "2026-11-01",
        "kind": "news",
        "track": "wrb",
        "summary": "Een korte samenvatting.",
    }
    keys.update(overrides)
    if overrides.get("kind") == "podcast":  # every podcast needs one (its own cases below)
        keys.setdefault("transcript", "false")
        keys.setdefault("transcript_reason", "Een testaflevering.")
    lines = [f"{k}: {v}" for k, v in keys.items() if v is not None]
    return "---\n" + "\n".join(lines) + "\n---\nTekst.\n"


CASES = [
    # (overrides, expected problem lines without the path)
    (
        {
            "kind": "podcast",
            "audio": "{url: https://x.nl/a.mp3, length: 5, duration: '00:01:00', type: audio/mpeg}",
            "transcript": None,
            "transcript_reason": None,
        },
        [
            "4: een podcast heeft een transcript nodig (WCAG 1.2.1, audio alleen): "
            "'transcript: <naam>.transcript.md' (een Markdown-bestand naast het item), of "
            "'transcript: false' met 'transcript_reason' als er bewust geen is"
        ],
    ),
    (
        {
            "kind": "podcast",
            "audio": "{url: https://x.nl/a.mp3, length: 5, duration: '00:01:00', type: audio/mpeg}",
            "transcript_reason": None,
        },
        [
            "8: 'transcript: false' heeft een 'transcript_reason' nodig: waarom is er geen transcript?"
        ],
    ),
    (
        {
            "kind": "podcast",
            "audio": "{url: https://x.nl/a.mp3, length: 5, duration: '00:01:00', type: audio/mpeg}",
            "transcript": "tekst.md",
            "transcript_reason": None,
        },
        [
            "8: 'transcript' moet een bestand zijn waarvan de naam eindigt op .transcript.md "
            "(andere .md-bestanden in content/ zijn items), niet 'tekst.md'"
        ],
    ),
    (
        {
            "kind": "podcast",
            "audio": "{url: https://x.nl/a.mp3, length: 5, duration: '00:01:00', type: audio/mpeg}",
            "transcript": "weg.transcript.md",
            "transcript_reason": None,
        },
        ["8: 'transcript': bestand 'weg.transcript.md' niet gevonden in content/"],
    ),
    (
        {"transcript": "false", "transcript_reason": "x"},
        [
            "7: 'transcript' hoort alleen bij kind: podcast (dit item is 'news')",
            "8: 'transcript_reason' hoort alleen bij kind: podcast (dit item is 'news')",
        ],
    ),
    (
        {"title": None},
        ["1: verplichte sleutel 'title' ontbreekt"],
    ),
    (
        {"summary": None, "kind": None},
        ["1: verplichte sleutel 'kind' ontbreekt", "1: verplichte sleutel 'summary' ontbreekt"],
    ),
    (
        {"titel": "x"},
        ["7: onbekende sleutel 'titel'; bedoelde je 'title'?"],
    ),
    (
        {"kind": "nieuws"},
        [
            "4: 'kind' moet een van finding, progress, event, podcast, publication, news zijn, "
            "niet 'nieuws'; bedoelde je 'news'?"
        ],
    ),
    (
        {"track": "woningen"},
        [
            "5: 'track' onbekend traject 'woningen' "
            "(in config.toml staan: wrb, woningmarkt, energietransitie); bedoelde je 'woningmarkt'?"
        ],
    ),
    (
        {"date": "2026-02-30"},
        ["3: 'date' '2026-02-30' is geen bestaande datum: 30 februari 2026 bestaat niet"],
    ),
    (
        {"date": "2026-13-01"},
        ["3: 'date' '2026-13-01' is geen bestaande datum: maand 13 bestaat niet"],
    ),
    (
        {"date": "2026-11-01T25:00"},
        ["3: 'date' '2026-11-01T25:00' is geen bestaande tijd"],
    ),
    (
        {"date": "gisteren"},
        [
            "3: 'date' 'gisteren' is geen datum; schrijf 2026-11-27 of 2026-11-27T10:00 "
            "(eventueel met +01:00)"
        ],
    ),
    (
        {"title": "2026"},
        ["2: 'title' moet tekst zijn, niet een getal; zet de waarde tussen aanhalingstekens"],
    ),
    (
        {"title": "[a, b]"},
        ["2: 'title' moet tekst zijn, niet een lijst"],
    ),
    (
        {"summary": '""'},
        ["6: 'summary' mag niet leeg zijn"],
    ),
    (
        {"tags": "wonen"},
        ["7: 'tags' moet een lijst zijn, bijvoorbeeld [wonen, krimp], niet tekst"],
    ),
    (
        {"regions": "[Achterhoek, 3]"},
        ["7: 'regions' element 2 moet niet-lege tekst zijn, niet een getal"],
    ),
    (
        {"draft": "misschien"},
        ["7: 'draft' moet true of false zijn, niet tekst"],
    ),
    (
        {"newsletter": "1"},
        ["7: 'newsletter' moet true of false zijn, niet een getal"],
    ),
    (
        {"id": "Mijn Item"},
        [
            "7: 'id' 'Mijn Item' is geen geldige id: kleine letters, cijfers en '-', "
            "beginnend en eindigend met een letter of cijfer"
        ],
    ),
    (
        {"publish_at": "2026-04-31T09:00"},
        ["7: 'publish_at' '2026-04-31T09:00' is geen bestaande datum: 31 april 2026 bestaat niet"],
    ),
    (
        {"image": "foto.png"},
        [  # the missing file in the same run as the missing alt text
            "7: 'image': bestand 'foto.png' niet gevonden in content/",
            "7: 'image_alt' ontbreekt: een afbeelding heeft een beschrijving nodig (alt-tekst)",
        ],
    ),
    (
        {"image_alt": "Een foto"},
        ["7: 'image_alt' zonder 'image'"],
    ),
    (
        {"image": "../../etc/passwd", "image_alt": "x"},
        ["7: 'image' pad '../../etc/passwd' verwijst naar een plek buiten content/"],
    ),
    (
        {"image": "/../geheim.png", "image_alt": "x"},
        ["7: 'image' pad '/../geheim.png' verwijst naar een plek buiten content/"],
    ),
    (
        {"image": "ontbreekt.png", "image_alt": "x"},
        ["7: 'image': bestand 'ontbreekt.png' niet gevonden in content/"],
    ),
    (
        {"image": "javascript:alert(1)", "image_alt": "x"},
        ["7: 'image' moet een volledige http(s)-URL zijn, niet 'javascript:alert(1)'"],
    ),
    (
        {"kind": "event"},
        ["4: een item met kind: event heeft een 'event'-blok nodig met start en location"],
    ),
    (
        {"kind": "event", "event": "{location: Assen}"},
        ["7: 'event' mist verplichte sleutel 'start'"],
    ),
    (
        {"kind": "event", "event": "\n  start: 2027-01-20T10:00\n  locatie: Assen"},
        [
            "9: 'event.locatie' onbekende sleutel 'locatie'; bedoelde je 'location'? "
            "(toegestaan: start, end, location, registration_url)"
        ],
    ),
    (
        {
            "kind": "event",
            "event": "\n  start: 2027-01-20T10:00\n  end: 2027-01-20T09:00\n  location: Assen",
        },
        ["9: 'event.end' mag niet vóór 'event.start' liggen"],
    ),
    (
        {
            "kind": "event",
            "event": "\n  start: 2027-01-20T10:00\n  location: Assen\n  registration_url: inschrijven",
        },
        ["10: 'event.registration_url' moet een volledige http(s)-URL zijn, niet 'inschrijven'"],
    ),
    (
        {"event": "{start: 2027-01-20, location: Assen}"},
        ["7: 'event' hoort alleen bij kind: event (dit item is 'news')"],
    ),
    (
        {"kind": "podcast"},
        [
            "4: een item met kind: podcast heeft een 'audio'-blok nodig met url, length, "
            "duration en type"
        ],
    ),
    (
        {
            "kind": "podcast",
            "audio": "\n  url: https://x.nl/a.mp3\n  length: -5\n  duration: '00:10:00'\n"
            "  type: audio/mpeg",
        },
        ["9: 'audio.length' moet een positief geheel aantal bytes zijn, niet -5"],
    ),
    (
        {
            "kind": "podcast",
            "audio": "\n  url: https://x.nl/a.mp3\n  length: 5\n  duration: '10 minuten'\n"
            "  type: audio/mpeg",
        },
        [
            "10: 'audio.duration' moet de vorm UU:MM:SS hebben, bijvoorbeeld 00:42:10, "
            "niet '10 minuten'"
        ],
    ),
    (
        {
            "kind": "podcast",
            "audio": "\n  url: https://x.nl/a.mp3\n  length: 5\n  duration: '00:10:00'\n"
            "  type: text/html",
        },
        ["11: 'audio.type' moet een MIME-type voor audio zijn, zoals audio/mpeg, niet 'text/html'"],
    ),
    (
        {"attachments": "\n  - {title: Rapport}"},
        ["8: 'attachments.0' bijlage 1 heeft óf 'url' óf 'path' nodig, niet beide of geen"],
    ),
    (
        {"attachments": "\n  - {title: Rapport, path: ../../../etc/passwd}"},
        [
            "8: 'attachments.0.path' pad '../../../etc/passwd' verwijst naar een plek buiten content/"
        ],
    ),
    (
        {"social": "ja"},
        [
            "7: 'social' moet een tabel met sleutels zijn (x, linkedin, mastodon, bluesky, threads), "
            "niet tekst"
        ],
    ),
    (
        {"social": "\n  twitter: Hallo"},
        [
            "8: 'social.twitter' onbekende sleutel 'twitter' (toegestaan: x, linkedin, mastodon, "
            "bluesky, threads)"
        ],
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES, ids=[str(c[0])[:60] for c in CASES])
def test_rule(project: Project, overrides: dict, expected: list[str]) -> None:
    assert problems(project, front(**overrides)) == [f"content/item.md:{e}" for e in expected]


def test_valid_item_builds_the_model(project: Project) -> None:
    project.write("wrb/een-item.md", VALID)
    content = read_content(load_config(project.root), use_cache=False)
    assert content.problems == ()
    (item,) = content.items
    assert item.id == "wrb-een-item"
    assert item.title == "Een geldig item"
    assert item.date == datetime(2026, 11, 1, tzinfo=AMS)
    assert item.date.utcoffset().total_seconds() == 3600
    assert not item.date_has_time
    assert item.html == "<p>Tekst van het item.</p>"
    assert item.text == "Tekst van het item."
    assert item.state(NOW) is ItemState.PUBLISHED
    assert len(item.content_hash) == 64


def test_publish_at_without_offset_is_site_time(project: Project) -> None:
    project.write("a.md", front(publish_at="2027-03-29T09:00"))
    (item,) = read_content(load_config(project.root), use_cache=False).items
    assert item.publish_at == datetime(2027, 3, 29, 9, 0, tzinfo=AMS)
    assert item.publish_at.utcoffset().total_seconds() == 7200  # summer time
    assert item.state(datetime(2027, 3, 29, 6, 59, tzinfo=ZoneInfo("UTC"))) is ItemState.EMBARGOED
    assert item.state(datetime(2027, 3, 29, 7, 0, tzinfo=ZoneInfo("UTC"))) is ItemState.PUBLISHED


def test_publish_at_with_offset_and_z(project: Project) -> None:
    project.write("a.md", front(publish_at="2027-01-05T09:00:00Z"))
    project.write("b.md", front(publish_at="'2027-01-05T09:00:00+00:00'"))
    items = read_content(load_config(project.root), use_cache=False).items
    assert {i.publish_at.astimezone(ZoneInfo("UTC")).hour for i in items} == {9}


def test_published_at_is_max_of_date_and_publish_at(project: Project) -> None:
    project.write("a.md", front(date="2027-02-01", publish_at="2026-01-01T00:00"))
    (item,) = read_content(load_config(project.root), use_cache=False).items
    assert item.published_at == datetime(2027, 2, 1, tzinfo=AMS)
    assert item.state(NOW) is ItemState.EMBARGOED


def test_draft_state(project: Project) -> None:
    project.write("a.md", front(draft="true"))
    (item,) = read_content(load_config(project.root), use_cache=False).items
    assert item.state(NOW) is ItemState.DRAFT


def test_duplicate_ids_name_both_files(project: Project) -> None:
    project.write("a.md", front(id="zelfde"))
    project.write("sub/b.md", front(id="zelfde"))
    project.write("c.md", VALID)
    content = read_content(load_config(project.root), use_cache=False)
    assert [str(p) for p in content.problems] == [
        "content/a.md:7: id 'zelfde' is niet uniek: ook gebruikt door content/sub/b.md",
        "content/sub/b.md:7: id 'zelfde' is niet uniek: ook gebruikt door content/a.md",
    ]
    assert [i.id for i in content.items] == ["c"]


def test_derived_ids_collide_too(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    project.write("wrb-x.md", VALID)
    content = read_content(load_config(project.root), use_cache=False)
    assert len(content.problems) == 2
    assert "id 'wrb-x' is niet uniek" in str(content.problems[0])


def test_duplicate_yaml_key(project: Project) -> None:
    text = front().replace("summary:", "title: nog een\nsummary:")
    assert problems(project, text) == ["content/item.md:6: sleutel 'title' komt twee keer voor"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"",
            "content/item.md:1: leeg bestand: een item begint met front matter tussen '---'-regels",
        ),
        (
            b"  \n\n",
            "content/item.md:1: leeg bestand: een item begint met front matter tussen '---'-regels",
        ),
        (
            b"---\ntitle: caf\xe9\n---\n",
            "content/item.md:2: geen geldige UTF-8 (byte 0xe9); sla het bestand op als UTF-8",
        ),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "content/item.md: binair bestand, geen tekst: een item moet UTF-8-tekst zijn",
        ),
        (
            b"# Alleen tekst\n",
            "content/item.md:1: geen front matter: de eerste regel moet '---' zijn, "
            "gevolgd door de sleutels",
        ),
        (
            b"---\ntitle: x\n",
            "content/item.md:1: front matter wordt niet afgesloten met een regel '---'",
        ),
        (
            b"---\n---\nTekst\n",
            "content/item.md:1: front matter is leeg: title, date, kind, track en summary ontbreken",
        ),
        (
            b"---\n- een\n- lijst\n---\n",
            "content/item.md:2: front matter moet uit sleutels bestaan ('title: …'), "
            "niet uit losse tekst of een lijst",
        ),
        (
            b"---\ntitle: [open\ndate: 2026-01-01\n---\n",
            "content/item.md:2: ongeldige YAML: een lijst tussen [ ] wordt niet gesloten of "
            "mist een komma; schrijf bijv. tags: [wonen, krimp], en zet een element met ':' of "
            "',' tussen aanhalingstekens",
        ),
        (
            b"---\ntitle: a\n  summary: b: c\n---\n",
            "content/item.md:3: ongeldige YAML: deze regel is verder ingesprongen dan de sleutel "
            "erboven (of de waarde erboven loopt door); zet sleutels van hetzelfde niveau even "
            'ver in, met spaties, of zet de waarde tussen aanhalingstekens, bijv. title: "Krimp: '
            'een verkenning"',
        ),
        (
            b"---\ntitle: !!python/object:os.system x\n---\n",
            "content/item.md:2: ongeldige YAML: een YAML-tag (!naam of !!type) wordt niet "
            'ondersteund; zet de waarde tussen aanhalingstekens, bijv. title: "Krimp: een '
            'verkenning"',
        ),
    ],
)
def test_file_level_errors(project: Project, data: bytes, expected: str) -> None:
    project.write_bytes("item.md", data)
    project.write("goed.md", VALID)
    content = read_content(load_config(project.root), use_cache=False)
    assert [str(p) for p in content.problems] == [expected]
    assert [i.id for i in content.items] == ["goed"]


def test_bom_and_crlf_are_accepted(project: Project) -> None:
    data = ("\ufeff" + front(tags="[coöperatie, energiearmoede]")).replace("\n", "\r\n")
    project.write_bytes("crlf.md", data.encode("utf-8"))
    content = read_content(load_config(project.root), use_cache=False)
    assert content.problems == ()
    assert content.items[0].tags == ("coöperatie", "energiearmoede")


def test_crlf_does_not_change_the_content_hash(project: Project) -> None:
    project.write("a.md", VALID)
    first = read_content(load_config(project.root), use_cache=False).items[0].content_hash
    project.write_bytes("a.md", VALID.replace("\n", "\r\n").encode())
    second = read_content(load_config(project.root), use_cache=False).items[0].content_hash
    assert first == second


def test_non_markdown_files_and_hidden_files_are_ignored(project: Project) -> None:
    project.write("a.md", VALID)
    project.write_bytes("foto.png", b"\x89PNG\r\n")
    project.write(".verborgen.md", "kapot")
    project.write("a.md~", "kapot")
    project.write(".git/x.md", "kapot")
    content = read_content(load_config(project.root), use_cache=False)
    assert content.problems == ()
    assert len(content.items) == 1


def test_image_resolves_next_to_item_then_from_content_root(project: Project) -> None:
    project.write_bytes("afbeeldingen/foto.png", b"\x89PNG")
    project.write_bytes("wrb/eigen.png", b"\x89PNG")
    project.write("wrb/a.md", front(image="eigen.png", image_alt="Foto"))
    project.write("wrb/b.md", front(image="afbeeldingen/foto.png", image_alt="Foto"))
    project.write("wrb/c.md", front(image="/afbeeldingen/foto.png", image_alt="Foto"))
    project.write("wrb/d.md", front(image="../afbeeldingen/foto.png", image_alt="Foto"))
    content = read_content(load_config(project.root), use_cache=False)
    assert content.problems == ()
    images = {i.id: (i.image, i.assets) for i in content.items}
    base = "https://www.bevolkingsdaling.nl/bestanden/"
    assert images["wrb-a"] == (base + "wrb/eigen.png", ("wrb/eigen.png",))
    for key in ("wrb-b", "wrb-c", "wrb-d"):
        assert images[key] == (base + "afbeeldingen/foto.png", ("afbeeldingen/foto.png",))


def test_attachments_and_audio(project: Project) -> None:
    project.write_bytes("wrb/rapport.pdf", b"%PDF-1.4")
    project.write(
        "wrb/p.md",
        front(
            kind="podcast",
            audio="\n  url: https://cdn.example.nl/afl-3.mp3\n  length: 2400000\n"
            "  duration: '00:41:05'\n  type: audio/mpeg",
            attachments="\n  - {title: Rapport, path: rapport.pdf}\n"
            "  - {title: Website, url: 'https://www.rigo.nl/'}",
        ),
    )
    content = read_content(load_config(project.root), use_cache=False)
    assert content.problems == ()
    (item,) = content.items
    assert item.audio.seconds == 41 * 60 + 5
    assert item.attachments[0].url == "https://www.bevolkingsdaling.nl/bestanden/wrb/rapport.pdf"
    assert item.attachments[1].url == "https://www.rigo.nl/"
    assert item.assets == ("wrb/rapport.pdf",)


def test_event_model(project: Project) -> None:
    project.write(
        "e.md",
        front(
            kind="event",
            event="\n  start: 2027-01-20T13:30\n  end: 2027-01-20T16:00\n  location: Online\n"
            "  registration_url: https://aanmelden.example.nl/masterclass",
        ),
    )
    (item,) = read_content(load_config(project.root), use_cache=False).items
    assert item.event.start == datetime(2027, 1, 20, 13, 30, tzinfo=AMS)
    assert item.event.end == datetime(2027, 1, 20, 16, 0, tzinfo=AMS)
    assert item.event.registration_url == "https://aanmelden.example.nl/masterclass"


def test_social_overrides(project: Project) -> None:
    project.write("a.md", front(social="\n  x: Kort bericht\n  linkedin: Lang bericht"))
    project.write("b.md", front(social="false"))
    items = {i.id: i for i in read_content(load_config(project.root), use_cache=False).items}
    assert items["a"].social_override("x") == "Kort bericht"
    assert items["a"].social_enabled
    assert not items["b"].social_enabled


def test_errors_do_not_stop_other_items(project: Project) -> None:
    for n in range(5):
        project.write(f"goed-{n}.md", VALID)
    project.write("kapot.md", front(kind="nieuws"))
    content = read_content(load_config(project.root), use_cache=False)
    assert len(content.items) == 5
    assert len(content.problems) == 1


def test_all_errors_of_a_file_are_reported(project: Project) -> None:
    found = problems(project, front(kind="x", track="y", date="2026-02-31", colour="rood"))
    assert len(found) == 4
