"""The editors' preview: every item with its state, and one item rendered from its source file
with the real site templates at request time.

Nothing here writes to outbox/site/ or to the state store: the state store is only read (for
the dates of an item that is online), and the page exists only in the answer to a request.
The preview's links point under PREFIX, where the desk serves the built site, the site's
static files and the files of content/ (a draft's images, before any build published them).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pipeline.commands.problems import item_problems
from pipeline.config import Config, file_problems
from pipeline.content.model import Item, ItemState
from pipeline.content.reader import derived_id, read_content, read_one
from pipeline.errors import KrimppostError, Problem
from pipeline.publish import Entry, fresh_entry, online_entry
from pipeline.render import templates
from pipeline.render.site import Site
from pipeline.state import ItemRecord, StateStore, StoreAddress

if TYPE_CHECKING:
    import jinja2

PREFIX = "/voorbeeld/site/"

# state -> what the list says
LABELS = {
    "online": "online",
    "niet-gebouwd": "gepubliceerd, nog niet gebouwd",
    "concept": "concept",
    "embargo": "onder embargo",
    "fouten": "met fouten",
}


def _moment(moment: datetime, tz: ZoneInfo) -> str:
    return f"{templates.dutch_date(moment, tz)} {templates.dutch_time(moment, tz)}"


@dataclass(frozen=True)
class Row:
    """One item (or one item file that does not read) as the preview lists it."""

    id: str
    source: str
    title: str
    kind: str
    track: str
    state: str  # a key of LABELS
    moment: datetime | None  # when it goes (or went) online
    problems: tuple[Problem, ...] = ()
    last_good: bool = False  # with errors, and its last good version is online

    def label(self, tz: ZoneInfo) -> str:
        if self.state == "embargo" and self.moment is not None:
            return f"onder embargo tot {_moment(self.moment, tz)}"
        if self.state == "fouten" and self.last_good:
            return "met fouten (de laatste goede versie staat online)"
        return LABELS[self.state]


@dataclass(frozen=True)
class Overview:
    rows: tuple[Row, ...]
    general: tuple[Problem, ...]  # problems of no item: config.toml, folders, templates


def _records(config: Config) -> dict[str, ItemRecord]:
    address = StoreAddress.of(config)
    if not address.exists():
        return {}
    with StateStore(address) as state:
        return state.items()


def overview(config: Config, now: datetime) -> Overview:
    """Every item with its state, as `check` and `build` see the content now."""
    content = read_content(config)
    records = _records(config)
    by_source = {r.source: r for r in records.values() if r.live}
    extra: dict[str, list[Problem]] = {}
    for problem in item_problems(config, content.items):
        extra.setdefault(problem.path, []).append(problem)
    rows = []
    for item in content.items:
        rows.append(_row(item, records.get(item.id), now, tuple(extra.pop(item.source, ()))))
    broken: dict[str, list[Problem]] = {}
    general = [*file_problems(config)]
    try:
        templates.fingerprint(templates.template_dirs(config.templates_dir))
    except KrimppostError as exc:
        general.extend(exc.problems)
    for problem in [*content.problems, *(p for ps in extra.values() for p in ps)]:
        if problem.path.lower().endswith(".md") and problem.path.startswith("content/"):
            broken.setdefault(problem.path, []).append(problem)
        else:
            general.append(problem)
    for source, problems in broken.items():
        record = by_source.get(source)
        rows.append(
            Row(
                id=record.id if record is not None else derived_id(source),
                source=source,
                title=posixpath.basename(source),
                kind="",
                track="",
                state="fouten",
                moment=None,
                problems=tuple(problems),
                last_good=record is not None,
            )
        )
    order = {"fouten": 0, "concept": 1, "embargo": 2, "niet-gebouwd": 3, "online": 4}
    rows.sort(key=lambda r: (order[r.state], r.source))
    return Overview(tuple(rows), tuple(general))


def _row(
    item: Item, record: ItemRecord | None, now: datetime, problems: tuple[Problem, ...]
) -> Row:
    state = item.state(now)
    if state is ItemState.DRAFT:
        key = "concept"
    elif state is ItemState.EMBARGOED:
        key = "embargo"
    elif record is not None and record.live and record.content_hash == item.content_hash:
        key = "online"
    else:
        key = "niet-gebouwd"
    return Row(
        item.id,
        item.source,
        item.title,
        item.kind_label,
        item.track,
        key,
        item.published_at,
        problems,
    )


def why(row: Row, config: Config) -> str:
    """The banner's reason, in the editor's words."""
    tz = config.site.tz
    if row.state == "concept":
        return (
            "Dit is een concept (draft: true in het bestand): het gaat niet online zolang die "
            "regel er staat."
        )
    if row.state == "embargo" and row.moment is not None:
        return (
            f"Het staat onder embargo tot {_moment(row.moment, tz)} en gaat bij de eerste "
            "build daarna online."
        )
    if row.state == "niet-gebouwd":
        return "Het is gepubliceerd, maar nog niet gebouwd: het gaat online bij de volgende build."
    return "Dit bericht staat online; dit is hoe de huidige versie van het bestand eruitziet."


@dataclass(frozen=True)
class Preview:
    row: Row
    page: str | None  # the item's page; None when the file has errors
    problems: tuple[Problem, ...]


def find(config: Config, item_id: str, now: datetime) -> Row | None:
    return next((r for r in overview(config, now).rows if r.id == item_id), None)


def render(
    config: Config,
    row: Row,
    now: datetime,
    origin: str,
    env: Callable[[], jinja2.Environment],
) -> Preview:
    """`row`'s item rendered from its file as its page on the site would be, its links and
    files under `origin` + PREFIX."""
    if row.state == "fouten":
        return Preview(row, None, row.problems)
    result = read_one(config, row.source, origin.rstrip("/") + PREFIX)
    if result.item is None:  # changed since the list was made
        return Preview(row, None, result.problems)
    item = result.item
    record = _records(config).get(item.id)
    dirs = templates.template_dirs(config.templates_dir)
    site = Site(config, env, dirs, (), now, "", base_path=PREFIX)
    return Preview(row, site.render_item(_entry(config, item, record)).decode(), row.problems)


def _entry(config: Config, item: Item, record: ItemRecord | None) -> Entry:
    """The item as its feed entry and page would carry it: the store's identity and dates
    once it has been online, its own otherwise."""
    if record is not None and record.live:
        return online_entry(config, item, record)
    return fresh_entry(config, item)


def version(config: Config, source: str) -> str:
    """Changes when the file is saved (or removed): what the preview page polls."""
    try:
        st = (config.root / source).stat()
    except OSError:
        return "weg"
    return f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
