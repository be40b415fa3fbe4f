"""The state store (SQLite or PostgreSQL) and everything that reads or writes it: all of
krimppost's SQL is in this package."""

# What a failed statement raises, for callers that report it instead of a traceback.
from sqlalchemy.exc import SQLAlchemyError as DatabaseError

from pipeline.state.address import StoreAddress
from pipeline.state.issues import IssueRecord, IssueStore
from pipeline.state.locks import BuildLock, FileLock, OpenLock
from pipeline.state.migrations import SQLITE_SCRIPTS
from pipeline.state.store import (
    ItemRecord,
    SocialDraftRecord,
    SocialFolderRecord,
    StateStore,
    from_utc_text,
    set_durable,
    transaction,
    utc_text,
)

__all__ = [
    "SQLITE_SCRIPTS",
    "BuildLock",
    "DatabaseError",
    "FileLock",
    "IssueRecord",
    "IssueStore",
    "ItemRecord",
    "OpenLock",
    "SocialDraftRecord",
    "SocialFolderRecord",
    "StateStore",
    "StoreAddress",
    "from_utc_text",
    "set_durable",
    "transaction",
    "utc_text",
]
