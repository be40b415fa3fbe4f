"""Counting as each platform counts (`counting`), and shortening that never cuts a cluster,
URL or hashtag (`shortening`)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from pipeline.config import SocialPlatform
from pipeline.social.counting import (
    bluesky_length,
    character_length,
    counter,
    grapheme_length,
    graphemes,
    length,
    mastodon_length,
    twitter_text_length,
    x_length,
)
from pipeline.social.shortening import ELLIPSIS, Parts, fit, shortenings

FAMILY = "👨‍👩‍👧‍👦"  # man, woman, girl, boy joined by ZWJ: 7 code points, 1 grapheme
FLAG_NL = "🇳🇱"  # two regional indicators
THUMB = "👍🏽"  # emoji with skin tone modifier
E_ACUTE = "e\u0301"  # e + combining acute accent
LINK = (
    "https://www.bevolkingsdaling.nl/berichten/wrb-bevinding-voorzieningen-en-bereikbaarheid/"
    "?utm_source=x&utm_medium=social&utm_campaign=bevolkingsdaling"
)


def platform(name: str, limit: int, url_weight: int) -> SocialPlatform:
    return SocialPlatform(name, True, limit, url_weight, (), name, "social", "test", "")


X = platform("x", 280, 23)
MASTODON = platform("mastodon", 500, 23)
BLUESKY = platform("bluesky", 300, 0)
LINKEDIN = platform("linkedin", 3000, 0)
THREADS = platform("threads", 500, 0)
ALL = (X, MASTODON, BLUESKY, LINKEDIN, THREADS)


# X ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("english text 日本語 😷 https://example.com", 46),  # twitter-text's own example
        ("a" * 280, 280),
        ("日本語", 6),  # CJK weighs 2
        ("😷", 2),
        (FAMILY, 2),  # an emoji sequence counts as one emoji
        (FLAG_NL, 2),
        (THUMB, 2),
        (LINK, 23),  # every URL counts 23, however long
        ("zie bevolkingsdaling.nl", 4 + 23),  # a bare domain is a URL too
        ("Zie https://a.nl en https://b.nl/x", 4 + 23 + 4 + 23),
        ("café", 4),
        ("—…", 1 + 2),  # U+2014 is in a weight-1 range, U+2026 is not
    ],
)
def test_x_weighted_length(text: str, expected: int) -> None:
    assert x_length(text) == expected
    assert length(X, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Nieuw onderzoek naar sloop en transformatie https://www.bevolkingsdaling.nl/a #krimp",
        "bevolkingsdaling.nl/berichten/x?utm_source=x 日本語テキスト",
        f"{FAMILY}{FLAG_NL}{THUMB} emoji en {E_ACUTE}",
        "中文" * 100,
        "Line\r\nbreaks\rand\nmore www.example.com",
    ],
)
def test_x_agrees_with_twitter_text(text: str) -> None:
    assert x_length(text) == parse_tweet(text).weightedLength


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(st.characters(max_codepoint=0x2200), max_size=300),
        st.lists(
            st.sampled_from(
                [
                    "a",
                    " ",
                    "é",
                    "e\u0301",
                    "©",
                    "‼",
                    "…",
                    "—",
                    "€",
                    "\r\n",
                    "\u20e3",
                    "1\ufe0f",
                    "日",
                    "😷",
                    "🇳🇱",
                    "https://example.com/pad",
                    "bevolkingsdaling.nl",
                    "\u2028",
                ]
            ),
            max_size=80,
        ).map("".join),
    )
)
def test_x_always_agrees_with_twitter_text(text: str) -> None:
    """The shortcut for text without emoji gives exactly twitter-text's count."""
    assert x_length(text) == parse_tweet(text).weightedLength
    assert x_length(text, 0) == twitter_text_length(text, 0)


def test_x_configured_url_weight() -> None:
    assert x_length(LINK, url_weight=30) == 30
    # 0: every character of the link counts.
    assert x_length(f"zie {LINK}", url_weight=0) == 4 + len(LINK)


