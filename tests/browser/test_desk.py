"""The desk in Chromium (issue 17): sign in through the labels, the counter going over 280
and "Goedkeuren" refused, fix, save, approve, export, a hand edit between loading and
saving refused with both texts, five wrong passwords; an editor's preview of a draft that
reloads itself when the file is saved; a newsletter issue per track selection, a proof into
a real SMTP server (aiosmtpd) and its approval; axe-core on every desk page, and no page
wider than 320 px.

`krimppost desk` runs as a process on a copy of the sample project, as staff would run it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from test_proof import Recorder, Sink, set_smtp

from .conftest import NOW, REPO, axe_violations, describe

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PASSWORD = "correct paard batterij"


@dataclass(frozen=True)
class DeskServer:
    root: Path
    base: str
    x_draft: str  # <item>/x of a draft the sample build made
    recorder: Recorder  # what the SMTP server the desk sends proofs to received


DRAFT_ID = "wrb-concept-voor-het-voorbeeld"
DRAFT = """\
---
title: Concept voor het voorbeeld
date: 2026-11-20
kind: finding
track: wrb
summary: Een bevinding die nog niet online mag.
draft: true
image: /afbeeldingen/wrb-bevinding-voorzieningen-stippen.png
image_alt: Stippen op een kaart van Nederland
---
De tekst van het concept.
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(root: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--root", str(root)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 or (done.returncode == 1 and args[0] == "build"), done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeskServer]:
    root = tmp_path_factory.mktemp("desk") / "project"
    shutil.copytree(REPO / "content", root / "content")
    config = (REPO / "config.toml").read_text(encoding="utf-8")
    # The sample items are older than the social horizon of a build at NOW: reach back.
    config = config.replace("[social.x]\n", "[social]\nlookback_days = 36500\n\n[social.x]\n", 1)
    # Issues wait for a person's approval, as in a real newsroom.
    config = config.replace("approval = false", "approval = true")
    (root / "config.toml").write_text(config, encoding="utf-8")
    _cli(root, "build", "--now", NOW.isoformat())
    _cli(root, "newsletter", "compile", "--now", NOW.isoformat())
    (root / "content" / "wrb" / "concept-voor-het-voorbeeld.md").write_text(DRAFT, encoding="utf-8")
    recorder = Recorder()
    sink = Sink(recorder)
    set_smtp(root, sink.port)
    for name, role in (("carla", "communicatie"), ("rick", "redacteur"), ("bea", "beheerder")):
        _cli(
            root,
            "users",
            "add",
            name,
            "--role",
            role,
            "--email",
            f"{name}@example.org",
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
    drafts = sorted((root / "outbox" / "social").glob("*/x.md"))
    assert drafts, "the sample build made no X drafts"
    x_draft = f"{drafts[0].parent.name}/x"
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "desk", "--root", str(root), "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/inloggen", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield DeskServer(root, base, x_draft, recorder)
    finally:
        process.terminate()
        process.wait(timeout=10)
        sink.close()


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        bypass_csp=True,  # the desk's Content-Security-Policy would block axe's script
        viewport={"width": 1280, "height": 800},
        locale="nl-NL",
        timezone_id="Europe/Amsterdam",
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Page, desk: DeskServer, name: str, path: str = "/") -> None:
    page.goto(desk.base + path)
    page.get_by_label("Gebruikersnaam").fill(name)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.wait_for_load_state("load")


def clean(page: Page) -> None:
    violations = axe_violations(page)
    assert not violations, f"{page.url}:\n{describe(violations)}"


def fits(page: Page) -> None:
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), f"{page.url} scrolls sideways"


