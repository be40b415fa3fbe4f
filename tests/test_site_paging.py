"""Listings paged with numbered links (first, last, a window around the current page) and
rel=prev/next, breadcrumbs on item pages, thumbnails in listings (issue 18)."""

from __future__ import annotations

import re

from conftest import VALID, Project, build_at

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def test_a_long_archive_has_numbered_pages_around_the_current_one(project: Project) -> None:
    for n in range(200):  # 10 pages of 20
        day = f"2026-{1 + n // 28:02d}-{1 + n % 28:02d}"
        project.write(f"wrb/item-{n:03d}.md", VALID.replace("2026-11-01", day))
    build_at(project)
    site = project.root / "outbox" / "site"
    page = (site / "archief" / "pagina" / "5" / "index.html").read_text()
    nav = page[
        page.index('<nav class="paginering"') : page.index(
            "</nav>", page.index('<nav class="paginering"')
        )
    ]
    shown = re.findall(r'<span class="visueel-verborgen">Pagina </span>(\d+)</a>', nav)
    assert shown == ["1", "3", "4", "5", "6", "7", "10"]
    assert nav.count("…") == 2
    assert '<a href="/archief/pagina/5/" aria-current="page">' in nav
    assert '<a href="/archief/pagina/4/" rel="prev">' in nav
    assert '<a href="/archief/pagina/6/" rel="next">' in nav
    assert '<link rel="prev" href="/archief/pagina/4/">' in page
    assert '<link rel="next" href="/archief/pagina/6/">' in page
    first = (site / "archief" / "index.html").read_text()
    assert 'rel="prev"' not in first
    assert re.findall(r"Pagina </span>(\d+)</a>", first) == ["1", "2", "3", "10"]


def test_item_pages_have_breadcrumbs_and_listings_thumbnails(project: Project) -> None:
    project.write_bytes("wrb/beeld.png", PNG)
    project.write(
        "wrb/met-beeld.md",
        VALID.replace("track: wrb", "track: wrb\nimage: beeld.png\nimage_alt: Een stip"),
    )
    build_at(project)
    site = project.root / "outbox" / "site"
    page = (site / "berichten" / "wrb-met-beeld" / "index.html").read_text()
    crumbs = page[page.index('<nav class="kruimelpad" aria-label="Kruimelpad">') :]
    crumbs = crumbs[: crumbs.index("</nav>")]
    assert re.findall(r">([^<]+)</a>", crumbs) == [
        "Home",
        "Wetenschappelijke Reflectiegroep",
        "Een geldig item",
    ]
    listing = (site / "trajecten" / "wrb" / "index.html").read_text()
    assert re.search(
        r'<img class="miniatuur" src="https://www\.bevolkingsdaling\.nl/bestanden/wrb/beeld\.png" '
        r'alt="" width="128" height="80" loading="lazy">',
        listing,
    )
