"""The pre-flight of `newsletter compile`: links, images and template markers of an issue,
each problem named after the item file and line (or the template) it came from."""

from __future__ import annotations

from datetime import datetime

import pytest

from conftest import REPO, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.config import Config, load_config
from pipeline.content.model import Item
from pipeline.content.reader import read_content
from pipeline.errors import KrimppostError, Problem
from pipeline.publish import Entry, item_path
from pipeline.render.newsletter import TOKEN_PLACEHOLDER
from pipeline.render.preflight import HTML_TEMPLATE_PATH, TEXT_TEMPLATE_PATH, preflight
from pipeline.state import IssueStore, StateStore

BASE = "https://www.bevolkingsdaling.nl/"
BUILT = frozenset(
    {
        "site/index.html",
        "site/berichten/wrb-een/index.html",
        "site/berichten/wrb-twee/index.html",
        "site/bestanden/afbeeldingen/podcast omslag.png",
        "site/feeds/atom.xml",
    }
)

ITEM = """\
---
title: Een bericht
date: 2026-11-01
kind: news
track: wrb
summary: {summary}
{extra}---
Eerste alinea.

{body}
"""


def write_item(
    project: Project, name: str, body: str = "Tekst.", summary: str = "Kort.", extra: str = ""
) -> None:
    project.write(f"wrb/{name}.md", ITEM.format(summary=summary, extra=extra, body=body))


def line_of(project: Project, name: str, needle: str) -> int:
    text = (project.root / "content" / "wrb" / f"{name}.md").read_text(encoding="utf-8")
    return next(n for n, line in enumerate(text.split("\n"), 1) if needle in line)


def entries_of(config: Config) -> list[Entry]:
    """Every item of the project as an issue would hold it."""
    out = []
    for item in read_content(config).items:
        path = item_path(item.id)
        out.append(Entry(item, item.id, item.date, item.date, path, BASE + path))
    return out


def check(
    project: Project,
    body: str,
    text: str = "",
    built: frozenset[str] = BUILT,
    own_pages: frozenset[str] = frozenset({"nieuwsbrief/3/", "nieuwsbrief/"}),
) -> list[Problem]:
    config = load_config(project.root)
    html = f"<!doctype html><html lang=nl><head><title>N</title></head><body>{body}</body></html>"
    return preflight(
        config,
        built=built,
        entries=entries_of(config),
        html=html,
        text=text,
        own_pages=own_pages,
    )


def item_of(project: Project, name: str) -> Item:
    config = load_config(project.root)
    return next(e.item for e in entries_of(config) if e.item.source.endswith(f"/{name}.md"))


def item_html(project: Project, name: str) -> str:
    return item_of(project, name).html


def test_a_sound_issue_passes(project: Project) -> None:
    write_item(project, "een")
    body = f"""
      <a href="{BASE}berichten/wrb-een/">Lees verder</a>
      <a href=" {BASE}berichten/wrb-twee/?utm_source=nieuwsbrief#reacties ">twee</a>
      <a href="{BASE}">home</a>
      <a href="{BASE}nieuwsbrief/3/">in je browser</a>
      <a href="{BASE}nieuwsbrief/rss.xml">archief</a>
      <a href="{BASE}afmelden/{TOKEN_PLACEHOLDER}">Afmelden</a>
      <a href="{BASE}afmelden/">Afmelden</a>
      <a href="https://www.example.nl/rapport?a=1&amp;b=2">elders</a>
      <a href="mailto:redactie@bevolkingsdaling.nl">mail</a>
      <a href="tel:+31455000000">bel</a>
      <a href="#agenda">naar de agenda</a><h2 id="agenda">Agenda</h2>
      <img src="https://www.example.nl/foto.png" alt="Rij huizen in Heerlen">
      <img src="{BASE}bestanden/afbeeldingen/podcast%20omslag.png" alt="Omslag">
      <img src="https://www.example.nl/lijn.png" alt="" role="presentation">
    """
    assert check(project, body, text="Nieuwsbrief 3\n{BASE}berichten/wrb-een/\n") == []


