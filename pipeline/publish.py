"""Decide what is online: valid published items, last good versions of broken ones, withdrawals.

Pure decisions over the content set and the state store's records; the build command saves
the resulting records after the outbox is complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.config import Config
from pipeline.content.model import Item, ItemState, item_from_json, item_to_json
from pipeline.content.reader import ContentSet, derived_id
from pipeline.state import ItemRecord, StateStore

ITEM_DIR = "berichten"
NEVER = datetime(9999, 1, 1, tzinfo=UTC)


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
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    saves: list[tuple[ItemRecord, str | None]] = field(default_factory=list)
    # Old item pages that point to where the item lives now: (old page folder, new URL).
    redirects: tuple[tuple[str, str], ...] = ()
    # The first moment at which the clock alone changes what is published: an embargo
    # lifts or an event stops being upcoming. The build's early exit, the scheduler's
    # one-off build and `status` all read it (stored by the build).
    next_change: datetime = NEVER


def online_entry(config: Config, item: Item, record: ItemRecord, last_good: bool = False) -> Entry:
    """The entry of `item` under its store record: the record holds its identity and dates."""
    path = item_path(item.id)
    return Entry(
        item=item,
        entry_id=record.entry_id,
        # Always in the site zone, whether fresh or read back from the store (UTC).
        published=record.first_published.astimezone(config.site.tz),
        updated=record.updated.astimezone(config.site.tz),
        path=path,
        url=config.site.base_url + path,
        last_good=last_good,
    )


def fresh_entry(config: Config, item: Item) -> Entry:
    """The entry `item` gets when it is first published (no record of it yet)."""
    path = item_path(item.id)
    moment = item.published_at.astimezone(config.site.tz)
    return Entry(
        item, entry_id_for(config, item), moment, moment, path, config.site.base_url + path
    )


def entry_to_json(entry: Entry) -> str:
    """An entry as a newsletter issue keeps it: the item, and the identity and dates its
    feed entry has, so an issue and a feed never disagree on them."""
    data = json.loads(item_to_json(entry.item))
    data["entry"] = {
        "id": entry.entry_id,
        "published": entry.published.astimezone(UTC).isoformat(),
        "updated": entry.updated.astimezone(UTC).isoformat(),
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def entry_from_json(config: Config, text: str) -> Entry:
    """The entry `entry_to_json` kept; an issue made before it kept only the item, whose
    own date stands in for the entry's."""
    item = item_from_json(text)
    kept = json.loads(text).get("entry") or {}
    tz = config.site.tz
    published = (
        datetime.fromisoformat(kept["published"]) if "published" in kept else item.published_at
    ).astimezone(tz)
    updated = (
        datetime.fromisoformat(kept["updated"]).astimezone(tz) if "updated" in kept else published
    )
    path = item_path(item.id)
    return Entry(item, kept.get("id", ""), published, updated, path, config.site.base_url + path)


def next_change(content: ContentSet, entries: tuple[Entry, ...], now: datetime) -> datetime:
    moments = [i.published_at for i in content.items if i.state(now) is ItemState.EMBARGOED]
    for entry in entries:
        event = entry.item.event
        if event is not None and (event.end or event.start) >= now:
            moments.append(event.end or event.start)
    return min(moments, default=NEVER)


def item_path(item_id: str) -> str:
    return f"{ITEM_DIR}/{item_id}/"


def entry_id_for(config: Config, item: Item) -> str:
    """RFC 4151 tag URI: independent of later changes to base_url, title or file location."""
    return f"tag:{config.site.host},{item.published_at.date().isoformat()}:{item.id}"


def decide(config: Config, content: ContentSet, state: StateStore, now: datetime) -> Publication:
    records = state.items()
    broken_sources = {p.path for p in content.problems}
    valid_ids = {item.id for item in content.items}
    entries: list[Entry] = []
    pub = Publication(entries=())
    base_url = config.site.base_url

    aliases = state.aliases()
    published_ids = {i.id for i in content.items if i.state(now) is ItemState.PUBLISHED}
    moved_from = _moves(content, state, records, aliases, broken_sources, published_ids)
    replaced = {old.id for old in moved_from.values()} & valid_ids

    for item in content.items:
        record = records.get(item.id)
        if item.state(now) is not ItemState.PUBLISHED:
            if record is not None and record.live:
                pub.withdrawn.append(item.id)
            continue
        old = moved_from.get(item.id)
        if old is not None:
            # The file moved: the same entry under its new id, an update only if edited too.
            same = old.live and old.content_hash == item.content_hash
            updated = old.updated if same else max(now, old.updated, item.published_at)
            record = _record(item, old.entry_id, old.first_published, updated)
            pub.moved.append((old.id, item.id))
            if not same:
                pub.changed.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        elif record is not None and (
            record.id in replaced
            or (not record.live and _lives_on(record.id, aliases, item.id, published_ids))
        ):
            # A new file (or a copy put back) where a moved item was, while the moved one is
            # online: a new entry, or two entries would share one feed id.
            entry_id = f"{entry_id_for(config, item)}:{utc_stamp(now)}"
            record = _record(item, entry_id, item.published_at, item.published_at)
            pub.new.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        elif record is None:
            record = _record(item, entry_id_for(config, item), item.published_at, item.published_at)
            pub.new.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        elif record.content_hash != item.content_hash or not record.live:
            # An edit (or a return after withdrawal) is an update of the same entry.
            updated = max(now, record.updated, item.published_at)
            record = _record(item, record.entry_id, record.first_published, updated)
            pub.changed.append(item.id)
            pub.saves.append((record, item_to_json(item)))
        elif record.source != item.source:
            # Moved with an explicit `id:`: the same entry; its record follows the file.
            record = record._replace(source=item.source)
            pub.saves.append((record, item_to_json(item)))
        entries.append(online_entry(config, item, record))

    moved_away = {old_id for old_id, _ in pub.moved}
    carriers = {e.entry_id: e.id for e in entries}
    for record in records.values():
        if not record.live or record.id in valid_ids or record.id in moved_away:
            continue
        if record.source in broken_sources or _under_problem(record.source, broken_sources):
            stored = state.last_good(record.id)
            if stored is not None:
                entries.append(online_entry(config, item_from_json(stored), record, last_good=True))
                pub.kept.append(record.id)
                continue
        if (carrier := carriers.get(record.entry_id)) is not None:
            pub.moved.append((record.id, carrier))  # moved back to a path it had before
            continue
        pub.withdrawn.append(record.id)

    entries.sort(key=lambda e: (e.published, e.id), reverse=True)
    pub.entries = tuple(entries)
    pub.next_change = next_change(content, pub.entries, now)
    pub.redirects = _redirects({**aliases, **dict(pub.moved)}, {e.id: e for e in entries}, base_url)
    return pub


