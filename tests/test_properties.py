"""Property-based: any front matter and any bytes give a valid item or reported errors, never a crash."""

from __future__ import annotations

from datetime import date, datetime

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.content.fields import ALLOWED_KEYS, ReaderSettings
from pipeline.content.reader import parse_item

SETTINGS = ReaderSettings(
    tracks=("wrb", "woningmarkt", "energietransitie"),
    timezone="Europe/Amsterdam",
    base_url="https://www.bevolkingsdaling.nl/",
    fingerprint="test",
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.dates().map(date.isoformat)
    | st.datetimes().map(datetime.isoformat)
    | st.sampled_from(["news", "event", "podcast", "wrb", "2026-02-30", "00:10:00", "../x", "/"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(max_size=10) | st.sampled_from(ALLOWED_KEYS), children, max_size=4
        )
    ),
    max_leaves=12,
)
front_matter = st.dictionaries(
    st.sampled_from([*ALLOWED_KEYS, "start", "titel"]) | st.text(max_size=12), values, max_size=12
)


def assert_sound(result) -> None:  # type: ignore[no-untyped-def]
    assert (result.item is None) != (not result.problems)
    for problem in result.problems:
        assert "interne fout" not in problem.message, problem
        assert problem.path == "content/x.md"
        assert problem.line is None or problem.line >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(front_matter, st.text(max_size=200))
def test_arbitrary_front_matter(data: dict, body: str) -> None:
    text = "---\n" + yaml.safe_dump(data, allow_unicode=True) + "---\n" + body
    assert_sound(parse_item("content/x.md", text.encode("utf-8", "surrogatepass"), SETTINGS))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    assert_sound(parse_item("content/x.md", data, SETTINGS))
    assert_sound(parse_item("content/x.md", b"---\n" + data, SETTINGS))
    assert_sound(parse_item("content/x.md", b"---\ntitle: x\n" + data + b"\n---\n", SETTINGS))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_front_matter(text: str) -> None:
    assert_sound(
        parse_item(
            "content/x.md", f"---\n{text}\n---\nbody".encode("utf-8", "surrogatepass"), SETTINGS
        )
    )


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=400))
def test_body_never_keeps_scripts(body: str) -> None:
    text = (
        "---\ntitle: t\ndate: 2026-01-01\nkind: news\ntrack: wrb\nsummary: s\n---\n"
        + body
        + "\n<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(1)>"
    )
    result = parse_item("content/x.md", text.encode("utf-8", "surrogatepass"), SETTINGS)
    assert result.item is not None
    html = result.item.html.lower()
    assert "<script" not in html
    assert "javascript:" not in html
    assert "onerror" not in html