def test_a_site_link_the_build_did_not_write_names_the_template(project: Project) -> None:
    write_item(project, "een")
    found = check(project, f'<a href="{BASE}berichten/weg/">weg</a>')
    assert [(p.path, p.line) for p in found] == [(HTML_TEMPLATE_PATH, None)]
    assert "site/berichten/weg/index.html" in found[0].message
    assert found[0].message.startswith("nieuwsbrief: link 'https://www.bevolkingsdaling.nl/")
    # The web version of the issue is written by compile itself, not by a build: fine only
    # as an own page.
    web = f'<a href="{BASE}nieuwsbrief/3/">web</a>'
    assert check(project, web) == []
    assert [p.path for p in check(project, web, own_pages=frozenset())] == [HTML_TEMPLATE_PATH]


def test_a_broken_site_link_in_an_item_body_names_its_file_and_line(project: Project) -> None:
    write_item(
        project,
        "een",
        body="Nog een alinea.\n\nZie [de pagina](/berichten/bestaat-niet/) voor meer.\n\n"
        "En [het rapport](rapport.pdf) als bijlage.",
    )
    html = item_html(project, "een")
    assert f'href="{BASE}berichten/bestaat-niet/"' in html  # made absolute by rendering
    found = check(project, f'<a href="{BASE}berichten/wrb-een/">Lees verder</a>{html}')
    assert [(p.path, p.line) for p in found] == [
        ("content/wrb/een.md", line_of(project, "een", "/berichten/bestaat-niet/")),
        ("content/wrb/een.md", line_of(project, "een", "rapport.pdf")),
    ]
    assert "site/berichten/bestaat-niet/index.html" in found[0].message
    assert "site/bestanden/wrb/rapport.pdf" in found[1].message
    assert str(found[0]).startswith(f"content/wrb/een.md:{found[0].line}: nieuwsbrief: link ")


def test_other_links_must_be_absolute_https(project: Project) -> None:
    write_item(project, "een", body="Zie [het oude adres](http://www.example.nl/oud).")
    found = check(
        project,
        item_html(project, "een")
        + '<a href="javascript:alert(1)">x</a><a href="pagina.html">y</a>'
        + '<a href="#nergens">z</a><a href="">leeg</a><a href="ftp://example.nl/f">f</a>',
    )
    by_place = {(p.path, p.line): p.message for p in found}
    assert len(found) == 6
    item_message = by_place[("content/wrb/een.md", line_of(project, "een", "http://"))]
    assert "gebruikt http: in plaats van https:" in item_message
    template = sorted(p.message for p in found if p.path == HTML_TEMPLATE_PATH)
    assert len(template) == 5
    assert any("'javascript:alert(1)'" in m and "javascript:" in m for m in template)
    assert any("'pagina.html'" in m and "geen volledig adres" in m for m in template)
    assert any("'#nergens'" in m and "niet in de nieuwsbrief staat" in m for m in template)
    assert any("''" in m for m in template)
    assert any("ftp:" in m for m in template)


