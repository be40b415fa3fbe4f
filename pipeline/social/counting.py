"""Length of a post as each platform counts it, and shortening a post until it fits.

How each platform counts (the `[social.<platform>]` options `limit` and `url_weight` apply):

- X: twitter-text v3 weighted length (twitter-text-parser, the library X publishes): most
  Latin, Greek and Cyrillic characters weigh 1, CJK characters and every emoji (also a ZWJ
  family or a flag) weigh 2, text is NFC-normalised first, and every URL (also a bare domain
  such as `bevolkingsdaling.nl`) counts `url_weight` (23).
- Mastodon: extended grapheme clusters (`regex` `\\X`) after Mastodon's own substitutions:
  every http(s) URL counts `url_weight` (23) and `@user@server` counts as `@user`.
- Bluesky: extended grapheme clusters; a link counts in full (`url_weight` 0).
- LinkedIn and Threads: characters as the platforms' web composers count them (JavaScript
  string length, UTF-16 code units). That is never less than the number of code points or of
  grapheme clusters, so a post that fits by this count fits however "characters" are counted.

A `url_weight` of 0 means a link counts as the characters it is made of; any other value is
the fixed length of every link.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import regex

from pipeline.config import SocialPlatform

ELLIPSIS = "…"
_GRAPHEME = regex.compile(r"\X")
# Mastodon gives `@user@server` the length of `@user` (StatusLengthValidator).
_REMOTE_MENTION = regex.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)@[\w-]+(?:\.[\w-]+)+", regex.IGNORECASE
)
_LINE_END = regex.compile(r"\r\n|\r|\n")  # twitter-text counts any line end as one
# Clusters dropped from the end of a shortened text before the ellipsis ("woord,…" → "woord…").
_TRAILING_PUNCTUATION = frozenset(",;:-–—")
# A shortened summary keeps at least this much, or is left out.
MIN_SUMMARY_WORDS = 3
MIN_SUMMARY_GRAPHEMES = 30

# The unit a platform counts in, for messages to comms staff and editors.
UNITS: dict[str, str] = {
    "x": "gewogen tekens",
    "mastodon": "tekens (grafemen)",
    "bluesky": "tekens (grafemen)",
    "linkedin": "tekens",
    "threads": "tekens",
}


# Text in which every code point is a grapheme cluster of its own (but CR LF): Latin-1 and
# Latin Extended-A/B, general punctuation without the joiners and format characters, and €.
# Dutch text (ë, é, ’, “, –, …) is; emoji, combining marks, Hangul and ZWJ are not.
_SIMPLE = regex.compile("[\x00-\u024f\u2010-\u2027\u2030-\u205e\u20ac]*")


def graphemes(text: str) -> list[str]:
    """The extended grapheme clusters of a text (what a reader sees as one character)."""
    if "\r" not in text and _SIMPLE.fullmatch(text):
        return list(text)
    return _GRAPHEME.findall(text)


def grapheme_length(text: str) -> int:
    if text.isascii() or _SIMPLE.fullmatch(text):
        return len(text) - text.count("\r\n")  # every one a cluster of its own but CR LF
    return len(_GRAPHEME.findall(text))


def preload() -> None:
    """Import twitter-text now (0.3 s), e.g. before forking workers that all count."""
    from twitter_text import parse_tweet  # noqa: F401
    from twitter_text.extract_urls import extract_urls_with_indices  # noqa: F401


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _x_options() -> dict[str, Any]:
    # twitter-text is imported when first needed: compiling its emoji pattern takes 0.6 s,
    # more than a whole one-item rebuild may.
    from twitter_text.config import config

    return dict(config["defaults"])


def _urls(text: str, *, bare_domains: bool) -> list[tuple[int, int]]:
    """Code point spans of the URLs twitter-text finds (Mastodon uses the same extractor).

    A URL never spans whitespace and always holds a dot, so only the words with a dot are
    given to the extractor, one by one (with the character on either side) and remembered: a
    post is counted several times while it is shortened, its link and most of its words each
    time (tested equal to a whole-text extraction)."""
    spans: list[tuple[int, int]] = []
    for word in _WORD.finditer(text):
        if "." in word[0]:
            # With the blank before and after it: the extractor looks one character around.
            start = max(0, word.start() - 1)
            context = text[start : word.end() + 1]
            spans.extend((start + a, start + b) for a, b in _word_urls(context, bare_domains))
    return spans


_WORD = regex.compile(r"\S+")


@functools.lru_cache(maxsize=4096)
def _word_urls(word: str, bare_domains: bool) -> tuple[tuple[int, int], ...]:
    return tuple(_text_urls(word, bare_domains))


def _text_urls(text: str, bare_domains: bool) -> list[tuple[int, int]]:
    from twitter_text.extract_urls import extract_urls_with_indices

    return [
        (u["indices"][0], u["indices"][1])
        for u in extract_urls_with_indices(text, extract_urls_without_protocol=bare_domains)
    ]


def _substitute_urls(text: str, url_weight: int, *, mentions: bool = False) -> str:
    """The text with every http(s) URL replaced by `url_weight` placeholder characters."""
    spans = _urls(text, bare_domains=False) if url_weight > 0 else []
    out: list[str] = []
    position = 0
    for start, end in spans:
        out.append(text[position:start])
        out.append("x" * url_weight)
        position = end
    out.append(text[position:])
    if mentions:
        # Only outside URLs: Mastodon drops entities that overlap a URL.
        out = [
            piece if i % 2 else _REMOTE_MENTION.sub(lambda m: "@" + m.group(1), piece)
            for i, piece in enumerate(out)
        ]
    return "".join(out)


# Text twitter-text can never see an emoji in: below U+2000 except © and ®, general
# punctuation except ‼ and ⁉, and the currency signs. For such text the count is simple.
_X_NOT_SIMPLE = regex.compile(
    "[^\x00-\xa8\xaa-\xad\xaf-\u203b\u203d-\u2048\u204a-\u206f\u20a0-\u20cf]"
)
# In that text, the characters outside twitter-text v3's weight-1 ranges (U+0000-U+10FF,
# U+2000-U+200D, U+2010-U+201F, U+2032-U+2037) weigh 2.
_X_HEAVY = regex.compile("[\u1100-\u1fff\u200e\u200f\u2020-\u2031\u2038-\u206f\u20a0-\u20cf]")


def _simple_weight(text: str) -> int:
    return len(text) + len(_X_HEAVY.findall(text))


def _fast_x_length(text: str, url_weight: int) -> int | None:
    """The count twitter-text gives text without emoji, without its slow emoji scan (4 ms
    per post); None when the text may hold an emoji."""
    normalized = _LINE_END.sub("\n", unicodedata.normalize("NFC", text))
    if _X_NOT_SIMPLE.search(normalized):
        return None
    total = 0
    position = 0
    for start, end in _urls(normalized, bare_domains=True):
        total += _simple_weight(normalized[position:start])
        total += url_weight if url_weight > 0 else _simple_weight(normalized[start:end])
        position = end
    return total + _simple_weight(normalized[position:])


def x_length(text: str, url_weight: int = 23) -> int:
    """twitter-text v3 weighted length."""
    fast = _fast_x_length(text, url_weight)
    return fast if fast is not None else twitter_text_length(text, url_weight)


def twitter_text_length(text: str, url_weight: int = 23) -> int:
    """twitter-text v3 weighted length straight from twitter-text-parser (slow on long text)."""
    from twitter_text import parse_tweet
    from twitter_text.get_character_weight import get_character_weight

    if url_weight > 0:
        options = {**_x_options(), "transformed_url_length": url_weight}
        return parse_tweet(text, options).weightedLength
    # Every character of a link counts: weigh it like the text around it.
    options = {**_x_options(), "transformed_url_length": 0}
    normalized = unicodedata.normalize("NFC", text)
    scale = options["scale"]
    extra = sum(
        get_character_weight(char, options)
        for start, end in _urls(normalized, bare_domains=True)
        for char in normalized[start:end]
    )
    return (parse_tweet(text, options).weightedLength * scale + extra) // scale


def mastodon_length(text: str, url_weight: int = 23) -> int:
    return grapheme_length(_substitute_urls(text, url_weight, mentions=True))


def bluesky_length(text: str, url_weight: int = 0) -> int:
    return grapheme_length(_substitute_urls(text, url_weight))


def character_length(text: str, url_weight: int = 0) -> int:
    """LinkedIn and Threads: UTF-16 code units, as their composers count."""
    return utf16_length(_substitute_urls(text, url_weight))


_COUNTERS: dict[str, Callable[[str, int], int]] = {
    "x": x_length,
    "mastodon": mastodon_length,
    "bluesky": bluesky_length,
    "linkedin": character_length,
    "threads": character_length,
}


def length(platform: SocialPlatform, text: str) -> int:
    """The length of `text` on `platform`, as that platform counts it."""
    return _COUNTERS[platform.id](text, platform.url_weight)


def counter(platform: SocialPlatform) -> Callable[[str], int]:
    count = _COUNTERS[platform.id]
    weight = platform.url_weight
    return lambda text: count(text, weight)


# Shortening -------------------------------------------------------------------------


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
    return ("." in token or ":" in token) and bool(_urls(token, bare_domains=True))


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
    if not _SIMPLE.fullmatch(last) and graphemes(last + ELLIPSIS) != [last, ELLIPSIS]:
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
