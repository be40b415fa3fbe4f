"""Issue 13: `krimppost serve` under hostile requests (body limits, headers, confirmation)."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import test_serve
from test_serve import FORM, World

from conftest import REPO, Project

SECURITY = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
)


world = test_serve.world  # the app with a built page and an SMTP sink, as test_serve has it


# a real `krimppost serve` in a subprocess ------------------------------------------------


def _memory_kb(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


@pytest.fixture
def served(project: Project) -> Iterator[tuple[int, int]]:
    """(pid, port) of `krimppost serve` on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "serve",
            "--root",
            str(project.root),
            "--port",
            str(port),
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield proc.pid, port
    finally:
        proc.terminate()
        proc.wait(20)


def _raw(
    port: int, head: bytes, chunks: Iterator[bytes], deadline: float = 10
) -> tuple[bytes, int]:
    """Send `head`, then `chunks` until the server answers: (answer, body bytes sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=deadline)
    answer = b""
    sent = 0
    try:
        sock.sendall(head)
        end = time.monotonic() + deadline
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            assert time.monotonic() < end
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except ConnectionResetError:
            pass
    finally:
        sock.close()
    return answer, sent


def _chunked(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    piece = b"%x\r\n" % size + b"x" * size + b"\r\n"
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


def test_chunked_body_is_cut_off_at_the_limit_and_memory_stays_flat(
    served: tuple[int, int],
) -> None:
    pid, port = served
    before = _memory_kb(pid, "VmRSS")
    head = (
        b"POST /afmelden/abc HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answer, sent = _raw(port, head, _chunked(50 * 1024 * 1024))
    grown = _memory_kb(pid, "VmHWM") - before
    assert grown < 20 * 1024, f"serve grew by {grown} kB"
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 20 * 1024 * 1024  # answered early, not after the 50 MB


def test_content_length_over_the_limit_is_refused_up_front_on_every_route(
    served: tuple[int, int],
) -> None:
    _, port = served
    for path in ("/", "/afmelden/abc", "/aanmelden", "/bevestigen/abc", "/bestaat/niet"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n"
        ).encode()
        answer, _ = _raw(port, head, iter(()))
        assert answer.startswith(b"HTTP/1.1 413 "), (path, answer[:200])
        assert b"content-security-policy" in answer.lower()


def test_static_preview_pages_get_the_security_headers_of_the_app_pages(world: World) -> None:
    (world.project.root / "outbox" / "site" / "stijl.css").write_text("p{}", encoding="utf-8")
    app_page = world.server.request("GET", "/aanmelden")
    assert all(app_page.headers[name] for name in SECURITY)
    for path in ("/", "/index.html", "/stijl.css", "/bestaat/niet.html"):
        reply = world.server.request("GET", path)
        for name in SECURITY:
            assert reply.headers[name] == app_page.headers[name], (path, name)


def test_a_small_body_still_works(world: World) -> None:
    token = world.add("lezer@example.nl")
    reply = world.server.request(
        "POST", f"/afmelden/{token}", b"List-Unsubscribe=One-Click", {"Content-Type": FORM}
    )
    assert reply.status == 200
    assert world.status("lezer@example.nl") == "unsubscribed"


# double opt-in: only the button's POST confirms ----------------------------------------------


def _confirm_link(world: World, address: str) -> str:
    assert world.subscribe(address, []).status == 200
    text = world.recorder.message_for(address).get_content()
    assert "klik op de knop" in text
    link = re.search(r"(/bevestigen/[A-Za-z0-9_-]{22})", text)
    assert link is not None
    return link.group(1)


def _status(world: World) -> list[tuple]:
    return world.rows("SELECT status, confirmed_at FROM subscribers")


def test_get_and_head_of_the_confirmation_link_confirm_nothing(world: World) -> None:
    link = _confirm_link(world, "nieuw@example.nl")
    for method in ("HEAD", "GET", "HEAD", "GET"):
        reply = world.server.request(method, link)
        assert reply.status == 200
        assert _status(world) == [("pending", None)]
    page = world.server.request("GET", link)
    assert '<html lang="nl">' in page.body and "n…@example.nl" in page.body
    assert f'<form method="post" action="{link}">' in page.body
    assert "<button" in page.body and "Aanmelding bevestigen" in page.body
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"


def test_the_button_confirms_with_the_csrf_token_only(world: World) -> None:
    link = _confirm_link(world, "nieuw@example.nl")
    page = world.server.request("GET", link)
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    assert "HttpOnly" in page.headers["Set-Cookie"]
    assert "SameSite=strict" in page.headers["Set-Cookie"]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert csrf is not None
    good = urllib.parse.urlencode({"csrf": csrf.group(1)}).encode()
    refused = [
        world.server.request("POST", link, b"", {"Content-Type": FORM}),
        world.server.request("POST", link, good, {"Content-Type": FORM}),  # no cookie
        world.server.request(
            "POST", link, b"csrf=" + b"0" * 64, {"Content-Type": FORM, "Cookie": cookie}
        ),
        world.server.request(
            "POST",
            link,
            good,
            {"Content-Type": FORM, "Cookie": cookie, "Origin": "https://kwaadaardig.example"},
        ),
    ]
    assert [r.status for r in refused] == [403] * 4
    assert "Aanmelding bevestigen" in refused[0].body  # the button again, to try once more
    assert _status(world) == [("pending", None)]
    confirmed = world.server.request("POST", link, good, {"Content-Type": FORM, "Cookie": cookie})
    assert confirmed.status == 200 and "Je aanmelding is bevestigd" in confirmed.body
    assert _status(world) == [("active", "2026-11-27T12:00:00+00:00")]
    assert (
        world.server.request("POST", link, good, {"Content-Type": FORM, "Cookie": cookie}).status
        == 200
    )


def test_unknown_and_expired_confirmation_links_are_a_404_for_post_too(world: World) -> None:
    link = _confirm_link(world, "laat@example.nl")
    page = world.server.request("GET", link)
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert csrf is not None
    body = urllib.parse.urlencode({"csrf": csrf.group(1)}).encode()
    headers = {"Content-Type": FORM, "Cookie": cookie}
    assert world.server.request("POST", "/bevestigen/" + "x" * 22, body, headers).status == 404
    world.clock[0] += timedelta(days=8)
    assert world.server.request("GET", link).status == 404
    assert world.server.request("POST", link, body, headers).status == 404
    assert _status(world) == [("pending", None)]


# confirmation mails rate-limited per mailbox ---------------------------------------------


def test_plus_tag_variants_of_one_mailbox_get_one_confirmation_mail_per_window(
    world: World,
) -> None:
    # five requests in all: under the per-client limit, so only the mailbox limit holds back
    cookie, csrf = world.form()
    replies = [
        world.subscribe(address, [], cookie, csrf)
        for address in (
            "anna+1@example.nl",
            "Anna+3@Example.NL",
            "anna@example.nl",
        )
    ]
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1  # the same answer: nothing to enumerate
    assert [a for a, _ in world.recorder.messages] == ["anna+1@example.nl"]
    assert world.rows("SELECT email FROM subscribers") == [("anna+1@example.nl",)]
    # another mailbox, or the same local part at another domain, is not held up
    world.subscribe("anna+1@example.org", [], cookie, csrf)
    assert len(world.recorder.messages) == 2
    # after the window a variant may ask again
    world.clock[0] += timedelta(seconds=601)
    world.subscribe("anna+2@example.nl", [], cookie, csrf)
    assert [a for a, _ in world.recorder.messages][-1] == "anna+2@example.nl"


def test_mailbox_of_an_address() -> None:
    from pipeline.delivery.subscribers import mailbox

    assert mailbox("anna+nieuws+x@example.nl") == "anna@example.nl"
    assert mailbox("anna@example.nl") == "anna@example.nl"
    assert mailbox("a_b%c+1@example.nl") == "a_b%c@example.nl"
    assert mailbox("+31-6@example.nl") == "+31-6@example.nl"


def test_mailbox_limit_matches_literally(world: World) -> None:
    # `_` and `%` are LIKE wildcards: escaped, so `a_b` never holds up `axb`
    state, store = world.store()
    now = world.clock[0]
    with state:
        assert store.request("a_b+1@example.nl", "*", now) is not None
        assert store.request("axb+1@example.nl", "*", now) is not None
        assert store.request("a%+1@example.nl", "*", now) is not None
        assert store.request("aaa+1@example.nl", "*", now) is not None
        assert store.request("a_b+2@example.nl", "*", now) is None
