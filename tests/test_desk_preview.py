"""The editors' preview in the desk over HTTP: every item with its state, a draft rendered
from its file with the site's templates and a banner, nothing written, the version that the
page polls, files served from inside their folders only. Real project and state store."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_desk_web import PASSWORD, signed_in_at

from conftest import Project, build_at, outbox_files
from pipeline.config import load_config
from pipeline.desk.accounts import Accounts
from pipeline.state import StateStore, StoreAddress

pytestmark = pytest.mark.usefixtures("state_backend")

NOW = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def item(title: str, extra: str = "", body: str = "De tekst van het bericht.") -> str:
    return (
        f'---\ntitle: "{title}"\ndate: 2026-11-03\nkind: news\ntrack: woningmarkt\n'
        f"summary: Een korte samenvatting.\n{extra}---\n{body}\n"
    )


@pytest.fixture
def root(project: Project) -> Iterator[Path]:
    project.write("woningmarkt/online.md", item("Het online bericht"))
    build_at(project, "2026-11-05T12:00")
    # Written after the build: none of these is in outbox/site/.
    project.write_bytes("woningmarkt/concept-beeld.png", PNG)
    project.write(
        "woningmarkt/concept.md",
        item(
            "Een concept met beeld",
            "draft: true\nimage: concept-beeld.png\nimage_alt: Een stip\n",
            "Tekst van het concept met [een link](https://example.org/).",
        ),
    )
    project.write(
        "woningmarkt/later.md", item("Het bericht onder embargo", "publish_at: 2027-01-21T09:00\n")
    )
    project.write(
        "woningmarkt/kapot.md",
        "---\ndate: 2026-11-03\nkind: news\ntrack: woningmarkt\nsummary: x\n---\nTekst.\n",
    )
    accounts = Accounts(StoreAddress.of(load_config(project.root)))
    accounts.add("rick", "redacteur", PASSWORD, "rick@example.org")
    accounts.add("carla", "communicatie", PASSWORD, "carla@example.org")
    yield project.root


def signed_in(root: Path, name: str = "rick") -> TestClient:
    return signed_in_at(root, name, NOW)


def state_rows(root: Path) -> dict[str, object]:
    with StateStore(StoreAddress.of(load_config(root))) as state:
        return {k: tuple(v) for k, v in state.items().items()}


def test_every_item_is_listed_with_its_state_and_the_problems_with_file_and_line(
    root: Path,
) -> None:
    page = signed_in(root).get("/voorbeeld")
    assert page.status_code == 200
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r'<a href="/voorbeeld/([^"]+)">.*?</a></td>\s*<td>([^<]*)', page.text)
    }
    assert rows["woningmarkt-online"] == "online"
    assert rows["woningmarkt-concept"] == "concept"
    assert rows["woningmarkt-later"] == "onder embargo tot 21 januari 2027 09:00"
    assert rows["woningmarkt-kapot"].strip() == "met fouten"
    assert re.search(r"<code>content/woningmarkt/kapot\.md:\d+: [^<]*title", page.text), page.text


def test_communicatie_may_not_preview(root: Path) -> None:
    c = signed_in(root, "carla")
    assert c.get("/voorbeeld").status_code == 403
    assert c.get("/voorbeeld/woningmarkt-concept").status_code == 403
    assert c.get("/voorbeeld/site/static/stijl.css").status_code == 403
    assert 'href="/voorbeeld"' not in c.get("/social").text


def test_a_draft_is_rendered_from_its_file_with_a_banner_and_nothing_is_written(
    root: Path,
) -> None:
    before, records = outbox_files(root), state_rows(root)
    c = signed_in(root)
    page = c.get("/voorbeeld/woningmarkt-concept")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Een concept met beeld</h1>" in text or "Een concept met beeld</h1>" in text
    banner = text.index("Voorbeeld: deze pagina is niet online.")
    assert text.index("<main") < banner < text.index("Tekst van het concept")
    assert "draft: true" in text
    # The site's own templates, stylesheet and links, under the preview's path.
    assert 'href="/voorbeeld/site/static/stijl.css"' in text
    assert c.get("/voorbeeld/site/static/stijl.css").status_code == 200
    image = re.search(r'<meta property="og:image" content="([^"]+)"', text)
    assert image and image.group(1).endswith(
        "/voorbeeld/site/bestanden/woningmarkt/concept-beeld.png"
    )
    served = c.get("/voorbeeld/site/bestanden/woningmarkt/concept-beeld.png")
    assert served.status_code == 200 and served.content == PNG
    assert served.headers["content-type"] == "image/png"
    # The built site behind the preview's navigation.
    home = c.get("/voorbeeld/site/")
    assert home.status_code == 200 and "Het online bericht" in home.text
    # Nothing published, nothing recorded.
    assert outbox_files(root) == before
    assert state_rows(root) == records
    assert not (root / "outbox" / "site" / "berichten" / "woningmarkt-concept").exists()


def test_an_embargoed_item_says_until_when_and_an_online_one_links_its_page(root: Path) -> None:
    c = signed_in(root)
    later = c.get("/voorbeeld/woningmarkt-later").text
    assert "onder embargo tot 21 januari 2027 09:00" in later
    online = c.get("/voorbeeld/woningmarkt-online").text
    assert "Dit bericht staat online" in online
    assert 'href="https://' in online and "berichten/woningmarkt-online/" in online


def test_the_version_changes_when_the_file_is_saved_and_the_page_follows(root: Path) -> None:
    c = signed_in(root)
    page = c.get("/voorbeeld/woningmarkt-concept").text
    marker = re.search(r'data-versie="([^"]+)" data-huidig="([^"]+)"', page)
    assert marker and marker.group(1) == "/voorbeeld/woningmarkt-concept/versie"
    first = c.get(marker.group(1)).json()["versie"]
    assert first == marker.group(2)
    path = root / "content" / "woningmarkt" / "concept.md"
    path.write_text(path.read_text().replace("Een concept met beeld", "Een nieuwe titel"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert c.get(marker.group(1)).json()["versie"] != first
    assert "Een nieuwe titel" in c.get("/voorbeeld/woningmarkt-concept").text


def test_a_file_with_errors_shows_its_problems_and_still_reloads(root: Path) -> None:
    page = signed_in(root).get("/voorbeeld/woningmarkt-kapot")
    assert page.status_code == 200
    assert "Dit bestand heeft fouten" in page.text
    assert re.search(r"content/woningmarkt/kapot\.md:\d+: ", page.text)
    assert 'data-versie="/voorbeeld/woningmarkt-kapot/versie"' in page.text


def test_the_preview_serves_files_only_from_inside_their_folders(
    root: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "geheim.txt"
    secret.write_text("geheim")
    (root / "content" / "woningmarkt" / "link.png").symlink_to(secret)
    c = signed_in(root)
    for path in (
        "/voorbeeld/site/bestanden/woningmarkt/link.png",
        "/voorbeeld/site/bestanden/woningmarkt/concept.md",
        "/voorbeeld/site/bestanden/../config.toml",
        "/voorbeeld/site/bestanden/%2e%2e/config.toml",
        "/voorbeeld/site/../config.toml",
        "/voorbeeld/site/static/../../config.toml",
        "/voorbeeld/site/.krimppost/state.sqlite",
    ):
        answer = c.get(path)
        assert answer.status_code == 404, path
        assert "geheim" not in answer.text and "[site]" not in answer.text, path
    assert c.get("/voorbeeld/bestaat-niet").status_code == 404
