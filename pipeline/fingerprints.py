"""Fingerprints of krimppost's own code: caches and keys made by one version are not trusted
by another."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@functools.cache
def code_fingerprint(subpackage: str = "") -> str:
    """A hash of the Python sources of `pipeline` or of one of its subpackages (`content`,
    `social`); read once per process."""
    h = hashlib.blake2b(digest_size=8)
    for source in sorted((_PACKAGE / subpackage).rglob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()
