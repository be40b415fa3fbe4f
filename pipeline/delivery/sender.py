"""SMTP delivery of an issue: exactly once per subscriber, resumable, rate-limited, retried.

The delivery log (table `deliveries`) has a row per (issue, subscriber). For each message:

1. MAIL FROM and RCPT TO; a refused recipient is recorded (4xx: retried later, 5xx:
   bounced) and nothing was sent.
2. The row is marked `sending` and that commit is made durable (synchronous=FULL) while
   DATA and the message body go out — but always *before* the final `.` that makes the
   server accept the message. A process killed before that dot leaves a half-sent DATA
   that the server discards, so the recipient is still `pending` and gets it on the next
   run.
3. After the server's reply the row becomes `sent` (or deferred/bounced); that commit need
   not wait for the disk: if it is lost, the row stays `sending`.

A run first turns every `sending` row it finds into `uncertain`: the message was in
flight when the previous run died (at most one per connection) and may or may not have
arrived. Those are listed and only sent again with `--resend-uncertain`. The same holds
for a connection that closes in order or times out after the dot. A failure before the dot
left (the connection gone while DATA went out, a reply or hang-up seen just before the dot,
no answer to DATA) is retried with back-off like a 4xx: the server cannot have accepted
the message. So is a reset after the dot: the server closed with our data, the dot
included, unread (see `_reset_by_peer`). So a subscriber never gets an issue twice,
whatever is killed when; a run that ends with uncertain recipients is not `ok` (exit 1).

Outcomes: `sent`, `bounced`, `failed` (retries used up in this run; a later run tries
again), `skipped` (no longer subscribed) and `uncertain` (needs a person) end a
recipient's part of a send; `pending`, `deferred` and `sending` do not.

Writes go through one writer thread (`Journal`) that commits whatever the connection
threads queued meanwhile in one transaction (group commit), so several connections share
each fsync. Subscribers are read from SQLite a page at a time; messages are assembled by
`pipeline.delivery.mime` from one rendering per distinct track selection.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import queue
import select
import smtplib
import socket
import sqlite3
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import CONFIG_NAME, Config, ConfigError
from pipeline.errors import KrimppostError, Problem
from pipeline.state import FileLock, StateStore, utc_text

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
PAGE = 256  # recipients read from the store at a time


# configuration ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    if smtp.username and smtp.security == "none" and not _is_loopback(smtp.host):
        problem(
            "inloggen zonder versleuteling naar een andere machine is geweigerd; "
            "gebruik security = 'starttls' of 'tls'"
        )
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
    return config.smtp.envelope_from or config.newsletter.from_address


@functools.cache
def _tls() -> ssl.SSLContext:
    """Certificate-checking TLS, made once: loading the CA store costs ~30 ms each time."""
    return ssl.create_default_context()


def connect(config: Config) -> smtplib.SMTP:
    """An authenticated SMTP connection per the [smtp] section."""
    smtp = config.smtp
    conn: smtplib.SMTP
    if smtp.security == "tls":
        conn = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=_tls())
    else:
        conn = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        # The final `.` goes out as a small write after the body; without TCP_NODELAY,
        # Nagle's algorithm holds it back until the server's delayed ACK (~40 ms).
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.ehlo()
        if smtp.security == "starttls":
            conn.starttls(context=_tls())
            conn.ehlo()
        if smtp.username:
            conn.login(smtp.username, password(config) or "")
    except BaseException:
        conn.close()
        raise
    return conn


class Signer:
    """DKIM signatures (dkimpy) over the headers in DKIM_HEADERS."""

    def __init__(self, config: Config) -> None:
        smtp = config.smtp
        self.selector = smtp.dkim_selector.encode()
        self.domain = smtp.dkim_domain.encode()
        self.key = config.path(smtp.dkim_key_path).read_bytes()

    def sign(self, message: bytes) -> bytes:
        import dkim

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


def send_one(config: Config, to: str, data: bytes, utf8: bool = False) -> None:
    """Send one message (e.g. a confirmation mail) on its own connection."""
    signer = signer_for(config)
    if signer:
        data = signer.sign(data) + data
    conn = connect(config)
    try:
        conn.sendmail(envelope_sender(config), [to], data, ["SMTPUTF8"] if utf8 else [])
    finally:
        try:
            conn.quit()
        except smtplib.SMTPException:
            conn.close()


class SendLock(FileLock):
    """One `send` at a time per state store (a kill releases it)."""

    suffix = ".send.lock"
    message = "er loopt al een verzending voor dit project"


# the writer thread -------------------------------------------------------------------------


class JournalError(Exception):
    pass


class Ticket:
    __slots__ = ("_done", "_journal")

    def __init__(self, journal: Journal) -> None:
        self._done = threading.Event()
        self._journal = journal

    def wait(self) -> None:
        self._done.wait()
        if self._journal.error is not None:
            raise JournalError(str(self._journal.error))


Statement = tuple[str, tuple[Any, ...]]


class Journal:
    """Serialises writes to the delivery log from several threads, with group commit."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.error: BaseException | None = None
        self._pending: deque[tuple[list[Statement], bool, Ticket]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="krimppost-journal", daemon=True)
        self._thread.start()

    def submit(self, statements: list[Statement], durable: bool = False) -> Ticket:
        ticket = Ticket(self)
        with self._cond:
            if self.error is not None or self._closing:
                ticket._done.set()
            else:
                self._pending.append((statements, durable, ticket))
                self._cond.notify()
        return ticket

    def flush(self) -> None:
        """Wait until everything submitted so far is on disk (or the journal failed)."""
        self.submit([], durable=True)._done.wait()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.db.close()

    def _run(self) -> None:
        db = self.db
        synchronous = ""
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                batch = list(self._pending)
                self._pending.clear()
            if not batch:
                return  # closing and nothing left
            wanted = "FULL" if any(durable for _, durable, _ in batch) else "NORMAL"
            try:
                if wanted != synchronous:
                    db.execute(f"PRAGMA synchronous={wanted}")
                    synchronous = wanted
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statements, _, _ in batch:
                        for sql, args in statements:
                            db.execute(sql, args)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except BaseException as exc:
                with self._cond:
                    self.error = exc
                    rest = list(self._pending)
                    self._pending.clear()
                for _, _, ticket in batch + rest:
                    ticket._done.set()
                return
            for _, _, ticket in batch:
                ticket._done.set()


