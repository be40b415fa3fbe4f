"""Decide what is online: valid published items, last good versions of broken ones, withdrawals.

Pure decisions over the content set and the state store's records; the build command saves
the resulting records after the outbox is complete.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from pipeline.config import Config
from pipeline.content.model import Item, ItemState, item_from_json, item_to_json
from pipeline.content.reader import ContentSet
from pipeline.state import ItemRecord, StateStore

ITEM_DIR = "berichten"


@dataclass(frozen=True)
class Entry:
    """A live item with its permanent identity and its page."""

    item: Item
    entry_id: str
    published: datetime
    updated: datetime
    path: str  # site-relative folder of the item page, e.g. "berichten/<id>/"
    url: str  # absolute URL of the item page
    last_good: bool = False  # the current file is broken; this is the last good version

    @property
    def id(self) -> str:
        return self.item.id

    @functools.cached_property
    def key(self) -> str:
        """Everything about this entry a page or feed depends on, as one string."""
        return "|".join(
            (
                self.item.id,
                self.entry_id,
                self.item.content_hash,
                self.updated.isoformat(),
                self.published.isoformat(),
            )
        )


@dataclass
class Publication:
    entries: tuple[Entry, ...]  # newest first
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # broken now, last good version online
    saves: list[tuple[ItemRecord, str | None]] = field(default_factory=list)


def item_path(item_id: str) -> str:
    return f"{ITEM_DIR}/{item_id}/"


def entry_id_for(config: Config, item: Item) -> str:
    """RFC 4151 tag URI: independent of later changes to base_url, title or file location."""
    host = urlsplit(config.site.base_url).hostname or "localhost"
    return f"tag:{host},{item.published_at.date().isoformat()}:{item.id}"


def decide(config: Config, content: ContentSet, state: StateStore, now: datetime) -> Publication:
    records = state.items()
    broken_sources = {p.path for p in content.problems}
    valid_ids = {item.id for item in content.items}
    entries: list[Entry] = []
    pub = Publication(entries=())
    tz, base_url = config.site.tz, config.site.base_url

    def make_entry(item: Item, record: ItemRecord, last_good: bool = False) -> Entry:
        path = item_path(item.id)
        return Entry(
            item=item,
            entry_id=record.entry_id,
            # Always in the site zone, whether fresh or read back from the store (UTC).
            published=record.first_published.astimezone(tz),
            updated=record.updated.astimezone(tz),
            path=path,
            url=base_url + path,
            last_good=last_good,
        )

    for item in content.items:
        record = records.get(item.id)
        if item.state(now) is not ItemState.PUBLISHED:
            if record is not None and record.live:
                pub.withdrawn.append(item.id)
            continue
        if record is None:
            record = ItemRecord(
                id=item.id,
                source=item.source,
                entry_id=entry_id_for(config, item),
                first_published=item.published_at,
                content_hash=item.content_hash,
                updated=item.published_at,
                live=True,
            )
            pub.new.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        elif record.content_hash != item.content_hash or not record.live:
            # An edit (or a return after withdrawal) is an update of the same entry.
            record = ItemRecord(
                id=item.id,
                source=item.source,
                entry_id=record.entry_id,
                first_published=record.first_published,
                content_hash=item.content_hash,
                updated=max(now, record.updated, item.published_at),
                live=True,
            )
            pub.changed.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        entries.append(make_entry(item, record))

    for record in records.values():
        if not record.live or record.id in valid_ids:
            continue
        if record.source in broken_sources:
            stored = state.last_good(record.id)
            if stored is not None:
                entries.append(make_entry(item_from_json(stored), record, last_good=True))
                pub.kept.append(record.id)
                continue
        pub.withdrawn.append(record.id)

    entries.sort(key=lambda e: (e.published, e.id), reverse=True)
    pub.entries = tuple(entries)
    return pub
