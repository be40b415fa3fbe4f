"""The SMTP side of delivery: the relay's settings, the connection, DKIM, one message's dialogue.

`transmit` speaks MAIL, RCPT, DATA and the final `.` for one message and says what became
of it; the caller decides what that means for its journal. It calls `claim` (the durable
`sending` mark) after RCPT is accepted and waits for it before the dot, so a process
killed before the dot leaves a half-sent DATA that the server discards. After the dot
only the server's reply tells whether the message was accepted: a connection that closes
in order or times out after the dot leaves the outcome `uncertain`; one that is reset did
not read the dot (see `_reset_by_peer`) and is retried like a 4xx.
"""

from __future__ import annotations

import functools
import logging
import os
import select
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.config import CONFIG_NAME, Config, ConfigError, is_loopback
from pipeline.errors import Problem

# The headers a DKIM signature covers (those present), one-click unsubscribe included.
DKIM_HEADERS = (
    b"from",
    b"reply-to",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


class Stop(Exception):
    """A problem that stops the whole run (the rest stays pending for the next one)."""


# configuration ---------------------------------------------------------------------------


def smtp_problems(config: Config) -> list[Problem]:
    """What the [smtp] section needs beyond each option's own check."""
    smtp = config.smtp
    problems = []

    def problem(message: str) -> None:
        problems.append(Problem(CONFIG_NAME, None, f"[smtp] {message}"))

    if smtp.username and not smtp.password_env:
        problem("username is gezet maar password_env niet (de naam van de omgevingsvariabele)")
    if smtp.password_env and not os.environ.get(smtp.password_env):
        problem(f"omgevingsvariabele {smtp.password_env} (password_env) is niet gezet")
    if smtp.username and smtp.security == "none" and not is_loopback(smtp.host):
        problem(
            "inloggen zonder versleuteling naar een andere machine is geweigerd; "
            "gebruik security = 'starttls' of 'tls'"
        )
    if smtp.ca_file:
        try:
            _tls(str(config.path(smtp.ca_file)))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or "geen PEM-certificaten"
            problem(f"ca_file: kan {config.path(smtp.ca_file)} niet gebruiken: {reason}")
    dkim = (smtp.dkim_selector, smtp.dkim_domain, smtp.dkim_key_path)
    if any(dkim) and not all(dkim):
        problem("dkim_selector, dkim_domain en dkim_key_path horen samen")
    elif all(dkim):
        path = config.path(smtp.dkim_key_path)
        try:
            key = path.read_bytes()
        except OSError as exc:
            problem(f"dkim_key_path: kan {path} niet lezen: {exc.strerror}")
        else:
            if b"PRIVATE KEY" not in key:
                problem(f"dkim_key_path: {path} is geen private sleutel in PEM")
    return problems


def password(config: Config) -> str | None:
    name = config.smtp.password_env
    return os.environ.get(name) if name else None


def envelope_sender(config: Config) -> str:
    return config.smtp.envelope_from


# the connection --------------------------------------------------------------------------


log = logging.getLogger("krimppost.send")


@functools.cache
def _tls(ca_file: str | None = None) -> ssl.SSLContext:
    """Certificate-checking TLS (host name included), made once per CA file: loading the CA
    store costs ~30 ms each time."""
    return ssl.create_default_context(cafile=ca_file)


def _context(config: Config) -> ssl.SSLContext:
    ca = config.smtp.ca_file
    return _tls(str(config.path(ca)) if ca else None)


Relay = tuple[str, int]


class Relays:
    """The SMTP servers of [smtp] host/port and hosts, used in turn by a run's connections.
    One that refuses a connection is skipped for `relay_pause` seconds (tried again only
    when every other one refuses too)."""

    def __init__(self, config: Config) -> None:
        smtp = config.smtp
        self.relays: list[Relay] = [(smtp.host, smtp.port)]
        for entry in smtp.hosts:
            host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
            relay = (host, int(port) if port else smtp.port)
            if relay not in self.relays:
                self.relays.append(relay)
        self.pause = smtp.relay_pause
        self._turn = 0
        self._resting: dict[Relay, float] = {}
        self._lock = threading.Lock()

    def order(self) -> list[Relay]:
        """Every relay, the next in turn first and the resting ones last."""
        with self._lock:
            start = self._turn % len(self.relays)
            self._turn += 1
            now = time.monotonic()
            turn = self.relays[start:] + self.relays[:start]
            return sorted(turn, key=lambda relay: self._resting.get(relay, 0.0) > now)

    def refused(self, relay: Relay) -> None:
        with self._lock:
            self._resting[relay] = time.monotonic() + self.pause


# OpenSSL's verify codes, in words an operator can act on (the original follows).
_VERIFY_CODES = {
    9: "nog niet geldig (klopt de klok?)",
    10: "verlopen",
    18: "door zichzelf ondertekend",
    19: "uitgegeven door een CA die niet vertrouwd wordt (eigen CA: zet [smtp] ca_file)",
    20: "uitgegeven door een CA die niet vertrouwd wordt (eigen CA: zet [smtp] ca_file)",
    62: "niet voor deze hostnaam uitgegeven (klopt [smtp] host?)",
    64: "niet voor dit IP-adres uitgegeven (klopt [smtp] host?)",
}


def _certificate(where: str, exc: ssl.SSLCertVerificationError) -> Stop:
    reason = _VERIFY_CODES.get(exc.verify_code)
    detail = " ".join(str(exc.verify_message or exc.reason or exc).split())
    return Stop(f"{where}: certificaat afgekeurd: {f'{reason} ({detail})' if reason else detail}")


def connect(config: Config, relay: Relay | None = None) -> smtplib.SMTP:
    """An authenticated SMTP connection per the [smtp] section (to `relay`, default the
    [smtp] host and port). What no retry can mend (a certificate that fails its check, a
    server without the STARTTLS that is required, a refused login) is a Stop naming the
    server; a refused, dropped or silent connection passes as the OSError it is."""
    smtp = config.smtp
    host, port = relay or (smtp.host, smtp.port)
    where = f"{host}:{port}"
    conn: smtplib.SMTP
    try:
        if smtp.security == "tls":
            conn = smtplib.SMTP_SSL(host, port, timeout=smtp.timeout, context=_context(config))
        else:
            conn = smtplib.SMTP(host, port, timeout=smtp.timeout)
    except ssl.SSLCertVerificationError as exc:
        raise _certificate(where, exc) from None
    try:
        # The final `.` goes out as a small write after the body; without TCP_NODELAY,
        # Nagle's algorithm holds it back until the server's delayed ACK (~40 ms).
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.ehlo()
        if smtp.security == "starttls":
            if not conn.has_extn("starttls"):
                raise Stop(
                    f"{where}: de server biedt geen STARTTLS aan, en security = 'starttls' "
                    "vereist versleuteling; niets verstuurd"
                )
            conn.starttls(context=_context(config))
            conn.ehlo()
        if smtp.username:
            conn.login(smtp.username, password(config) or "")
    except ssl.SSLCertVerificationError as exc:
        conn.close()
        raise _certificate(where, exc) from None
    except smtplib.SMTPNotSupportedError:
        conn.close()
        raise Stop(
            f"{where}: de server biedt geen inloggen (AUTH) aan; laat username leeg"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        conn.close()
        # Retrying a refused password only gets the account locked.
        raise Stop(f"{where}: inloggen als {smtp.username} geweigerd: {reply_of(exc)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def connect_retrying(
    config: Config, stop: threading.Event, relays: Relays | None = None
) -> smtplib.SMTP:
    """`connect` to the next relay that answers, every relay tried in each round, rounds
    retried with back-off. A round in which every relay refused the connection outright
    (nothing listens, unknown host) ends it at once: that is no passing state worth
    minutes of silence. Timeouts, dropped connections and 4xx greetings are retried."""
    smtp = config.smtp
    relays = relays or Relays(config)
    delay = max(smtp.retry_delay, 0.05)
    for attempt in range(smtp.retries + 1):
        failures = []
        refused = 0
        for host, port in relays.order():
            try:
                return connect(config, (host, port))
            except (OSError, smtplib.SMTPException) as exc:
                relays.refused((host, port))
                failures.append(f"{host}:{port}: {reply_of(exc)}")
                refused += isinstance(exc, ConnectionRefusedError | socket.gaierror)
        if attempt == smtp.retries or stop.is_set() or refused == len(failures):
            raise Stop(f"geen verbinding met {'; '.join(failures)}") from None
        wait = delay * 2**attempt
        seconds = f"{wait:g}".replace(".", ",")
        log.warning("geen verbinding met %s; nieuwe poging over %s s", "; ".join(failures), seconds)
        stop.wait(wait)
    raise AssertionError("unreachable")


def quit_politely(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


# DKIM ------------------------------------------------------------------------------------


class Signer:
    """DKIM signatures (dkimpy) over the headers in DKIM_HEADERS."""

    def __init__(self, config: Config) -> None:
        smtp = config.smtp
        self.selector = smtp.dkim_selector.encode()
        self.domain = smtp.dkim_domain.encode()
        self.key = config.path(smtp.dkim_key_path).read_bytes()

    def sign(self, message: bytes) -> bytes:
        import dkim  # only a project that signs pays for loading it

        try:
            return bytes(
                dkim.sign(
                    message,
                    self.selector,
                    self.domain,
                    self.key,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=list(DKIM_HEADERS),
                    linesep=b"\r\n",
                )
            )
        except dkim.DKIMException as exc:
            raise ConfigError(
                [Problem(CONFIG_NAME, None, f"[smtp] DKIM-ondertekening mislukt: {exc}")]
            ) from None


def signer_for(config: Config) -> Signer | None:
    return Signer(config) if config.smtp.dkim_selector else None


# one message -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one message: sent, bounced, deferred, failed or uncertain."""

    status: str
    reply: str
    keep: bool  # the connection can carry the next message


def transmit(
    conn: smtplib.SMTP,
    sender: str,
    to: str,
    data: bytes,
    utf8: bool,
    claim: Callable[[], Callable[[], None]],
) -> Outcome:
    """Send one dot-stuffed message on an open connection.

    `claim()` marks the recipient `sending` and returns a wait for that mark to be on disk;
    its errors pass through (with the connection left open for the caller to close). A 5xx
    to MAIL FROM is a Stop: every other message would be refused too.
    """
    dotted = False
    try:
        code, resp = conn.mail(sender, ["SMTPUTF8"] if utf8 else [])
        if code != 250:
            if 500 <= code < 600:
                raise Stop(f"afzender {sender} geweigerd: {code} {_text(resp)}")
            return Outcome("deferred", f"{code} {_text(resp)}", _after_refusal(conn, code))
        code, resp = conn.rcpt(to)
        if code not in (250, 251):
            status = "bounced" if 500 <= code < 600 else "deferred"
            return Outcome(status, f"{code} {_text(resp)}", _after_refusal(conn, code))
        durable = claim()
        conn.putcmd("data")
        code, resp = conn.getreply()
        if code != 354:
            durable()
            status = "failed" if 500 <= code < 600 else "deferred"
            return Outcome(status, f"{code} {_text(resp)}", _after_refusal(conn, code))
        conn.send(data)
        durable()  # `sending` on disk before the dot
        if _has_spoken(conn):  # a reply or a hang-up before the dot: nothing accepted
            code, resp = conn.getreply()
            conn.close()
            status = "failed" if 500 <= code < 600 else "deferred"
            return Outcome(status, f"{code} {_text(resp)} (voor de punt)", False)
        conn.send(b".\r\n")  # raises if the connection is already gone: not dotted
        dotted = True
        code, resp = conn.getreply()
    except smtplib.SMTPNotSupportedError:
        return Outcome("failed", "server ondersteunt geen SMTPUTF8", _rset(conn))
    except (OSError, smtplib.SMTPException) as exc:
        conn.close()
        if dotted and not _reset_by_peer(exc):
            return Outcome(
                "uncertain", f"verbinding verbroken na verzenden: {reply_of(exc)}", False
            )
        where = "na de punt, ongelezen" if dotted else "voor de punt"
        return Outcome("deferred", f"verbinding verbroken {where}: {reply_of(exc)}", False)
    reply = f"{code} {_text(resp)}"
    status = "sent" if code == 250 else "bounced" if 500 <= code < 600 else "deferred"
    if code == 421:  # the server is closing the connection
        conn.close()
        return Outcome(status, reply, False)
    return Outcome(status, reply, True)


def _text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(text.split())


def reply_of(exc: BaseException) -> str:
    """An SMTP or connection error in one Dutch line."""
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "time-out"
    if isinstance(exc, ConnectionRefusedError):
        return "verbinding geweigerd (draait de server, en op deze poort?)"
    if isinstance(exc, socket.gaierror):
        return "onbekende host"
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionResetError | BrokenPipeError):
        return "verbinding verbroken door de server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS-fout: {exc.reason or exc}"
    return str(exc) or type(exc).__name__


def _has_spoken(conn: smtplib.SMTP) -> bool:
    """Whether the server sent something (a reply, or end of stream) while DATA went out."""
    sock = conn.sock
    if sock is None:
        return True
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _reset_by_peer(exc: BaseException) -> bool:
    """A reset after the dot: the server closed with our data unread, the dot among it.

    The dot is the last thing sent before the reply, and a TCP stack answers with a reset
    (not an orderly close) when a socket is closed with unread data or data arrives after
    it was closed; a server that read the dot and then hung up closes in order, and that
    stays uncertain. smtplib turns the socket error into SMTPServerDisconnected.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionResetError | BrokenPipeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _after_refusal(conn: smtplib.SMTP, code: int) -> bool:
    """After a refused command: keep the connection (RSET) unless the server is closing it."""
    if code == 421:
        conn.close()
        return False
    return _rset(conn)


def _rset(conn: smtplib.SMTP) -> bool:
    try:
        code, _ = conn.rset()
    except (OSError, smtplib.SMTPException):
        conn.close()
        return False
    return code == 250
