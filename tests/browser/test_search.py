"""The search page (issue 18): Pagefind in Chromium, the parts of the index merged, the
query typed as a reader types it, results read off the page, axe-core on the results."""

from __future__ import annotations

import pytest

from .conftest import WIDTHS, BuiltSite, Target, Visitor, axe_violations, describe

SEARCH = Target("zoeken", "/zoeken/")


def results(page) -> list[str]:  # type: ignore[no-untyped-def]
    page.wait_for_function(
        "() => { const s = document.getElementById('zoekstatus').textContent;"
        " return s && !s.startsWith('Bezig'); }"
    )
    return page.locator("#zoekresultaten li h2 a").all_inner_texts()


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_a_typed_query_finds_the_item_with_that_word_in_its_body(
    width: str, visit: Visitor, site: BuiltSite
) -> None:
    page = visit.open(SEARCH, WIDTHS[width])
    page.get_by_label("Zoek in alle berichten").fill("woonafspraken")
    page.keyboard.press("Enter")
    found = results(page)
    assert found == ["Terugblik masterclassreeks wonen: regionale samenwerking is de sleutel"]
    status = page.locator("#zoekstatus").inner_text()
    assert status == "1 resultaat voor ‘woonafspraken’."
    hit = page.locator("#zoekresultaten li").first
    assert "woonafspraken" in hit.locator("mark").first.inner_text().lower()
    meta = hit.locator(".meta").inner_text()
    assert meta.startswith("5 november 2026 · "), meta
    assert page.url.endswith("?q=woonafspraken")  # a search can be shared
    violations = axe_violations(page)
    assert not violations, f"{page.url} with results:\n{describe(violations)}"
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    hit.locator("h2 a").click()
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text() == found[0]
    assert not visit.problems


@pytest.mark.browser
def test_every_part_of_the_index_is_searched(visit: Visitor, site: BuiltSite) -> None:
    """The sample is indexed in parts of four items: a word that every part has finds items
    from each of them."""
    parts = sorted(p.name for p in (site.root / "zoeken" / "index").iterdir())
    assert len(parts) >= 4, parts
    page = visit.open(SEARCH, WIDTHS["desktop"])
    page.get_by_label("Zoek in alle berichten").fill("regio")
    page.keyboard.press("Enter")
    found = results(page)
    assert len(found) >= 8, found
    assert not visit.problems


@pytest.mark.browser
@pytest.mark.parametrize(
    ("word", "title"),
    [
        ("langjarige", "Nieuw WRB-essay over de toekomst van regio's met een dalende bevolking"),
        ("dorpscoaches", "Concept: vrijwilligerswerk als dragende kracht in kleine kernen"),
    ],
    ids=["under embargo", "draft"],
)
def test_nothing_embargoed_or_draft_is_found(word: str, title: str, visit: Visitor) -> None:
    """A word only the embargoed or the draft item has: not found. Pagefind then offers
    items with a word that begins like it, and the page says that is what they are."""
    page = visit.open(SEARCH, WIDTHS["desktop"])
    page.get_by_label("Zoek in alle berichten").fill(word)
    page.keyboard.press("Enter")
    found = results(page)
    assert title not in found
    status = page.locator("#zoekstatus").inner_text()
    assert status == f"Geen resultaten voor ‘{word}’." or status.startswith(
        f"Geen berichten met ‘{word}’; wel "
    ), status


@pytest.mark.browser
def test_the_search_field_in_the_header_leads_to_the_results(visit: Visitor) -> None:
    page = visit.open(Target("home", "/"), WIDTHS["desktop"])
    page.get_by_role("search").get_by_label("Zoeken in alle berichten").fill("concessieverlener")
    page.get_by_role("search").get_by_role("button", name="Zoeken").click()
    page.wait_for_url("**/zoeken/?q=concessieverlener")
    assert results(page) == [
        "WRB-bevinding: bereikbaarheid weegt zwaarder dan het aantal voorzieningen"
    ]
    assert page.get_by_label("Zoek in alle berichten").input_value() == "concessieverlener"


@pytest.mark.browser
def test_without_javascript_the_page_says_so_politely(browser, site: BuiltSite, origins) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False, locale="nl-NL")
    try:
        page = context.new_page()
        page.goto(origins["site"] + "/zoeken/")
        text = page.locator("main").inner_text()
        assert "Zoeken werkt met JavaScript, en dat staat in uw browser uit." in text
        assert page.get_by_role("link", name="archief").count() >= 1
    finally:
        context.close()


@pytest.mark.browser
def test_the_menu_folds_behind_a_button_on_a_phone(visit: Visitor) -> None:
    page = visit.open(Target("home", "/"), WIDTHS["telefoon"])
    button = page.get_by_role("button", name="Menu")
    menu = page.get_by_role("navigation", name="Hoofdmenu")
    assert button.is_visible()
    assert button.get_attribute("aria-expanded") == "false"
    assert not menu.get_by_role("link", name="Archief").is_visible()
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    assert menu.get_by_role("link", name="Archief").is_visible()
    violations = axe_violations(page)
    assert not violations, describe(violations)
    desktop = visit.open(Target("home", "/"), WIDTHS["desktop"])
    assert not desktop.get_by_role("button", name="Menu").is_visible()
    assert (
        desktop.get_by_role("navigation", name="Hoofdmenu")
        .get_by_role("link", name="Archief")
        .is_visible()
    )
