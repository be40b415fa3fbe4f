"""What one output of a build is, and how its key is made: the vocabulary every renderer
uses to list its files (the table of them all is `outputs.py`, one level up)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple


class Output(NamedTuple):  # a tuple: a build makes one per file, 6,000 and more
    """One file of the outbox: where it goes, what it depends on, how to make it."""

    path: str  # relative to outbox/
    key: str
    produce: Callable[[], bytes]
    stage: int = 1  # commit order: assets and pages before the listings and feeds that link them


def key_of(*parts: object) -> str:
    """A key of everything an output depends on: it is rendered again when the key changes."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\x1f")
    return h.hexdigest()
