"""`krimppost serve`: the web app on a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import storesql
import uvicorn
from test_delivery import Recorder, Sink, set_smtp

from conftest import Project
from pipeline.config import load_config
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.delivery.webapp import create_app
from pipeline.state import StateStore

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str


class Server:
    """uvicorn serving the app in a thread; bounded start-up and shut-down."""

    def __init__(self, root: Path, clock: list[datetime]) -> None:
        app = create_app(root, clock=lambda: clock[0])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read().decode())
        finally:
            conn.close()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class World:
    project: Project
    server: Server
    recorder: Recorder
    clock: list[datetime]

    def store(self) -> tuple[StateStore, SubscriberStore]:
        config = load_config(self.project.root)
        state = StateStore.of(config)
        return state, SubscriberStore(state, config)

    def rows(self, sql: str, *args: object) -> list[tuple]:
        return storesql.rows(self.project.root, sql, *args)

    def add(self, address: str) -> str:
        state, store = self.store()
        with state:
            store.add(address, None, self.clock[0])
            return str(self.rows("SELECT token FROM subscribers WHERE email = ?", address)[0][0])

    def status(self, address: str) -> str:
        return str(self.rows("SELECT status FROM subscribers WHERE email = ?", address)[0][0])

    def form(self) -> tuple[str, str]:
        """GET the subscribe form: (cookie header value, csrf field)."""
        reply = self.server.request("GET", "/aanmelden")
        assert reply.status == 200
        cookie = reply.headers["Set-Cookie"].split(";", 1)[0]
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body)
        assert csrf is not None
        return cookie, csrf.group(1)

    def subscribe(
        self, email: str, tracks: list[str], cookie: str | None = None, csrf: str | None = None
    ) -> Reply:
        if cookie is None or csrf is None:
            cookie, csrf = self.form()
        fields = [("email", email), ("csrf", csrf), *[("tracks", t) for t in tracks]]
        return self.server.request(
            "POST",
            "/aanmelden",
            urllib.parse.urlencode(fields).encode(),
            {"Content-Type": FORM, "Cookie": cookie},
        )


@pytest.fixture
def world(project: Project) -> Iterator[World]:
    with serving(project) as world:
        yield world


@contextlib.contextmanager
def serving(project: Project) -> Iterator[World]:
    """The web app of `project` over a mail sink, with a clock the test moves."""
    site = project.root / "outbox" / "site"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>Voorbeeld</title>", encoding="utf-8")
    recorder = Recorder()
    sink = Sink(recorder)
    set_smtp(project.root, sink.port)
    clock = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    server = Server(project.root, clock)
    yield World(project, server, recorder, clock)
    server.close()
    sink.close()


def test_one_click_post_unsubscribes_at_once_without_cookie_or_redirect(world: World) -> None:
    token = world.add("lezer@example.nl")
    reply = world.server.request("POST", f"/afmelden/{token}", ONE_CLICK, {"Content-Type": FORM})
    assert reply.status == 200
    assert "Set-Cookie" not in reply.headers and "Location" not in reply.headers
    assert "Je bent afgemeld" in reply.body
    assert world.status("lezer@example.nl") == "unsubscribed"
    assert world.rows("SELECT status_reason FROM subscribers") == [("one-click",)]
    again = world.server.request("POST", f"/afmelden/{token}", ONE_CLICK, {"Content-Type": FORM})
    assert again.status == 200  # idempotent


def test_one_click_as_multipart_form_data(world: World) -> None:
    token = world.add("lezer@example.nl")
    boundary = "grens"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    reply = world.server.request(
        "POST",
        f"/afmelden/{token}",
        body,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status == 200
    assert world.status("lezer@example.nl") == "unsubscribed"


def test_get_shows_a_button_and_never_unsubscribes(world: World) -> None:
    token = world.add("lezer@example.nl")
    for method in ("GET", "HEAD", "GET"):
        reply = world.server.request(method, f"/afmelden/{token}")
        assert reply.status == 200
    reply = world.server.request("GET", f"/afmelden/{token}")
    assert world.status("lezer@example.nl") == "active"
    assert '<html lang="nl">' in reply.body
    assert "l…@example.nl" in reply.body and "lezer@example.nl" not in reply.body
    assert f'<form method="post" action="/afmelden/{token}">' in reply.body
    assert 'name="List-Unsubscribe" value="One-Click"' in reply.body
    assert "<button" in reply.body
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert reply.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in reply.headers
    # the button posts the same body: that unsubscribes
    posted = world.server.request(
        "POST",
        f"/afmelden/{token}",
        b"List-Unsubscribe=One-Click&bron=pagina",
        {"Content-Type": FORM},
    )
    assert posted.status == 200
    assert world.rows("SELECT status, status_reason FROM subscribers") == [
        ("unsubscribed", "afmeldpagina")
    ]


def test_post_without_the_one_click_body_changes_nothing(world: World) -> None:
    token = world.add("lezer@example.nl")
    reply = world.server.request(
        "POST", f"/afmelden/{token}", b"iets=anders", {"Content-Type": FORM}
    )
    assert reply.status == 400
    assert world.status("lezer@example.nl") == "active"


def test_unknown_forged_and_expired_tokens_get_the_same_404(world: World) -> None:
    token = world.add("lezer@example.nl")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    replies = [
        world.server.request("GET", f"/afmelden/{forged}"),
        world.server.request("POST", f"/afmelden/{forged}", ONE_CLICK, {"Content-Type": FORM}),
        world.server.request("GET", "/afmelden/onzin"),
        world.server.request("GET", "/bevestigen/" + "x" * 22),
        world.server.request("GET", f"/bevestigen/{token}"),  # an unsubscribe token elsewhere
    ]
    assert {r.status for r in replies} == {404}
    assert len({r.body for r in replies}) == 1
    assert "lezer" not in replies[0].body
    assert world.status("lezer@example.nl") == "active"


def test_double_opt_in(world: World) -> None:
    reply = world.subscribe("Nieuw@Example.nl", ["wrb", "energietransitie"])
    assert reply.status == 200 and "Bevestig je aanmelding" in reply.body
    assert world.rows(
        "SELECT email, status, tracks, source, consent_version, confirmed_at FROM subscribers"
    ) == [
        ("Nieuw@example.nl", "pending", ",wrb,energietransitie,", "webformulier", "2026-11", None)
    ]
    assert [a for a, _ in world.recorder.messages] == ["Nieuw@example.nl"]
    mail = world.recorder.message_for("Nieuw@example.nl")
    assert mail["Subject"] == "Bevestig je aanmelding voor de nieuwsbrief van Bevolkingsdaling"
    text = mail.get_content()
    link = re.search(r"https://www\.bevolkingsdaling\.nl(/bevestigen/[A-Za-z0-9_-]{22})", text)
    assert link is not None and "Klimaat- en energietransitie" in text
    world.clock[0] += timedelta(hours=2)
    page = world.server.request("GET", link.group(1))  # a page with a button: confirms nothing
    assert page.status == 200 and "Aanmelding bevestigen" in page.body
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert csrf is not None
    confirmed = world.server.request(
        "POST",
        link.group(1),
        urllib.parse.urlencode({"csrf": csrf.group(1)}).encode(),
        {"Content-Type": FORM, "Cookie": cookie},
    )
    assert confirmed.status == 200 and "Je aanmelding is bevestigd" in confirmed.body
    assert world.rows("SELECT status, confirmed_at FROM subscribers") == [
        ("active", "2026-11-27T14:00:00+00:00")
    ]
    again = world.server.request("GET", link.group(1))  # a second click is fine
    assert again.status == 200 and "Je aanmelding is bevestigd" in again.body


def test_expired_confirmation_link_is_a_404(world: World) -> None:
    world.subscribe("laat@example.nl", [])
    link = re.search(
        r"(/bevestigen/[A-Za-z0-9_-]{22})",
        world.recorder.message_for("laat@example.nl").get_content(),
    )
    assert link is not None
    world.clock[0] += timedelta(days=8)
    assert world.server.request("GET", link.group(1)).status == 404
    assert world.rows("SELECT status FROM subscribers") == [("pending",)]


def test_form_needs_the_csrf_cookie_and_token(world: World) -> None:
    cookie, csrf = world.form()
    assert "HttpOnly" in world.server.request("GET", "/aanmelden").headers["Set-Cookie"]
    assert "SameSite=strict" in world.server.request("GET", "/aanmelden").headers["Set-Cookie"]
    body = urllib.parse.urlencode({"email": "a@example.nl", "csrf": csrf}).encode()
    no_cookie = world.server.request("POST", "/aanmelden", body, {"Content-Type": FORM})
    other_cookie = world.server.request(
        "POST",
        "/aanmelden",
        body,
        {"Content-Type": FORM, "Cookie": "krimppost_csrf=" + "A" * 22},
    )
    wrong_token = world.subscribe("a@example.nl", [], cookie, "0" * 64)
    cross_site = world.server.request(
        "POST",
        "/aanmelden",
        body,
        {"Content-Type": FORM, "Cookie": cookie, "Origin": "https://kwaadaardig.example"},
    )
    for reply in (no_cookie, other_cookie, wrong_token, cross_site):
        assert reply.status == 403
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(0,)]
    assert world.recorder.messages == []
    assert world.subscribe("a@example.nl", [], cookie, csrf).status == 200


def test_form_errors_are_reported_accessibly(world: World) -> None:
    reply = world.subscribe("geen-adres", ["wrb"])
    assert reply.status == 400
    assert 'role="alert"' in reply.body and 'aria-invalid="true"' in reply.body
    assert "Dit is geen geldig e-mailadres" in reply.body
    assert 'value="geen-adres"' in reply.body
    assert (
        'id="traject-wrb" name="tracks" value="wrb" aria-describedby="traject-wrb-uitleg" checked'
        in reply.body
    )
    assert world.subscribe("a@example.nl", ["bestaat-niet"]).status == 400


def test_subscribe_is_rate_limited_per_client(world: World) -> None:
    cookie, csrf = world.form()
    statuses = [world.subscribe(f"lezer{i}@example.nl", [], cookie, csrf).status for i in range(6)]
    assert statuses == [200, 200, 200, 200, 200, 429]
    assert len(world.recorder.messages) == 5


def test_same_answer_for_known_and_suppressed_addresses_without_mail(world: World) -> None:
    world.add("bekend@example.nl")
    state, store = world.store()
    with state:
        store.remove("gewist@example.nl", world.clock[0])
    cookie, csrf = world.form()
    first = world.subscribe("gewist@example.nl", [], cookie, csrf)
    second = world.subscribe("nieuw@example.nl", [], cookie, csrf)
    assert first.status == second.status == 200
    assert first.body == second.body
    assert [a for a, _ in world.recorder.messages] == ["nieuw@example.nl"]
    # a second request for the same address within the window sends no second mail
    world.subscribe("nieuw@example.nl", [], cookie, csrf)
    assert len(world.recorder.messages) == 1


def test_smtp_failure_is_reported_and_can_be_retried(world: World) -> None:
    world.recorder.rcpt_policy = lambda a, n: "451 4.3.0 later" if n == 1 else None
    cookie, csrf = world.form()
    failed = world.subscribe("nieuw@example.nl", [], cookie, csrf)
    assert failed.status == 503 and "lukt nu niet" in failed.body
    assert world.rows("SELECT COUNT(*) FROM subscribers") == [(0,)]
    assert world.subscribe("nieuw@example.nl", [], cookie, csrf).status == 200
    assert len(world.recorder.messages) == 1


def test_serves_the_site_for_preview(world: World) -> None:
    reply = world.server.request("GET", "/")
    assert reply.status == 200 and "<title>Voorbeeld</title>" in reply.body
    assert world.server.request("GET", "/bestaat/niet.html").status == 404


def test_serve_command_starts_answers_and_stops(project: Project) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys

    from conftest import REPO

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = "import sys; from pipeline.commands.serve import serve; serve(sys.argv[1:])"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--root", str(project.root), "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/aanmelden")
                status = conn.getresponse().status
                conn.close()
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert f"krimppost serve: http://127.0.0.1:{port}/" in err.decode()
    assert "/aanmelden" not in err.decode()  # no access log (URLs carry tokens)
