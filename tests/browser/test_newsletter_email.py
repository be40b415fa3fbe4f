"""The newsletter e-mail itself (message.html), as a phone and a desktop mail app show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Target, Visitor, axe_violations, describe
from .test_responsive import OVERFLOW

pytestmark = pytest.mark.browser

EMAIL = Target("nieuwsbrief-email", "/newsletters/0001/message.html", origin="outbox")

# Every visible element with its own text, and its computed font size.
SMALL_TEXT = """() => {
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const style = getComputedStyle(el);
    const r = el.getBoundingClientRect();
    if (style.display === 'none' || style.visibility === 'hidden' || !r.width || !r.height
        || parseFloat(style.opacity) === 0 || parseFloat(style.maxHeight) === 0) continue;
    const size = parseFloat(style.fontSize);
    if (size < 14) out.push(`${el.tagName.toLowerCase()} ${size}px: ${el.textContent.trim().slice(0, 40)}`);
  }
  return out;
}"""

# Every image must stay inside the table cell (column) that holds it.
IMAGES_IN_COLUMN = """() => {
  const out = [];
  for (const img of document.images) {
    const cell = img.closest('td') || document.body;
    const a = img.getBoundingClientRect(), b = cell.getBoundingClientRect();
    if (a.left < b.left - 0.5 || a.right > b.right + 0.5) {
      out.push(`${img.alt || img.src}: ${Math.round(a.left)}-${Math.round(a.right)} in ${Math.round(b.left)}-${Math.round(b.right)}`);
    }
  }
  return {count: document.images.length, outside: out};
}"""


@pytest.mark.parametrize(("width", "scale"), [(320, 1), (375, 1), (600, 1), (300, 2), (640, 2)])
def test_email_fits_every_width(
    visit: Visitor, screenshots: Path, width: int, scale: float
) -> None:
    """320-600 px mail panes, and 200% zoom of 600 and 1280 px panes (half the CSS width at
    device pixel ratio 2): no sideways scrolling, images inside their column, text >= 14 px."""
    page = visit.open(EMAIL, width, scale=scale)
    page.screenshot(
        path=screenshots / f"nieuwsbrief-email-{width}px-x{scale:g}.png", full_page=True
    )
    overflow = page.evaluate(OVERFLOW)
    assert overflow["scrollWidth"] <= overflow["innerWidth"] and not overflow["elements"], overflow
    images = page.evaluate(IMAGES_IN_COLUMN)
    assert images["count"] >= 1 and images["outside"] == [], images
    assert page.evaluate(SMALL_TEXT) == []
    assert not visit.problems


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_email_is_accessible_in_light_and_dark_mode(
    visit: Visitor, screenshots: Path, scheme: str
) -> None:
    page = visit.open(EMAIL, 375)
    page.emulate_media(color_scheme=scheme)
    page.screenshot(path=screenshots / f"nieuwsbrief-email-{scheme}.png", full_page=True)
    violations = axe_violations(page)
    page.emulate_media(color_scheme="light")
    assert violations == [], describe(violations)
