"""The desk over HTTP (Starlette's test client, httpx): sign-in, sessions, CSRF, roles, the
social review with its counter, the edit race, the export. Real project, real state store,
real draft files; no mocks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_social_drafts import ITEM, ITEM_ID, ITEM_PATH

from conftest import Project, build_at
from pipeline.config import load_config
from pipeline.desk.accounts import Accounts
from pipeline.desk.app import create_app
from pipeline.social.draftfile import parse_draft
from pipeline.state import StoreAddress

pytestmark = pytest.mark.usefixtures("state_backend")

PASSWORD = "correct paard batterij"
X_DRAFT = f"{ITEM_ID}/x"


@pytest.fixture
def desk(project: Project) -> Iterator[Path]:
    project.write(ITEM_PATH, ITEM)
    build_at(project, "2026-11-05T12:00")
    accounts = Accounts(StoreAddress.of(load_config(project.root)))
    accounts.add("carla", "communicatie", PASSWORD, "carla@example.org")
    accounts.add("rick", "redacteur", PASSWORD, "rick@example.org")
    accounts.add("bea", "beheerder", PASSWORD)
    yield project.root


def client(root: Path, **kwargs: object) -> TestClient:
    return TestClient(create_app(root), follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def digest_of(html: str) -> str:
    found = re.search(r'name="digest" value="([^"]*)"', html)
    assert found, html
    return found.group(1)


def sign_in(c: TestClient, name: str, password: str = PASSWORD) -> object:
    page = c.get("/inloggen")
    return c.post(
        "/inloggen",
        data={"gebruikersnaam": name, "wachtwoord": password, "csrf": csrf_of(page.text)},
    )


def signed_in_at(root: Path, name: str, now: datetime) -> TestClient:
    """A client of the desk whose clock stands at `now`, signed in as `name`."""
    c = TestClient(create_app(root, clock=lambda: now), follow_redirects=False)
    assert sign_in(c, name).status_code == 303  # type: ignore[attr-defined]
    return c


def draft_text(root: Path, draft_id: str = X_DRAFT) -> str:
    path = root / "outbox" / "social" / f"{draft_id}.md"
    return parse_draft(path.read_bytes(), draft_id).text


def draft_status(root: Path, draft_id: str = X_DRAFT) -> str:
    path = root / "outbox" / "social" / f"{draft_id}.md"
    return parse_draft(path.read_bytes(), draft_id).status


def test_no_page_is_reachable_without_signing_in(desk: Path) -> None:
    c = client(desk)
    for path in ("/", "/social", f"/social/{X_DRAFT}", "/logboek"):
        answer = c.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/inloggen?terug="), path
    assert c.post(f"/social/{X_DRAFT}", data={"actie": "goedkeuren"}).status_code == 403
    page = c.get("/inloggen")
    assert page.status_code == 200
    assert '<label for="gebruikersnaam">Gebruikersnaam</label>' in page.text
    assert '<label for="wachtwoord">Wachtwoord</label>' in page.text
    assert ">Inloggen</button>" in page.text


def test_the_session_cookie_is_signed_httponly_strict_and_ends_on_the_server(desk: Path) -> None:
    c = client(desk)
    answer = sign_in(c, "carla")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    cookie = answer.headers["set-cookie"]  # type: ignore[attr-defined]
    assert "krimppost_desk=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert c.get("/social").status_code == 200
    value = c.cookies["krimppost_desk"]
    # A forged signature is no session.
    forged = client(desk, cookies={"krimppost_desk": value[:-2] + "xx"})
    assert forged.get("/social").status_code == 303
    page = c.get("/social").text
    assert c.post("/uitloggen", data={"csrf": csrf_of(page)}).status_code == 303
    # The old cookie, replayed, no longer opens anything: the session is gone on the server.
    replay = client(desk, cookies={"krimppost_desk": value})
    assert replay.get("/social").status_code == 303


def test_a_session_idle_longer_than_session_minutes_is_over(desk: Path) -> None:
    from datetime import UTC, datetime, timedelta

    moments = [datetime(2026, 12, 3, 9, 0, tzinfo=UTC)]
    app = create_app(desk, clock=lambda: moments[0])
    c = TestClient(app, follow_redirects=False)
    sign_in(c, "carla")
    moments[0] += timedelta(minutes=59)
    assert c.get("/social").status_code == 200  # and that request restarts the idle clock
    moments[0] += timedelta(minutes=59)
    assert c.get("/social").status_code == 200
    moments[0] += timedelta(minutes=61)
    assert c.get("/social").status_code == 303


def test_five_wrong_passwords_lock_the_account_and_the_answer_reveals_nothing(
    desk: Path,
) -> None:
    c = client(desk)
    wrong = [sign_in(c, "carla", "fout wachtwoord!") for _ in range(5)]
    assert all(a.status_code == 401 for a in wrong)  # type: ignore[attr-defined]
    locked = sign_in(c, "carla")
    unknown = sign_in(c, "niemand", "fout wachtwoord!")
    assert locked.status_code == unknown.status_code == 401  # type: ignore[attr-defined]
    message = re.search(r'role="alert"[^>]*>([^<]+)<', locked.text).group(1)  # type: ignore[attr-defined,union-attr]
    assert message == re.search(r'role="alert"[^>]*>([^<]+)<', unknown.text).group(1)  # type: ignore[attr-defined,union-attr]
    assert c.get("/social").status_code == 303
    actions = [r.action for r in Accounts(StoreAddress.of(load_config(desk))).audit_rows()]
    assert actions.count("mislukte inlog") == 6 and "account geblokkeerd" in actions


def test_a_form_without_its_csrf_token_is_refused(desk: Path) -> None:
    c = client(desk)
    sign_in(c, "carla")
    page = c.get(f"/social/{X_DRAFT}").text
    before = draft_text(desk)
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={"actie": "opslaan", "tekst": "Anders", "digest": digest_of(page)},
    )
    assert answer.status_code == 403
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={"actie": "opslaan", "tekst": "Anders", "digest": digest_of(page), "csrf": "x" * 43},
    )
    assert answer.status_code == 403
    assert draft_text(desk) == before
    # The sign-in form has its own token too.
    fresh = client(desk)
    assert (
        fresh.post(
            "/inloggen", data={"gebruikersnaam": "carla", "wachtwoord": PASSWORD}
        ).status_code
        == 403
    )


def test_a_redacteur_may_not_approve_a_social_draft(desk: Path) -> None:
    c = client(desk)
    sign_in(c, "rick")
    page = c.get("/social")
    assert page.status_code == 403
    page = page.text  # the refusal still has the sign-out form, with the session's token
    answer = c.post(f"/social/{X_DRAFT}", data={"actie": "goedkeuren", "csrf": csrf_of(page)})
    assert answer.status_code == 403
    assert draft_status(desk) == "pending"
    assert c.get("/logboek").status_code == 403


def test_the_counter_is_the_servers_and_an_overlong_draft_is_not_approved(desk: Path) -> None:
    c = client(desk)
    sign_in(c, "carla")
    page = c.get(f"/social/{X_DRAFT}").text
    csrf, digest = csrf_of(page), digest_of(page)
    assert re.search(r'<label for="tekst">Tekst</label>', page)
    assert re.search(r"\d+ van 280", page)
    # The link card shows the summary the item's built page gives the platforms.
    assert re.search(
        r"<span>Een middag over sloop, samenvoeging en transformatie[^<]*</span>", page
    )
    long_text = "Krimp " * 60  # 360 characters
    count = c.post(
        f"/social/{X_DRAFT}/tellen", data={"tekst": long_text}, headers={"X-CSRF-Token": csrf}
    )
    answer = count.json()
    assert answer["te_lang"] is True and answer["limiet"] == 280
    assert answer["lengte"] == 360 and answer["tekst"] == "360 van 280"
    # A URL counts 23 on X, whatever its length: the server's count, not len().
    url = "https://www.bevolkingsdaling.nl/" + "a" * 100
    assert (
        c.post(
            f"/social/{X_DRAFT}/tellen", data={"tekst": url}, headers={"X-CSRF-Token": csrf}
        ).json()["lengte"]
        == 23
    )
    refused = c.post(
        f"/social/{X_DRAFT}",
        data={"actie": "goedkeuren", "tekst": long_text, "digest": digest, "csrf": csrf},
    )
    assert refused.status_code == 422
    assert "kan niet goedkeuren: te lang" in refused.text
    assert long_text.strip() in refused.text  # the edit is kept in the text area
    assert draft_status(desk) == "pending"
    # Fixed, saved, approved, exported.
    saved = c.post(
        f"/social/{X_DRAFT}",
        data={
            "actie": "opslaan",
            "tekst": "Masterclass over krimp #woningmarkt",
            "digest": digest,
            "csrf": csrf,
        },
    )
    assert saved.status_code == 303
    assert draft_text(desk) == "Masterclass over krimp #woningmarkt"
    page = c.get(f"/social/{X_DRAFT}").text
    approved = c.post(
        f"/social/{X_DRAFT}", data={"actie": "goedkeuren", "digest": digest_of(page), "csrf": csrf}
    )
    assert approved.status_code == 303
    assert draft_status(desk) == "approved"
    exported = c.post("/social/exporteren", data={"csrf": csrf})
    assert exported.status_code == 303
    names = re.findall(r"bestand=([^&]+)", exported.headers["location"])
    assert names and any("x" in n for n in names)
    queue = c.get(exported.headers["location"]).text
    for name in names:
        download = c.get(f"/social/export/{name}")
        assert (
            download.status_code == 200 and "attachment" in download.headers["content-disposition"]
        )
        assert name in queue
    x_file = next(n for n in names if n.endswith("-x.csv"))
    assert "Masterclass over krimp #woningmarkt" in c.get(f"/social/export/{x_file}").text
    history = [r.action for r in Accounts(StoreAddress.of(load_config(desk))).audit_rows(X_DRAFT)]
    assert history[:2] == ["goedgekeurd", "tekst bewerkt"]
    assert c.get("/social/export/..%2F..%2Fconfig.toml").status_code == 404


def test_a_hand_edit_between_loading_and_saving_is_never_overwritten(desk: Path) -> None:
    c = client(desk)
    sign_in(c, "carla")
    page = c.get(f"/social/{X_DRAFT}").text
    path = desk / "outbox" / "social" / f"{X_DRAFT}.md"
    original = path.read_text(encoding="utf-8")
    path.write_text(original.replace(draft_text(desk), "Met de hand bewerkt"), encoding="utf-8")
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={
            "actie": "opslaan",
            "tekst": "Mijn versie in de desk",
            "digest": digest_of(page),
            "csrf": csrf_of(page),
        },
    )
    assert answer.status_code == 409
    assert "Mijn versie in de desk" in answer.text and "Met de hand bewerkt" in answer.text
    assert draft_text(desk) == "Met de hand bewerkt"
    # Approving over it is refused the same way.
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={"actie": "goedkeuren", "digest": digest_of(page), "csrf": csrf_of(page)},
    )
    assert answer.status_code == 409 and draft_status(desk) == "pending"


def test_a_build_that_changes_the_draft_between_loading_and_saving_loses_no_edit(
    desk: Path, project: Project
) -> None:
    c = client(desk)
    sign_in(c, "carla")
    page = c.get(f"/social/{X_DRAFT}").text
    before = (desk / "outbox" / "social" / f"{X_DRAFT}.md").read_bytes()
    # The item's title changes and a build runs: the draft gets a new suggestion.
    project.write(
        ITEM_PATH, ITEM.replace("Masterclass: transformatie", "Masterclass: herstructurering")
    )
    build_at(project, "2026-11-05T13:00")
    assert (desk / "outbox" / "social" / f"{X_DRAFT}.md").read_bytes() != before
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={
            "actie": "opslaan",
            "tekst": "Mijn versie tijdens de build",
            "digest": digest_of(page),
            "csrf": csrf_of(page),
        },
    )
    assert answer.status_code == 409
    assert "Mijn versie tijdens de build" in answer.text  # what was typed is shown back
    assert "Mijn versie tijdens de build" not in draft_text(desk)
    # Saved again from the fresh page, it is kept, and the next build keeps it too.
    fresh = c.get(f"/social/{X_DRAFT}").text
    answer = c.post(
        f"/social/{X_DRAFT}",
        data={
            "actie": "opslaan",
            "tekst": "Mijn versie tijdens de build",
            "digest": digest_of(fresh),
            "csrf": csrf_of(fresh),
        },
    )
    assert answer.status_code == 303  # saved; back to the draft's page
    build_at(project, "2026-11-05T14:00")
    assert draft_text(desk) == "Mijn versie tijdens de build"


def test_the_trusted_header_counts_only_from_a_trusted_proxy_and_for_an_account(
    desk: Path,
) -> None:
    config = desk / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + '\n[desk]\ntrusted_header = "X-Remote-User"\ntrusted_proxies = ["10.0.0.0/24"]\n',
        encoding="utf-8",
    )
    proxied = client(desk, client=("10.0.0.7", 4000))
    assert proxied.get("/social", headers={"X-Remote-User": "carla"}).status_code == 200
    assert proxied.get("/social", headers={"X-Remote-User": "onbekend"}).status_code == 303
    direct = client(desk, client=("192.0.2.1", 4000))
    assert direct.get("/social", headers={"X-Remote-User": "carla"}).status_code == 303


def test_a_beheerder_sees_the_whole_audit_log(desk: Path) -> None:
    c = client(desk)
    sign_in(c, "carla", "fout wachtwoord!")
    sign_in(c, "bea")
    log = c.get("/logboek")
    assert log.status_code == 200
    assert "mislukte inlog" in log.text and "ingelogd" in log.text
