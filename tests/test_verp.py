"""The VERP id of a delivery: round trip, opaque, unforgeable (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.delivery import verp

numbers = st.integers(min_value=0, max_value=2**32 - 1)
keys = st.binary(min_size=16, max_size=32)


@given(keys, numbers, numbers)
def test_an_id_reads_back_as_its_delivery_in_any_case(key: bytes, issue: int, sid: int) -> None:
    made = verp.delivery_id(key, issue, sid)
    assert len(made) == 23 and made == made.lower() and made.isalnum()
    assert verp.parse_id(key, made) == (issue, sid)
    assert verp.parse_id(key, made.upper().lower()) == (issue, sid)


@given(keys, keys, numbers, numbers)
def test_another_store_key_does_not_read_it(key: bytes, other: bytes, issue: int, sid: int) -> None:
    if key != other:
        assert verp.parse_id(other, verp.delivery_id(key, issue, sid)) is None


@given(
    keys,
    numbers,
    numbers,
    st.integers(min_value=0, max_value=22),
    st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"),
)
def test_a_changed_letter_is_no_id(key: bytes, issue: int, sid: int, at: int, letter: str) -> None:
    made = verp.delivery_id(key, issue, sid)
    changed = made[:at] + letter + made[at + 1 :]
    if changed != made:
        assert verp.parse_id(key, changed) is None


@given(keys, st.text(max_size=40))
def test_any_text_is_refused_or_read_never_raises(key: bytes, text: str) -> None:
    assert verp.parse_id(key, text) is None or len(text) == 23


def test_neighbouring_deliveries_share_nothing_visible() -> None:
    key = b"k" * 32
    a, b = verp.delivery_id(key, 1, 1000), verp.delivery_id(key, 1, 1001)
    assert sum(x == y for x, y in zip(a, b, strict=True)) < 8
