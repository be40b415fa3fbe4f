"""`krimppost newsletter send N --test ADRES[,ADRES…] [--tracks a,b]`: a proof of an issue.

A proof is the issue as a subscriber of the chosen tracks gets it (the same rendering,
message builder, relay and DKIM signature as `send`), with `[PROEF] ` before the subject,
sent to the given addresses only. It is not a delivery: it writes nothing to the delivery
log (so `send` and `status` do not see it) and it does not pass the approval gate, since
looking at a concept is what it is for.

A proof carries no subscriber's token. Its unsubscribe links go to the general unsubscribe
page, as in the list copy, and its `List-Unsubscribe` header holds only that page: no
one-click (`List-Unsubscribe-Post`) and no mailto, either of which a mail client could
act on for the proof's recipient, who may well be a subscriber too.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Config, ConfigError
from pipeline.delivery import smtp
from pipeline.delivery.smtp import Stop, envelope_sender, signer_for, smtp_problems
from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.state import IssueRecord

PREFIX = "[PROEF] "
_SPLIT = re.compile(r"[,;\s]+")
_STATUS = {
    "bounced": "geweigerd",
    "deferred": "tijdelijk geweigerd",
    "failed": "mislukt",
    "uncertain": "onzeker",
}


@dataclass
class ProofReport:
    issue: int
    subject: str = ""  # as sent, with the prefix
    tracks: tuple[str, ...] = ()  # the tracks whose sections and events the proof shows
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    awaiting_approval: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        tracks = ", ".join(self.tracks)
        text = (
            f"proef van nieuwsbrief {self.issue} ({tracks}) aan {len(self.sent)} adres(sen) "
            f"verstuurd, {len(self.failed)} mislukt — {self.subject}; niet in het verzendlog"
        )
        for address, why in self.failed:
            text += f"\n  niet verstuurd aan {address}: {why}"
        if self.awaiting_approval:
            text += (
                f"\nnummer {self.issue} wacht nog op goedkeuring (krimppost newsletter approve "
                f"{self.issue} --by NAAM)"
            )
        return text


def proof_addresses(values: Iterable[str]) -> list[str]:
    """The addresses of `--test`, each value split on commas; validated, duplicates once."""
    from pipeline.delivery.subscribers import AddressError, normalise

    seen: dict[str, str] = {}
    for value in values:
        for part in _SPLIT.split(value):
            if not part:
                continue
            try:
                address = normalise(part)
            except AddressError as exc:
                raise UsageError(f"--test: {exc}") from None
            seen.setdefault(address.key, address.email)
    if not seen:
        raise UsageError("--test: geef minstens één e-mailadres")
    return list(seen.values())


def proof_tracks(value: str | None, config: Config) -> frozenset[str] | None:
    """The tracks of `--tracks` (None: all), each one configured."""
    from pipeline.delivery.subscribers import TrackError, parse_tracks, track_set

    if value is None:
        return None
    try:
        return track_set(parse_tracks(value, config))
    except TrackError as exc:
        raise UsageError(f"--tracks: {exc}") from None


def send_proof(
    root: Path,
    number: int | None,
    addresses: Iterable[str],
    tracks: str | None = None,
) -> ProofReport:
    """Send issue N (default: the latest) as a proof to `addresses` only."""
    from pipeline.config import load_config, newsletter_problems
    from pipeline.state import IssueStore, StateStore

    config = load_config(root)
    recipients = proof_addresses(addresses)
    chosen = proof_tracks(tracks, config)
    if problems := newsletter_problems(config) + smtp_problems(config):
        raise ConfigError(problems)
    # No SendLock: a proof touches no delivery state, so it may run beside a `send`.
    with StateStore.of(config) as state:
        issues = IssueStore(state)
        record = issues.chosen(number)
        number = record.number

    shown = render_for(config, record, chosen)
    report = ProofReport(
        number,
        PREFIX + record.subject,
        shown.tracks,
        awaiting_approval=config.newsletter.approval and not record.approved,
    )
    _transmit_all(config, report, recipients, shown.text, shown.html)
    return report


@dataclass(frozen=True)
class Shown:
    """An issue as a subscriber of some tracks gets it (with the token of nobody)."""

    tracks: tuple[str, ...]  # the tracks whose sections and events it shows, in config order
    text: str
    html: str


def render_for(config: Config, record: IssueRecord, chosen: frozenset[str] | None) -> Shown:
    """Issue `record` as `send` renders it for a subscriber of `chosen` (None: of every
    track it has): the proof and the desk's view of an issue."""
    from pipeline.render import templates
    from pipeline.render.message import unsubscribe_base
    from pipeline.render.newsletter import TOKEN_PLACEHOLDER, render, view_of

    number = record.number
    view = view_of(config, record)
    issue_tracks = [s.track for s in view.sections]
    # What `send` shows a subscriber: the sections and agenda events of their tracks.
    shown = frozenset(issue_tracks) | frozenset(e.item.track for e in view.agenda)
    if chosen is not None:
        if not chosen & set(issue_tracks):
            raise UsageError(
                f"--tracks: nieuwsbrief {number} heeft geen berichten in "
                f"{', '.join(t for t in config.tracks if t in chosen)}, dus een abonnee van "
                f"alleen die trajecten krijgt het niet (wel in dit nummer: "
                f"{', '.join(issue_tracks)})"
            )
        shown &= chosen
    env = templates.environment(
        templates.template_dirs(config.templates_dir), config.site.tz, config.compiled_templates
    )
    base = unsubscribe_base(config)
    rendered = render(env, config, view.for_tracks(shown), base + TOKEN_PLACEHOLDER)
    # The token of nobody: the general unsubscribe page, as in the list copy.
    return Shown(
        tuple(t for t in config.tracks if t in shown),
        rendered.text.replace(TOKEN_PLACEHOLDER, ""),
        rendered.html.replace(TOKEN_PLACEHOLDER, ""),
    )


