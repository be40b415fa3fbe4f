"""The desk's newsletter pages over HTTP: what the next compile would take (nothing made),
compile, an issue as a subscriber of a track selection gets it, a proof through a real SMTP
server (aiosmtpd on loopback) to the signed-in person, approval, roles and the audit log."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_desk_web import PASSWORD, csrf_of, signed_in_at
from test_proof import EVENT, LABELS, Recorder, Sink, item, require_approval, set_smtp

from conftest import Project, build_at
from pipeline.config import load_config
from pipeline.desk.accounts import Accounts
from pipeline.state import IssueStore, StateStore, StoreAddress

pytestmark = pytest.mark.usefixtures("state_backend")

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def sink(recorder: Recorder) -> Iterator[Sink]:
    server = Sink(recorder)
    yield server
    server.close()


@pytest.fixture
def root(project: Project, sink: Sink) -> Path:
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    project.write("woningmarkt/masterclass.md", EVENT)
    require_approval(project.root)
    set_smtp(project.root, sink.port)
    build_at(project, "2026-11-27T12:00")
    accounts = Accounts(StoreAddress.of(load_config(project.root)))
    accounts.add("rick", "redacteur", PASSWORD, "rick@example.org")
    accounts.add("carla", "communicatie", PASSWORD, "carla@example.org")
    accounts.add("bea", "beheerder", PASSWORD)
    return project.root


def signed_in(root: Path, name: str = "rick") -> TestClient:
    return signed_in_at(root, name, NOW)


def issue(root: Path, number: int = 1):  # type: ignore[no-untyped-def]
    with StateStore.of(load_config(root)) as state:
        return IssueStore(state).get(number)


def audit(root: Path) -> list[tuple[str, str, str]]:
    rows = Accounts(StoreAddress.of(load_config(root))).audit_rows(None, 100)
    return [(r.user_name, r.action, r.subject) for r in rows]


def compiled(c: TestClient) -> str:
    page = c.get("/nieuwsbrief").text
    answer = c.post("/nieuwsbrief/samenstellen", data={"csrf": csrf_of(page)})
    assert answer.status_code == 200, answer.text
    return answer.text


def test_the_overview_shows_what_the_next_compile_takes_without_making_it(root: Path) -> None:
    c = signed_in(root)
    page = c.get("/nieuwsbrief")
    assert page.status_code == 200
    for n, track in enumerate(["wrb", "woningmarkt", "energietransitie"]):
        assert f"Bericht {n} over {track}" in page.text
    assert "1 evenement in de agenda" in page.text
    assert issue(root) is None  # looking made nothing
    done = compiled(c)
    assert "nieuwsbrief 1 gemaakt" in done
    record = issue(root)
    assert record is not None and not record.approved
    assert ("rick", "nieuwsbrief samengesteld", "nieuwsbrief 1") in audit(root)
    # While the concept waits, the next compile would refuse: the overview says so.
    assert "Nummer 1 wacht op goedkeuring" in c.get("/nieuwsbrief").text


def test_an_issue_is_shown_as_a_subscriber_of_the_chosen_tracks_gets_it(root: Path) -> None:
    c = signed_in(root)
    compiled(c)
    page = c.get("/nieuwsbrief/1?traject=wrb")
    assert page.status_code == 200
    assert '<iframe class="mail" src="/nieuwsbrief/1/mail?traject=wrb"' in page.text
    assert 'value="wrb" checked' in page.text
    assert LABELS["wrb"] in page.text and LABELS["energietransitie"] not in page.text
    mail = c.get("/nieuwsbrief/1/mail?traject=wrb")
    assert mail.status_code == 200
    assert "Bericht 0 over wrb" in mail.text and "Bericht 2 over energietransitie" not in mail.text
    assert mail.headers["x-frame-options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in mail.headers["content-security-policy"]
    everything = c.get("/nieuwsbrief/1/mail").text
    assert "Bericht 2 over energietransitie" in everything and "Bericht 0 over wrb" in everything
    # The desk's other pages may not be framed.
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_proof_goes_to_the_signed_in_person_only_and_is_logged(
    root: Path, recorder: Recorder
) -> None:
    c = signed_in(root)
    compiled(c)
    page = c.get("/nieuwsbrief/1?traject=woningmarkt").text
    answer = c.post("/nieuwsbrief/1/proef", data={"csrf": csrf_of(page), "traject": "woningmarkt"})
    assert answer.status_code == 200, answer.text
    assert "proef van nieuwsbrief 1" in answer.text
    assert recorder.received() == {"rick@example.org": 1}
    message = recorder.message_for("rick@example.org")
    assert message["Subject"].startswith("[PROEF] ")
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert LABELS["woningmarkt"] in body and LABELS["wrb"] not in body
    assert ("rick", "proef verstuurd", "nieuwsbrief 1") in audit(root)


def test_a_proof_without_an_address_on_the_account_is_refused_with_how_to_fix_it(
    root: Path, recorder: Recorder
) -> None:
    c = signed_in(root, "bea")
    compiled(c)
    page = c.get("/nieuwsbrief/1").text
    answer = c.post("/nieuwsbrief/1/proef", data={"csrf": csrf_of(page)})
    assert answer.status_code == 409
    assert "krimppost users email bea ADRES" in answer.text
    assert recorder.received() == {}
    assert ("bea", "proef geweigerd", "nieuwsbrief 1") in audit(root)


def test_approving_records_who_puts_it_on_the_site_and_is_logged(root: Path) -> None:
    c = signed_in(root)
    compiled(c)
    assert not (root / "outbox" / "site" / "nieuwsbrief" / "1" / "index.html").exists()
    page = c.get("/nieuwsbrief/1").text
    assert ">Goedkeuren</button>" in page
    answer = c.post("/nieuwsbrief/1/goedkeuren", data={"csrf": csrf_of(page)})
    assert answer.status_code == 200, answer.text
    assert "nieuwsbrief 1 goedgekeurd door rick" in answer.text
    record = issue(root)
    assert record.approved_by == "rick"
    assert (root / "outbox" / "site" / "nieuwsbrief" / "1" / "index.html").is_file()
    assert ">Goedkeuren</button>" not in c.get("/nieuwsbrief/1").text
    assert ("rick", "nieuwsbrief goedgekeurd", "nieuwsbrief 1") in audit(root)


def test_communicatie_may_not_see_or_act_on_the_newsletter(root: Path) -> None:
    compiled(signed_in(root))
    c = signed_in(root, "carla")
    csrf = csrf_of(c.get("/social").text)
    for path in ("/nieuwsbrief", "/nieuwsbrief/1", "/nieuwsbrief/1/mail"):
        assert c.get(path).status_code == 403, path
    for path in ("/nieuwsbrief/samenstellen", "/nieuwsbrief/1/proef", "/nieuwsbrief/1/goedkeuren"):
        assert c.post(path, data={"csrf": csrf}).status_code == 403, path
    assert not issue(root).approved
    # Without the CSRF token a redacteur's approval is refused too.
    r = signed_in(root)
    assert r.post("/nieuwsbrief/1/goedkeuren", data={}).status_code == 403
    assert not issue(root).approved


def test_users_email_sets_the_proof_address(root: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli

    result = CliRunner().invoke(
        cli, ["users", "email", "bea", "Bea@Example.org", "--root", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert Accounts(StoreAddress.of(load_config(root))).user("bea").email == "Bea@example.org"
    assert re.search(r"e-mailadres gewijzigd", "\n".join(a for _, a, _ in audit(root)))