# the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    subscriber: int
    email: str
    token: str
    tracks: str
    run_attempts: int
    message_id: str | None


@dataclass
class SendReport:
    issue: int
    subject: str = ""
    recipients: int = 0  # to be sent in this run
    already_sent: int = 0  # by earlier runs
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    uncertain: list[str] = field(default_factory=list)  # addresses, all runs
    new_uncertain: int = 0
    not_attempted: int = 0  # left pending by an aborted run
    aborted: str = ""
    renders: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        # Uncertain recipients need a person's decision (--resend-uncertain), so not ok.
        return not (
            self.failed or self.bounced or self.aborted or self.not_attempted or self.uncertain
        )

    def summary(self) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (
            f"nieuwsbrief {self.issue}: {self.sent} verstuurd, {self.failed} mislukt, "
            f"{self.bounced} onbestelbaar, {self.skipped} overgeslagen, "
            f"{len(self.uncertain)} onzeker; eerder al verstuurd: {self.already_sent}; "
            f"{self.seconds:.1f} s, {rate:.0f} berichten/s"
        )


class Stop(Exception):
    """A problem that stops the whole run (the rest stays pending for the next one)."""


class _Pacer:
    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + self.interval
        if slot > now:
            stop.wait(slot - now)


def track_condition(tracks: list[str]) -> tuple[str, list[str]]:
    """SQL (over subscribers `s`) matching subscribers who chose any of these tracks."""
    parts = ["s.tracks = '*'"] + ["instr(s.tracks, ?) > 0" for _ in tracks]
    return "(" + " OR ".join(parts) + ")", [f",{t}," for t in tracks]