def test_x_limit_boundary() -> None:
    counted = counter(X)
    assert counted("a" * 257 + " " + LINK[:40]) == 257 + 1 + 23
    assert counted("中" * 140) == 280
    assert counted("中" * 141) > X.limit


# Mastodon -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (LINK, 23),  # an http(s) URL counts 23
        (f"Lees {LINK} nu", 5 + 23 + 3),
        ("bevolkingsdaling.nl", len("bevolkingsdaling.nl")),  # no scheme: counted in full
        (FAMILY, 1),  # grapheme clusters
        (FLAG_NL + FLAG_NL, 2),
        (E_ACUTE * 3, 3),
        ("@wrb@social.overheid.nl", 4),  # a remote mention counts as its local part
        ("a" * 500, 500),
    ],
)
def test_mastodon_length(text: str, expected: int) -> None:
    assert mastodon_length(text) == expected
    assert length(MASTODON, text) == expected


def test_mastodon_instance_url_weight_from_config() -> None:
    assert length(replace(MASTODON, url_weight=30), f"x {LINK}") == 2 + 30
    assert length(replace(MASTODON, url_weight=0), LINK) == len(LINK)


# Bluesky -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FAMILY, 1),  # a ZWJ family is one grapheme
        (FLAG_NL, 1),  # a flag is one grapheme
        (FLAG_NL * 3, 3),
        (THUMB, 1),
        (E_ACUTE, 1),  # combining mark
        ("क्षि", 1),  # Devanagari conjunct (Unicode 15.1 grapheme rules)
        ("नमस्ते", 3),
        ("日本語", 3),
        (LINK, len(LINK)),  # the link counts in full
        ("a\r\nb", 3),  # CR LF is one grapheme
    ],
)
def test_bluesky_graphemes(text: str, expected: int) -> None:
    assert bluesky_length(text) == expected
    assert grapheme_length(text) == expected
    assert length(BLUESKY, text) == expected


# LinkedIn and Threads ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("café", 4),
        ("😷", 2),  # one code point outside the BMP: two UTF-16 units
        (FAMILY, 11),
        (LINK, len(LINK)),
        ("a" * 3000, 3000),
    ],
)
def test_linkedin_characters(text: str, expected: int) -> None:
    assert character_length(text) == expected
    assert length(LINKEDIN, text) == expected
    assert length(THREADS, text) == expected


def test_character_count_is_never_below_code_points_or_graphemes() -> None:
    for text in (FAMILY, FLAG_NL, E_ACUTE, "क्षि", "plain"):
        assert character_length(text) >= len(text) >= grapheme_length(text)


# Shortening ---------------------------------------------------------------------------------


def simple_render(parts: Parts) -> str:
    lines = [parts.title]
    if parts.summary:
        lines.append(parts.summary)
    lines.append("https://www.bevolkingsdaling.nl/berichten/item/")
    if parts.hashtags:
        lines.append(" ".join(parts.hashtags))
    return "\n\n".join(lines)


def test_fit_keeps_a_post_that_fits() -> None:
    parts = Parts("Titel", "Korte samenvatting.", ("#krimp",))
    fitted = fit(simple_render, parts, counter(X), X.limit)
    assert fitted.parts == parts and not fitted.shortened and fitted.fits


def test_fit_shortens_the_summary_first_at_a_word_boundary() -> None:
    summary = "Een samenvatting met veel woorden " * 12
    fitted = fit(simple_render, Parts("Titel", summary.strip(), ("#krimp",)), counter(X), 280)
    assert fitted.fits and fitted.parts.title == "Titel"
    assert fitted.parts.summary.endswith(ELLIPSIS)
    assert summary.startswith(fitted.parts.summary[:-1])
    assert summary[len(fitted.parts.summary) - 1] == " "  # cut before a space
    assert fitted.parts.hashtags == ("#krimp",)


