"""`krimppost newsletter send`: deliver an issue exactly once per subscriber, resumable.

The run: `DeliveryLog.begin_run` reconciles the delivery log with the subscribers, every
distinct track selection is rendered once before the first message (a template error sends
nothing), then a producer reads recipients a page at a time into a queue and
`[smtp] connections` threads send them, paced to `rate_per_second`. A deferred recipient
(4xx, a connection lost before the dot) is tried again later in the run with back-off
until the retries are used up (`failed`, tried again by a later run).

The concerns live beside this module: `smtp` (the relay, DKIM, one message's dialogue),
`journal` (what is durable when, and why nobody gets an issue twice), `log` (the SQL of the
delivery log, which `status` reads too) and `mime` (assembly from one rendering per track
selection). A run that ends with uncertain recipients is not `ok` (exit 1).
"""

from __future__ import annotations

import os
import queue
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.config import Config, ConfigError
from pipeline.delivery import smtp, verp
from pipeline.delivery.journal import ClaimLost, Journal, JournalError
from pipeline.delivery.smtp import Stop, envelope_sender, signer_for, smtp_problems
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.errors import KrimppostError
from pipeline.state import DatabaseError, StateStore, transaction, utc_text
from pipeline.state.deliveries import DeliveryLog, Recipient

PAGE = 256  # recipients read from the store at a time
# Recipients claimed at a time: small enough that several senders share an issue evenly,
# large enough that claiming (one commit) is a small part of sending them.
CLAIM = 32


def send_one(config: Config, to: str, data: bytes, utf8: bool = False) -> None:
    """Send one message (e.g. a confirmation mail) on its own connection."""
    signer = signer_for(config)
    if signer:
        data = signer.sign(data) + data
    try:
        conn = smtp.connect(config)
    except (OSError, smtplib.SMTPException) as exc:
        where = f"{config.smtp.host}:{config.smtp.port}"
        raise Stop(f"geen verbinding met {where}: {smtp.reply_of(exc)}") from None
    try:
        conn.sendmail(envelope_sender(config), [to], data, ["SMTPUTF8"] if utf8 else [])
    finally:
        smtp.quit_politely(conn)


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


