"""The preference page of `krimppost serve` (issue 19, part 1), on a real uvicorn server
with the mail caught by aiosmtpd, and issues really sent to it."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from storesql import execute
from test_delivery import LABELS, NOW, item, newsletter_project, text_and_html
from test_serve import FORM, ONE_CLICK, Reply, World, serving
from test_subscribers import run

from conftest import Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.delivery.sender import send_issue

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

ADDRESS = "lezer@example.nl"
ROW = (
    "SELECT email, email_key, status, tracks, token, source, consented_at, consent_version, "
    "confirmed_at, status_changed_at, status_reason, paused_until, new_email, new_email_token, "
    "new_email_requested_at FROM subscribers ORDER BY id"
)
ACTIONS = [
    {"actie": "onderwerpen", "tracks": "wrb"},
    {"actie": "pauzeren", "tot": "2026-12-15"},
    {"actie": "hervatten"},
    {"actie": "adres", "email": "nieuw@example.nl"},
    {"actie": "afmelden"},
    {"actie": "downloaden"},
    {"actie": "wissen"},
    {"actie": "wissen-bevestigd"},
]


@pytest.fixture
def world(project: Project) -> Iterator[World]:
    with serving(project) as world:
        yield world


def page(world: World, token: str) -> tuple[Reply, str, str]:
    """GET the preference page: (reply, cookie header value, csrf field)."""
    reply = world.server.request("GET", f"/voorkeuren/{token}")
    assert reply.status == 200, reply.body
    cookie = reply.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body)
    assert csrf is not None
    return reply, cookie, csrf.group(1)


def post(world: World, path: str, fields: dict[str, str] | list, cookie: str = "") -> Reply:
    items = fields.items() if isinstance(fields, dict) else fields
    headers = {"Content-Type": FORM, **({"Cookie": cookie} if cookie else {})}
    return world.server.request("POST", path, urllib.parse.urlencode(list(items)).encode(), headers)


def act(world: World, token: str, fields: dict[str, str] | list) -> Reply:
    _, cookie, csrf = page(world, token)
    items = list(fields.items() if isinstance(fields, dict) else fields)
    return post(world, f"/voorkeuren/{token}", [("csrf", csrf), *items], cookie)


def send(world: World, now: datetime) -> set[str]:
    """Send the latest issue at `now`; the addresses that received it in this run."""
    before = len(world.recorder.messages)
    send_issue(world.project.root, now=now)
    return {address for address, _ in world.recorder.messages[before:]}


def test_the_page_shows_the_choices_and_a_get_changes_nothing(world: World) -> None:
    token = world.add(ADDRESS)
    before = world.rows(ROW)
    for method in ("GET", "HEAD", "GET"):
        assert world.server.request(method, f"/voorkeuren/{token}").status == 200
    reply, _, _ = page(world, token)
    assert world.rows(ROW) == before
    body = reply.body
    assert body.count("<h1") == 1 and "l…@example.nl" in body and ADDRESS not in body
    assert "<legend>" in body and 'type="checkbox" id="traject-wrb"' in body
    assert 'type="date" id="tot" name="tot"' in body
    assert body.count('name="csrf"') == 6  # tracks, pause, address, unsubscribe, download, erase
    assert 'role="status"' not in body
    assert reply.headers["Cache-Control"] == "no-store"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert "Path=/voorkeuren/" in reply.headers["Set-Cookie"]
    assert "HttpOnly" in reply.headers["Set-Cookie"]


def test_every_post_needs_the_csrf_cookie_and_field(world: World) -> None:
    token = world.add(ADDRESS)
    _, cookie, csrf = page(world, token)
    before = world.rows(ROW)
    path = f"/voorkeuren/{token}"
    for fields in ACTIONS:
        no_cookie = post(world, path, {"csrf": csrf, **fields})
        bad_field = post(world, path, {"csrf": "0" * 64, **fields}, cookie)
        no_field = post(world, path, fields, cookie)
        other_cookie = post(world, path, {"csrf": csrf, **fields}, "krimppost_csrf=" + "A" * 22)
        for reply in (no_cookie, bad_field, no_field, other_cookie):
            assert reply.status == 403, fields
            assert "De pagina was verlopen" in reply.body
            assert "Content-Disposition" not in reply.headers
        cross = world.server.request(
            "POST",
            path,
            urllib.parse.urlencode({"csrf": csrf, **fields}).encode(),
            {"Content-Type": FORM, "Cookie": cookie, "Origin": "https://kwaadaardig.example"},
        )
        assert cross.status == 403
    assert world.rows(ROW) == before
    assert world.recorder.messages == []


def test_change_of_address_mails_once_per_rate_window(world: World) -> None:
    token = world.add(ADDRESS)
    neutral = "We hebben een bevestigingslink gestuurd naar het nieuwe adres, als het gebruikt"
    assert neutral in act(world, token, {"actie": "adres", "email": "een@example.nl"}).body
    # within [serve] subscribe_window: the same answer, and nothing mailed to anyone
    assert neutral in act(world, token, {"actie": "adres", "email": "twee@example.nl"}).body
    assert [a for a, _ in world.recorder.messages] == ["een@example.nl"]
    world.clock[0] += timedelta(seconds=601)
    assert neutral in act(world, token, {"actie": "adres", "email": "twee@example.nl"}).body
    assert [a for a, _ in world.recorder.messages] == ["een@example.nl", "twee@example.nl"]
    # the latest request is the one that stands: the first link no longer works
    first = re.search(
        r"(/voorkeuren/adres/[A-Za-z0-9_-]{22})",
        world.recorder.message_for("een@example.nl").get_content(),
    )
    assert first is not None and world.server.request("GET", first.group(1)).status == 404


def test_forged_and_unknown_tokens_get_todays_404(world: World) -> None:
    token = world.add(ADDRESS)
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    today = world.server.request("GET", f"/afmelden/{forged}")
    replies = [
        world.server.request("GET", f"/voorkeuren/{forged}"),
        world.server.request("GET", "/voorkeuren/onzin"),
        world.server.request("GET", "/voorkeuren/adres/" + "x" * 22),
        world.server.request("GET", f"/voorkeuren/adres/{token}"),  # not a change-of-address one
        post(world, f"/voorkeuren/{forged}", {}),
        post(world, "/voorkeuren/adres/" + "x" * 22, {}),
    ]
    _, cookie, csrf = page(world, token)
    for fields in ACTIONS:  # a valid CSRF pair does not make a forged token valid
        replies.append(post(world, f"/voorkeuren/{forged}", {"csrf": csrf, **fields}, cookie))
    replies.append(post(world, f"/voorkeuren/adres/{token}", {"csrf": csrf}, cookie))
    assert today.status == 404
    assert {r.status for r in replies} == {404}
    assert {r.body for r in replies} == {today.body}
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(1,)]


def test_changed_tracks_are_what_the_next_issue_brings(world: World) -> None:
    newsletter_project(world.project)  # an issue with items of all three tracks
    token = world.add(ADDRESS)
    world.add("ander@example.nl")
    reply = act(world, token, [("actie", "onderwerpen"), ("tracks", "woningmarkt")])
    assert reply.status == 200
    assert 'role="status"' in reply.body and "Je onderwerpen zijn opgeslagen" in reply.body
    assert 'id="traject-woningmarkt" name="tracks" value="woningmarkt"' in reply.body
    assert world.rows("SELECT tracks FROM subscribers WHERE email = ?", ADDRESS) == [
        (",woningmarkt,",)
    ]
    assert send(world, datetime.now(UTC)) == {ADDRESS, "ander@example.nl"}
    text, html = text_and_html(world.recorder.message_for(ADDRESS))
    for track, label in LABELS.items():
        assert (label in text) == (track == "woningmarkt"), track
    other, _ = text_and_html(world.recorder.message_for("ander@example.nl"))
    assert all(label in other for label in LABELS.values())
    # the footer says what the link does and carries this subscriber's own token
    link = f"https://www.bevolkingsdaling.nl/voorkeuren/{token}"
    assert "Kies je onderwerpen, pauzeer de nieuwsbrief, wijzig je adres of" in text
    assert link in text and f'href="{link}"' in html

    bad = act(world, token, [("actie", "onderwerpen"), ("tracks", "bestaat-niet")])
    assert (
        bad.status == 400 and 'aria-describedby="onderwerpen-uitleg onderwerpen-fout"' in bad.body
    )
    none = act(world, token, {"actie": "onderwerpen"})  # nothing chosen: every track
    assert none.status == 200
    assert world.rows("SELECT tracks FROM subscribers WHERE email = ?", ADDRESS) == [("*",)]


def test_an_issue_of_only_a_dropped_track_is_not_sent_at_all(world: World) -> None:
    world.project.write("wrb/bericht-0.md", item(0, "wrb"))
    build_at(world.project, NOW)
    assert compile_issue(world.project.root, datetime.fromisoformat(NOW)).number == 1
    token = world.add(ADDRESS)
    world.add("ander@example.nl")
    assert act(world, token, [("actie", "onderwerpen"), ("tracks", "woningmarkt")]).status == 200
    assert send(world, datetime.now(UTC)) == {"ander@example.nl"}


def test_a_pause_skips_issues_until_its_date_and_ends_by_itself(world: World) -> None:
    newsletter_project(world.project)
    token = world.add(ADDRESS)
    world.add("ander@example.nl")
    wrong = act(world, token, {"actie": "pauzeren", "tot": "2026-11-01"})
    assert wrong.status == 400 and 'aria-invalid="true"' in wrong.body
    assert 'aria-describedby="tot-uitleg tot-fout"' in wrong.body
    assert act(world, token, {"actie": "pauzeren", "tot": "2028-01-01"}).status == 400
    reply = act(world, token, {"actie": "pauzeren", "tot": "2026-12-15"})
    assert reply.status == 200 and "Vanaf 15 december 2026 ontvang je hem weer" in reply.body
    assert world.rows("SELECT status, paused_until FROM subscribers WHERE email = ?", ADDRESS) == [
        ("active", "2026-12-14T23:00:00+00:00")  # midnight in Amsterdam
    ]
    assert send(world, datetime(2026, 12, 1, tzinfo=UTC)) == {"ander@example.nl"}
    # the same issue sent again after the date: the pause has ended by itself
    assert send(world, datetime(2026, 12, 15, 9, tzinfo=UTC)) == {ADDRESS}
    # ending a pause by hand
    act(world, token, {"actie": "pauzeren", "tot": "2027-01-10"})
    resumed = act(world, token, {"actie": "hervatten"})
    assert resumed.status == 200 and "je ontvangt de nieuwsbrief weer" in resumed.body
    assert world.rows("SELECT paused_until FROM subscribers WHERE email = ?", ADDRESS) == [(None,)]


def test_change_of_address_is_confirmed_by_the_new_address(world: World) -> None:
    token = world.add(ADDRESS)
    world.add("bezet@example.nl")
    reply = act(world, token, {"actie": "adres", "email": "Nieuw@Example.NL"})
    assert reply.status == 200 and 'role="status"' in reply.body
    neutral = "We hebben een bevestigingslink gestuurd naar het nieuwe adres, als het gebruikt"
    assert neutral in reply.body
    assert [a for a, _ in world.recorder.messages] == ["Nieuw@example.nl"]
    assert world.rows("SELECT email FROM subscribers WHERE token = ?", token) == [(ADDRESS,)]
    mail = world.recorder.message_for("Nieuw@example.nl")
    assert mail["Subject"].startswith("Bevestig je nieuwe adres")
    link = re.search(
        r"https://www\.bevolkingsdaling\.nl(/voorkeuren/adres/[A-Za-z0-9_-]{22})",
        mail.get_content(),
    )
    assert link is not None
    world.clock[0] += timedelta(hours=1)
    shown = world.server.request("GET", link.group(1))  # a button; changes nothing
    assert shown.status == 200 and "Nieuw adres bevestigen" in shown.body
    assert world.rows("SELECT email FROM subscribers WHERE token = ?", token) == [(ADDRESS,)]
    cookie = shown.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', shown.body)
    assert csrf is not None
    assert post(world, link.group(1), {"csrf": "0" * 64}, cookie).status == 403
    confirmed = post(world, link.group(1), {"csrf": csrf.group(1)}, cookie)
    assert confirmed.status == 200 and "Je nieuwe e-mailadres is bevestigd" in confirmed.body
    assert world.rows(
        "SELECT email, email_key, confirmed_at, status_reason, new_email, new_email_token "
        "FROM subscribers WHERE token = ?",
        token,
    ) == [
        (
            "Nieuw@example.nl",
            "nieuw@example.nl",
            "2026-11-27T13:00:00+00:00",
            "adres gewijzigd",
            None,
            None,
        )
    ]
    assert world.server.request("GET", link.group(1)).status == 404  # used up

    # taken, suppressed or invalid: the same neutral answer (or a format error), no mail
    state, store = world.store()
    with state:
        store.remove("gewist@example.nl", world.clock[0])
    world.clock[0] += timedelta(hours=1)
    for taken in ("bezet@example.nl", "gewist@example.nl", "nieuw@example.nl"):
        again = act(world, token, {"actie": "adres", "email": taken})
        assert again.status == 200 and neutral in again.body
    invalid = act(world, token, {"actie": "adres", "email": "geen-adres"})
    assert invalid.status == 400 and 'aria-describedby="email-uitleg email-fout"' in invalid.body
    assert len(world.recorder.messages) == 1


def test_change_of_address_link_expires(world: World) -> None:
    token = world.add(ADDRESS)
    act(world, token, {"actie": "adres", "email": "later@example.nl"})
    link = re.search(
        r"(/voorkeuren/adres/[A-Za-z0-9_-]{22})",
        world.recorder.message_for("later@example.nl").get_content(),
    )
    assert link is not None
    world.clock[0] += timedelta(days=8)
    assert world.server.request("GET", link.group(1)).status == 404
    assert world.rows("SELECT email FROM subscribers") == [(ADDRESS,)]


def test_download_holds_the_consent_record_and_the_delivery_log(world: World) -> None:
    newsletter_project(world.project)
    token = world.add(ADDRESS)
    act(world, token, [("actie", "onderwerpen"), ("tracks", "wrb"), ("tracks", "woningmarkt")])
    assert send(world, datetime.now(UTC)) == {ADDRESS}
    (sid,) = world.rows("SELECT id FROM subscribers")[0]
    execute(
        world.project.root,
        "INSERT INTO mail_events (subscriber, issue, at, kind, code, decision, message) "
        "VALUES (:s, 1, '2026-11-28T10:00:00+00:00', 'complaint', '', 'afgemeld', '<m@x>')",
        s=sid,
    )
    before = world.rows(ROW)
    reply = act(world, token, {"actie": "downloaden"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json; charset=utf-8"
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    assert reply.headers["Cache-Control"] == "no-store"
    data = json.loads(reply.body)
    assert data["e-mailadres"] == ADDRESS and data["status"] == "active"
    assert data["alle_onderwerpen"] is False
    assert [t["id"] for t in data["onderwerpen"]] == ["wrb", "woningmarkt"]
    assert data["onderwerpen"][1]["naam"] == "Woningmarkt in krimpregio's"
    assert data["toestemming"] == {
        "bron": "beheerder",
        "gegeven_op": "2026-11-27T12:00:00+00:00",
        "versie_toestemmingstekst": "2026-11",
        "bevestigd_op": None,
    }
    assert data["gepauzeerd_tot"] is None
    [entry] = data["verzendlog"]
    assert (entry["nummer"], entry["status"], entry["pogingen"]) == (1, "sent", 1)
    assert entry["antwoord_mailserver"].startswith("250") and entry["bijgewerkt_op"]
    assert data["bounces_en_klachten"] == [
        {
            "nummer": 1,
            "moment": "2026-11-28T10:00:00+00:00",
            "soort": "complaint",
            "code": "",
            "besluit": "afgemeld",
            "bericht": "<m@x>",
        }
    ]
    assert world.rows(ROW) == before


def test_unsubscribing_and_the_page_afterwards(world: World) -> None:
    token = world.add(ADDRESS)
    reply = act(world, token, {"actie": "afmelden"})
    assert reply.status == 200 and "Je bent afgemeld" in reply.body
    assert world.rows("SELECT status, status_reason FROM subscribers") == [
        ("unsubscribed", "voorkeurenpagina")
    ]
    shown, _, _ = page(world, token)
    assert "Je bent afgemeld" in shown.body and 'href="/aanmelden"' in shown.body
    assert 'value="onderwerpen"' not in shown.body and 'value="downloaden"' in shown.body
    refused = act(world, token, [("actie", "onderwerpen"), ("tracks", "wrb")])
    assert refused.status == 409
    assert world.rows("SELECT tracks FROM subscribers") == [("*",)]
    # the one-click link of the mail still answers as before
    one_click = world.server.request(
        "POST", f"/afmelden/{token}", ONE_CLICK, {"Content-Type": FORM}
    )
    assert one_click.status == 200


def test_a_bounced_subscriber_is_told_why_nothing_comes(world: World) -> None:
    token = world.add(ADDRESS)
    execute(world.project.root, "UPDATE subscribers SET status = 'bounced'")
    shown, _, _ = page(world, token)
    assert "kwamen niet aan" in shown.body and "Je bent afgemeld" not in shown.body
    assert 'href="/aanmelden"' in shown.body and 'value="onderwerpen"' not in shown.body
    refused = act(world, token, {"actie": "pauzeren", "tot": "2026-12-15"})
    assert refused.status == 409 and "zolang je de nieuwsbrief ontvangt" in refused.body
    assert world.rows("SELECT status, paused_until FROM subscribers") == [("bounced", None)]


def test_erase_is_subscribers_remove(world: World) -> None:
    token = world.add(ADDRESS)
    asked = act(world, token, {"actie": "wissen"})
    assert asked.status == 200 and "niet ongedaan" in asked.body
    assert "Ja, wis mijn gegevens definitief" in asked.body
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(1,)]
    erased = act(world, token, {"actie": "wissen-bevestigd"})
    assert erased.status == 200 and "Je gegevens zijn gewist" in erased.body
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(0,)]
    assert world.rows("SELECT COUNT(*) FROM suppressions") == [(1,)]
    gone = world.server.request("GET", f"/voorkeuren/{token}")
    assert gone.status == 404
    assert gone.body == world.server.request("GET", "/voorkeuren/" + "x" * 22).body
    # `krimppost subscribers add` refuses the address, unless --force (the person's request)
    code, out, err = run(world.project, "add", ADDRESS)
    assert code == 1 and "onderdrukkingslijst" in out + err
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(0,)]
    code, _, _ = run(world.project, "add", ADDRESS, "--force")
    assert code == 0


def test_the_link_without_a_token_explains_itself(world: World) -> None:
    reply = world.server.request("GET", "/voorkeuren/")
    assert reply.status == 200 and "persoonlijke link onderaan elke nieuwsbrief" in reply.body
