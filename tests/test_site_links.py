"""Internal links (issue 18): a link in an item's text to a page or file of the site that the
build does not make is a problem with the item's file and the link's line, from `check` and
from `build`; the item still publishes. Links that resolve stay quiet."""

from __future__ import annotations

from datetime import datetime

from conftest import Project, build_at
from pipeline.commands.check import check

TEXT = """\
---
title: Met links
date: 2026-11-01
kind: news
track: wrb
summary: Links naar de site.
tags: [krimp]
regions: [Achterhoek]
---
Zie [het archief](/archief/) en [de regio](/regios/achterhoek/).

Het [onderwerp](https://www.bevolkingsdaling.nl/onderwerpen/krimp/) bestaat wel,
[dit bericht](/berichten/bestaat-niet/) niet.

En [een bijlage](/bestanden/wrb/weg.pdf) ook niet; [extern](https://example.org/weg) telt niet.
"""


def test_a_broken_internal_link_is_reported_with_its_line_and_the_item_still_publishes(
    project: Project,
) -> None:
    project.write("wrb/links.md", TEXT)
    report = check(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    lines = sorted(str(p) for p in report.problems)
    assert lines == [
        "content/wrb/links.md:13: link naar https://www.bevolkingsdaling.nl/berichten/bestaat-niet/ "
        "wijst naar iets dat niet op de site staat (geen pagina of bestand van deze build); het "
        "bericht staat wel online",
        "content/wrb/links.md:15: link naar https://www.bevolkingsdaling.nl/bestanden/wrb/weg.pdf "
        "wijst naar iets dat niet op de site staat (geen pagina of bestand van deze build); het "
        "bericht staat wel online",
    ]
    built = build_at(project)
    assert sorted(str(p) for p in built.problems) == lines
    assert (project.root / "outbox" / "site" / "berichten" / "wrb-links" / "index.html").is_file()
    # Fixed, both are quiet; a link to another item's page counts once that item is online.
    project.write(
        "wrb/links.md",
        TEXT.replace("/berichten/bestaat-niet/", "/berichten/wrb-ander/").replace(
            "[een bijlage](/bestanden/wrb/weg.pdf) ook niet; ", ""
        ),
    )
    project.write("wrb/ander.md", TEXT.replace("title: Met links", "title: Ander").split("Zie")[0])
    assert check(project.root, datetime.fromisoformat("2026-11-27T12:00")).problems == ()
    assert build_at(project, "2026-11-27T13:00").problems == ()


def test_a_file_the_body_shows_or_links_is_published_with_the_item(project: Project) -> None:
    """`![Kaart](kaart.png)` and `[rapport](rapport.pdf)` next to the item need no front
    matter: the files are published. A Markdown source, a hidden file or one missing is not
    published, and the link to it is reported."""
    project.write_bytes("wrb/kaart.png", b"\x89PNG kaart")
    project.write_bytes("wrb/rapport met spatie.pdf", b"%PDF-1.4 rapport")
    project.write_bytes("wrb/.verborgen.pdf", b"%PDF-1.4 verborgen")
    project.write(
        "wrb/concept.md",
        TEXT.replace("title: Met links", "title: Concept").replace("tags:", "draft: true\ntags:"),
    )
    body = (
        "![Kaart](kaart.png)\n\n[Het rapport](rapport%20met%20spatie.pdf)\n\n"
        "[Verborgen](.verborgen.pdf)\n\n[Bron](concept.md)\n"
    )
    project.write("wrb/bericht.md", TEXT.split("Zie")[0] + body)
    report = build_at(project)
    files = project.root / "outbox" / "site" / "bestanden" / "wrb"
    assert (files / "kaart.png").read_bytes() == b"\x89PNG kaart"
    assert (files / "rapport met spatie.pdf").is_file()
    assert not (files / ".verborgen.pdf").exists() and not (files / "concept.md").exists()
    assert sorted((p.line, p.message.split(" wijst")[0]) for p in report.problems) == [
        (14, "link naar https://www.bevolkingsdaling.nl/bestanden/wrb/.verborgen.pdf"),
        (16, "link naar https://www.bevolkingsdaling.nl/bestanden/wrb/concept.md"),
    ]
    assert (
        check(project.root, datetime.fromisoformat("2026-11-27T12:00")).problems == report.problems
    )