def test_images_need_an_absolute_https_address_and_alt_text(project: Project) -> None:
    write_item(
        project,
        "een",
        extra="image: http://www.example.nl/foto.png\nimage_alt: Rij huizen\n",
        body="Een plaatje:\n\n![](https://www.example.nl/zonder-alt.png)",
    )
    found = check(
        project,
        '<img src="http://www.example.nl/foto.png" alt="Rij huizen">'
        + item_html(project, "een")
        + '<img src="https://www.example.nl/logo.png">'
        + '<img src="https://www.example.nl/spatie.png" alt="  ">'
        + f'<img src="{BASE}bestanden/weg.png" alt="weg">'
        + '<img src="/logo.png" alt="logo">'
        + '<img src="https://www.example.nl/deco.png" alt="">',
    )
    places = sorted((p.path, p.line or 0, p.message.split(" ")[1]) for p in found)
    image_line = line_of(project, "een", "image:")
    body_line = line_of(project, "een", "zonder-alt.png")
    assert places == sorted(
        [
            ("content/wrb/een.md", image_line, "afbeelding"),  # http:
            ("content/wrb/een.md", body_line, "afbeelding"),  # no alt text
            (HTML_TEMPLATE_PATH, 0, "afbeelding"),  # logo.png, no alt
            (HTML_TEMPLATE_PATH, 0, "afbeelding"),  # spaces only
            (HTML_TEMPLATE_PATH, 0, "afbeelding"),  # not on the site
            (HTML_TEMPLATE_PATH, 0, "afbeelding"),  # relative
            (HTML_TEMPLATE_PATH, 0, "afbeelding"),  # alt="" without role="presentation"
        ]
    )
    messages = " | ".join(p.message for p in found)
    assert "'http://www.example.nl/foto.png' gebruikt http:" in messages
    assert "'https://www.example.nl/zonder-alt.png' heeft geen alt-tekst" in messages
    assert "site/bestanden/weg.png" in messages


def test_a_background_image_is_checked_too(project: Project) -> None:
    write_item(project, "een")
    found = check(project, '<table background="http://www.example.nl/vlak.png"><tr><td>x')
    assert [p.path for p in found] == [HTML_TEMPLATE_PATH]
    assert "achtergrondafbeelding" in found[0].message


def test_template_markers_left_in_html_or_text(project: Project) -> None:
    write_item(project, "een")
    found = check(project, "<p>Hallo {{ naam }}</p>", text="{% if agenda %}\nAgenda\n")
    assert sorted((p.path, p.line) for p in found) == [
        (HTML_TEMPLATE_PATH, None),
        (TEXT_TEMPLATE_PATH, None),
    ]
    assert all("niet ingevuld" in p.message for p in found)
    assert check(project, "<p>Hallo { naam }, 100% {x}</p>", text="{ } %}") == []


def test_a_marker_from_an_item_names_the_item_once(project: Project) -> None:
    write_item(project, "een", summary="Schrijf {{ naam }} in de aanhef.")
    write_item(project, "twee", body="Een voorbeeld: {% if regio %}Limburg{% endif %}.")
    summary = "Schrijf {{ naam }} in de aanhef."
    found = check(
        project,
        f"<p>{summary}</p>" + item_html(project, "twee"),
        text=f"{summary}\n\n{item_of(project, 'twee').text}\n",
    )
    assert sorted((p.path, p.line) for p in found) == [
        ("content/wrb/een.md", line_of(project, "een", "summary:")),
        ("content/wrb/twee.md", line_of(project, "twee", "{% if")),
    ]
    messages = {p.path: p.message for p in found}
    assert "'{{' uit de samenvatting" in messages["content/wrb/een.md"]
    assert "'{%' uit de tekst" in messages["content/wrb/twee.md"]


def test_a_marker_in_a_field_the_issue_leaves_out_is_not_blamed(project: Project) -> None:
    # The body holds a marker but the default template mails no bodies: the marker in the
    # issue is the template's.
    write_item(project, "een", body="Zo: {{ naam }}.")
    found = check(project, "<p>Beste {{ abonnee }}</p>")
    assert [(p.path, p.line) for p in found] == [(HTML_TEMPLATE_PATH, None)]


def test_a_link_from_the_introduction_names_the_intro_file(project: Project) -> None:
    write_item(project, "een")
    intro = project.root / "nieuwsbrief" / "voorwoord.md"
    intro.parent.mkdir()
    intro.write_text("Beste lezer,\n\nLees [het verslag](/verslag/).\n", encoding="utf-8")
    found = check(project, f'<p>Lees <a href="{BASE}verslag/">het verslag</a>.</p>')
    assert [(p.path, p.line) for p in found] == [("nieuwsbrief/voorwoord.md", 3)]


