"""Reflow (WCAG 1.4.10) and zoom (WCAG 1.4.4): no horizontal scrolling on narrow screens."""

from __future__ import annotations

import pytest

from .conftest import DESKTOP, Target, Visitor, target_params

pytestmark = pytest.mark.browser

# Every element sticking out to the right of the viewport, except inside an element that
# scrolls horizontally itself (data tables and code blocks may, WCAG 1.4.10 exempts them).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = el => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x === 'auto' || x === 'scroll') return true;
    }
    return false;
  };
  const name = el => el.tagName.toLowerCase()
    + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : '');
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (scrolls(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 0.5) {
      out.push(`${name(el)} reaches ${Math.round(r.right)} px`);
    }
    // Text too wide for its box (a long word, an e-mail address) overflows without moving
    // the box itself; only the innermost such element is reported.
    const x = getComputedStyle(el).overflowX;
    if (x === 'visible' && el.scrollWidth > el.clientWidth + 1 && el.clientWidth
        && ![...el.children].some(c => c.scrollWidth > c.clientWidth + 1 && c.clientWidth)) {
      out.push(`${name(el)}: content ${el.scrollWidth} px in ${el.clientWidth} px:`
               + ` "${el.textContent.trim().slice(0, 60)}"`);
    }
  }
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    elements: out.slice(0, 10),
  };
}"""


def assert_no_horizontal_scrolling(visit: Visitor, target: Target, width: int, scale: float):
    page = visit.open(target, width, scale=scale)
    found = page.evaluate(OVERFLOW)
    assert found["innerWidth"] == width
    assert found["scrollWidth"] <= found["innerWidth"] and not found["elements"], (
        f"{page.url} at {width} CSS px scrolls sideways: {found}"
    )
    assert not visit.problems


@pytest.mark.parametrize("target", target_params())
def test_reflow_at_320_px(target: Target, visit: Visitor) -> None:
    """WCAG 1.4.10 reflow: 320 CSS px (a 1280 px window at 400%) without sideways scrolling."""
    assert_no_horizontal_scrolling(visit, target, 320, scale=1)


@pytest.mark.parametrize("target", target_params())
def test_zoom_200_percent(target: Target, visit: Visitor) -> None:
    """200% ZOOM, emulated: a 1280 px window zoomed to 200% lays out 640 CSS px at a device
    pixel ratio of 2, which is what this viewport is. Text must stay readable without
    sideways scrolling (WCAG 1.4.4, 1.4.10)."""
    assert_no_horizontal_scrolling(visit, target, DESKTOP // 2, scale=2)


def test_overflow_check_finds_overflow(visit: Visitor) -> None:
    """The check can fail: a too wide box and a too long word put into a page are found."""
    page = visit.open(Target("home", "/"), 320)
    page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
          '<div style="width: 500px">Breed blok</div>'
          + '<p style="overflow-wrap: normal">Toegankelijkheidsverklaringsonderzoeksrapport</p>')"""
    )
    found = page.evaluate(OVERFLOW)
    assert found["scrollWidth"] > 320
    assert any(e.startswith("div reaches") for e in found["elements"])
    assert any(e.startswith("p: content") for e in found["elements"])
