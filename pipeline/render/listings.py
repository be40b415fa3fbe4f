"""The listings of the site: the archive, a page per track, kind, region and topic, paged
with numbered links (first, last, two either side, rel=prev/next) and the feeds of each."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pipeline.config import Config
from pipeline.content import taxonomy
from pipeline.publish import Entry
from pipeline.render.newsletter import IssueLink
from pipeline.render.output import Output, key_of

PAGE_SIZE = 20


class Site(Protocol):
    """What the listings and the single pages (pages.py) take from site.Site."""

    config: Config
    fp: str
    entries: Sequence[Entry]
    now: datetime
    tracks: list[dict[str, str]]
    kinds: list[dict[str, str]]
    issues: Sequence[IssueLink]
    redirects: Sequence[tuple[str, str]]

    @property
    def terms(self) -> dict[str, list[tuple[taxonomy.Term, list[Entry]]]]: ...
    def url(self, path: str) -> str: ...
    def absolute(self, path: str) -> str: ...
    def feeds_of(self, family: tuple[str, str] | None) -> list[dict[str, str]]: ...
    def render(self, name: str, path: str, **context: Any) -> bytes: ...


@dataclass(frozen=True)
class Page:
    number: int
    count: int
    entries: Sequence[Entry]
    previous: str | None
    next: str | None
    folder: str = ""  # the listing's first page


def entry_key(entry: Entry) -> str:
    return entry.key


def outputs(site: Site) -> list[Output]:
    out = paged(
        site,
        "archief/",
        site.entries,
        "Archief",
        "Alle berichten van het programma, nieuwste eerst.",
    )
    for track in site.tracks:
        entries = [e for e in site.entries if e.item.track == track["id"]]
        out += paged(
            site,
            track["path"],
            entries,
            track["label"],
            track["description"],
            (f"{track['id']}/", track["label"]),
        )
    for kind in site.kinds:
        entries = [e for e in site.entries if e.item.kind == kind["id"]]
        out += paged(site, kind["path"], entries, kind["plural"], "")
    for field in taxonomy.KINDS:
        out += taxonomy_pages(site, field)
    return out


def paged(
    site: Site,
    folder: str,
    entries: Sequence[Entry],
    heading: str,
    intro: str,
    family: tuple[str, str] | None = None,
) -> list[Output]:
    """A listing in pages of PAGE_SIZE; `family`: (feed folder, label) of its own feeds."""
    count = max(1, math.ceil(len(entries) / PAGE_SIZE))
    out = []
    feed_links = (
        {
            "rss": site.url(f"feeds/{family[0]}rss.xml"),
            "atom": site.url(f"feeds/{family[0]}atom.xml"),
            "json": site.url(f"feeds/{family[0]}feed.json"),
        }
        if family
        else None
    )
    for number in range(1, count + 1):
        chunk = entries[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
        path = folder if number == 1 else f"{folder}pagina/{number}/"
        page = Page(
            number=number,
            count=count,
            entries=chunk,
            previous=None
            if number == 1
            else (folder if number == 2 else f"{folder}pagina/{number - 1}/"),
            next=None if number == count else f"{folder}pagina/{number + 1}/",
            folder=folder,
        )
        title = heading if number == 1 else f"{heading} (pagina {number})"

        def produce(page: Page = page, path: str = path, title: str = title) -> bytes:
            return site.render(
                "site/listing.html",
                path,
                heading=title,
                intro=intro,
                page=page,
                page_title=f"{title} | {site.config.site.title}",
                page_description=intro or site.config.site.description,
                feeds=site.feeds_of(family),
                feed_links=feed_links,
                feed_label=family[1] if family else "",
            )

        key = key_of(
            site.fp, "list", path, title, intro, count, family, [entry_key(e) for e in chunk]
        )
        out.append(Output(f"site/{path}index.html", key, produce, 2))
    return out


def taxonomy_pages(site: Site, field: str) -> list[Output]:
    folder, _noun, heading = taxonomy.KINDS[field]
    terms = site.terms[field]
    listed = [(term, len(entries)) for term, entries in terms]

    def index() -> bytes:
        return site.render(
            "site/terms.html",
            f"{folder}/",
            heading=heading,
            field=field,
            terms=listed,
            page_title=f"{heading} | {site.config.site.title}",
        )

    key = key_of(site.fp, "terms", field, [(t.name, t.slug, n) for t, n in listed])
    out = [Output(f"site/{folder}/index.html", key, index, 2)]
    for term, entries in terms:
        intro = (
            f"Berichten over de regio {term.name}, nieuwste eerst."
            if field == "regions"
            else f"Berichten over {term.name}, nieuwste eerst."
        )
        out += paged(site, term.path, entries, term.name, intro, (term.path, term.name))
    return out