def test_fit_then_shortens_the_title_and_keeps_hashtags() -> None:
    title = "Een zeer lange titel " * 20
    fitted = fit(simple_render, Parts(title.strip(), "Samenvatting.", ("#krimp",)), counter(X), 280)
    assert fitted.fits
    assert fitted.parts.summary == ""
    assert fitted.parts.title.endswith(ELLIPSIS)
    assert fitted.parts.hashtags == ("#krimp",)


def test_fit_cuts_an_emoji_title_between_clusters() -> None:
    title = (FLAG_NL + FAMILY + THUMB) * 60  # no spaces at all
    for p in (X, BLUESKY):
        fitted = fit(simple_render, Parts(title, "", ()), counter(p), p.limit)
        assert fitted.fits
        kept = graphemes(fitted.parts.title)[:-1]
        assert kept == graphemes(title)[: len(kept)]


def test_fit_never_cuts_a_long_url_token() -> None:
    title = "https://www.example.nl/" + "a" * 400
    fitted = fit(simple_render, Parts(title, "", ("#krimp",)), counter(BLUESKY), 300)
    assert title not in fitted.text or not fitted.fits
    assert "https://www.example.nl/a" not in fitted.parts.title or fitted.parts.title == title


def test_fit_reports_when_nothing_fits() -> None:
    fitted = fit(simple_render, Parts("Titel", "Samenvatting", ()), counter(BLUESKY), 10)
    assert not fitted.fits and fitted.length > 10


def test_shortenings_drop_trailing_punctuation() -> None:
    assert shortenings("Eerste deel, tweede deel") == [
        "Eerste deel, tweede…",
        "Eerste deel…",
        "Eerste…",
    ]
    # A URL token keeps its characters as they are.
    assert shortenings("zie example.com/a-, daarna") == ["zie example.com/a-,…", "zie…"]


# Properties ---------------------------------------------------------------------------------

PIECES = [
    "krimp",
    "woningmarkt",
    "Bevolkingsdaling",
    FAMILY,
    FLAG_NL,
    THUMB,
    E_ACUTE,
    "क्षि",
    "日本語",
    "https://example.com/pad?x=1",
    "bevolkingsdaling.nl",
    "#krimp",
    "@wrb@social.overheid.nl",
    "—",
    ",",
    ".",
    "…",
    "\u0600",  # a prepended concatenation mark: joins the cluster after it
    "\u0301",
    "\u200d",
]
WHITESPACE = [" ", " ", " ", "\n", "\u00a0"]
texts = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.sampled_from(WHITESPACE),
        st.text(min_size=1, max_size=6),
    ),
    max_size=60,
).map("".join)
titles = texts.filter(lambda t: t.strip() != "")


def _protected(token: str) -> bool:
    from pipeline.social.shortening import _protected as protected

    return protected(token)


