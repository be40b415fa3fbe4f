"""The preference page in Chromium: axe-core clean, usable at 320 px, and a change of tracks
made by clicking reaches the state store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from test_serve import World, serving

from conftest import Project

from .conftest import REPO, VIEWPORT_HEIGHT, axe_violations, describe

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ADDRESS = "lezer@example.nl"


@pytest.fixture
def world(project: Project) -> Iterator[World]:
    with serving(project) as world:
        # the site's stylesheet, so that contrast and reflow are judged on the styled page
        shutil.copytree(REPO / "templates" / "static", project.root / "outbox/site/static")
        yield world


@pytest.mark.browser
def test_preference_page_is_accessible_and_saves_tracks(world: World, browser: Browser) -> None:
    token = world.add(ADDRESS)
    url = f"http://127.0.0.1:{world.server.port}/voorkeuren/{token}"
    for width in (320, 1280):
        context = browser.new_context(
            bypass_csp=True,  # the app's Content-Security-Policy would block axe's script
            viewport={"width": width, "height": VIEWPORT_HEIGHT},
            locale="nl-NL",
            timezone_id="Europe/Amsterdam",
        )
        try:
            page = context.new_page()
            response = page.goto(url, wait_until="load")
            assert response is not None and response.status == 200
            assert page.evaluate("getComputedStyle(document.body).margin") == "0px", "stijl.css"
            assert page.locator("h1").count() == 1
            # no sideways scrolling at 320 px (WCAG 1.4.10)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            violations = axe_violations(page)
            assert not violations, f"{url} at {width} px:\n{describe(violations)}"
            if width != 320:
                continue
            page.get_by_label("Woningmarkt in krimpregio's").check()
            page.get_by_label("Klimaat- en energietransitie").check()
            page.get_by_role("button", name="Onderwerpen opslaan").click()
            status = page.get_by_role("status")
            status.wait_for()
            assert "Je onderwerpen zijn opgeslagen" in status.inner_text()
            assert page.get_by_label("Woningmarkt in krimpregio's").is_checked()
            violations = axe_violations(page)
            assert not violations, f"after saving at {width} px:\n{describe(violations)}"
        finally:
            context.close()
    assert world.rows("SELECT tracks FROM subscribers WHERE email = ?", ADDRESS) == [
        (",woningmarkt,energietransitie,",)
    ]
