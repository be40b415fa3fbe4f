"""What a subscriber changes themselves on the preference page (`/voorkeuren/<token>`).

The token is the subscriber's unsubscribe token. Everything here looks the subscriber up
by it and answers None for an unknown one, so the web app gives every forged token the
same 404.

- Tracks and a pause: a pause is stored as the moment (UTC) from which issues go out again
  (`paused_until`); the subscriber stays `active` and the pause ends by itself
  (pipeline/state/deliveries.py compares it with the moment of the send).
- A change of address is a double opt-in of the new address: it is kept in `new_email`
  with a token of its own until the link mailed to it confirms; the old address keeps
  receiving until then. Requests expire after `[subscribers] confirm_days`.
- The download (AVG article 15) holds all that is kept about the subscriber; erasing
  (article 17) is `SubscriberStore.remove`: the row and its delivery log go, the
  suppression digest stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pipeline.delivery.subscribers import (
    STATUS_LABELS,
    Subscriber,
    SubscriberStore,
    new_token,
    normalise,
    track_set,
)
from pipeline.state import from_utc_text, utc_text
from pipeline.state.deliveries import DeliveryLog
from pipeline.state.subscribers import NO_ADDRESS_CHANGE, NO_REQUEST

REASON_PAGE = "voorkeurenpagina"
REASON_ADDRESS = "adres gewijzigd"


class SelfService:
    def __init__(self, store: SubscriberStore) -> None:
        self.store = store
        self.rows = store.rows
        self.config = store.config

    def _change(self, token: str, **values: Any) -> Subscriber | None:
        with self.store.state.transaction():
            found = self.store.by_token(token)
            if found is None:
                return None
            self.rows.change(found.id, **values)
        return self.store.by_token(token)

    def set_tracks(self, token: str, tracks: str) -> Subscriber | None:
        """`tracks` in the stored form (parse_tracks)."""
        return self._change(token, tracks=tracks)

    def pause(self, token: str, until: datetime | None) -> Subscriber | None:
        """Send nothing before `until`; None ends a pause."""
        return self._change(token, paused_until=utc_text(until) if until else None)

    def unsubscribe(self, token: str, now: datetime) -> Subscriber | None:
        return self.store.unsubscribe(token, now, REASON_PAGE)

    # change of address -------------------------------------------------------------------

    def request_address(
        self, token: str, raw: str, now: datetime
    ) -> tuple[Subscriber | None, tuple[str, str] | None]:
        """Record a new address: (subscriber, (address, confirm token) or None).

        The second part is None when nothing must be mailed: the address is the current
        one, another subscriber's or suppressed, or a mail went to this subscriber's new
        address or to its mailbox within the rate window. The caller says the same in every
        case. Raises AddressError for an address that is not one.
        """
        address = normalise(raw)
        window = timedelta(seconds=self.config.serve.subscribe_window)
        with self.store.state.transaction():
            found = self.store.by_token(token)
            if found is None:
                return None, None
            change = self.rows.address_change(found.id)
            if change and change[2] and from_utc_text(change[2]) > now - window:
                return found, None
            if (
                self.rows.id_of(address.key) is not None
                or self.store.is_suppressed(address.key)
                or self.store.mailed_recently(address.key, now - window)
            ):
                return found, None
            change_token = new_token()
            self.rows.change(
                found.id,
                new_email=address.email,
                new_email_token=change_token,
                new_email_requested_at=utc_text(now),
            )
        return found, (address.email, change_token)

    def withdraw_address(self, change_token: str) -> None:
        """Forget a change whose confirmation mail could not be sent."""
        with self.store.state.transaction():
            row = self.rows.by_address_token(change_token)
            if row is not None:
                self.rows.change(row[0], **NO_ADDRESS_CHANGE)

    def pending_address(self, change_token: str, now: datetime) -> tuple[Subscriber, str] | None:
        """Read-only look at a change-of-address link: (subscriber, new address), or None
        for an unknown or expired link."""
        row = self.rows.by_address_token(change_token)
        if row is None:
            return None
        sid, email, requested_at = row
        cutoff = now - timedelta(days=self.config.subscribers.confirm_days)
        if not requested_at or from_utc_text(requested_at) < cutoff:
            return None
        found = self.store.by_id(sid)
        return (found, str(email)) if found is not None else None

    def confirm_address(self, change_token: str, now: datetime) -> tuple[Subscriber | None, bool]:
        """Replace the address by the confirmed new one: (subscriber, changed).

        (None, False) for an unknown or expired link; (subscriber, False) when the address
        was taken by another subscriber or suppressed since the request (then the change
        is forgotten and the old address stays)."""
        with self.store.state.transaction():
            pending = self.pending_address(change_token, now)
            if pending is None:
                return None, False
            found, email = pending
            address = normalise(email)
            if self.rows.id_of(address.key) is not None or self.store.is_suppressed(address.key):
                self.rows.change(found.id, **NO_ADDRESS_CHANGE)
                return found, False
            # The confirmation of the new address is the consent record's confirmation now.
            self.rows.change(
                found.id,
                email=address.email,
                email_key=address.key,
                confirmed_at=utc_text(now),
                status_changed_at=utc_text(now),
                status_reason=REASON_ADDRESS,
                **NO_ADDRESS_CHANGE,
                **NO_REQUEST,
            )
        return self.store.by_id(found.id), True

    # the rights of access and erasure ------------------------------------------------------

    def export(self, token: str) -> dict[str, Any] | None:
        """All that is kept about the subscriber, for the JSON download (AVG article 15)."""
        found = self.store.by_token(token)
        if found is None:
            return None
        chosen = track_set(found.tracks)
        change = self.rows.address_change(found.id)
        log = DeliveryLog(self.store.state.conn).of_subscriber(found.id)
        events = self.rows.mail_events(found.id)
        return {
            "toelichting": (
                f"Alle gegevens die de nieuwsbrief van {self.config.site.title} over je "
                "bewaart (AVG artikel 15)."
            ),
            "e-mailadres": found.email,
            "status": found.status,
            "status_uitleg": STATUS_LABELS.get(found.status, found.status),
            "status_gewijzigd_op": utc_text(found.status_changed_at),
            "reden_statuswijziging": found.status_reason,
            "alle_onderwerpen": chosen is None,
            "onderwerpen": [
                {"id": t.id, "naam": t.label}
                for t in self.config.tracks.values()
                if chosen is None or t.id in chosen
            ],
            "gepauzeerd_tot": utc_text(found.paused_until) if found.paused_until else None,
            "toestemming": {
                "bron": found.source,
                "gegeven_op": utc_text(found.consented_at),
                "versie_toestemmingstekst": found.consent_version,
                "bevestigd_op": utc_text(found.confirmed_at) if found.confirmed_at else None,
            },
            "adreswijziging": (
                {"nieuw_adres": change[0], "aangevraagd_op": change[2]}
                if change and change[0]
                else None
            ),
            "verzendlog": [
                {
                    "nummer": issue,
                    "status": status,
                    "pogingen": attempts,
                    "antwoord_mailserver": reply,
                    "bijgewerkt_op": updated_at,
                }
                for issue, status, attempts, reply, updated_at in log
            ],
            "bounces_en_klachten": [
                {
                    "nummer": issue,
                    "moment": at,
                    "soort": kind,
                    "code": code,
                    "besluit": decision,
                    "bericht": message,
                }
                for issue, at, kind, code, decision, message in events
            ],
        }

    def erase(self, token: str, now: datetime) -> bool:
        """`subscribers remove` for the subscriber of the token; False for an unknown one."""
        found = self.store.by_token(token)
        if found is None:
            return False
        self.store.remove(found.email, now)
        return True
