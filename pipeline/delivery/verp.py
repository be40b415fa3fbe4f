"""VERP: an envelope sender per delivery, so a bounce names the delivery it is about.

The id in `[bounces] return_path` (`bounce+{id}@…`) encodes (issue, subscriber) so that
nothing needs storing per message, yet it is opaque and cannot be forged:

    id = base32(tag ‖ (issue ‖ subscriber) XOR pad),  tag = HMAC(key, issue ‖ subscriber)[:6],
                                                       pad = HMAC(key, tag)[:8]

Without the key the numbers cannot be read from the id, and an id made up or changed by
anyone else fails the tag check. Lower-case base32: receiving servers may change the case
of a local part, and a local part keeps under the 64 characters of RFC 5321.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from typing import Any

from pipeline.config import Config

_TAG = 6
_NUMBERS = struct.Struct(">II")
_ID_LENGTH = 23  # 14 bytes in base32 without padding


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def delivery_id(key: bytes, issue: int, subscriber: int) -> str:
    numbers = _NUMBERS.pack(issue, subscriber)
    tag = _mac(key, b"verp" + numbers)[:_TAG]
    pad = _mac(key, b"pad" + tag)[: len(numbers)]
    hidden = bytes(a ^ b for a, b in zip(numbers, pad, strict=True))
    return _encode(tag + hidden)


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def parse_id(key: bytes, text: str) -> tuple[int, int] | None:
    """(issue, subscriber) of a delivery id, or None when it is not one of ours."""
    if len(text) != _ID_LENGTH:
        return None
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return None
    if _encode(raw) != text.lower():  # the last letter's unused bits: one spelling only
        return None
    tag, hidden = raw[:_TAG], raw[_TAG:]
    pad = _mac(key, b"pad" + tag)[: len(hidden)]
    numbers = bytes(a ^ b for a, b in zip(hidden, pad, strict=True))
    if not hmac.compare_digest(_mac(key, b"verp" + numbers)[:_TAG], tag):
        return None
    issue, subscriber = _NUMBERS.unpack(numbers)
    return issue, subscriber


def key_of(store: Any) -> bytes:
    """The VERP key of a store (a SubscriberStore), made once and kept in delivery_meta."""
    return bytes.fromhex(store.meta("verp_key"))


def return_path(config: Config, key: bytes, issue: int, subscriber: int) -> str:
    """The envelope sender of one delivery (`[smtp] envelope_from` without a return path)."""
    pattern = config.bounces.return_path
    if not pattern:
        return config.smtp.envelope_from
    return pattern.replace("{id}", delivery_id(key, issue, subscriber))


def matcher(config: Config) -> re.Pattern[str] | None:
    """A pattern that finds the id in an address made by `return_path` (any case)."""
    pattern = config.bounces.return_path
    if not pattern:
        return None
    before, _, after = pattern.partition("{id}")
    return re.compile(re.escape(before) + r"([a-z2-7]{23})" + re.escape(after), re.IGNORECASE)
