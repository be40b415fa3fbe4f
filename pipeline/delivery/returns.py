"""What comes back after sending: bounces, complaints and mailto unsubscribes.

`classify` reads one returned mail and says what it is (a `Report`), or None for a mail
that is none of these (an auto-reply, a question): that one is left in the mailbox.

- A DSN (RFC 3464, `multipart/report; report-type=delivery-status`): per recipient its
  Action and Status. `failed` with 5.x.x is a hard bounce, with 4.x.x a soft one; a
  `delayed` (or `delivered`, `relayed`) notice is read but counts for nothing. Bounces in
  older formats (Exim's and Postfix's text, Microsoft's, …) are found by flufl.bounce, the
  status code read from their text.
- A feedback-loop report (ARF, RFC 5965, `report-type=feedback-report`): a complaint,
  except `Feedback-Type: not-spam`.
- A mail to `[newsletter] unsubscribe_mailto`: an unsubscribe from its From address.

The recipient is found, in this order, from the VERP address the mail was sent back to
(`pipeline/delivery/verp.py`: exact even when the DSN is mangled), the original's
Message-ID in the delivery log, the unsubscribe token in the original's List-Unsubscribe,
and the addresses the report names. A mailto unsubscribe only ever uses its From address.

`apply` takes the decision in the state store (the caller's transaction) and writes it,
with the status code, into mail_events and the delivery's row of the delivery log.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from email.utils import getaddresses, parseaddr

from pipeline.config import Config
from pipeline.delivery import verp
from pipeline.delivery.subscribers import (
    AddressError,
    Subscriber,
    SubscriberStore,
    normalise,
)
from pipeline.state import utc_text
from pipeline.state.returns import ReturnRows
from pipeline.state.subscribers import NO_REQUEST

# Gmail's bulk-sender rules: keep the spam complaint rate below this.
COMPLAINT_LIMIT = 0.003

KIND_LABELS = {
    "hard_bounce": "harde bounce",
    "soft_bounce": "zachte bounce",
    "complaint": "klacht",
    "unsubscribe": "afmelding per e-mail",
    "notice": "vertragingsbericht",
}
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"\b([245])\d\d\b")
_TOKEN = re.compile(r"/([A-Za-z0-9_-]{22})>")
# Where the address a mail was delivered to is found (the VERP address of a bounce).
_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")


@dataclass(frozen=True)
class Report:
    kind: str  # hard_bounce, soft_bounce, complaint, unsubscribe, notice
    code: str = ""  # the DSN's status code (`5.1.1`)
    detail: str = ""  # its diagnostic text, short
    addresses: tuple[str, ...] = ()  # the addresses it names
    delivery: tuple[int, int] | None = None  # (issue, subscriber) from VERP
    message_id: str = ""  # of the original message
    token: str = ""  # the unsubscribe token in the original's List-Unsubscribe
    digest: str = ""  # of the returned mail itself
    unverified: bool = False  # an unsubscribe whose sender failed DMARC


def parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=email.policy.compat32)


def _digest(msg: Message, data: bytes) -> str:
    mid = (msg.get("message-id") or "").strip()
    return hashlib.sha256(mid.encode() if mid else data).hexdigest()[:32]


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type") or "").lower()


def _part(msg: Message, content_type: str) -> Message | None:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _blocks(part: Message | None) -> list[Message]:
    payload = part.get_payload() if part is not None else None
    return [block for block in payload or [] if isinstance(block, Message)]


def _address_field(value: str | None) -> str:
    """`rfc822; anna@x.nl` → `anna@x.nl`."""
    text = (value or "").partition(";")[2] if ";" in (value or "") else value or ""
    return text.strip().strip("<>").strip()


def _original(msg: Message) -> Message | None:
    """The headers of the message the report is about (message/rfc822 or rfc822-headers)."""
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind in ("text/rfc822-headers", "text/global-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return parse(payload)
    return None


def _status_of(text: str) -> str:
    found = _STATUS.search(text)
    if found:
        return ".".join(found.groups())
    code = _SMTP_CODE.search(text)
    return f"{code.group(1)}.0.0" if code else ""


def _short(text: str) -> str:
    return " ".join(text.split())[:200]


def _delivery_status(msg: Message) -> tuple[str, str, str, tuple[str, ...]] | None:
    """(kind, code, detail, addresses) of a DSN's recipients; the worst one decides."""
    blocks = _blocks(_part(msg, "message/delivery-status"))
    recipients = [b for b in blocks if b.get("final-recipient") or b.get("original-recipient")]
    if not recipients:
        return None
    failed = []
    for block in recipients:
        action = (block.get("action") or "").strip().lower()
        diagnostic = str(block.get("diagnostic-code") or "")
        code = _status_of(str(block.get("status") or "")) or _status_of(diagnostic)
        if action == "failed" or (not action and code.startswith("5")):
            address = _address_field(block.get("final-recipient")) or _address_field(
                block.get("original-recipient")
            )
            failed.append((code or "5.0.0", _short(diagnostic.partition(";")[2]), address))
    if not failed:
        return "notice", "", "", ()
    failed.sort(key=lambda f: not f[0].startswith("5"))
    code, detail, _ = failed[0]
    kind = "hard_bounce" if code.startswith("5") else "soft_bounce"
    return kind, code, detail, tuple(a for *_, a in failed if a)


