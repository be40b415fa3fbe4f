"""Every CSV the project writes: cells a spreadsheet would run as a formula are neutralised.

OWASP's advice for CSV injection: a cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return gets a leading `'`, so that Excel, LibreOffice and Google Sheets show the
text instead of evaluating it (`=cmd|'/C calc'!A0@example.nl` is a valid e-mail address).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A value that itself starts with quotes before a formula start (`'-a@example.nl` is a
    # valid address) gets one more, so that `uncell` gives it back whole.
    return "'" + text if text.lstrip("'").startswith(FORMULA_START) else text


def uncell(text: str) -> str:
    """The value behind a cell this module wrote (so an export can be imported again)."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_START):
        return text[1:]
    return text


class SafeWriter:
    """`csv.writer` whose rows are neutralised cell by cell."""

    def __init__(self, handle: Any, **options: Any) -> None:
        self._writer = csv.writer(handle, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([cell(value) for value in row])
