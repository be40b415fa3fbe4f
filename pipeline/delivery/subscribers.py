"""Subscribers in the state store: normalised addresses, status, tracks, consent, tokens.

- An address is validated and normalised with email-validator (no DNS lookups); the
  domain is lower-cased, the local part kept. Two spellings that differ only in case are
  the same subscriber (`email_key`).
- Status: `pending` (asked on the web form, not yet confirmed), `active`, `unsubscribed`,
  `bounced`. Only `active` subscribers receive issues.
- Tracks: `*` for all tracks (the default, including tracks added later), otherwise the
  chosen ids as `,a,b,` so that SQL can match one as `,a,` (a LIKE on both databases).
- Consent record: source (`beheerder`, `import:<file>`, `webformulier`), the time of
  consent, the version of the consent text (`[subscribers] consent_version`) and, after
  double opt-in, the confirmation time.
- Every subscriber has an unsubscribe token: 128 random bits, URL-safe, 22 characters.
- `remove` erases the row (and its delivery log) and keeps only a suppression entry: an
  HMAC-SHA-256 of the lower-cased address under a random key kept in this state store. It
  matches the same address again (so no import re-adds it) but cannot be matched against
  address lists or hash tables from elsewhere.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pipeline.config import Config
from pipeline.csvcells import uncell
from pipeline.errors import KrimppostError, Problem
from pipeline.state import StateStore, from_utc_text, utc_text
from pipeline.state.subscribers import NO_REQUEST, SubscriberRows

STATUSES = ("pending", "active", "unsubscribed", "bounced")
STATUS_LABELS = {
    "pending": "wacht op bevestiging",
    "active": "actief",
    "unsubscribed": "afgemeld",
    "bounced": "onbestelbaar",
}
ALL_TRACKS = "*"
SOURCE_CLI = "beheerder"
SOURCE_WEB = "webformulier"


class AddressError(ValueError):
    """An address that is not a valid e-mail address; the message is Dutch."""


class TrackError(ValueError):
    """A track id that is not configured; the message is Dutch."""


def new_token() -> str:
    """128 random bits, URL-safe base64 without padding: 22 characters."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Address:
    email: str  # normalised, for display and delivery
    key: str  # lower-cased: uniqueness and suppression


def _dutch_reason(message: str) -> str:
    text = message.lower()
    if "must have an @-sign" in text:
        return "het adres moet één @ bevatten"
    if "too long" in text:
        return "het adres is te lang"
    if "display name" in text:
        return "alleen het adres zelf, zonder naam of < >"
    if "after the @-sign" in text or "domain" in text:
        return "het deel na de @ is geen geldig domein"
    if "before the @-sign" in text or "period" in text or "quoting" in text:
        return "het deel voor de @ is ongeldig"
    return "ongeldig e-mailadres"


def normalise(raw: str) -> Address:
    from email_validator import EmailNotValidError, validate_email

    text = raw.strip()
    if not text:
        raise AddressError("leeg e-mailadres")
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(f"ongeldig e-mailadres {text!r}: {_dutch_reason(str(exc))}") from None
    return Address(info.normalized, info.normalized.lower())


def mailbox(key: str) -> str:
    """The mailbox behind a lower-cased address: `+tag` stripped (`anna+1@x.nl` is `anna@x.nl`).

    Used to rate-limit confirmation mails, so that `+tag` variants cannot flood one inbox.
    """
    local, _, domain = key.rpartition("@")
    # a local part that starts with `+` (`+31-6@x.nl`) has no tag to strip
    return (local.split("+", 1)[0] or local) + "@" + domain