def _from_mailer(msg: Message) -> bool:
    sender = parseaddr(str(msg.get("from") or ""))[1].lower()
    local = sender.partition("@")[0]
    return local in ("mailer-daemon", "postmaster", "mail-daemon") or bool(
        msg.get("x-failed-recipients")
    )


def _legacy_bounce(msg: Message, sent_back: bool) -> tuple[str, str, str, tuple[str, ...]] | None:
    """A bounce in a format other than RFC 3464, found by flufl.bounce."""
    if not (sent_back or _from_mailer(msg)):
        return None
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(msg)
    if not (temporary or permanent):
        return None
    text = _text(msg)
    found = permanent or temporary
    code = _status_of(text) or ("5.0.0" if permanent else "4.0.0")
    if permanent and not code.startswith("5"):
        code = "5.0.0"
    kind = "hard_bounce" if permanent else "soft_bounce"
    addresses = tuple(sorted(a.decode("utf-8", "replace") for a in found))
    detail = ""
    for line in text.splitlines():
        if _STATUS.search(line) or _SMTP_CODE.search(line):
            detail = _short(line)
            break
    return kind, code, detail, addresses


def _text(msg: Message) -> str:
    parts = []
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)[:200_000]


def _sent_to(msg: Message) -> list[str]:
    values = [str(v) for name in _ENVELOPE_HEADERS for v in msg.get_all(name) or []]
    return [address.lower() for _, address in getaddresses(values) if address]


def _verp(msg: Message, data: bytes, config: Config, key: bytes) -> tuple[int, int] | None:
    pattern = verp.matcher(config)
    if pattern is None:
        return None
    # the address it came back to first; else anywhere (the original's Return-Path)
    candidates = [*_sent_to(msg), data[:1_000_000].decode("utf-8", "replace")]
    for text in candidates:
        for found in pattern.finditer(text):
            delivery = verp.parse_id(key, found.group(1).lower())
            if delivery is not None:
                return delivery
    return None


def _original_refs(msg: Message) -> tuple[str, str]:
    original = _original(msg)
    if original is None:
        return "", ""
    token = _TOKEN.search(str(original.get("list-unsubscribe") or ""))
    return str(original.get("message-id") or "").strip(), token.group(1) if token else ""


def _dmarc_failed(msg: Message) -> bool:
    results = " ".join(str(v) for v in msg.get_all("authentication-results") or []).lower()
    return "dmarc=fail" in results


def classify(data: bytes, config: Config, key: bytes) -> Report | None:
    """What a returned mail is; None for one that is no bounce, complaint or unsubscribe."""
    msg = parse(data)
    digest = _digest(msg, data)
    kind = _report_type(msg)
    delivery = _verp(msg, data, config, key)
    message_id, token = _original_refs(msg)
    refs = {"delivery": delivery, "message_id": message_id, "token": token, "digest": digest}
    if kind == "feedback-report":
        blocks = _blocks(_part(msg, "message/feedback-report"))
        fields = blocks[0] if blocks else Message()
        if (fields.get("feedback-type") or "abuse").strip().lower() == "not-spam":
            return None
        rcpt = _address_field(fields.get("original-rcpt-to"))
        return Report(
            "complaint",
            detail=_short(str(fields.get("feedback-type") or "abuse")),
            addresses=(rcpt,) if rcpt else (),
            **refs,  # type: ignore[arg-type]
        )
    found = _delivery_status(msg) if kind == "delivery-status" else None
    if found is None:
        mailto = config.newsletter.unsubscribe_mailto.lower()
        if mailto and mailto in _sent_to(msg) and not _from_mailer(msg):
            auto = str(msg.get("auto-submitted") or "no").strip().lower()
            if auto != "no":
                return None
            sender = parseaddr(str(msg.get("from") or ""))[1]
            return Report(
                "unsubscribe",
                addresses=(sender,) if sender else (),
                digest=digest,
                unverified=_dmarc_failed(msg),
            )
        found = _legacy_bounce(msg, delivery is not None)
    if found is None:
        return None
    kind, code, detail, addresses = found
    return Report(kind, code, detail, addresses, **refs)  # type: ignore[arg-type]