@pytest.mark.browser
def test_review_an_x_draft_in_the_desk(tab: Page, desk_server: DeskServer) -> None:
    desk = desk_server
    sign_in(tab, desk, "carla", f"/social/{desk.x_draft}")
    assert tab.url.endswith(f"/social/{desk.x_draft}")
    clean(tab)
    text = tab.get_by_label("Tekst")
    text.fill("Krimp " * 60)
    counter = tab.locator("#teller")
    counter.locator("text=360 van 280").wait_for()
    assert "te-lang" in (counter.get_attribute("class") or "")
    tab.get_by_role("button", name="Goedkeuren").click()
    tab.wait_for_load_state("load")
    assert "kan niet goedkeuren: te lang" in tab.locator("[role=alert]").inner_text()
    assert tab.get_by_label("Tekst").input_value().startswith("Krimp Krimp")  # nothing lost
    tab.get_by_label("Tekst").fill("Krimp en leefbaarheid: de nieuwe bevindingen #krimp")
    tab.get_by_role("button", name="Opslaan").click()
    tab.wait_for_load_state("load")
    assert tab.locator("[role=status]").inner_text() == "Opgeslagen."
    tab.get_by_role("button", name="Goedkeuren").click()
    tab.wait_for_load_state("load")
    assert tab.locator("[role=status]").inner_text() == "Goedgekeurd."
    clean(tab)
    tab.goto(desk.base + "/social")
    clean(tab)
    tab.get_by_role("button", name="Exporteren").click()
    tab.wait_for_load_state("load")
    link = tab.locator("a[download]").filter(has_text="-x.csv")
    with tab.expect_download() as download:
        link.click()
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert saved.startswith("Text,Image URL,Tags,Posting Time")
    assert "Krimp en leefbaarheid: de nieuwe bevindingen #krimp" in saved


@pytest.mark.browser
def test_a_hand_edit_while_the_page_is_open_is_not_overwritten(
    tab: Page, desk_server: DeskServer
) -> None:
    desk = desk_server
    drafts = sorted((desk.root / "outbox" / "social").glob("*/x.md"))
    draft = drafts[-1]
    draft_id = f"{draft.parent.name}/x"
    sign_in(tab, desk, "carla", f"/social/{draft_id}")
    current = tab.get_by_label("Tekst").input_value()
    data = draft.read_text(encoding="utf-8")
    assert current in data
    draft.write_text(data.replace(current, "Met de hand in het bestand gezet"), encoding="utf-8")
    tab.get_by_label("Tekst").fill("In de desk getypt")
    tab.get_by_role("button", name="Opslaan").click()
    tab.wait_for_load_state("load")
    assert "gewijzigd sinds je het opende" in tab.locator("[role=alert]").inner_text()
    body = tab.locator("main").inner_text()
    assert "In de desk getypt" in body and "Met de hand in het bestand gezet" in body
    assert "Met de hand in het bestand gezet" in draft.read_text(encoding="utf-8")
    clean(tab)


@pytest.mark.browser
def test_every_desk_page_passes_axe_and_fits_320_px(
    browser: Browser, desk_server: DeskServer
) -> None:
    desk = desk_server
    context = browser.new_context(
        bypass_csp=True, viewport={"width": 320, "height": 640}, locale="nl-NL"
    )
    page = context.new_page()
    try:
        page.goto(desk.base + "/inloggen")
        clean(page)
        fits(page)
        sign_in(page, desk, "bea")
        for path in (
            "/social",
            f"/social/{desk.x_draft}",
            "/logboek",
            "/voorbeeld",
            f"/voorbeeld/{DRAFT_ID}",
            "/nieuwsbrief",
            "/nieuwsbrief/1?traject=woningmarkt",
        ):
            response = page.goto(desk.base + path)
            assert response is not None and response.status == 200, path
            clean(page)
            fits(page)
    finally:
        context.close()


@pytest.mark.browser
def test_five_wrong_passwords_lock_the_account(tab: Page, desk_server: DeskServer) -> None:
    desk = desk_server
    for _ in range(5):
        tab.goto(desk.base + "/inloggen")
        tab.get_by_label("Gebruikersnaam").fill("rick")
        tab.get_by_label("Wachtwoord").fill("niet het wachtwoord")
        tab.get_by_role("button", name="Inloggen").click()
        tab.wait_for_load_state("load")
    sign_in(tab, desk, "rick", "/")
    assert "/inloggen" in tab.url and tab.locator("[role=alert]").is_visible()
    assert tab.context.cookies() == [] or all(
        c["name"] != "krimppost_desk" for c in tab.context.cookies()
    )
    _cli(desk.root, "users", "passwd", "rick", "--password-stdin", stdin=PASSWORD + "\n")


