"""Two `serve` processes against one state store (two hosts behind one address): either
answers the subscribe, confirm and unsubscribe of the other, and they share one rate limit.

Two project folders stand for the two hosts; on SQLite both name the same store file, on
PostgreSQL the test's database (state_backend)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import storesql
from test_delivery import Recorder, Sink, set_smtp
from test_serve import FORM, Server

from conftest import Project

pytestmark = pytest.mark.usefixtures("state_backend")


def form_of(server: Server) -> tuple[str, str]:
    reply = server.request("GET", "/aanmelden")
    assert reply.status == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', reply.body)
    assert csrf is not None
    return reply.headers["Set-Cookie"].split(";", 1)[0], csrf.group(1)


def post(server: Server, path: str, fields: list[tuple[str, str]], cookie: str) -> int:
    body = urllib.parse.urlencode(fields).encode()
    return server.request("POST", path, body, {"Content-Type": FORM, "Cookie": cookie}).status


@pytest.fixture
def two(project: Project, tmp_path) -> Iterator[tuple[Server, Server, Recorder, Project]]:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    sink = Sink(recorder)
    other = Project(tmp_path / "tweede")
    store = project.root / ".krimppost" / "state.sqlite"
    for root in (project.root, other.root):
        set_smtp(root, sink.port)
        site = root / "outbox" / "site"
        site.mkdir(parents=True)
        (site / "index.html").write_text("<!doctype html><title>x</title>", encoding="utf-8")
    config = other.root / "config.toml"
    text = config.read_text(encoding="utf-8").replace(
        'path = ".krimppost/state.sqlite"', f'path = "{store}"'
    )
    config.write_text(text, encoding="utf-8")
    assert f'path = "{store}"' in config.read_text(encoding="utf-8")
    clock = [datetime(2026, 11, 27, 12, 0, tzinfo=UTC)]
    first, second = Server(project.root, clock), Server(other.root, clock)
    yield first, second, recorder, project
    first.close()
    second.close()
    sink.close()


def test_either_serve_answers_what_the_other_began(two) -> None:  # type: ignore[no-untyped-def]
    first, second, recorder, project = two
    cookie, csrf = form_of(first)
    # A form from the first, posted to the second (a load balancer may do that).
    fields = [("email", "lezer@example.nl"), ("csrf", csrf), ("tracks", "wrb")]
    assert post(second, "/aanmelden", fields, cookie) == 200
    mail = recorder.message_for("lezer@example.nl").get_content()
    link = re.search(r"https://www\.bevolkingsdaling\.nl(/bevestigen/[A-Za-z0-9_-]{22})", mail)
    assert link is not None
    page = first.request("GET", link.group(1))
    assert page.status == 200 and "Aanmelding bevestigen" in page.body
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert csrf is not None
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    assert post(second, link.group(1), [("csrf", csrf.group(1))], cookie) == 200
    assert storesql.rows(project.root, "SELECT status FROM subscribers") == [("active",)]
    (token,) = storesql.rows(project.root, "SELECT token FROM subscribers")[0]
    reply = first.request(
        "POST", f"/afmelden/{token}", b"List-Unsubscribe=One-Click", {"Content-Type": FORM}
    )
    assert reply.status == 200
    assert storesql.rows(project.root, "SELECT status FROM subscribers") == [("unsubscribed",)]


def test_two_serves_share_one_rate_limit(two) -> None:  # type: ignore[no-untyped-def]
    first, second, recorder, _ = two
    cookie, csrf = form_of(first)
    statuses = []
    for i in range(6):  # the limit is 5 per client per window, whichever serve answers
        server = first if i % 2 == 0 else second
        fields = [("email", f"lezer{i}@example.nl"), ("csrf", csrf)]
        statuses.append(post(server, "/aanmelden", fields, cookie))
    assert statuses == [200, 200, 200, 200, 200, 429]
    assert len(recorder.messages) == 5
