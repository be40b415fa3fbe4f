"""Length of a post as each platform counts it (shortening a post until it fits is in
`shortening`).

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
import sys
import unicodedata
import warnings
from collections.abc import Callable
from typing import Any

import regex

from pipeline.config import SocialPlatform

_GRAPHEME = regex.compile(r"\X")
# Mastodon gives `@user@server` the length of `@user` (StatusLengthValidator).
_REMOTE_MENTION = regex.compile(
    r"(?<![=/\w])@([a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_]+)?)@[\w-]+(?:\.[\w-]+)+", regex.IGNORECASE
)
_LINE_END = regex.compile(r"\r\n|\r|\n")  # twitter-text counts any line end as one

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
    """Import twitter-text now (0.3 s), e.g. before forking workers that all count; every
    function here that uses it calls this first.

    twitter-text-parser 3 imports `pkg_resources`, which setuptools marks deprecated: a
    warning about the library's packaging, nothing a user of krimppost can act on, so it is
    silenced for that one import (and only once per process), with the one it raises about
    flufl.bounce's old-style namespace package."""
    if "twitter_text.extract_urls" in sys.modules:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", DeprecationWarning)
        # importing pkg_resources declares the old-style namespace of flufl.bounce (`flufl`)
        warnings.filterwarnings(
            "ignore", "Deprecated call to `pkg_resources.declare_namespace", DeprecationWarning
        )
        import twitter_text
        import twitter_text.extract_urls  # noqa: F401


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _x_options() -> dict[str, Any]:
    # twitter-text is imported when first needed: compiling its emoji pattern takes 0.6 s,
    # more than a whole one-item rebuild may.
    preload()
    from twitter_text.config import config

    return dict(config["defaults"])


def url_spans(text: str, *, bare_domains: bool) -> list[tuple[int, int]]:
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
    preload()
    from twitter_text.extract_urls import extract_urls_with_indices

    return [
        (u["indices"][0], u["indices"][1])
        for u in extract_urls_with_indices(text, extract_urls_without_protocol=bare_domains)
    ]


def _substitute_urls(text: str, url_weight: int, *, mentions: bool = False) -> str:
    """The text with every http(s) URL replaced by `url_weight` placeholder characters."""
    spans = url_spans(text, bare_domains=False) if url_weight > 0 else []
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
    for start, end in url_spans(normalized, bare_domains=True):
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
    preload()
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
        for start, end in url_spans(normalized, bare_domains=True)
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