def ascii_address(email: str) -> str | None:
    """The address as plain ASCII (IDN domain in punycode), or None if it needs SMTPUTF8."""
    if email.isascii():
        return email
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(email, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return None


def parse_tracks(value: str | Iterable[str] | None, config: Config) -> str:
    """Track ids (a string split on `,`, `;` or spaces, or a list) to the stored form."""
    if value is None:
        return ALL_TRACKS
    parts = re.split(r"[,;\s]+", value) if isinstance(value, str) else list(value)
    chosen = {p.strip() for p in parts if p.strip()}
    if not chosen or chosen == {ALL_TRACKS}:
        return ALL_TRACKS
    unknown = sorted(chosen - set(config.tracks))
    if unknown:
        known = ", ".join(config.tracks)
        raise TrackError(
            f"onbekend traject {', '.join(repr(u) for u in unknown)} (bekend: {known})"
        )
    return "," + ",".join(t for t in config.tracks if t in chosen) + ","


def track_set(stored: str) -> frozenset[str] | None:
    """The chosen tracks, or None for all tracks."""
    if stored == ALL_TRACKS:
        return None
    return frozenset(t for t in stored.split(",") if t)


def tracks_display(stored: str, separator: str = ",") -> str:
    return "" if stored == ALL_TRACKS else separator.join(t for t in stored.split(",") if t)


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    status: str
    tracks: str
    token: str
    source: str
    consented_at: datetime
    consent_version: str
    confirmed_at: datetime | None
    status_changed_at: datetime
    status_reason: str
    paused_until: datetime | None = None  # no issue before this moment (the preference page)

    @property
    def masked(self) -> str:
        """`j…@example.nl`: enough for the owner to recognise, little for anyone else."""
        local, _, domain = self.email.rpartition("@")
        return f"{local[:1]}…@{domain}"


def _row(row: tuple) -> Subscriber:
    return Subscriber(
        id=row[0],
        email=row[1],
        status=row[2],
        tracks=row[3],
        token=row[4],
        source=row[5],
        consented_at=from_utc_text(row[6]),
        consent_version=row[7],
        confirmed_at=from_utc_text(row[8]) if row[8] else None,
        status_changed_at=from_utc_text(row[9]),
        status_reason=row[10],
        paused_until=from_utc_text(row[11]) if row[11] else None,
    )


@dataclass
class ImportReport:
    added: int = 0
    present: int = 0
    skipped: int = 0  # unsubscribed, bounced, suppressed, or not `active` in the file
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.added} toegevoegd, {self.present} al aanwezig (ongewijzigd), "
            f"{self.skipped} overgeslagen (afgemeld, onbestelbaar of verwijderd), "
            f"{len(self.problems)} fouten"
        )