@pytest.mark.browser
def test_a_draft_previews_with_its_banner_and_reloads_when_its_file_is_saved(
    tab: Page, desk_server: DeskServer
) -> None:
    desk = desk_server
    sign_in(tab, desk, "rick", "/voorbeeld")
    clean(tab)
    row = tab.get_by_role("row").filter(has_text="Concept voor het voorbeeld")
    assert "concept" in row.inner_text()
    row.get_by_role("link", name="Concept voor het voorbeeld").click()
    tab.wait_for_load_state("load")
    assert tab.url.endswith(f"/voorbeeld/{DRAFT_ID}")
    banner = tab.locator(".krimppost-voorbeeld")
    assert "Voorbeeld: deze pagina is niet online." in banner.inner_text()
    assert "concept" in banner.inner_text()
    assert tab.get_by_role("heading", level=1).inner_text() == "Concept voor het voorbeeld"
    # The site's stylesheet and the draft's image, served by the desk (nothing is built).
    assert tab.evaluate("document.styleSheets.length") >= 2
    image = tab.locator("figure img")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    clean(tab)
    assert not (desk.root / "outbox" / "site" / "berichten" / DRAFT_ID).exists()
    source = desk.root / "content" / "wrb" / "concept-voor-het-voorbeeld.md"
    time.sleep(0.3)  # past the page's first poll, so the change is one it has to notice
    source.write_text(DRAFT.replace("title: Concept voor", "title: Herzien concept voor"))
    saved = time.monotonic()
    tab.get_by_role("heading", level=1, name="Herzien concept voor het voorbeeld").wait_for(
        timeout=5_000
    )
    assert time.monotonic() - saved <= 2.0, "the preview took longer than 2 s to follow"
    source.write_text(DRAFT)


@pytest.mark.browser
def test_an_issue_per_track_selection_a_proof_and_approval(
    tab: Page, desk_server: DeskServer
) -> None:
    desk = desk_server
    sign_in(tab, desk, "rick", "/nieuwsbrief")
    clean(tab)
    tab.get_by_role("link", name="1", exact=True).click()
    tab.wait_for_load_state("load")
    assert "concept, wacht op goedkeuring" in tab.locator("main").inner_text()
    tab.get_by_label("Woningmarkt in krimpregio's").check()
    tab.get_by_role("button", name="Tonen").click()
    tab.wait_for_load_state("load")
    frame = tab.frame_locator("iframe.mail")
    frame.locator("body").wait_for()
    assert "WONINGMARKT IN KRIMPREGIO'S" in tab.locator("pre.tekstversie").text_content()
    assert "KLIMAAT- EN ENERGIETRANSITIE" not in tab.locator("pre.tekstversie").text_content()
    clean(tab)
    tab.get_by_role("button", name="Proef sturen").click()
    tab.wait_for_load_state("load")
    assert "proef van nieuwsbrief 1" in tab.locator("[role=status]").inner_text()
    assert desk.recorder.received()["rick@example.org"] == 1
    proof = desk.recorder.message_for("rick@example.org")
    assert proof["Subject"].startswith("[PROEF] ")
    tab.get_by_role("button", name="Goedkeuren").click()
    tab.wait_for_load_state("load")
    assert "goedgekeurd door rick" in tab.locator("[role=status]").inner_text()
    assert (desk.root / "outbox" / "site" / "nieuwsbrief" / "1" / "index.html").is_file()
    clean(tab)


@pytest.mark.browser
def test_the_server_refuses_a_forbidden_role_and_a_form_without_its_token(
    tab: Page, desk_server: DeskServer
) -> None:
    desk = desk_server
    sign_in(tab, desk, "rick", "/nieuwsbrief")
    csrf = tab.locator('input[name="csrf"]').first.input_value()
    # A redacteur has no button for it, and building the request by hand does not help.
    answer = tab.request.post(
        f"{desk.base}/social/{desk.x_draft}", form={"actie": "goedkeuren", "csrf": csrf}
    )
    assert answer.status == 403
    tab.context.clear_cookies()
    sign_in(tab, desk, "carla", f"/social/{desk.x_draft}")
    # The form with its token field removed, as a forged form would be.
    tab.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    tab.get_by_role("button", name="Opslaan").click()
    tab.wait_for_load_state("load")
    assert "Formulier verlopen" in tab.locator("h1").inner_text()
