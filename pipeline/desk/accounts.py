"""The desk's accounts, sessions and audit log: what they mean (the SQL is in
pipeline/state/accounts.py).

- A password is kept only as an Argon2id hash (argon2-cffi's defaults, RFC 9106's second
  recommended set); a hash made with older parameters is replaced at the next sign-in.
- Five wrong passwords in a row lock an account for 15 minutes. A sign-in says the same for
  a wrong password, an unknown name and a locked account, and costs the same time (an
  unknown name is checked against a dummy hash), so nobody learns which names exist.
- A session is a random id in a signed cookie; the store keeps only its hash, with a CSRF
  token and when it was last used, so signing out ends it on the server and a session idle
  longer than `[desk] session_minutes` is gone.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pipeline.errors import UsageError
from pipeline.state import StateStore, StoreAddress, transaction, utc_text
from pipeline.state.accounts import AuditRow, DeskRows, UserRow
from pipeline.state.schema import DESK_ROLES

ROLES = DESK_ROLES
ROLE_LABELS = {
    "communicatie": "communicatie (sociale media beoordelen)",
    "redacteur": "redacteur (voorbeelden, nieuwsbrief)",
    "beheerder": "beheerder (alles, en het logboek)",
}
# What each role may do; a beheerder may do everything.
RIGHTS = {
    "communicatie": frozenset({"social"}),
    "redacteur": frozenset({"preview", "newsletter"}),
    "beheerder": frozenset({"social", "preview", "newsletter", "audit"}),
}
MAX_FAILURES = 5
LOCK_SECONDS = 15 * 60
MIN_PASSWORD = 12
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_hasher = PasswordHasher()
# Checked when the name is unknown, so that answer takes as long as a wrong password.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    clean = name.strip()
    if not _NAME.fullmatch(clean):
        raise UsageError(
            f"ongeldige gebruikersnaam {name!r}: kleine letters, cijfers, punt, streepje of "
            "liggend streepje, beginnend met een letter of cijfer, hooguit 64 tekens"
        )
    return clean


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"onbekende rol {role!r}; kies uit: {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"het wachtwoord moet minstens {MIN_PASSWORD} tekens hebben")
    return password


def may(role: str, right: str) -> bool:
    return right in RIGHTS.get(role, frozenset())


def session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    email: str | None

    def may(self, right: str) -> bool:
        return may(self.role, right)


@dataclass(frozen=True)
class Session:
    id: str  # the cookie's value (signed by the app); the store has its hash only
    user: User
    csrf: str


def _user(row: UserRow) -> User:
    return User(row.name, row.role, row.email)


class Accounts:
    """The desk's accounts over one state store; each call opens its own connection, so
    a web request's thread never shares one."""

    def __init__(self, address: StoreAddress, clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self.clock = clock

    def _call(self, fn: Callable[[DeskRows], Any], write: bool = True) -> Any:
        with StateStore(self.address) as state:
            rows = DeskRows(state.conn)
            if not write:
                return fn(rows)
            with transaction(state.conn, exclusive=False):
                return fn(rows)

    def _stamp(self) -> str:
        return utc_text(datetime.fromtimestamp(self.clock(), UTC))

    # managing accounts (the `users` command) ---------------------------------------------

    def add(self, name: str, role: str, password: str, email: str | None = None) -> User:
        name, role = check_name(name), check_role(role)
        hashed = _hasher.hash(check_password(password))
        stamp = self._stamp()

        def add(rows: DeskRows) -> bool:
            if not rows.add_user(name, role, hashed, email, stamp):
                return False
            rows.audit(stamp, "krimppost users", "account aangemaakt", name, {"rol": role})
            return True

        if not self._call(add):
            raise UsageError(f"gebruiker {name!r} bestaat al")
        return User(name, role, email)

    def remove(self, name: str) -> None:
        stamp = self._stamp()

        def remove(rows: DeskRows) -> bool:
            if not rows.remove_user(name):
                return False
            rows.audit(stamp, "krimppost users", "account verwijderd", name, {})
            return True

        if not self._call(remove):
            raise UsageError(f"gebruiker {name!r} bestaat niet")

    def set_password(self, name: str, password: str) -> None:
        hashed = _hasher.hash(check_password(password))
        stamp = self._stamp()

        def change(rows: DeskRows) -> bool:
            if not rows.set_password(name, hashed):
                return False
            rows.audit(stamp, "krimppost users", "wachtwoord gewijzigd", name, {})
            return True

        if not self._call(change):
            raise UsageError(f"gebruiker {name!r} bestaat niet")

    def set_email(self, name: str, email: str | None) -> None:
        """The address a proof of the newsletter goes to (None: none)."""
        stamp = self._stamp()

        def change(rows: DeskRows) -> bool:
            if not rows.set_email(name, email):
                return False
            rows.audit(stamp, "krimppost users", "e-mailadres gewijzigd", name, {"adres": email})
            return True

        if not self._call(change):
            raise UsageError(f"gebruiker {name!r} bestaat niet")

    def list(self) -> list[tuple[User, float | None]]:
        """Every account and until when it is locked (None: not locked)."""
        now = self.clock()
        return [
            (_user(r), r.locked_until if r.locked_until and r.locked_until > now else None)
            for r in self._call(lambda rows: rows.users(), write=False)
        ]

    def user(self, name: str) -> User | None:
        row = self._call(lambda rows: rows.user(name), write=False)
        return _user(row) if row else None

    # signing in and out ------------------------------------------------------------------

    def sign_in(self, name: str, password: str, client: str) -> Session | None:
        """A new session, or None (wrong password, unknown name or locked: one answer)."""
        row: UserRow | None = self._call(lambda rows: rows.user(name.strip()), write=False)
        now = self.clock()
        try:
            _hasher.verify(row.password_hash if row else _DUMMY, password)
            good = row is not None
        except (VerificationError, InvalidHashError):
            good = False
        stamp = self._stamp()
        if row is None:
            self.audit("(onbekend)", "mislukte inlog", "", {"client": client})
            return None
        if row.locked_until and row.locked_until > now:
            self.audit(
                row.name, "inlog geweigerd: account geblokkeerd", row.name, {"client": client}
            )
            return None
        if not good:

            def fail(rows: DeskRows) -> int:
                left = rows.note_failure(row.name, MAX_FAILURES, now + LOCK_SECONDS)
                rows.audit(stamp, row.name, "mislukte inlog", row.name, {"client": client})
                if left == 0:
                    rows.audit(
                        stamp,
                        row.name,
                        "account geblokkeerd",
                        row.name,
                        {"minuten": LOCK_SECONDS // 60, "client": client},
                    )
                return left

            self._call(fail)
            return None
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        rehash = _hasher.hash(password) if _hasher.check_needs_rehash(row.password_hash) else None

        def start(rows: DeskRows) -> None:
            rows.note_success(row.name)
            if rehash:
                rows.set_password(row.name, rehash)
            rows.add_session(session_key(session_id), row.name, csrf, now)
            rows.audit(stamp, row.name, "ingelogd", row.name, {"client": client})

        self._call(start)
        return Session(session_id, _user(row), csrf)

    def trusted_session(self, name: str, client: str) -> Session | None:
        """A session for a person a single sign-on in front vouches for, if the account
        exists."""
        row: UserRow | None = self._call(lambda rows: rows.user(name.strip()), write=False)
        if row is None:
            self.audit(
                name.strip()[:64] or "(leeg)",
                "single sign-on: onbekend account",
                "",
                {"client": client},
            )
            return None
        session_id, csrf, now, stamp = (
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            self.clock(),
            self._stamp(),
        )

        def start(rows: DeskRows) -> None:
            rows.add_session(session_key(session_id), row.name, csrf, now)
            rows.audit(stamp, row.name, "ingelogd via single sign-on", row.name, {"client": client})

        self._call(start)
        return Session(session_id, _user(row), csrf)

    def session(self, session_id: str, idle_seconds: float) -> Session | None:
        """The live session of this id, its idle clock restarted; None when it ended,
        expired or its account is gone."""
        key = session_key(session_id)
        now = self.clock()

        def look(rows: DeskRows) -> Session | None:
            found = rows.session(key)
            if found is None:
                return None
            if found.seen < now - idle_seconds:
                rows.end_session(key)
                return None
            row = rows.user(found.user_name)
            if row is None:
                rows.end_session(key)
                return None
            rows.touch_session(key, now)
            return Session(session_id, _user(row), found.csrf)

        return self._call(look)

    def sign_out(self, session: Session) -> None:
        stamp = self._stamp()

        def end(rows: DeskRows) -> None:
            rows.end_session(session_key(session.id))
            rows.audit(stamp, session.user.name, "uitgelogd", session.user.name, {})

        self._call(end)

    def purge(self, idle_seconds: float) -> int:
        return self._call(lambda rows: rows.purge_sessions(self.clock() - idle_seconds))

    # the audit log -----------------------------------------------------------------------

    def audit(self, user: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        stamp = self._stamp()
        self._call(lambda rows: rows.audit(stamp, user, action, subject, detail))

    def audit_rows(self, subject: str | None = None, limit: int = 200) -> list[AuditRow]:
        return self._call(lambda rows: rows.audit_rows(subject, limit), write=False)
