"""The immutable item model every renderer works from."""

from __future__ import annotations

import enum
import functools
import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from pipeline.content.plaintext import html_to_text

KINDS: tuple[str, ...] = ("finding", "progress", "event", "podcast", "publication", "news")

# Dutch labels shown to readers.
KIND_LABELS: dict[str, str] = {
    "finding": "Bevinding",
    "progress": "Voortgang",
    "event": "Evenement",
    "podcast": "Podcast",
    "publication": "Publicatie",
    "news": "Nieuws",
}

SOCIAL_PLATFORMS: tuple[str, ...] = ("x", "linkedin", "mastodon", "bluesky", "threads")

# Files under content/ other than items are published under this folder of the site.
ASSET_PREFIX = "bestanden/"


class ItemState(enum.StrEnum):
    PUBLISHED = "published"
    EMBARGOED = "embargoed"
    DRAFT = "draft"


@dataclass(frozen=True)
class Event:
    start: datetime
    end: datetime | None
    location: str
    registration_url: str | None


@dataclass(frozen=True)
class Audio:
    url: str
    length: int
    duration: str
    type: str

    @property
    def seconds(self) -> int:
        h, m, s = (int(part) for part in self.duration.split(":"))
        return h * 3600 + m * 60 + s


@dataclass(frozen=True)
class Attachment:
    title: str
    url: str
    path: str | None = None  # content-relative path when the file is published with the site


@dataclass(frozen=True)
class Item:
    """One validated content item. Datetimes are aware, in the site time zone."""

    id: str
    source: str  # path relative to the project root, POSIX style
    title: str
    kind: str
    track: str
    summary: str
    date: datetime
    date_has_time: bool
    publish_at: datetime | None
    draft: bool
    tags: tuple[str, ...]
    regions: tuple[str, ...]
    image: str | None  # absolute URL
    image_alt: str | None
    event: Event | None
    audio: Audio | None
    attachments: tuple[Attachment, ...]
    social_enabled: bool
    social_overrides: tuple[tuple[str, str], ...]
    newsletter: bool
    html_utf8: bytes  # the body's HTML; as bytes, a cached item loads without decoding it
    assets: tuple[str, ...]  # content-relative paths of files this item publishes
    content_hash: str
    lines: tuple[tuple[str, int], ...]  # front-matter key path ("event.start") -> line
    # A podcast's transcript: its content path, or why there is none (`transcript: false`).
    # Last, with defaults: snapshots in the state store from before them still load.
    transcript: str | None = None
    transcript_reason: str | None = None

    @functools.cached_property
    def html(self) -> str:
        """The body as sanitised HTML (decoded when first needed: most builds render few
        of the items they load)."""
        return self.html_utf8.decode()

    @functools.cached_property
    def text(self) -> str:
        """Plain text of the body, derived when needed (not cached on disk: halves the cache)."""
        return html_to_text(self.html)

    @property
    def slug(self) -> str:
        return self.id

    @property
    def published_at(self) -> datetime:
        """The moment the item goes live: max(date, publish_at)."""
        if self.publish_at is None:
            return self.date
        return max(self.date, self.publish_at)

    @property
    def kind_label(self) -> str:
        return KIND_LABELS[self.kind]

    def social_override(self, platform: str) -> str | None:
        return dict(self.social_overrides).get(platform)

    def line_of(self, key: str) -> int:
        return dict(self.lines).get(key, 1)

    def state(self, now: datetime) -> ItemState:
        if self.draft:
            return ItemState.DRAFT
        if now < self.published_at:
            return ItemState.EMBARGOED
        return ItemState.PUBLISHED


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, Event | Audio | Attachment):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decode_dt(value: Any) -> Any:
    return (
        datetime.fromisoformat(value["$dt"])
        if isinstance(value, dict) and "$dt" in value
        else value
    )


_ITEM_FIELDS = fields(Item)


def item_to_json(item: Item) -> str:
    """A stable text form for the state store (survives code changes better than pickle)."""
    shallow = {f.name: getattr(item, f.name) for f in _ITEM_FIELDS if f.name != "html_utf8"}
    shallow["html"] = item.html
    return json.dumps(shallow, default=_encode, ensure_ascii=False, sort_keys=True)


def item_from_json(text: str) -> Item:
    data = json.loads(text)
    data["html_utf8"] = data.pop("html", "").encode()
    known = {f.name for f in fields(Item)}
    data = {k: _decode_dt(v) for k, v in data.items() if k in known}
    if data.get("event"):
        data["event"] = Event(**{k: _decode_dt(v) for k, v in data["event"].items()})
    if data.get("audio"):
        data["audio"] = Audio(**data["audio"])
    data["attachments"] = tuple(Attachment(**a) for a in data.get("attachments", ()))
    for key in ("tags", "regions", "assets"):
        data[key] = tuple(data.get(key, ()))
    for key in ("social_overrides", "lines"):
        data[key] = tuple(tuple(pair) for pair in data.get(key, ()))
    return Item(**data)
