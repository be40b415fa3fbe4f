"""The statements over the desk's accounts, sessions and audit log, for
pipeline/desk/accounts.py (which holds what they mean: hashing, locking, expiry). Methods
that write more than one statement expect to run inside the caller's transaction."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, func, select, update

from pipeline.state import schema

_u = schema.desk_users
_s = schema.desk_sessions
_a = schema.audit_log


class UserRow(NamedTuple):
    name: str
    role: str
    password_hash: str
    email: str | None
    created_at: str
    failures: int
    locked_until: float | None


class SessionRow(NamedTuple):
    key: str
    user_name: str
    csrf: str
    created: float
    seen: float


class AuditRow(NamedTuple):
    id: int
    at: str
    user_name: str
    action: str
    subject: str
    detail: dict[str, Any]


_USER = (
    _u.c.name,
    _u.c.role,
    _u.c.password_hash,
    _u.c.email,
    _u.c.created_at,
    _u.c.failures,
    _u.c.locked_until,
)


class DeskRows:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # accounts ------------------------------------------------------------------------------

    def user(self, name: str) -> UserRow | None:
        row = self.conn.execute(select(*_USER).where(_u.c.name == name)).first()
        return UserRow(*row) if row else None

    def users(self) -> list[UserRow]:
        return [UserRow(*r) for r in self.conn.execute(select(*_USER).order_by(_u.c.name))]

    def add_user(
        self, name: str, role: str, password_hash: str, email: str | None, stamp: str
    ) -> bool:
        """False when the name is taken."""
        if self.user(name) is not None:
            return False
        self.conn.execute(
            _u.insert().values(
                name=name,
                role=role,
                password_hash=password_hash,
                email=email,
                created_at=stamp,
                failures=0,
            )
        )
        return True

    def remove_user(self, name: str) -> bool:
        self.conn.execute(delete(_s).where(_s.c.user_name == name))
        return self.conn.execute(delete(_u).where(_u.c.name == name)).rowcount > 0

    def set_email(self, name: str, email: str | None) -> bool:
        return (
            self.conn.execute(update(_u).where(_u.c.name == name).values(email=email)).rowcount > 0
        )

    def set_password(self, name: str, password_hash: str) -> bool:
        """A new hash unlocks the account and ends its sessions."""
        self.conn.execute(delete(_s).where(_s.c.user_name == name))
        return (
            self.conn.execute(
                update(_u)
                .where(_u.c.name == name)
                .values(password_hash=password_hash, failures=0, locked_until=None)
            ).rowcount
            > 0
        )

    def note_failure(self, name: str, limit: int, lock_until: float) -> int:
        """Count a wrong password; the `limit`-th in a row locks the account until
        `lock_until` and starts the count again. The failures in a row now (0: locked)."""
        self.conn.execute(update(_u).where(_u.c.name == name).values(failures=_u.c.failures + 1))
        failures = self.conn.execute(select(_u.c.failures).where(_u.c.name == name)).scalar()
        if failures is not None and failures >= limit:
            self.conn.execute(
                update(_u).where(_u.c.name == name).values(failures=0, locked_until=lock_until)
            )
            return 0
        return int(failures or 0)

    def note_success(self, name: str) -> None:
        self.conn.execute(update(_u).where(_u.c.name == name).values(failures=0, locked_until=None))

    # sessions ----------------------------------------------------------------------------

    def add_session(self, key: str, user: str, csrf: str, now: float) -> None:
        self.conn.execute(
            _s.insert().values(key=key, user_name=user, csrf=csrf, created=now, seen=now)
        )

    def session(self, key: str) -> SessionRow | None:
        row = self.conn.execute(
            select(_s.c.key, _s.c.user_name, _s.c.csrf, _s.c.created, _s.c.seen).where(
                _s.c.key == key
            )
        ).first()
        return SessionRow(*row) if row else None

    def touch_session(self, key: str, now: float) -> None:
        self.conn.execute(update(_s).where(_s.c.key == key).values(seen=now))

    def end_session(self, key: str) -> None:
        self.conn.execute(delete(_s).where(_s.c.key == key))

    def purge_sessions(self, idle_before: float) -> int:
        return self.conn.execute(delete(_s).where(_s.c.seen < idle_before)).rowcount

    # the audit log -----------------------------------------------------------------------

    def audit(
        self, stamp: str, user: str, action: str, subject: str, detail: dict[str, Any]
    ) -> None:
        self.conn.execute(
            _a.insert().values(
                at=stamp,
                user_name=user,
                action=action,
                subject=subject,
                detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
            )
        )

    def audit_rows(self, subject: str | None = None, limit: int = 200) -> list[AuditRow]:
        """The newest first; of one subject, or of everything."""
        query = select(_a.c.id, _a.c.at, _a.c.user_name, _a.c.action, _a.c.subject, _a.c.detail)
        if subject is not None:
            query = query.where(_a.c.subject == subject)
        rows = self.conn.execute(query.order_by(_a.c.id.desc()).limit(limit))
        return [AuditRow(*r[:5], json.loads(r[5])) for r in rows]

    def audit_count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(_a)).scalar_one())
