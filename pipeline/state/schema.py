"""The tables of the state store, declared once for SQLite and PostgreSQL.

This is the schema a new store is made with (`metadata.create_all`) and that every
migration leads to (pipeline/state/migrations.py). Times are UTC ISO-8601 text, so they
sort and compare the same on both databases; flags are integers 0/1.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

# A SQLite table of short rows keyed by text needs no rowid of its own.
_NO_ROWID = {"sqlite_with_rowid": False}


def _key_value(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("key", Text, primary_key=True),
        Column("value", Text, nullable=False),
        **_NO_ROWID,
    )


items = Table(
    "items",
    metadata,
    Column("id", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("entry_id", Text, nullable=False),
    Column("first_published", Text, nullable=False),
    Column("content_hash", Text, nullable=False),
    Column("updated", Text, nullable=False),
    Column("live", Integer, nullable=False),
    Column("withdrawn_at", Text),
    Column("last_good", Text, nullable=False),
    Index("items_source", "source"),
)

outputs = Table(
    "outputs",
    metadata,
    Column("path", Text, primary_key=True),
    Column("key", Text, nullable=False),
    Column("digest", Text, nullable=False),
)

builds = Table(
    "builds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("started", Text, nullable=False),
    Column("finished", Text, nullable=False),
    Column("now", Text, nullable=False),
    Column("written", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
)

# Newsletter issues. An issued item is known by its feed entry id (the primary key of
# issue_items), so it is in at most one issue whatever concurrent compiles do.
issues = Table(
    "issues",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("subject", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("intro_hash", Text),
    Column("intro", Text),
    Column("agenda", Text, nullable=False),
    Column("tracks", Text, nullable=False),
    Column("approved_by", Text),
    Column("approved_at", Text),
)

issue_items = Table(
    "issue_items",
    metadata,
    Column("entry_id", Text, primary_key=True),
    Column("item_id", Text, nullable=False),
    Column("issue", Integer, ForeignKey("issues.number"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("snapshot", Text, nullable=False),
    # The snapshot's text hash, so a copy of an issued text is found without parsing JSON.
    Column("content_hash", Text),
    Index("issue_items_issue", "issue", "position"),
)

# Delivery: subscribers with their consent record, a keyed-hash suppression list, the
# delivery log per (issue, subscriber), and send runs.
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced")
DELIVERY_STATUSES = (
    "pending",
    "sending",
    "sent",
    "deferred",
    "failed",
    "bounced",
    "skipped",
    "uncertain",
)


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_known")


subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False),
    Column("email_key", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("tracks", Text, nullable=False),
    Column("token", Text, nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("consented_at", Text, nullable=False),
    Column("consent_version", Text, nullable=False),
    Column("confirmed_at", Text),
    Column("status_changed_at", Text, nullable=False),
    Column("status_reason", Text, nullable=False, server_default=""),
    Column("confirm_token", Text, unique=True),
    Column("requested_at", Text),
    Column("requested_tracks", Text),
    Column("requested_version", Text),
    # A pause chosen on the preference page: no issue goes out before this moment (UTC).
    Column("paused_until", Text),
    # A new address asked for on the preference page, until its double opt-in confirms it.
    Column("new_email", Text),
    Column("new_email_token", Text),
    Column("new_email_requested_at", Text),
    _one_of("status", SUBSCRIBER_STATUSES),
    Index("subscribers_status", "status", "id"),
    Index("subscribers_new_email_token", "new_email_token", unique=True),
    # Ids are never reused: the delivery log of a removed subscriber must not pass to a
    # new one.
    sqlite_autoincrement=True,
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("digest", Text, primary_key=True),
    Column("created_at", Text, nullable=False),
    **_NO_ROWID,
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("issue", Integer, ForeignKey("issues.number"), primary_key=True),
    Column(
        "subscriber",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("run_attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt", Float),
    Column("reply", Text, nullable=False, server_default=""),
    Column("message_id", Text),
    Column("updated_at", Text, nullable=False),
    # The send run (send_runs.id) that took this recipient: several senders share an issue.
    Column("claimed_by", Integer),
    _one_of("status", DELIVERY_STATUSES),
    Index("deliveries_status", "issue", "status", "subscriber"),
    Index("deliveries_subscriber", "subscriber"),
    **_NO_ROWID,
)

send_runs = Table(
    "send_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("issue", Integer, ForeignKey("issues.number"), nullable=False),
    Column("started", Text, nullable=False),
    Column("finished", Text),
    Column("sent", Integer, nullable=False, server_default="0"),
    Column("failed", Integer, nullable=False, server_default="0"),
    Column("bounced", Integer, nullable=False, server_default="0"),
    Column("skipped", Integer, nullable=False, server_default="0"),
    Column("uncertain", Integer, nullable=False, server_default="0"),
    # Who runs it, and when it last said it was alive (the database's clock, POSIX
    # seconds): a run whose heartbeat is older than the lease is dead, and its recipients
    # pass to the others. `parent`: the run that started this one (`send --workers`).
    Column("host", Text),
    Column("pid", Integer),
    Column("heartbeat", Float),
    Column("parent", Integer),
)

# What came back after sending (pipeline/delivery/returns.py): a bounce, a complaint or a
# mailto unsubscribe, per subscriber, with the issue it concerns when known, the DSN's
# status code, and the decision taken. `message` is the returned mail's Message-ID digest,
# so a mail read twice (a move to `verwerkt` that failed) is counted once.
MAIL_EVENT_KINDS = ("hard_bounce", "soft_bounce", "complaint", "unsubscribe")
mail_events = Table(
    "mail_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "subscriber",
        Integer,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("issue", Integer),
    Column("at", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("code", Text, nullable=False, server_default=""),
    Column("decision", Text, nullable=False, server_default=""),
    Column("message", Text, nullable=False),
    _one_of("kind", MAIL_EVENT_KINDS),
    Index("mail_events_subscriber", "subscriber", "kind", "at"),
    Index("mail_events_issue", "issue", "kind"),
    Index("mail_events_message", "message", "subscriber", unique=True),
)

delivery_meta = _key_value("delivery_meta")
# What the last complete build saw, so a build with nothing to do stops early.
build_meta = _key_value("build_meta")

# Item identity across moves (pipeline/publish.py): the id an item had before its file
# moved points to the id it has now (its old URL redirects).
item_aliases = Table(
    "item_aliases",
    metadata,
    Column("old_id", Text, primary_key=True),
    Column("new_id", Text, nullable=False),
    Column("moved_at", Text, nullable=False),
    **_NO_ROWID,
)

# The sync index of the social drafts (pipeline/social/syncindex.py). A cache: its rows may
# be deleted at any time (the next build reads every draft).
social_folders = Table(
    "social_folders",
    metadata,
    Column("folder", Text, primary_key=True),
    Column("entry_key", Text, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("published", Text),
    Column("draft_count", Integer, nullable=False),
    **_NO_ROWID,
)

social_drafts = Table(
    "social_drafts",
    metadata,
    Column("folder", Text, primary_key=True),
    Column("platform", Text, primary_key=True),
    # Nanosecond times and inode numbers pass 2**31: 64-bit on PostgreSQL.
    Column("mtime_ns", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("inode", BigInteger, nullable=False),
    Column("shown_digest", Text, nullable=False),
    Column("status", Text, nullable=False),
    **_NO_ROWID,
)
social_index_meta = _key_value("social_index_meta")

# Facts of the project itself: `first_build`, the clock of its first build, from which the
# newsletter and social horizons are counted.
project = _key_value("project")

# Which host runs a service that must run once per store (the scheduler of `krimppost
# run`): written by the one holding the lock (pipeline/state/leader.py), read by `status`.
services = Table(
    "services",
    metadata,
    Column("name", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("since", Text, nullable=False),
    Column("heartbeat", Text, nullable=False),
    **_NO_ROWID,
)

# Rate limits of the public web app (`serve`), shared by every serve process of the store:
# one row per counted request, by key (a keyed hash of the client address, not the address)
# and moment (the database's clock, POSIX seconds); rows older than the window are deleted.
rate_hits = Table(
    "rate_hits",
    metadata,
    Column("key", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("rate_hits_key", "key", "at"),
    Index("rate_hits_at", "at"),
)

# The desk's accounts (pipeline/desk/accounts.py): an Argon2id hash, never a password;
# wrong passwords in a row and, after five, until when (POSIX seconds) the account is locked.
DESK_ROLES = ("communicatie", "redacteur", "beheerder")
desk_users = Table(
    "desk_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("email", Text),
    Column("created_at", Text, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("locked_until", Float),
    _one_of("role", DESK_ROLES),
    **_NO_ROWID,
)

# Signed-in sessions: the key is a hash of the cookie's random id, so a copy of the store
# does not sign anybody in; `seen` (POSIX seconds) moves with every request (idle expiry).
desk_sessions = Table(
    "desk_sessions",
    metadata,
    Column("key", Text, primary_key=True),
    Column("user_name", Text, nullable=False),
    Column("csrf", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("seen", Float, nullable=False),
    Index("desk_sessions_user", "user_name"),
    **_NO_ROWID,
)

# What people did in the desk: who, when (UTC text), what, on what (a draft id, an issue
# number, an account), and the details as JSON (a text before and after, a reason).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject", Text, nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default="{}"),
    Index("audit_log_subject", "subject", "id"),
)

# The schema version (pipeline/state/migrations.py); one row.
version_table = Table("krimppost_schema", metadata, Column("version", Integer, nullable=False))