def _record(item: Item, entry_id: str, first_published: datetime, updated: datetime) -> ItemRecord:
    """The live record of `item` as this build publishes it."""
    return ItemRecord(
        id=item.id,
        source=item.source,
        entry_id=entry_id,
        first_published=first_published,
        content_hash=item.content_hash,
        updated=updated,
        live=True,
    )


def utc_stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _resolve(aliases: dict[str, str], item_id: str) -> str:
    """Follow moves from `item_id` to the id the item has now (moves back make loops)."""
    seen = {item_id}
    while (after := aliases.get(item_id)) is not None and after not in seen:
        seen.add(after)
        item_id = after
    return item_id


def _lives_on(item_id: str, aliases: dict[str, str], own: str, published: set[str]) -> bool:
    if item_id not in aliases:
        return False
    now_id = _resolve(aliases, item_id)
    return now_id != own and now_id in published


def _redirects(
    aliases: dict[str, str], live: dict[str, Entry], base_url: str
) -> tuple[tuple[str, str], ...]:
    out = []
    for old_id in sorted(aliases):
        if old_id in live:
            continue  # the id is in use again: its page is an item page
        target = live.get(_resolve(aliases, old_id))
        if target is not None:
            out.append((item_path(old_id), target.url))
    return tuple(out)


def _under_problem(source: str, broken_sources: set[str]) -> bool:
    """A file in an unreadable or otherwise broken folder is not gone."""
    parent = posixpath.dirname(source)
    while parent:
        if parent in broken_sources:
            return True
        parent = posixpath.dirname(parent)
    return False


def _match_keys(item: Item) -> tuple[object, object, object]:
    """What a moved file is recognised by, strongest first: the whole text (a move, or a move
    with only its track changed is not this: `track:` is in the text), the body alone (front
    matter edited), title, kind and date (body edited)."""
    return (
        item.content_hash,
        hashlib.blake2b(item.html_utf8, digest_size=16).digest(),
        (item.kind, item.title, item.date),
    )


def _moves(
    content: ContentSet,
    state: StateStore,
    records: dict[str, ItemRecord],
    aliases: dict[str, str],
    broken_sources: set[str],
    published_ids: set[str],
) -> dict[str, ItemRecord]:
    """New items whose file is an item that was published under another path: new id ->
    the record it continues. Only one-to-one matches count: two candidates for one old item
    (or the other way round) are new items, never a guess."""
    fresh = [
        i
        for i in content.items
        if i.id in published_ids and i.id not in records and i.id == derived_id(i.source)
    ]
    if not fresh:
        return {}
    present = {i.source for i in content.items} | broken_sources
    by_id = {i.id: i for i in content.items}
    gone: dict[str, Item] = {}
    # A new file in the old place of a moved one: the record is taken by the moved item
    # (matched on text or body only, never on title alone) and the new file is a new entry.
    replaced: set[str] = set()
    for record in records.values():
        if record.live and (current := by_id.get(record.id)) is not None:
            if record.source != current.source or record.content_hash == current.content_hash:
                continue
            stored = state.last_good(record.id)
            if stored is not None:
                old_item = item_from_json(stored)
                if not set(_match_keys(old_item)) & set(_match_keys(current)):
                    gone[record.id] = old_item
                    replaced.add(record.id)
            continue
        if (
            record.source in present
            or record.id in by_id  # moved with an explicit `id:`
            or (not record.live and record.id in aliases)  # moved on already
            or _under_problem(record.source, broken_sources)
        ):
            continue
        stored = state.last_good(record.id)
        if stored is not None:
            gone[record.id] = item_from_json(stored)
    moves: dict[str, ItemRecord] = {}
    taken: set[str] = set()
    for level in range(3):
        new_by_key: dict[object, list[str]] = {}
        for item in fresh:
            if item.id not in moves:
                new_by_key.setdefault(_match_keys(item)[level], []).append(item.id)
        old_by_key: dict[object, list[str]] = {}
        for old_id, old_item in gone.items():
            if old_id not in taken and (level < 2 or old_id not in replaced):
                old_by_key.setdefault(_match_keys(old_item)[level], []).append(old_id)
        for key, new_ids in new_by_key.items():
            old_ids = old_by_key.get(key, [])
            if len(new_ids) == 1 and len(old_ids) == 1:
                moves[new_ids[0]] = records[old_ids[0]]
                taken.add(old_ids[0])
    return moves