# decisions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    kind: str
    who: str  # the masked address, or "" when nobody was found
    issue: int | None
    line: str  # Dutch: what was decided

    def __str__(self) -> str:
        label = KIND_LABELS[self.kind]
        about = f" (nieuwsbrief {self.issue})" if self.issue else ""
        return f"{self.who or 'onbekende ontvanger'}: {label}{about}: {self.line}"


class Returns:
    """Applies reports to the subscribers of one store (inside the caller's transaction)."""

    def __init__(self, store: SubscriberStore, config: Config) -> None:
        self.store = store
        self.rows = ReturnRows(store.state.conn)
        self.config = config

    def _subscriber(self, report: Report) -> tuple[Subscriber | None, int | None]:
        store = self.store
        if report.kind == "unsubscribe":
            return self._by_address(report.addresses), None
        if report.delivery is not None:
            issue, sid = report.delivery
            return store.by_id(sid), issue
        if report.message_id:
            found = self.rows.by_message_id(report.message_id)
            if found is not None:
                return store.by_id(found[1]), found[0]
        if report.token:
            by_token = store.by_token(report.token)
            if by_token is not None:
                return by_token, None
        return self._by_address(report.addresses), None

    def _by_address(self, addresses: tuple[str, ...]) -> Subscriber | None:
        for raw in addresses:
            try:
                found = self.store.find(normalise(raw))
            except AddressError:
                continue
            if found is not None:
                return found
        return None

    def apply(self, report: Report, now: datetime) -> Decision:
        found, issue = self._subscriber(report)
        if report.kind == "notice":
            return Decision("notice", found.masked if found else "", issue, "niet geteld")
        if found is None:
            if report.kind == "unsubscribe":
                line = "afzender is geen abonnee; niets gewijzigd"
            else:
                line = "ontvanger niet (meer) bekend; niets gewijzigd"
            return Decision(report.kind, "", issue, line)
        if issue is not None and not self.rows.delivery_exists(issue, found.id):
            issue = None
        if self.rows.seen(report.digest, found.id):
            return Decision(report.kind, found.masked, issue, "al eerder verwerkt; niets gewijzigd")
        line = getattr(self, "_" + report.kind)(found, report, issue, now)
        self.rows.add(
            subscriber=found.id,
            issue=issue,
            at=utc_text(now),
            kind=report.kind,
            code=report.code,
            decision=line,
            message=report.digest,
        )
        return Decision(report.kind, found.masked, issue, line)

    def _set_status(self, found: Subscriber, status: str, reason: str, now: datetime) -> None:
        self.store.rows.change(
            found.id,
            status=status,
            status_changed_at=utc_text(now),
            status_reason=reason,
            **NO_REQUEST,
        )

    def _note(self, issue: int | None, found: Subscriber, status: str, report: Report) -> None:
        if issue is not None:
            reply = f"later teruggekomen: {report.code} {report.detail}".strip()
            self.rows.note_on_delivery(issue, found.id, status, reply)

    def _hard_bounce(
        self, found: Subscriber, report: Report, issue: int | None, now: datetime
    ) -> str:
        self._note(issue, found, "bounced", report)
        if found.status not in ("active", "pending"):
            return f"{report.code}; status blijft {found.status}"
        self._set_status(found, "bounced", f"bounce {report.code}", now)
        return f"{report.code}: als onbestelbaar gemarkeerd"

    def _soft_bounce(
        self, found: Subscriber, report: Report, issue: int | None, now: datetime
    ) -> str:
        self._note(issue, found, "", report)
        limits = self.config.bounces
        since = utc_text(now - timedelta(days=limits.soft_days))
        count = self.rows.count(found.id, "soft_bounce", since) + 1
        counted = f"{count} van {limits.soft_limit} binnen {limits.soft_days} dagen"
        if count < limits.soft_limit or found.status not in ("active", "pending"):
            return f"{report.code}: zachte bounce {counted}"
        self._set_status(found, "bounced", f"{count} zachte bounces, laatste {report.code}", now)
        return f"{report.code}: zachte bounce {counted}: als onbestelbaar gemarkeerd"

    def _complaint(
        self, found: Subscriber, report: Report, issue: int | None, now: datetime
    ) -> str:
        self.store.rows.suppress(self.store.suppression_digest(found.email.lower()), utc_text(now))
        if found.status == "unsubscribed":
            return "was al afgemeld; op de onderdrukkingslijst gezet"
        self._set_status(found, "unsubscribed", "klacht (feedbackrapport)", now)
        return "afgemeld en op de onderdrukkingslijst gezet"

    def _unsubscribe(
        self, found: Subscriber, report: Report, issue: int | None, now: datetime
    ) -> str:
        if report.unverified:
            return "afzender niet bevestigd (DMARC mislukt); niets gewijzigd"
        if found.status == "unsubscribed":
            return "was al afgemeld"
        self._set_status(found, "unsubscribed", "afmelden per e-mail", now)
        return "afgemeld"