def gone(host: str, pid: int) -> bool:
    """Whether the run of (host, pid) is known to be dead: a process of this machine that
    no longer exists. (A run elsewhere is dead only when its heartbeat stops.)"""
    if host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not waited for yet is a zombie: dead too
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


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
        agenda_tracks: frozenset[str] = frozenset(),
        parent: int | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.log = DeliveryLog(state.conn)
        self.issue = issue
        self.issue_tracks = issue_tracks
        # A recipient's view: the sections and the agenda events of their tracks.
        self.shown_tracks = frozenset(issue_tracks) | agenda_tracks
        self._make_template = templates
        self.store_tag = store_tag
        self.progress = progress
        self.resend_uncertain = resend_uncertain
        self.parent = parent
        self.report = SendReport(issue)
        self.smtp = config.smtp
        self.sender = envelope_sender(config)
        self.verp_key = b""
        self.signer = signer_for(config)
        self.stop = threading.Event()
        self.pacer = _Pacer(self.smtp.rate_per_second)
        self.relays = smtp.Relays(config)
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
        with self.state.transaction():
            if self.config.bounces.return_path:
                self.verp_key = verp.key_of(SubscriberStore(self.state, self.config))
            begun = self.log.begin_run(
                self.issue,
                self.issue_tracks,
                utc_text(now),
                self.resend_uncertain,
                self.smtp.lease_seconds,
                socket.gethostname(),
                os.getpid(),
                self.parent,
                gone,
            )
        assert begun.run_id is not None
        self.run_id: int = begun.run_id
        self.report.new_uncertain = begun.new_uncertain
        self.report.skipped = begun.skipped
        self.report.recipients = begun.pending
        self.report.already_sent = begun.already_sent

    def selections(self) -> list[frozenset[str]]:
        """The distinct track selections among this run's recipients."""
        return sorted(
            {self._selection(tracks) for tracks in self.log.selections(self.issue)},
            key=lambda sel: (len(sel), sorted(sel)),
        )

    def _selection(self, tracks: str) -> frozenset[str]:
        if tracks == "*":
            return self.shown_tracks
        return frozenset(t for t in tracks.split(",") if t) & self.shown_tracks

    def render_all(self) -> None:
        """Render every selection before the first message, so a template error sends nothing."""
        for selection in self.selections():
            self._template_for(selection)

    # reading recipients --------------------------------------------------------------------

    def _produce(self, reader: DeliveryLog, work: queue.Queue[Recipient | None]) -> None:
        """Claim free recipients a batch at a time and queue them for the connections; then
        retry this run's deferred ones when due. While other runs hold recipients without an
        outcome this run stays, to take over those of a run that dies (after the lease)."""

        def feed(batch: list[Recipient]) -> int:
            fed = 0
            for recipient in batch:
                while not self.stop.is_set():
                    try:
                        work.put(recipient, timeout=0.2)
                        fed += 1
                        break
                    except queue.Full:
                        continue
            return fed

        def due_now() -> list[Recipient]:
            return reader.due(self.issue, self.run_id, time.time(), PAGE)

        while not self.stop.is_set():
            with transaction(reader.conn, exclusive=False):
                batch = reader.claim(self.issue, self.run_id, CLAIM)
            if batch:
                feed(batch)
                continue
            work.join()  # every queued recipient handled and its outcome submitted
            self.journal.flush()
            if feed(due_now()):
                continue
            due = reader.next_due(self.issue, self.run_id)
            others = reader.left_to_others(self.issue, self.run_id)
            if due is None and not others:
                return
            if others:
                with transaction(reader.conn):
                    self.report.new_uncertain += reader.reap(
                        self.issue, self.smtp.lease_seconds, utc_text(datetime.now(UTC)), gone
                    )
            wait = 1.0 if due is None else min(max(due - time.time(), 0.0), 1.0)
            self.stop.wait(wait)

    def _keep_alive(self, done: threading.Event) -> None:
        """Say every quarter lease that this run is alive; stop sending when it was reaped
        (cut off from the store for longer than the lease: its recipients went to others)."""
        conn = self.state.connect()
        log = DeliveryLog(conn)
        try:
            while not done.wait(self.smtp.lease_seconds / 4):
                try:
                    with transaction(conn, exclusive=False):
                        alive = log.heartbeat(self.run_id)
                except DatabaseError:
                    continue  # the claims still guard every message; try again
                if not alive:
                    self._halt("de verzending is overgenomen door een andere run (lease verlopen)")
                    return
        finally:
            conn.close()

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

    def envelope_sender(self, recipient: Recipient) -> str:
        """`MAIL FROM`: the VERP address of this delivery with a [bounces] return_path."""
        if not self.verp_key:
            return self.sender
        return verp.return_path(self.config, self.verp_key, self.issue, recipient.subscriber)

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
        status = self.journal.record(recipient, status, reply)
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

    def _uncertain(self, recipient: Recipient, reply: str) -> None:
        self.journal.uncertain(recipient.subscriber, reply)
        with self._lock:
            self._done += 1

    def _tick(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= 0.1:
            self._last_progress = now
            self.progress(self._done, self.report.recipients)

    # one connection ------------------------------------------------------------------------

    def _deliver(self, conn: Any, recipient: Recipient) -> bool:
        """Send one message; returns False when the connection must be replaced."""
        to, data, utf8 = self.message(recipient)
        mid = self.message_id(recipient)
        try:
            outcome = smtp.transmit(
                conn,
                self.envelope_sender(recipient),
                to,
                data,
                utf8,
                lambda: self.journal.claim(recipient.subscriber, mid).wait,
            )
        except JournalError as exc:
            conn.close()
            raise Stop(f"state store: {exc}") from None
        except ClaimLost:
            conn.close()  # before the dot: the server discards the message
            return False
        if outcome.status == "uncertain":
            self._uncertain(recipient, outcome.reply)
        else:
            self._record(recipient, outcome.status, outcome.reply)
        return outcome.keep

    def _halt(self, reason: str, error: BaseException | None = None) -> None:
        with self._lock:
            if not self._fatal:
                self._fatal = reason
                self._error = error
        self.stop.set()

    def _worker(self, work: queue.Queue[Recipient | None]) -> None:
        conn = None
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
                        smtp.quit_politely(conn)
                        conn = None
                    if conn is None:
                        conn = smtp.connect_retrying(self.config, self.stop, self.relays)
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
                smtp.quit_politely(conn)

    # the whole run -------------------------------------------------------------------------

    def run(self) -> SendReport:
        started = time.perf_counter()
        self.journal = Journal(
            self.state, self.issue, self.run_id, self.smtp.retries, self.smtp.retry_delay
        )
        reader = self.state.connect()
        alive_done = threading.Event()
        alive = threading.Thread(
            target=self._keep_alive, args=(alive_done,), name="krimppost-heartbeat", daemon=True
        )
        alive.start()
        work: queue.Queue[Recipient | None] = queue.Queue(maxsize=4 * self.smtp.connections + 8)
        threads = [
            threading.Thread(target=self._worker, args=(work,), name=f"krimppost-smtp-{n}")
            for n in range(self.smtp.connections)
        ]
        for thread in threads:
            thread.start()
        try:
            self._produce(DeliveryLog(reader), work)
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
            self._finish(DeliveryLog(reader))
            alive_done.set()
            alive.join()
            reader.close()
        if isinstance(self._error, KrimppostError):
            raise self._error
        if self.progress:
            self.progress(self._done, self.report.recipients)
        return self.report

    def _finish(self, reader: DeliveryLog) -> None:
        self.report.aborted = self._fatal
        if self.journal.error is not None and not self.report.aborted:
            self.report.aborted = f"state store: {self.journal.error}"
        try:
            self._conclude(reader)
        except DatabaseError as exc:  # e.g. a full disk: report what the run knows
            self.report.aborted = self.report.aborted or f"state store: {exc}"

    def _conclude(self, reader: DeliveryLog) -> None:
        r = self.report
        with self.state.transaction():
            r.skipped += self.log.skip_unsubscribed(self.issue, utc_text(datetime.now(UTC)))
        r.uncertain = reader.uncertain_addresses(self.issue)
        r.not_attempted = reader.not_attempted(self.issue, self.run_id)
        with self.state.transaction():
            self.log.release(self.issue, self.run_id)
            self.log.finish_run(
                self.run_id,
                utc_text(datetime.now(UTC)),
                r.sent,
                # Only its own: the recipients nobody tried are the whole issue's, and a
                # run joined by helpers counts them once (report.not_attempted).
                r.failed,
                r.bounced,
                r.skipped,
                len(r.uncertain),
            )


def send_issue(
    root: Path,
    number: int | None = None,
    resend_uncertain: bool = False,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[SendReport], None] | None = None,
    workers: int = 1,
    parent: int | None = None,
    now: datetime | None = None,
) -> SendReport:
    """`krimppost newsletter send [N]`: deliver issue N (default: the latest) to its subscribers.

    With `workers` > 1 this process starts that many minus one more `send` processes that
    join its run (`parent`: the run they join) and share the recipients through the store;
    its report counts theirs too. `now` (default: the clock) is the moment pauses are
    compared with."""
    import secrets

    from pipeline.config import load_config, newsletter_problems
    from pipeline.delivery.mime import Template
    from pipeline.delivery.subscribers import SubscriberStore
    from pipeline.render import message, templates
    from pipeline.render.newsletter import TOKEN_PLACEHOLDER, render, view_of
    from pipeline.state import IssueStore

    config = load_config(root)
    if problems := newsletter_problems(config) + smtp_problems(config):
        raise ConfigError(problems)
    with StateStore.of(config) as state:
        issues = IssueStore(state)
        record = issues.chosen(number)
        number = record.number
        # With approval off, compile approves an issue as it makes it: one left unapproved
        # is a concept from before approval was switched off, and still needs a person.
        if not record.approved:
            raise KrimppostError(
                f"nieuwsbrief {number} is nog niet goedgekeurd en wordt niet verstuurd; "
                f"bekijk het met `krimppost newsletter send {number} --test ADRES` en keur "
                f"het goed met `krimppost newsletter approve {number} --by NAAM`"
            )
        view = view_of(config, record)
        env = templates.environment(
            templates.template_dirs(config.templates_dir), config.site.tz, config.compiled_templates
        )
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
            frozenset(e.item.track for e in view.agenda),
            parent,
        )
        delivery.report.subject = record.subject
        delivery.prepare(now or datetime.now(UTC))
        delivery.render_all()
        if on_start is not None:
            on_start(delivery.report)
        helpers = [_Helper.start(root, number, delivery.run_id) for _ in range(workers - 1)]
        try:
            report = delivery.run()
        finally:
            failures = [helper.wait() for helper in helpers]
        if helpers:
            _add_helpers(delivery, failures)
        return report


