"""Sending through a relay that wants TLS and a login: aiosmtpd with STARTTLS, implicit
TLS and AUTH on loopback, certificates from a throw-away CA made here (trustme)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner
from test_delivery import Recorder, add_subscribers, newsletter_project, set_smtp

from conftest import REPO, Project, free_port
from pipeline.cli import cli
from pipeline.config import load_config, parse_config

USER, PASSWORD = "nieuwsbrief", "juist-wachtwoord"
# aiosmtpd sees TLS only from its own STARTTLS: on implicit TLS it warns about AUTH without it
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled: aiosmtpd answers 535 itself


class Relay:
    """aiosmtpd on 127.0.0.1: STARTTLS required (or implicit TLS) and AUTH required."""

    def __init__(self, tmp: Path, implicit: bool = False, names: tuple[str, ...] = ()) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert(*(names or ("localhost", "127.0.0.1")))
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_context)
        self.ca_file = tmp / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.recorder = Recorder()
        self.port = free_port()
        # aiosmtpd knows TLS only from its own STARTTLS: on implicit TLS it must not ask
        options: dict[str, object] = {
            "auth_required": True,
            "authenticator": authenticator,
            "auth_require_tls": not implicit,
        }
        if implicit:
            self.controller = Controller(
                self.recorder,
                hostname="127.0.0.1",
                port=self.port,
                ssl_context=self.server_context,
                **options,
            )
        else:
            self.controller = Controller(
                self.recorder,
                hostname="127.0.0.1",
                port=self.port,
                tls_context=self.server_context,
                require_starttls=True,
                **options,
            )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def sending(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    newsletter_project(project)
    add_subscribers(project.root, 3, [""])
    monkeypatch.setenv("KRIMPPOST_SMTP_WACHTWOORD", PASSWORD)
    return project


def configure(project: Project, relay_port: int, **options: object) -> None:
    set_smtp(
        project.root,
        relay_port,
        username=USER,
        password_env="KRIMPPOST_SMTP_WACHTWOORD",
        **options,
    )


def send(project: Project):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["newsletter", "send", "1", "--root", str(project.root)])


def dutch_line(result, needle: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if needle in line]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_sending_through_tls_with_a_login_works(
    sending: Project, tmp_path: Path, implicit: bool
) -> None:
    relay = Relay(tmp_path, implicit)
    try:
        security = "tls" if implicit else "starttls"
        configure(sending, relay.port, security=security, ca_file=str(relay.ca_file))
        result = send(sending)
        assert result.exit_code == 0, result.output
        assert len(relay.recorder.received()) == 3
    finally:
        relay.stop()


def test_a_wrong_password_fails_with_one_dutch_line(
    sending: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = Relay(tmp_path)
    monkeypatch.setenv("KRIMPPOST_SMTP_WACHTWOORD", "fout")
    try:
        configure(sending, relay.port, security="starttls", ca_file=str(relay.ca_file))
        started = time.monotonic()
        line = dutch_line(send(sending), "geweigerd")
        assert time.monotonic() - started < 10  # not retried
    finally:
        relay.stop()
    assert f"127.0.0.1:{relay.port}: inloggen als {USER} geweigerd: 535" in line
    assert relay.recorder.received() == {}


def test_an_untrusted_certificate_is_refused_with_the_reason(
    sending: Project, tmp_path: Path
) -> None:
    relay = Relay(tmp_path)
    other = tmp_path / "andere-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    try:
        configure(sending, relay.port, security="starttls", ca_file=str(other))
        line = dutch_line(send(sending), "certificaat afgekeurd")
    finally:
        relay.stop()
    assert (
        f"127.0.0.1:{relay.port}: certificaat afgekeurd: uitgegeven door een CA die niet " in line
    )
    assert "(unable to get local issuer certificate)" in line
    assert relay.recorder.received() == {}


def test_a_certificate_for_another_host_is_refused(sending: Project, tmp_path: Path) -> None:
    relay = Relay(tmp_path, implicit=True, names=("smtp.elders.example",))
    try:
        configure(sending, relay.port, security="tls", ca_file=str(relay.ca_file))
        line = dutch_line(send(sending), "certificaat afgekeurd")
    finally:
        relay.stop()
    assert "mismatch" in line


def test_a_server_without_starttls_gets_nothing_in_plain_text(sending: Project) -> None:
    recorder = Recorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        set_smtp(sending.root, port, security="starttls")
        line = dutch_line(send(sending), "STARTTLS")
    finally:
        controller.stop()
    assert f"127.0.0.1:{port}: de server biedt geen STARTTLS aan" in line
    assert recorder.received() == {}


def test_a_server_that_hangs_up_after_its_greeting_is_named(sending: Project) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"220 relay.example ESMTP\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        set_smtp(sending.root, port, security="none")
        started = time.monotonic()
        line = dutch_line(send(sending), "geen verbinding")
        assert time.monotonic() - started < 10  # set_smtp: 2 retries from 0.05 s
    finally:
        listener.close()
    assert f"127.0.0.1:{port}: verbinding verbroken door de server" in line


def test_a_refused_connection_fails_in_seconds_with_host_and_port(sending: Project) -> None:
    port = free_port()
    # the defaults: 3 retries from 5 s (35 s of waiting before)
    set_smtp(sending.root, port, retries=3, retry_delay=5)
    started = time.monotonic()
    line = dutch_line(send(sending), "geen verbinding")
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}: verbinding geweigerd" in line


def test_starttls_is_the_default_for_another_host_and_none_for_this_one() -> None:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    assert load_config(REPO).smtp.security == "none"  # localhost
    other = text.replace('host = "localhost"', 'host = "smtp.bevolkingsdaling.nl"')
    assert parse_config(other, REPO).smtp.security == "starttls"
    explicit = other.replace('security = ""', 'security = "tls"')
    assert parse_config(explicit, REPO).smtp.security == "tls"


def test_a_confirmation_mail_without_a_relay_is_one_dutch_line(project: Project) -> None:
    from pipeline.delivery.sender import send_one
    from pipeline.delivery.smtp import Stop

    port = free_port()
    set_smtp(project.root, port)
    with pytest.raises(Stop) as caught:
        send_one(load_config(project.root), "lezer@example.nl", b"Subject: x\r\n\r\nx\r\n")
    assert str(caught.value) == (
        f"geen verbinding met 127.0.0.1:{port}: verbinding geweigerd (draait de server, en op "
        "deze poort?)"
    )
