"""Shortening a post until it fits its platform's limit (`fit`), as `counting` counts it.

A post is rendered from `Parts` (title, summary, hashtags, optional details); `fit` shortens
the parts, never the rendered text, so the template keeps deciding the layout. Cuts fall at
word boundaries and never inside a grapheme cluster, a URL, a hashtag or a mention.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from pipeline.social.counting import grapheme_length, graphemes, url_spans

ELLIPSIS = "…"
# Clusters dropped from the end of a shortened text before the ellipsis ("woord,…" → "woord…").
_TRAILING_PUNCTUATION = frozenset(",;:-–—")
# A shortened summary keeps at least this much, or is left out.
MIN_SUMMARY_WORDS = 3
MIN_SUMMARY_GRAPHEMES = 30


@dataclass(frozen=True)
class Parts:
    """What a post template is rendered from; `fit` shortens these, never the rendered text."""

    title: str
    summary: str
    hashtags: tuple[str, ...] = ()
    details: bool = True  # optional extra lines (event date and place) the template may show


@dataclass(frozen=True)
class Fitted:
    text: str
    length: int
    limit: int
    parts: Parts
    shortened: bool

    @property
    def fits(self) -> bool:
        return self.length <= self.limit


def _is_whitespace_cluster(cluster: str) -> bool:
    return cluster[0].isspace()


def _protected(token: str) -> bool:
    """A token that must never be cut: a URL (also a bare domain), hashtag or mention."""
    if "#" in token or "@" in token:
        return True
    # Every URL or bare domain has a dot (or a scheme's colon): most words skip the extractor.
    return ("." in token or ":" in token) and bool(url_spans(token, bare_domains=True))


def _last_token(clusters: Sequence[str]) -> str:
    start = len(clusters)
    while start > 0 and not _is_whitespace_cluster(clusters[start - 1]):
        start -= 1
    return "".join(clusters[start:])


def _with_ellipsis(clusters: list[str]) -> str | None:
    """`clusters` + "…", tidied, unless the ellipsis would join the last cluster."""
    clusters = list(clusters)
    if not _protected(_last_token(clusters)):
        while clusters and clusters[-1] in _TRAILING_PUNCTUATION:
            clusters.pop()
    while clusters and _is_whitespace_cluster(clusters[-1]):
        clusters.pop()
    if not clusters:
        return None
    # Only the last cluster can take the ellipsis in (a prepended concatenation mark would).
    last = clusters[-1]
    if graphemes(last + ELLIPSIS) != [last, ELLIPSIS]:
        return None
    return "".join(clusters) + ELLIPSIS


class Shortenings:
    """Shorter versions of a text, longest first, each ending in "…", made on demand: `fit`
    looks at a handful of the forty cuts a summary has (the sequence may hold a candidate
    twice, or None where the ellipsis cannot follow a cut).

    Cuts fall at word boundaries (before whitespace), so a URL, hashtag or emoji is either
    whole or absent. With `inside_first_word`, a first word that is neither a URL, hashtag
    nor mention may also be cut between its grapheme clusters (a title without spaces, like
    a row of emoji or CJK text), never inside one.
    """

    def __init__(self, text: str, *, inside_first_word: bool = False) -> None:
        self.text = text
        self.clusters = clusters = graphemes(text)
        cuts = [
            k
            for k in range(len(clusters) - 1, 0, -1)
            if _is_whitespace_cluster(clusters[k]) and not _is_whitespace_cluster(clusters[k - 1])
        ]
        if inside_first_word:
            start = 0
            while start < len(clusters) and _is_whitespace_cluster(clusters[start]):
                start += 1
            end = start
            while end < len(clusters) and not _is_whitespace_cluster(clusters[end]):
                end += 1
            if not _protected("".join(clusters[start:end])):
                cuts.extend(range(end - 1, start, -1))
        self.cuts = cuts
        self._made: dict[int, str | None] = {}

    def __len__(self) -> int:
        return len(self.cuts)

    def first_within(self, clusters: int) -> int:
        """The index of the longest candidate cut at or before `clusters` clusters."""
        low, high = 0, len(self.cuts)
        while low < high:  # cuts shrink along the list
            middle = (low + high) // 2
            if self.cuts[middle] <= clusters:
                high = middle
            else:
                low = middle + 1
        return low

    def __getitem__(self, index: int) -> str | None:
        if index not in self._made:
            candidate = _with_ellipsis(self.clusters[: self.cuts[index]])
            self._made[index] = None if candidate == self.text else candidate
        return self._made[index]


@functools.lru_cache(maxsize=64)
def _shortenings(text: str, inside_first_word: bool) -> Shortenings:
    """One per text: the summary and title of an item are shortened for every platform."""
    return Shortenings(text, inside_first_word=inside_first_word)


def shortenings(text: str, *, inside_first_word: bool = False) -> list[str]:
    """Every candidate of `Shortenings`, once each, longest first."""
    lazy = Shortenings(text, inside_first_word=inside_first_word)
    return list(dict.fromkeys(c for c in (lazy[i] for i in range(len(lazy))) if c is not None))


def fit(
    render: Callable[[Parts], str], parts: Parts, count: Callable[[str], int], limit: int
) -> Fitted:
    """Render `parts`, shortening them until the post fits `limit` as `count` counts it.

    In order: shorten the summary at a word boundary (keeping at least a few words), down to
    leaving it out; leave out the optional details; shorten the title; only then leave out
    hashtags (from the last); as a last resort leave out a title that cannot be cut. When
    even the shortest form does not fit (a limit set lower than the link), that form is
    returned with `fits` false. `parts` are used as given: the template decides the layout.
    """
    attempts: dict[Parts, tuple[str, int]] = {}

    def attempt(p: Parts) -> tuple[str, int]:
        if p not in attempts:
            text = render(p).strip()
            attempts[p] = (text, count(text))
        return attempts[p]

    def fits(p: Parts) -> bool:
        return attempt(p)[1] <= limit

    def done(p: Parts) -> Fitted:
        text, n = attempt(p)
        return Fitted(text, n, limit, p, shortened=p != parts)

    if fits(parts):
        return done(parts)

    summary = _shortenings(parts.summary, False) if parts.summary else None

    def summary_at(i: int) -> str | None:
        # [the summary, its substantial shortenings, ""]: "De…" says nothing, so a summary
        # too short to keep is left out instead.
        if summary is None:
            return ""
        if i == 0:
            return parts.summary
        if i > len(summary):
            return ""
        c = summary[i - 1]
        return c if c is not None and _substantial(c) else None

    size = 1 if summary is None else len(summary) + 2
    # Where the summary should be cut: as many clusters shorter as the post is too long.
    guess = (
        None
        if summary is None
        else 1 + summary.first_within(len(summary.clusters) - 1 - (attempt(parts)[1] - limit))
    )
    for details in dict.fromkeys((parts.details, False)):
        found = _first_fitting(
            size,
            lambda i, d=details: _maybe(
                summary_at(i), lambda s: replace(parts, summary=s, details=d)
            ),
            fits,
            guess,
        )
        if found is not None:
            return done(found)

    title = _shortenings(parts.title, True)

    def title_at(i: int) -> str | None:
        return parts.title if i == 0 else title[i - 1]

    bare = replace(parts, summary="", details=False)
    for keep in range(len(parts.hashtags), -1, -1):
        found = _first_fitting(
            len(title) + 1,
            lambda i, k=keep: _maybe(
                title_at(i), lambda t: replace(bare, title=t, hashtags=parts.hashtags[:k])
            ),
            fits,
        )
        if found is not None:
            return done(found)
    # A title that cannot be cut (one huge grapheme cluster, a long URL) is left out last.
    no_title = replace(bare, title="", hashtags=())
    if fits(no_title):
        return done(no_title)
    last = next(t for i in range(len(title), -1, -1) if (t := title_at(i)) is not None)
    return done(replace(bare, title=last, hashtags=()))


def _maybe(value: str | None, make: Callable[[str], Parts]) -> Parts | None:
    return None if value is None else make(value)


def _substantial(candidate: str) -> bool:
    return (
        len(candidate.split()) >= MIN_SUMMARY_WORDS
        and grapheme_length(candidate) > MIN_SUMMARY_GRAPHEMES
    )


def _first_fitting(
    size: int,
    candidate: Callable[[int], Parts | None],
    fits: Callable[[Parts], bool],
    guess: int | None = None,
) -> Parts | None:
    """The first (longest) candidate that fits; lengths shrink along the indices. None
    marks an index that is no candidate: it stands for the next candidate after it.

    A binary search; with a `guess` of the answer it looks there and next to it first
    (two renders instead of six when the guess is right)."""

    def at(i: int) -> tuple[int, Parts] | None:
        while i < size:
            c = candidate(i)
            if c is not None:
                return i, c
            i += 1
        return None

    low, high, best = 0, -1, None
    probe: int | None = None
    if guess is not None and 0 < guess < size and (found := at(guess)) is not None:
        index, c = found
        if fits(c):
            high, best, probe = guess, c, guess - 1
        else:
            low = probe = index + 1
    if best is None:
        for i in range(size - 1, low - 1, -1):  # the shortest: it fits, or none does
            if (c := candidate(i)) is not None:
                if not fits(c):
                    return None
                high, best = i, c
                break
        else:
            return None
    while low < high:
        middle = probe if probe is not None and low <= probe < high else (low + high) // 2
        probe = None
        found = at(middle)
        assert found is not None  # `high` is a candidate at or after `middle`
        index, c = found
        if fits(c):
            high, best = middle, c
        else:
            low = index + 1
    return best
