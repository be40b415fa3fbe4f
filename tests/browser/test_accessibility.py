"""WCAG 2.1 A/AA with axe-core in Chromium, screenshots, and the accessibility statement."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .conftest import (
    DESKTOP,
    NOW,
    REPO,
    WIDTHS,
    BuiltSite,
    Target,
    Visitor,
    axe_violations,
    describe,
    target_params,
)


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("target", target_params())
def test_no_wcag21aa_violations(
    target: Target, width: str, visit: Visitor, screenshots: Path
) -> None:
    """Each page at phone and desktop width: a screenshot for people, axe-core for WCAG."""
    page = visit.open(target, WIDTHS[width])
    page.screenshot(path=screenshots / f"{target.name}-{width}.png", full_page=True)
    # The stylesheet must have loaded, or the contrast checks would judge an unstyled page.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px", "stijl.css"
    violations = axe_violations(page)
    assert not violations, f"{page.url} at {WIDTHS[width]} px:\n{describe(violations)}"
    assert not visit.problems


@pytest.mark.browser
def test_axe_reports_known_violations(visit: Visitor) -> None:
    """The check can fail: faults put into a good page are reported."""
    page = visit.open(Target("home", "/"), DESKTOP)
    page.evaluate(
        """() => {
          document.documentElement.removeAttribute('lang');
          document.querySelector('main').insertAdjacentHTML('beforeend',
            '<img src="data:,"><p style="color: #aaaaaa">Lichtgrijze tekst</p>');
        }"""
    )
    found = {v["id"] for v in axe_violations(page)}
    assert {"html-has-lang", "image-alt", "color-contrast"} <= found


@pytest.mark.browser
def test_every_item_page_has_no_violations(visit: Visitor, site: BuiltSite) -> None:
    """Beyond one page per kind: every other published item of the sample content."""
    checked = set(site.item_paths.values())
    failures = []
    for path in site.all_item_paths:
        if path in checked:
            continue
        page = visit.open(Target("bericht", path), DESKTOP)
        violations = axe_violations(page)
        if violations or visit.problems:
            failures.append(f"{page.url}: {visit.problems}\n{describe(violations)}")
    assert not failures, "\n".join(failures)


@pytest.mark.browser
def test_statement_is_linked_and_complete(visit: Visitor) -> None:
    """The statement as a reader sees it, with the sample config's values."""
    home = visit.open(Target("home", "/"), DESKTOP)
    link = home.get_by_role("contentinfo").get_by_role("link", name="Toegankelijkheid")
    assert link.get_attribute("href") == "/toegankelijkheid/"
    link.click()
    home.wait_for_url("**/toegankelijkheid/")
    text = " ".join(home.inner_text("main").split())
    title = home.get_by_role("heading", level=1).inner_text()
    assert title.replace("\u00ad", "") == "Toegankelijkheidsverklaring"  # soft hyphen on phones
    for expected in (
        "Ministerie van Binnenlandse Zaken en Koninkrijksrelaties",
        urlsplit(visit.origins["site"]).netloc,  # the domain: the site's base_url
        "voldoet gedeeltelijk",
        "27 november 2026",
        "Pdf-bijlagen van onderzoeksbureaus",
        "redactie@bevolkingsdaling.nl",
        "Nationale ombudsman",
    ):
        assert expected in text
    headings = home.get_by_role("heading", level=2).all_inner_texts()
    assert headings == [
        "Nalevingsstatus",
        "Opstelling van deze verklaring",
        "Bekende beperkingen",
        "Feedback en contactgegevens",
        "Handhavingsprocedure",
    ]
    assert home.get_by_role("link", name="Nationale ombudsman").get_attribute("href") == (
        "https://www.nationaleombudsman.nl/"
    )
    assert home.get_by_role("link", name="redactie@bevolkingsdaling.nl").count() >= 1


# The statement for other configurations: rendered without a browser (fast, runs always).


def _statement(tmp_path: Path, accessibility: str) -> str:
    from pipeline.config import load_config
    from pipeline.render import templates
    from pipeline.render.site import Site

    root = tmp_path / "project"
    root.mkdir()
    config_text = (REPO / "config.toml").read_text(encoding="utf-8")
    head = config_text.split("[accessibility]")[0]
    tail = config_text.split("[accessibility]")[1].split("\n[", 1)[1]
    (root / "config.toml").write_text(
        f"{head}[accessibility]\n{accessibility}\n\n[{tail}", encoding="utf-8"
    )
    shutil.copytree(REPO / "templates", root / "templates")
    config = load_config(root)
    dirs = templates.template_dirs(config.templates_dir)
    site = Site(config, lambda: templates.environment(dirs, config.site.tz), dirs, (), NOW, "")
    (output,) = [o for o in site.outputs() if o.path == "site/toegankelijkheid/index.html"]
    html = output.produce().decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html.split("<main", 1)[1]).split())


@pytest.mark.parametrize(
    ("status", "says"),
    [
        ("volledig", "voldoet volledig"),
        ("gedeeltelijk", "voldoet gedeeltelijk"),
        ("niet", "voldoet niet"),
    ],
)
def test_statement_follows_the_configured_status(tmp_path: Path, status: str, says: str) -> None:
    text = _statement(tmp_path, f'status = "{status}"\nstatement_date = "2027-03-01"')
    assert says in text
    assert "1 maart 2027" in text
    # Without limitations the statement says so; without contact_email, site.email is used.
    assert "geen beperkingen bekend" in text
    assert "redactie@bevolkingsdaling.nl" in text
    assert "Nationale ombudsman" in text


@pytest.mark.browser
@pytest.mark.parametrize("width", WIDTHS)
def test_the_podcast_transcript_opens_in_the_page(width: str, visit: Visitor) -> None:
    """WCAG 1.2.1: the episode's transcript is in the page, collapsed, and opens by keyboard."""
    page = visit.open(Target("bericht-podcast", kind="podcast"), WIDTHS[width])
    details = page.locator("details.transcript")
    assert not details.evaluate("d => d.open")
    summary = details.locator("summary")
    assert summary.inner_text() == "Transcript van de aflevering"
    summary.focus()
    page.keyboard.press("Enter")
    assert details.evaluate("d => d.open")
    assert "Welkom bij de derde aflevering" in details.inner_text()
    violations = axe_violations(page)
    assert not violations, f"{page.url} with the transcript open:\n{describe(violations)}"
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