@dataclass
class _Helper:
    """Another `send` process that joins this run; its error output goes to a file, not
    to a pipe that nobody reads while it runs."""

    process: subprocess.Popen[bytes]
    errors: Any

    @classmethod
    def start(cls, root: Path, number: int, run_id: int) -> _Helper:
        # Started before this process's threads, and a fork-and-exec at that: never a bare
        # fork of a threaded process.
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in wait)
        command = [sys.executable, "-m", "pipeline", "newsletter", "send", str(number)]
        command += ["--root", str(root), "--join", str(run_id)]
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors
        )
        return cls(process, errors)

    def wait(self) -> str:
        """Until it ends; what went wrong, or '' (exit 1, a run with failures, is counted
        through the store like a success)."""
        code = self.process.wait()
        self.errors.seek(0)
        text = self.errors.read().decode(errors="replace").strip()
        self.errors.close()
        if code == 0 or (code == 1 and "krimppost:" not in text):
            return ""
        last = text.splitlines()[-1:] or [f"exitcode {code}"]
        return last[0]


def _add_helpers(delivery: Delivery, failures: list[str]) -> None:
    """Count the joined runs in this run's report, and report a helper that failed."""
    report = delivery.report
    with StateStore(delivery.state.address) as state:
        log = DeliveryLog(state.conn)
        for sent, failed, bounced, skipped, _, _ in log.children(delivery.run_id):
            report.sent += sent
            report.failed += failed
            report.bounced += bounced
            report.skipped += skipped
        report.uncertain = log.uncertain_addresses(delivery.issue)
    if failure := next((f for f in failures if f), ""):
        report.aborted = report.aborted or f"een meehelpend verzendproces stopte: {failure}"
