"""Sanitised HTML -> plain text: the bottom of the content layer, so that the item model can
derive an item's text without importing the Markdown converter that made its HTML."""

from __future__ import annotations

import html as htmllib
import re

import nh3

_BLANKS = re.compile(r"\n{3,}")


def html_to_text(html: str) -> str:
    text = htmllib.unescape(nh3.clean(html, tags=set()))
    return _BLANKS.sub("\n\n", text).strip()