class SubscriberStore:
    def __init__(self, state: StateStore, config: Config) -> None:
        self.state = state
        self.rows = SubscriberRows(state.conn)
        self.config = config

    # secrets kept in the store ---------------------------------------------------------

    def meta(self, key: str, make: str | None = None) -> str:
        """A value from delivery_meta, created once (first writer wins)."""
        found = self.rows.meta(key)
        if found is not None:
            return found
        self.rows.add_meta(key, make if make is not None else secrets.token_hex(32))
        return str(self.rows.meta(key))

    def suppression_digest(self, key: str) -> str:
        secret = bytes.fromhex(self.meta("suppression_key"))
        return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()

    def is_suppressed(self, key: str) -> bool:
        return self.rows.suppressed(self.suppression_digest(key))

    # lookups ---------------------------------------------------------------------------

    def find(self, address: Address) -> Subscriber | None:
        row = self.rows.by("email_key", address.key)
        return _row(row) if row else None

    def by_token(self, token: str) -> Subscriber | None:
        row = self.rows.by("token", token)
        return _row(row) if row else None

    def iterate(self, status: str | None = None, page: int = 500) -> Iterator[Subscriber]:
        """All subscribers in id order, read a page at a time (memory stays flat)."""
        last = 0
        while True:
            rows = self.rows.page(status, last, page)
            if not rows:
                return
            for row in rows:
                yield _row(row)
            last = rows[-1][0]

    def counts(self) -> dict[str, int]:
        found = self.rows.counts()
        return {s: int(found.get(s, 0)) for s in STATUSES}

    def suppressed_count(self) -> int:
        return self.rows.suppressed_count()

    # changes by the operator -------------------------------------------------------------

    def _insert(
        self, address: Address, status: str, tracks: str, source: str, now: datetime
    ) -> None:
        self.rows.insert(
            email=address.email,
            email_key=address.key,
            status=status,
            tracks=tracks,
            token=new_token(),
            source=source,
            consented_at=utc_text(now),
            consent_version=self.config.subscribers.consent_version,
            status_changed_at=utc_text(now),
            status_reason=source,
        )

    def add(self, raw: str, tracks: str | None, now: datetime, force: bool = False) -> str:
        """Add or update one address as active; returns a Dutch line for the operator.

        `tracks` is the stored form, or None to leave an existing choice alone. An
        unsubscribed, bounced or suppressed address is refused unless `force` (only at the
        explicit request of the person themselves).
        """
        address = normalise(raw)
        with self.state.transaction():
            row = self.find(address)
            if row is None:
                if self.is_suppressed(address.key):
                    if not force:
                        raise KrimppostError(
                            f"{address.email}: dit adres is eerder verwijderd en staat op de "
                            "onderdrukkingslijst; alleen op uitdrukkelijk verzoek van de persoon "
                            "zelf opnieuw toevoegen met --force"
                        )
                    self.rows.unsuppress(self.suppression_digest(address.key))
                self._insert(address, "active", tracks or ALL_TRACKS, SOURCE_CLI, now)
                return f"{address.email}: toegevoegd ({_tracks_label(tracks or ALL_TRACKS)})"
            if row.status in ("unsubscribed", "bounced") and not force:
                raise KrimppostError(
                    f"{row.email}: status {STATUS_LABELS[row.status]} sinds "
                    f"{row.status_changed_at.date().isoformat()}; alleen op uitdrukkelijk verzoek "
                    "van de persoon zelf opnieuw activeren met --force"
                )
            new_tracks = tracks if tracks is not None else row.tracks
            if row.status == "active" and new_tracks == row.tracks:
                return f"{row.email}: al actief ({_tracks_label(row.tracks)}), niets gewijzigd"
            if row.status == "active":
                self.rows.change(row.id, tracks=new_tracks)
                return f"{row.email}: trajecten bijgewerkt ({_tracks_label(new_tracks)})"
            self.rows.change(
                row.id,
                status="active",
                tracks=new_tracks,
                source=SOURCE_CLI,
                consented_at=utc_text(now),
                consent_version=self.config.subscribers.consent_version,
                confirmed_at=None,
                status_changed_at=utc_text(now),
                status_reason=SOURCE_CLI,
                **NO_REQUEST,
            )
            return f"{row.email}: geactiveerd ({_tracks_label(new_tracks)})"

    def remove(self, raw: str, now: datetime) -> str:
        """Erase an address and keep only its suppression digest."""
        address = normalise(raw)
        with self.state.transaction():
            row = self.find(address)
            self.rows.suppress(self.suppression_digest(address.key), utc_text(now))
            if row is None:
                return (
                    f"{address.email}: niet gevonden; wel op de onderdrukkingslijst gezet, "
                    "zodat een import het niet toevoegt"
                )
            self.rows.delete(row.id)  # and its delivery log
        return (
            f"{address.email}: persoonsgegevens en verzendlog gewist; "
            "alleen een onomkeerbare code blijft op de onderdrukkingslijst"
        )

    def import_csv(self, path: Path, display: str, now: datetime) -> ImportReport:
        """Import `email,tracks` rows; bad rows are reported by line, the rest imported.

        Idempotent: an address already present is left as it is (an unsubscribed or
        bounced one is never re-activated); suppressed addresses are skipped. With a header
        row, a `status` column other than `active` skips the row (so an export can be
        imported without re-activating anyone).
        """
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise KrimppostError([Problem(display, None, "bestand niet gevonden")]) from None
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise KrimppostError(
                [Problem(display, line, "geen geldige UTF-8 (sla het bestand op als UTF-8)")]
            ) from None
        first = text.split("\n", 1)[0]
        delimiter = ";" if ";" in first and "," not in first else "\t" if "\t" in first else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        report = ImportReport()
        columns = {"email": 0, "tracks": 1}
        source = f"import:{path.name}"
        with self.state.transaction():
            end = 0
            first = True
            for cells in reader:
                start, end = end + 1, reader.line_num
                if not cells or all(not c.strip() for c in cells):
                    continue
                header, first = first, False
                names = [c.strip().lower() for c in cells]
                if header and _index(names, _EMAIL_HEADERS) >= 0:
                    columns = {
                        "email": _index(names, _EMAIL_HEADERS),
                        "tracks": _index(names, ("tracks", "trajecten")),
                        "status": _index(names, ("status",)),
                    }
                    continue
                try:
                    outcome = self._import_row(cells, columns, source, now)
                except (AddressError, TrackError) as exc:
                    report.problems.append(Problem(display, start, str(exc)))
                    continue
                if outcome == "added":
                    report.added += 1
                elif outcome == "present":
                    report.present += 1
                else:
                    report.skipped += 1
        return report

    def _import_row(
        self, cells: list[str], columns: dict[str, int], source: str, now: datetime
    ) -> str:
        def cell(name: str) -> str:
            index = columns.get(name, -1)
            return uncell(cells[index].strip()) if 0 <= index < len(cells) else ""

        address = normalise(cell("email"))
        tracks = parse_tracks(cell("tracks"), self.config)
        status = cell("status")
        if status and status != "active":
            return "skipped"
        if self.find(address) is not None:
            return "present"
        if self.is_suppressed(address.key):
            return "skipped"
        self._insert(address, "active", tracks, source, now)
        return "added"

    # the web app: double opt-in and unsubscribing ------------------------------------------

    def request(self, raw: str, tracks: str, now: datetime) -> tuple[str, str] | None:
        """Record a subscription request from the web form: (address, confirm token).

        None when nothing must be sent: a suppressed address, or a confirmation mail sent
        within the rate window to this address or to another `+tag` variant of its mailbox
        (so the form cannot flood an inbox). The existing status of a known address is not
        changed until it confirms.
        """
        address = normalise(raw)
        window = timedelta(seconds=self.config.serve.subscribe_window)
        token = new_token()
        version = self.config.subscribers.consent_version
        with self.state.transaction():
            if self.mailed_recently(address.key, now - window):
                return None
            if self.rows.id_of(address.key) is None:
                if self.is_suppressed(address.key):
                    return None
                self._insert(address, "pending", tracks, SOURCE_WEB, now)
            self.rows.change_by_key(
                address.key,
                confirm_token=token,
                requested_at=utc_text(now),
                requested_tracks=tracks,
                requested_version=version,
            )
        return address.email, token

    def mailed_recently(self, key: str, since: datetime) -> bool:
        """A confirmation mail went to this address's mailbox (any `+tag` of it) since `since`."""
        box = mailbox(key)
        local = box.rpartition("@")[0]
        keys = self.rows.requested_since(utc_text(since), box, local)
        return any(mailbox(key) == box for key in keys)

    def withdraw_request(self, token: str) -> None:
        """Forget a request whose confirmation mail could not be sent (so it may be retried)."""
        with self.state.transaction():
            self.rows.withdraw_request(token)

    def _request(
        self, token: str, now: datetime
    ) -> tuple[int, str | None, str | None, str | None] | None:
        """(subscriber id, requested_at, tracks, consent version) of a confirmation token;
        requested_at is None when the link confirmed already. None for an unknown or
        expired token, or one whose subscriber is no longer active since confirming."""
        row = self.rows.request(token)
        if row is None:
            return None
        sid, status, requested_at, tracks, version = row
        if requested_at is None:
            return (sid, None, None, None) if status == "active" else None
        cutoff = now - timedelta(days=self.config.subscribers.confirm_days)
        if from_utc_text(requested_at) < cutoff:
            return None
        return sid, requested_at, tracks, version

    def awaiting(self, token: str, now: datetime) -> tuple[Subscriber, str | None] | None:
        """Read-only look at a confirmation token: (subscriber, tracks asked for).

        The tracks are None when this link has confirmed already; the result is None for an
        unknown or expired token. Nothing changes: a GET of the link (a mail scanner's too)
        only shows what the button would confirm.
        """
        request = self._request(token, now)
        if request is None:
            return None
        sid, requested_at, tracks, _ = request
        found = self.by_id(sid)
        if found is None:
            return None
        return found, (None if requested_at is None else str(tracks))

    def confirm(self, token: str, now: datetime) -> Subscriber | None:
        """Activate the subscriber of a confirmation token; None for unknown or expired."""
        with self.state.transaction():
            request = self._request(token, now)
            if request is None:
                return None
            sid, requested_at, tracks, version = request
            if requested_at is not None:  # else confirmed with this link: change nothing
                self.rows.change(
                    sid,
                    status="active",
                    tracks=tracks,
                    source=SOURCE_WEB,
                    consented_at=requested_at,
                    consent_version=version,
                    confirmed_at=utc_text(now),
                    status_changed_at=utc_text(now),
                    status_reason="bevestigd",
                    requested_at=None,
                    requested_tracks=None,
                    requested_version=None,
                )
            return self.by_id(sid)

    def unsubscribe(self, token: str, now: datetime, reason: str) -> Subscriber | None:
        """Mark the subscriber of an unsubscribe token unsubscribed; None for unknown tokens."""
        with self.state.transaction():
            found = self.by_token(token)
            if found is None:
                return None
            if found.status != "unsubscribed":
                self.rows.change(
                    found.id,
                    status="unsubscribed",
                    status_changed_at=utc_text(now),
                    status_reason=reason,
                    **NO_REQUEST,
                )
        return self.by_id(found.id)

    def purge_expired(self, now: datetime) -> int:
        """Forget confirmation requests older than `confirm_days`; returns rows deleted."""
        cutoff = utc_text(now - timedelta(days=self.config.subscribers.confirm_days))
        with self.state.transaction():
            self.rows.forget_address_changes(cutoff)  # a new address expires like a request
            return self.rows.purge_requests(cutoff)

    def by_id(self, sid: int) -> Subscriber | None:
        row = self.rows.by("id", sid)
        return _row(row) if row else None


_EMAIL_HEADERS = ("email", "e-mail", "e-mailadres")


def _index(names: list[str], wanted: tuple[str, ...]) -> int:
    for i, name in enumerate(names):
        if name in wanted:
            return i
    return -1


def _tracks_label(stored: str) -> str:
    return "alle trajecten" if stored == ALL_TRACKS else tracks_display(stored, ", ")