class Delivery:
    """One run of `send` for one issue."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        issue: int,
        issue_tracks: list[str],
        templates: Callable[[frozenset[str]], Any],
        store_tag: str,
        progress: Callable[[int, int], None] | None = None,
        resend_uncertain: bool = False,
    ) -> None:
        self.config = config
        self.state = state
        self.issue = issue
        self.issue_tracks = issue_tracks
        self._make_template = templates
        self.store_tag = store_tag
        self.progress = progress
        self.resend_uncertain = resend_uncertain
        self.report = SendReport(issue)
        self.smtp = config.smtp
        self.sender = envelope_sender(config)
        self.signer = signer_for(config)
        self.stop = threading.Event()
        self.pacer = _Pacer(self.smtp.rate_per_second)
        self._lock = threading.Lock()
        self._templates: OrderedDict[frozenset[str], Any] = OrderedDict()
        self._template_lock = threading.Lock()
        self._done = 0
        self._last_progress = 0.0
        self._dates: tuple[int, str] = (0, "")
        self._fatal: str = ""
        self._error: BaseException | None = None

    # preparation -------------------------------------------------------------------------

    def prepare(self, now: datetime) -> None:
        """Reconcile the log with the subscribers, in one transaction."""
        db = self.state.db
        issue = self.issue
        match, args = track_condition(self.issue_tracks)
        stamp = utc_text(now)
        with self.state.transaction():
            self.report.new_uncertain = db.execute(
                "UPDATE deliveries SET status = 'uncertain', updated_at = ?"
                " WHERE issue = ? AND status = 'sending'",
                (stamp, issue),
            ).rowcount
            retry = ("skipped", "failed", "deferred", "pending") + (
                ("uncertain",) if self.resend_uncertain else ()
            )
            marks = ", ".join("?" for _ in retry)
            db.execute(
                "INSERT INTO deliveries (issue, subscriber, status, updated_at)"
                f" SELECT ?, s.id, 'pending', ? FROM subscribers s WHERE s.status = 'active' AND {match}"
                " ON CONFLICT (issue, subscriber) DO UPDATE SET status = 'pending', run_attempts = 0,"
                f" next_attempt = NULL, updated_at = excluded.updated_at WHERE status IN ({marks})",
                (issue, stamp, *args, *retry),
            )
            self.report.skipped = db.execute(
                "UPDATE deliveries SET status = 'skipped', updated_at = ?"
                " WHERE issue = ? AND status IN ('pending', 'deferred', 'failed') AND NOT EXISTS"
                f" (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber"
                f" AND s.status = 'active' AND {match})",
                (stamp, issue, *args),
            ).rowcount
            counts = dict(
                db.execute(
                    "SELECT status, COUNT(*) FROM deliveries WHERE issue = ? GROUP BY status",
                    (issue,),
                ).fetchall()
            )
            self.run_id = db.execute(
                "INSERT INTO send_runs (issue, started) VALUES (?, ?)", (issue, stamp)
            ).lastrowid
        self.report.recipients = int(counts.get("pending", 0))
        self.report.already_sent = int(counts.get("sent", 0))

    def selections(self) -> list[frozenset[str]]:
        """The distinct track selections among this run's recipients."""
        rows = self.state.db.execute(
            "SELECT DISTINCT s.tracks FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = 'pending' AND s.status = 'active'",
            (self.issue,),
        ).fetchall()
        return sorted(
            {self._selection(r[0]) for r in rows}, key=lambda sel: (len(sel), sorted(sel))
        )

    def _selection(self, tracks: str) -> frozenset[str]:
        if tracks == "*":
            return frozenset(self.issue_tracks)
        return frozenset(t for t in tracks.split(",") if t) & frozenset(self.issue_tracks)

    def render_all(self) -> None:
        """Render every selection before the first message, so a template error sends nothing."""
        for selection in self.selections():
            self._template_for(selection)

    # reading recipients --------------------------------------------------------------------

    def _page(self, reader: Any, status: str, after: int, due: float | None) -> list[Recipient]:
        sql = (
            "SELECT d.subscriber, s.email, s.token, s.tracks, d.run_attempts, d.message_id"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = ? AND d.subscriber > ? AND s.status = 'active'"
        )
        args: list[Any] = [self.issue, status, after]
        if due is not None:
            sql += " AND d.next_attempt <= ?"
            args.append(due)
        sql += " ORDER BY d.subscriber LIMIT ?"
        args.append(PAGE)
        return [Recipient(*row) for row in reader.execute(sql, args).fetchall()]

    def _produce(self, reader: Any, work: queue.Queue[Recipient | None]) -> None:
        def feed(status: str, due: float | None) -> int:
            after, fed = 0, 0
            while not self.stop.is_set():
                page = self._page(reader, status, after, due)
                if not page:
                    break
                for recipient in page:
                    while not self.stop.is_set():
                        try:
                            work.put(recipient, timeout=0.2)
                            fed += 1
                            break
                        except queue.Full:
                            continue
                after = page[-1].subscriber
            return fed

        feed("pending", None)
        while not self.stop.is_set():
            work.join()  # every queued recipient handled and its outcome submitted
            self.journal.flush()
            if feed("deferred", time.time()):
                continue
            row = reader.execute(
                "SELECT MIN(next_attempt) FROM deliveries WHERE issue = ? AND status = 'deferred'",
                (self.issue,),
            ).fetchone()
            if row[0] is None:
                return
            self.stop.wait(max(0.0, min(row[0] - time.time(), 1.0)))

    # templates and messages ------------------------------------------------------------------

    def template(self, recipient: Recipient) -> Any:
        return self._template_for(self._selection(recipient.tracks))

    def _template_for(self, selection: frozenset[str]) -> Any:
        with self._template_lock:
            found = self._templates.get(selection)
            if found is None:
                found = self._make_template(selection)
                self.report.renders += 1
                self._templates[selection] = found
                if len(self._templates) > 64:
                    self._templates.popitem(last=False)
            else:
                self._templates.move_to_end(selection)
            return found

    def message_id(self, recipient: Recipient) -> str:
        if recipient.message_id:
            return recipient.message_id
        domain = self.config.newsletter.message_id_domain
        return f"<nieuwsbrief-{self.issue:04d}.{recipient.subscriber}.{self.store_tag}@{domain}>"

    def _date(self) -> str:
        from pipeline.delivery.mime import date_header

        second = int(time.time())
        cached = self._dates
        if cached[0] != second:
            cached = (second, date_header(datetime.now(self.config.site.tz).replace(microsecond=0)))
            self._dates = cached
        return cached[1]

    def message(self, recipient: Recipient) -> tuple[str, bytes, bool]:
        """(envelope recipient, DATA bytes dot-stuffed, needs SMTPUTF8)."""
        from pipeline.delivery.mime import dot_stuff
        from pipeline.delivery.subscribers import ascii_address

        template = self.template(recipient)
        mid = self.message_id(recipient)
        address = ascii_address(recipient.email)
        if address is None:  # non-ASCII local part: the stdlib path, SMTPUTF8
            now = datetime.now(self.config.site.tz).replace(microsecond=0)
            data = template.slow(recipient.email, recipient.token, mid, now)
            if self.signer:
                data = self.signer.sign(data) + data
            return recipient.email, dot_stuff(data), True
        if self.signer:
            data = template.assemble(address, recipient.token, mid, self._date())
            return address, dot_stuff(self.signer.sign(data) + data), False
        return address, template.assemble(address, recipient.token, mid, self._date(), True), False

    # outcomes --------------------------------------------------------------------------

    def _record(self, recipient: Recipient, status: str, reply: str) -> None:
        now = utc_text(datetime.now(UTC))
        statements: list[Statement] = []
        next_attempt = None
        if status == "deferred":
            tries = recipient.run_attempts + 1
            if tries > self.smtp.retries:
                status = "failed"
            else:
                next_attempt = time.time() + self.smtp.retry_delay * 2 ** (tries - 1)
        statements.append(
            (
                "UPDATE deliveries SET status = ?, reply = ?, attempts = attempts + 1,"
                " run_attempts = run_attempts + 1, next_attempt = ?, updated_at = ?"
                " WHERE issue = ? AND subscriber = ?",
                (status, reply[:500], next_attempt, now, self.issue, recipient.subscriber),
            )
        )
        if status == "bounced":
            statements.append(
                (
                    "UPDATE subscribers SET status = 'bounced', status_changed_at = ?,"
                    " status_reason = ? WHERE id = ? AND status = 'active'",
                    (now, reply[:500], recipient.subscriber),
                )
            )
        self.journal.submit(statements)
        with self._lock:
            if status == "sent":
                self.report.sent += 1
            elif status == "failed":
                self.report.failed += 1
            elif status == "bounced":
                self.report.bounced += 1
            if status != "deferred":
                self._done += 1
            self._tick()

    def _tick(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= 0.1:
            self._last_progress = now
            self.progress(self._done, self.report.recipients)

    def _mark_sending(self, recipient: Recipient, mid: str) -> Ticket:
        return self.journal.submit(
            [
                (
                    "UPDATE deliveries SET status = 'sending', message_id = ?, updated_at = ?"
                    " WHERE issue = ? AND subscriber = ?",
                    (mid, utc_text(datetime.now(UTC)), self.issue, recipient.subscriber),
                )
            ],
            durable=True,
        )

    # one connection ------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        delay = max(self.smtp.retry_delay, 0.05)
        for attempt in range(self.smtp.retries + 1):
            try:
                return connect(self.config)
            except smtplib.SMTPAuthenticationError as exc:
                raise Stop(f"inloggen bij {self.smtp.host} geweigerd: {_reply(exc)}") from None
            except (OSError, smtplib.SMTPException) as exc:
                if attempt == self.smtp.retries or self.stop.is_set():
                    raise Stop(
                        f"geen verbinding met {self.smtp.host}:{self.smtp.port}: {_reply(exc)}"
                    ) from None
                self.stop.wait(delay * 2**attempt)
        raise AssertionError("unreachable")

    def _deliver(self, conn: smtplib.SMTP, recipient: Recipient) -> bool:
        """Send one message; returns False when the connection must be replaced."""
        to, data, utf8 = self.message(recipient)
        mid = self.message_id(recipient)
        dotted = False
        try:
            code, resp = conn.mail(self.sender, ["SMTPUTF8"] if utf8 else [])
            if code != 250:
                if 500 <= code < 600:
                    raise Stop(f"afzender {self.sender} geweigerd: {code} {_text(resp)}")
                self._record(recipient, "deferred", f"{code} {_text(resp)}")
                return _after_refusal(conn, code)
            code, resp = conn.rcpt(to)
            if code not in (250, 251):
                status = "bounced" if 500 <= code < 600 else "deferred"
                self._record(recipient, status, f"{code} {_text(resp)}")
                return _after_refusal(conn, code)
            ticket = self._mark_sending(recipient, mid)
            conn.putcmd("data")
            code, resp = conn.getreply()
            if code != 354:
                ticket.wait()
                status = "failed" if 500 <= code < 600 else "deferred"
                self._record(recipient, status, f"{code} {_text(resp)}")
                return _after_refusal(conn, code)
            conn.send(data)
            ticket.wait()  # durable `sending` before the dot
            if _has_spoken(conn):  # a reply or a hang-up before the dot: nothing accepted
                code, resp = conn.getreply()
                status = "failed" if 500 <= code < 600 else "deferred"
                self._record(recipient, status, f"{code} {_text(resp)} (voor de punt)")
                conn.close()
                return False
            conn.send(b".\r\n")  # raises if the connection is already gone: not dotted
            dotted = True
            code, resp = conn.getreply()
        except smtplib.SMTPNotSupportedError:
            self._record(recipient, "failed", "server ondersteunt geen SMTPUTF8")
            return _rset(conn)
        except JournalError as exc:
            conn.close()
            raise Stop(f"state store: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:
            if dotted and not _reset_by_peer(exc):
                self._uncertain(recipient, f"verbinding verbroken na verzenden: {_reply(exc)}")
            else:
                where = "na de punt, ongelezen" if dotted else "voor de punt"
                self._record(recipient, "deferred", f"verbinding verbroken {where}: {_reply(exc)}")
            conn.close()
            return False
        reply = f"{code} {_text(resp)}"
        if code == 250:
            self._record(recipient, "sent", reply)
        elif 500 <= code < 600:
            self._record(recipient, "bounced", reply)
        else:
            self._record(recipient, "deferred", reply)
        if code == 421:
            conn.close()
            return False
        return True

    def _uncertain(self, recipient: Recipient, reply: str) -> None:
        self.journal.submit(
            [
                (
                    "UPDATE deliveries SET status = 'uncertain', reply = ?, attempts = attempts + 1,"
                    " updated_at = ? WHERE issue = ? AND subscriber = ?",
                    (reply, utc_text(datetime.now(UTC)), self.issue, recipient.subscriber),
                )
            ]
        )
        with self._lock:
            self._done += 1

    def _halt(self, reason: str, error: BaseException | None = None) -> None:
        with self._lock:
            if not self._fatal:
                self._fatal = reason
                self._error = error
        self.stop.set()

    def _worker(self, work: queue.Queue[Recipient | None]) -> None:
        conn: smtplib.SMTP | None = None
        used = 0
        try:
            while True:
                recipient = work.get()
                try:
                    if recipient is None:
                        return
                    if self.stop.is_set():
                        continue
                    if conn is not None and used >= self.smtp.max_per_connection:
                        _quit(conn)
                        conn = None
                    if conn is None:
                        conn = self._connect()
                        used = 0
                    self.pacer.wait(self.stop)
                    used += 1
                    if not self._deliver(conn, recipient):
                        conn = None
                except Stop as exc:
                    self._halt(str(exc))
                except KrimppostError as exc:
                    self._halt("; ".join(str(p) for p in exc.problems), exc)
                except Exception as exc:
                    self._halt(f"interne fout: {exc!r}", exc)
                finally:
                    work.task_done()
        finally:
            if conn is not None:
                _quit(conn)

    # the whole run -------------------------------------------------------------------------

    def run(self) -> SendReport:
        started = time.perf_counter()
        self.journal = Journal(self.state.path)
        reader = sqlite3.connect(self.state.path, timeout=30, isolation_level=None)
        work: queue.Queue[Recipient | None] = queue.Queue(maxsize=4 * self.smtp.connections + 8)
        threads = [
            threading.Thread(target=self._worker, args=(work,), name=f"krimppost-smtp-{n}")
            for n in range(self.smtp.connections)
        ]
        for thread in threads:
            thread.start()
        try:
            self._produce(reader, work)
        except BaseException:
            self.stop.set()
            raise
        finally:
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join()
            try:
                self.journal.flush()
            finally:
                self.journal.close()
            self.report.seconds = time.perf_counter() - started
            self._finish(reader)
            reader.close()
        if isinstance(self._error, KrimppostError):
            raise self._error
        if self.progress:
            self.progress(self._done, self.report.recipients)
        return self.report

    def _finish(self, reader: Any) -> None:
        self.report.aborted = self._fatal
        if self.journal.error is not None and not self.report.aborted:
            self.report.aborted = f"state store: {self.journal.error}"
        try:
            self._conclude(reader)
        except sqlite3.Error as exc:  # e.g. a full disk: report what the run knows
            self.report.aborted = self.report.aborted or f"state store: {exc}"

    def _conclude(self, reader: Any) -> None:
        with self.state.transaction():  # unsubscribed (or removed) while this run went on
            self.report.skipped += self.state.db.execute(
                "UPDATE deliveries SET status = 'skipped', updated_at = ?"
                " WHERE issue = ? AND status IN ('pending', 'deferred') AND NOT EXISTS"
                " (SELECT 1 FROM subscribers s WHERE s.id = deliveries.subscriber"
                " AND s.status = 'active')",
                (utc_text(datetime.now(UTC)), self.issue),
            ).rowcount
        rows = reader.execute(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber"
            " WHERE d.issue = ? AND d.status = 'uncertain' ORDER BY s.email",
            (self.issue,),
        ).fetchall()
        self.report.uncertain = [r[0] for r in rows]
        self.report.not_attempted = int(
            reader.execute(
                "SELECT COUNT(*) FROM deliveries WHERE issue = ? AND status IN ('pending', 'deferred')",
                (self.issue,),
            ).fetchone()[0]
        )
        r = self.report
        with self.state.transaction():
            self.state.db.execute(
                "UPDATE send_runs SET finished = ?, sent = ?, failed = ?, bounced = ?,"
                " skipped = ?, uncertain = ? WHERE id = ?",
                (
                    utc_text(datetime.now(UTC)),
                    r.sent,
                    r.failed + r.not_attempted,
                    r.bounced,
                    r.skipped,
                    len(r.uncertain),
                    self.run_id,
                ),
            )


def _text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return " ".join(text.split())


def _reply(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "time-out"
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


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def send_issue(
    root: Path,
    number: int | None = None,
    resend_uncertain: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[SendReport], None] | None = None,
) -> SendReport:
    """`krimppost newsletter send [N]`: deliver issue N (default: the latest) to its subscribers."""
    import secrets

    from pipeline.config import load_config, newsletter_problems
    from pipeline.delivery.mime import Template
    from pipeline.delivery.subscribers import SubscriberStore
    from pipeline.errors import UsageError
    from pipeline.render import message, templates
    from pipeline.render.newsletter import TOKEN_PLACEHOLDER, render, view_of
    from pipeline.state import IssueStore

    config = load_config(root)
    if problems := newsletter_problems(config) + smtp_problems(config):
        raise ConfigError(problems)
    state_path = config.path(config.state.path)
    with SendLock(state_path), StateStore(state_path) as state:
        issues = IssueStore(state)
        if number is None:
            number = issues.latest()
            if number is None:
                raise UsageError(
                    "er is nog geen nieuwsbrief samengesteld (eerst: krimppost newsletter compile)"
                )
        record = issues.get(number)
        if record is None:
            known = ", ".join(str(n) for n in issues.numbers()) or "geen"
            raise UsageError(f"nieuwsbrief {number} bestaat niet (wel: {known})")
        view = view_of(config, record)
        env = templates.environment(templates.template_dirs(config.templates_dir), config.site.tz)
        url = message.unsubscribe_base(config) + TOKEN_PLACEHOLDER

        def make_template(selection: frozenset[str]) -> Template:
            rendered = render(env, config, view.for_tracks(selection), url)
            return Template(config, record.subject, rendered.text, rendered.html)

        store_tag = SubscriberStore(state, config).meta("store_id", secrets.token_hex(4))
        delivery = Delivery(
            config,
            state,
            number,
            [s.track for s in view.sections],
            make_template,
            store_tag,
            progress,
            resend_uncertain,
        )
        delivery.report.subject = record.subject
        delivery.prepare(datetime.now(UTC))
        delivery.render_all()
        if on_start is not None:
            on_start(delivery.report)
        return delivery.run()