def test_a_marker_from_the_introduction_names_it_when_it_is_in_the_issue(
    project: Project,
) -> None:
    write_item(project, "een")
    intro = project.root / "nieuwsbrief" / "voorwoord.md"
    intro.parent.mkdir()
    intro.write_text("Beste lezer,\n\nVul {{ naam }} in op het formulier.\n", encoding="utf-8")
    found = check(project, "<p>Vul {{ naam }} in op het formulier.</p>")
    assert [(p.path, p.line) for p in found] == [("nieuwsbrief/voorwoord.md", 3)]
    # An introduction an earlier issue used is not in this one: the marker is the template's.
    found = check(project, "<p>Hallo {{ abonnee }}</p>")
    assert [(p.path, p.line) for p in found] == [(HTML_TEMPLATE_PATH, None)]


# End to end: a programme that mails whole texts, with its own issue template.

OWN_TEMPLATE_LINE = '<mj-text css-class="licht" padding="0 24px 16px"><a href="{{ entry.url }}">'


def mail_whole_texts(project: Project) -> None:
    default = (REPO / "templates" / "newsletter" / "issue.mjml.j2").read_text(encoding="utf-8")
    assert OWN_TEMPLATE_LINE in default
    own = default.replace(
        OWN_TEMPLATE_LINE,
        '<mj-text css-class="licht">{{ item.html | safe }}</mj-text>\n' + OWN_TEMPLATE_LINE,
    )
    folder = project.root / "templates" / "newsletter"
    folder.mkdir(parents=True)
    (folder / "issue.mjml.j2").write_text(own, encoding="utf-8")


def test_compile_refuses_an_issue_with_a_broken_site_link_in_an_item(project: Project) -> None:
    mail_whole_texts(project)
    write_item(
        project,
        "een",
        body="Zie [de pagina](/berichten/bestaat-niet/) en [twee](/berichten/wrb-twee/).",
    )
    write_item(
        project,
        "twee",
        extra="image: ../afbeeldingen/podcast-omslag.png\nimage_alt: Omslag\n",
        body="Met [een bron](https://www.example.nl/bron) en ![grafiek](../afbeeldingen/"
        "podcast-omslag.png).",
    )
    project.write(
        "wrb/masterclass.md",
        ITEM.format(
            summary="Een middag.",
            extra='event: {start: 2027-01-21T13:30, location: "Glaspaleis, Heerlen"}\n',
            body="Programma volgt.",
        ).replace("kind: news", "kind: event"),
    )
    now = "2026-11-27T12:00"
    build_at(project, now)
    with pytest.raises(KrimppostError) as caught:
        compile_issue(project.root, datetime.fromisoformat(now))
    line = line_of(project, "een", "/berichten/bestaat-niet/")
    assert [str(p).split(": ", 1)[0] for p in caught.value.problems] == [
        f"content/wrb/een.md:{line}"
    ]
    assert "bestaat-niet" in str(caught.value)
    config = load_config(project.root)
    with StateStore(config.path(config.state.path)) as state:
        assert IssueStore(state).numbers() == []
    assert not (project.root / "outbox" / "newsletters" / "0001").exists()

    # Fixed, the same items (a local image, a link to a page, an agenda) make the issue.
    write_item(project, "een", body="Zie [twee](/berichten/wrb-twee/).")
    build_at(project, now)
    report = compile_issue(project.root, datetime.fromisoformat(now))
    assert report.number == 1
    html = (project.root / "outbox/newsletters/0001/message.html").read_text(encoding="utf-8")
    assert f'src="{BASE}bestanden/afbeeldingen/podcast-omslag.png"' in html
    assert f'href="{BASE}berichten/wrb-twee/"' in html
