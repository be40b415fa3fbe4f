"""Regions and topics (tags): their stable slugs, and names that would share one.

A slug is the name folded to ASCII and lower case (`Súdwest-Fryslân` -> `sudwest-fryslan`),
so it never changes with a reader's keyboard; the page and feeds keep the Dutch spelling.
Two spellings with one slug would share a page under one of the names: `check` and `build`
report the later spelling with its file and line (the items still publish).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pipeline.content.model import Item
from pipeline.content.reader import slugify
from pipeline.errors import Problem

T = TypeVar("T")

# field of Item -> (site folder, singular noun in messages, plural heading)
KINDS = {
    "regions": ("regios", "regio", "Regio's"),
    "tags": ("onderwerpen", "onderwerp", "Onderwerpen"),
}


@functools.lru_cache(maxsize=4096)
def slug_of(name: str) -> str:
    # Cached: a build asks for the slug of every tag of every item several times.
    return slugify(name) or "zonder-naam"


@dataclass(frozen=True)
class Term:
    """One region or topic: its name as first spelled (oldest item first), slug, items."""

    field: str  # "regions" or "tags"
    name: str
    slug: str

    @property
    def path(self) -> str:
        return f"{KINDS[self.field][0]}/{self.slug}/"


def terms(field: str, items: Iterable[Item]) -> dict[str, Term]:
    """slug -> term, for every name used in `field` of `items` (the first spelling of a
    slug, in the order given, names it)."""
    out: dict[str, Term] = {}
    for item in items:
        for name in getattr(item, field):
            slug = slug_of(name)
            if slug not in out:
                out[slug] = Term(field, name, slug)
    return out


def grouped(
    field: str, newest_first: Sequence[T], item_of: Callable[[T], Item]
) -> list[tuple[Term, list[T]]]:
    """Every term of `field` (by slug) with the things whose item names it, newest first;
    a term is named as its oldest item spells it."""
    found = terms(field, (item_of(t) for t in reversed(newest_first)))
    members: dict[str, list[T]] = {slug: [] for slug in found}
    for thing in newest_first:
        for slug in dict.fromkeys(slug_of(n) for n in getattr(item_of(thing), field)):
            members[slug].append(thing)
    return [(found[slug], members[slug]) for slug in sorted(found)]


def collision_problems(items: Sequence[Item]) -> list[Problem]:
    """Spellings that share a slug with an earlier one (oldest item first)."""
    ordered = sorted(items, key=lambda i: (i.published_at, i.source))
    problems = []
    for field, (_folder, noun, _heading) in KINDS.items():
        first: dict[str, tuple[str, str]] = {}  # slug -> (name, source)
        for item in ordered:
            for name in getattr(item, field):
                slug = slug_of(name)
                seen = first.setdefault(slug, (name, item.source))
                if seen[0] != name:
                    problems.append(
                        Problem(
                            item.source,
                            item.line_of(field),
                            f"'{field}': {noun} {name!r} krijgt dezelfde pagina "
                            f"({KINDS[field][0]}/{slug}/) als {seen[0]!r} in {seen[1]}; "
                            "schrijf ze hetzelfde, of kies een andere naam",
                        )
                    )
    return problems