def _message(
    config: Config, number: int, subject: str, to: str, text: str, html: str
) -> tuple[bytes, bool]:
    """One proof message, DKIM-signed if configured: (bytes, needs SMTPUTF8)."""
    from pipeline.delivery.mime import UTF8_POLICY
    from pipeline.render.message import Envelope, build, message_id, unsubscribe_base

    msg = build(
        config,
        Envelope(
            to=to,
            subject=subject,
            date=datetime.now(config.site.tz).replace(microsecond=0),
            # `proef` where a real send has the subscriber's number: never the id of a delivery.
            message_id=message_id(
                config, f"nieuwsbrief-{number:04d}", "proef", secrets.token_hex(8)
            ),
            unsubscribe_https=unsubscribe_base(config),
            unsubscribe_mailto=config.newsletter.unsubscribe_mailto,
        ),
        text,
        html,
    )
    del msg["List-Unsubscribe-Post"]
    msg.replace_header("List-Unsubscribe", f"<{unsubscribe_base(config)}>")
    utf8 = not to.isascii()
    data = msg.as_bytes(policy=UTF8_POLICY) if utf8 else msg.as_bytes()
    signer = signer_for(config)
    if signer:
        data = signer.sign(data) + data
    return data, utf8


def _transmit_all(
    config: Config, report: ProofReport, recipients: list[str], text: str, html: str
) -> None:
    """Send one message per address over one connection (a new one if the server drops it)."""
    from pipeline.delivery.mime import dot_stuff
    from pipeline.delivery.subscribers import ascii_address

    sender = envelope_sender(config)
    conn = None
    try:
        for n, address in enumerate(recipients):
            to = ascii_address(address) or address
            data, utf8 = _message(config, report.issue, report.subject, to, text, html)
            try:
                if conn is None:
                    conn = smtp.connect_retrying(config, threading.Event())
                # Nothing to mark durable: a proof has no journal.
                outcome = smtp.transmit(
                    conn, sender, to, dot_stuff(data), utf8, lambda: lambda: None
                )
            except Stop as exc:  # no connection, or the sender refused: the rest fail alike
                report.failed.extend((a, str(exc)) for a in recipients[n:])
                return
            if outcome.status == "sent":
                report.sent.append(address)
            else:
                report.failed.append((address, f"{_STATUS[outcome.status]}: {outcome.reply}"))
            if not outcome.keep:
                conn = None
    finally:
        if conn is not None:
            smtp.quit_politely(conn)