def assert_clean_cut(original: str, shortened: str, *, inside_first_word: bool) -> None:
    """`shortened` is `original`, or a cluster-aligned prefix of it plus "…", cut at a word
    boundary (or inside an unprotected first word), never inside a URL or hashtag."""
    if shortened in ("", original):
        return
    assert shortened.endswith(ELLIPSIS)
    kept = graphemes(shortened)[:-1]
    clusters = graphemes(original)
    assert kept == clusters[: len(kept)], "cut inside a grapheme cluster"
    following = clusters[len(kept)]
    tokens = "".join(kept).split()
    at_boundary = following[0].isspace() or following in ",;:-–—"
    if not at_boundary:
        assert inside_first_word, "cut inside a word"
        leading = 0
        while leading < len(kept) and kept[leading][0].isspace():
            leading += 1
        assert not any(c[0].isspace() for c in kept[leading:]), "cut inside a later word"
        whole_first = original.split()[0] if original.split() else ""
        assert not _protected(whole_first), "cut inside a URL, hashtag or mention"
    else:
        # Every protected token kept is a whole token of the original.
        original_tokens = original.split()
        for token in tokens[:-1]:
            assert token in original_tokens
        # A cut inside an unprotected first word may end in a domain once the punctuation
        # after it is dropped ("bevolkingsdaling.nl—x…" → "bevolkingsdaling.nl…").
        inside_first = (
            inside_first_word
            and len(tokens) == 1
            and bool(original_tokens)
            and not _protected(original_tokens[0])
        )
        if tokens and _protected(tokens[-1]) and not inside_first:
            assert tokens[-1] in original_tokens, "cut inside a URL, hashtag or mention"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=titles,
    summary=texts,
    hashtags=st.lists(st.sampled_from(["#krimp", "#woningmarkt", "#ParkstadLimburg"]), max_size=3),
    which=st.sampled_from(ALL),
)
def test_fit_always_fits_and_never_splits(
    title: str, summary: str, hashtags: list[str], which: SocialPlatform
) -> None:
    parts = Parts(title, summary, tuple(hashtags))
    fitted = fit(simple_render, parts, counter(which), which.limit)
    assert fitted.fits, (fitted.length, which.limit, fitted.text)
    assert fitted.length == length(which, fitted.text)
    assert_clean_cut(parts.summary, fitted.parts.summary, inside_first_word=False)
    assert_clean_cut(parts.title, fitted.parts.title, inside_first_word=True)
    assert fitted.parts.hashtags == parts.hashtags[: len(fitted.parts.hashtags)]


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_every_shortening_is_a_clean_cut(text: str) -> None:
    previous = None
    for candidate in shortenings(text, inside_first_word=True):
        assert_clean_cut(text, candidate, inside_first_word=True)
        assert candidate != previous
        previous = candidate


_PIECES = st.characters(max_codepoint=0x24F).map(str) | st.sampled_from(
    ["’", "“", "”", "–", "—", "…", "€", "\r\n", "\r", "\u200d", "\u0301", "🏡", "🇳🇱", "각"]
)


@settings(max_examples=500, deadline=None)
@given(text=st.lists(_PIECES).map("".join))
def test_the_fast_grapheme_path_agrees_with_full_segmentation(text: str) -> None:
    """Dutch text takes a shortcut past `\\X`; any text, shortcut or not, gets the same answer."""
    from pipeline.social.counting import _GRAPHEME, grapheme_length, graphemes

    assert graphemes(text) == _GRAPHEME.findall(text)
    assert grapheme_length(text) == len(_GRAPHEME.findall(text))


_URL_WORDS = st.sampled_from(
    [
        "krimp",
        "regio.",
        "bevolkingsdaling.nl",
        "www.rijksoverheid.nl/onderwerpen",
        "https://www.bevolkingsdaling.nl/wrb/a?utm_source=x&b=1",
        "(zie",
        "krimp.nl)",
        "http://x.org.",
        "@naam@social.example",
        "#Krimp",
        "e-mail:info@krimp.nl",
        "a.b",
        "1.5",
        "t.co/abc",
        "$krimp.nl",
        "„citaat”",
        "🏡",
        "é.nl",
        "xn--bcher-kva.de",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(
    words=st.lists(_URL_WORDS | st.text(max_size=8), max_size=12),
    gaps=st.lists(st.sampled_from([" ", "\n", "  ", "\t", "\u00a0"]), min_size=12, max_size=12),
    bare=st.booleans(),
)
def test_urls_found_word_by_word_equal_a_whole_text_extraction(
    words: list[str], gaps: list[str], bare: bool
) -> None:
    from pipeline.social.counting import _text_urls, url_spans

    text = "".join(w + g for w, g in zip(words, gaps, strict=False))
    assert url_spans(text, bare_domains=bare) == _text_urls(text, bare)


def test_counting_warns_about_nothing() -> None:
    """twitter-text-parser imports the deprecated pkg_resources; a `krimppost run` job under
    Python 3.12 printed that warning whenever it counted a post."""
    import subprocess
    import sys

    code = (
        "from pipeline.social.counting import x_length, mastodon_length, twitter_text_length;"
        "x_length('Zie https://example.nl 😀'); mastodon_length('https://a.nl');"
        "twitter_text_length('krimp', 0)"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
