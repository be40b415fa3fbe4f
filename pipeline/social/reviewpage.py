"""The review pages comms staff read: `outbox/social/index.html` (counts, problems, one line
per month) and `outbox/social/maanden/<jjjj-mm>.html` (every draft of the items published
that month, grouped by item).

Pages are split by month of publication so that a change to one item re-renders one page of
a few hundred drafts, never one page of twenty thousand (23 MB, two seconds). Each page
carries a key of what it shows and is rendered only when that key changes; the keys come from
digests of what each draft shows, kept in the sync index, so an unchanged page costs no draft
read at all.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

import regex

from pipeline.config import Config
from pipeline.errors import Problem
from pipeline.outbox import Outbox
from pipeline.render import templates
from pipeline.social.counting import UNITS, length
from pipeline.social.draftfile import (
    DRAFT_DIR,
    STATUSES,
    Draft,
    display_path,
    in_review,
    read_folder,
)

INDEX = f"{DRAFT_DIR}/index.html"
Page = tuple[str, bytes]  # outbox path and bytes of a review page
MONTH_DIR = f"{DRAFT_DIR}/maanden"
STATUS_LABELS: dict[str, str] = {
    "pending": "te beoordelen",
    "approved": "goedgekeurd",
    "rejected": "afgewezen",
    "stale": "verouderd",
    "withdrawn": "ingetrokken",
}
PLATFORM_LABELS: dict[str, str] = {
    "x": "X",
    "linkedin": "LinkedIn",
    "mastodon": "Mastodon",
    "bluesky": "Bluesky",
    "threads": "Threads",
}
WITHDRAWN_GONE = "het item is niet (meer) online"
NO_MONTH = "onbekend"  # drafts without a publication date
_PAGE_KEY = regex.compile(rb'<meta name="krimppost-sleutel" content="([0-9a-f]+)">')
_MONTH = regex.compile(r"^\d{4}-\d{2}$")


# One draft as comms staff see it ----------------------------------------------------------


@dataclass(frozen=True)
class DraftView:
    """A draft as comms staff see it: live length and status, and the warnings."""

    draft: Draft
    status: str
    length: int
    limit: int
    unit: str
    warnings: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.draft.id

    @property
    def platform_label(self) -> str:
        return PLATFORM_LABELS[self.draft.platform]

    @property
    def status_label(self) -> str:
        label = STATUS_LABELS[self.status]
        if self.status == "approved" and self.draft.exported:
            label += " (geëxporteerd)"
        return label

    @property
    def file(self) -> str:
        return display_path(self.draft.path)


def _not_live_yet(published: str | None, now: datetime) -> bool:
    return bool(published) and datetime.fromisoformat(published) > now  # type: ignore[arg-type]


def view(config: Config, draft: Draft, now: datetime) -> DraftView:
    now = config.moment(now)
    reviewed = in_review(draft)
    platform = config.social.get(draft.platform)
    limit = platform.limit if platform else draft.limit
    if platform is None or (not draft.edited and draft.limit == limit):
        n = draft.length  # counted when the text was generated
    else:
        n = length(platform, reviewed.text)
    unit = UNITS[draft.platform]
    warnings: list[str] = []
    if n > limit:
        warnings.append(f"te lang: {n} van {limit} {unit}")
    if not reviewed.text:
        warnings.append("de tekst is leeg")
    if reviewed.image and not reviewed.image_alt:
        warnings.append("afbeelding zonder alt-tekst: vul image_alt in bij het item")
    if reviewed.status == "withdrawn":
        warnings.append(
            f"link niet live: {reviewed.withdrawn_reason or WITHDRAWN_GONE}; niet plaatsen"
        )
    elif reviewed.published and _not_live_yet(reviewed.published, now):
        published = datetime.fromisoformat(reviewed.published)
        warnings.append(
            "link nog niet live: embargo tot "
            f"{templates.dutch_date(published, config.site.tz)} "
            f"{templates.dutch_time(published, config.site.tz)} uur"
        )
    if reviewed.status == "stale":
        warnings.append(
            "item gewijzigd: er is een nieuw voorstel"
            if reviewed.suggestion
            else "item gewijzigd: controleer of de tekst nog klopt"
        )
    if reviewed.status == "pending" and reviewed.approved_at and draft.status == "approved":
        warnings.append("na goedkeuring bewerkt: opnieuw beoordelen")
    elif reviewed.status == "pending" and reviewed.approved_at:
        warnings.append("eerder goedgekeurd, daarna bewerkt: opnieuw beoordelen")
    page = reviewed.link.split("?", 1)[0]
    if reviewed.source != "override" and page and page not in reviewed.text:
        warnings.append("de link naar het bericht staat niet in de tekst")
    return DraftView(reviewed, reviewed.status, n, limit, unit, tuple(warnings))


@dataclass(frozen=True)
class ItemGroup:
    item: str
    title: str
    link: str
    published: str | None
    drafts: tuple[DraftView, ...]


def group_views(views: Iterable[DraftView]) -> list[ItemGroup]:
    from pipeline.content.model import SOCIAL_PLATFORMS

    by_item: dict[str, list[DraftView]] = {}
    for v in views:
        by_item.setdefault(v.draft.item, []).append(v)
    order = {p: i for i, p in enumerate(SOCIAL_PLATFORMS)}
    groups = []
    for item_id, members in by_item.items():
        members.sort(key=lambda v: order[v.draft.platform])
        first = members[0].draft
        groups.append(
            ItemGroup(
                item_id,
                first.title or item_id,
                first.link.split("?", 1)[0],
                first.published,
                tuple(members),
            )
        )
    groups.sort(key=lambda g: (g.published or "", g.item), reverse=True)
    return groups


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        counts[status] += 1
    return counts


# What the pages are made from ---------------------------------------------------------------


@dataclass(frozen=True)
class FolderInfo:
    """One item folder as the pages need it: when its item was published, and per platform
    a digest of what the pages show of the draft and its status under review."""

    published: str | None
    drafts: Mapping[str, tuple[str, str]]  # platform -> (shown_digest, status)

    def month(self, config: Config) -> str:
        return month_of(self.published, config.site.tz) if self.published else NO_MONTH


@functools.lru_cache(maxsize=65536)
def month_of(published: str, tz: tzinfo) -> str:
    """`jjjj-mm` of an ISO moment in the site's zone (asked twice per folder per build)."""
    moment = datetime.fromisoformat(published)
    if moment.tzinfo is not None:
        moment = moment.astimezone(tz)
    return f"{moment.year:04d}-{moment.month:02d}"


# Bookkeeping a page does not show: a change to these alone re-renders nothing.
_UNSEEN = {"created": "", "updated": "", "item_hash": "", "latest_hash": "", "generator_key": ""}


def shown_digest(draft: Draft) -> str:
    """A digest of what the review page shows of a draft."""
    return hashlib.blake2b(repr(replace(draft, **_UNSEEN)).encode(), digest_size=12).hexdigest()


def folder_info(drafts: Iterable[Draft]) -> FolderInfo:
    """From the readable drafts of one folder."""
    published = None
    shown: dict[str, tuple[str, str]] = {}
    for draft in drafts:
        published = published or draft.published
        shown[draft.platform] = (shown_digest(draft), in_review(draft).status)
    return FolderInfo(published, shown)


def month_path(month: str) -> str:
    return f"{MONTH_DIR}/{month}.html"


def month_label(month: str, config: Config) -> str:
    if not _MONTH.match(month):
        return "zonder publicatiedatum"
    from babel.dates import format_date

    year, number = (int(x) for x in month.split("-"))
    return format_date(datetime(year, number, 1).date(), format="MMMM y", locale=templates.LOCALE)


def _base_hash(config: Config, code: str) -> hashlib.blake2b:
    """Settings, code and every review-page template (`social/*.html`, the included ones
    too; the first folder that has a name wins, as in the template loader)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((config.site, tuple(config.social.values()), code)).encode())
    seen: set[str] = set()
    for directory in templates.template_dirs(config.templates_dir):
        for page in sorted((directory / "social").glob("*.html")):
            if page.name not in seen and page.is_file():
                seen.add(page.name)
                h.update(page.name.encode() + b"\0" + page.read_bytes())
    return h


def _has_key(outbox: Outbox, relative: str, key: str) -> bool:
    try:
        with open(outbox.text_path(relative), "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    m = _PAGE_KEY.search(head)
    return m is not None and m.group(1).decode() == key


# Rendering ----------------------------------------------------------------------------------


def by_month(config: Config, infos: Mapping[str, FolderInfo]) -> dict[str, list[str]]:
    """Folders with drafts by month of publication, sorted."""
    by_month: dict[str, list[str]] = {}
    for folder in sorted(infos):
        if infos[folder].drafts:
            by_month.setdefault(infos[folder].month(config), []).append(folder)
    return by_month


class Pages:
    """Renders the review pages of one project; the Jinja environment is made once."""

    def __init__(self, config: Config, code: str) -> None:
        self.config = config
        self.code = code
        self._env: Any = None
        self._base: Any = None

    def render(self, name: str, **context: object) -> bytes:
        if self._env is None:
            dirs = templates.template_dirs(self.config.templates_dir)
            self._env = templates.environment(dirs, self.config.site.tz)
        html = templates.render(self._env, f"social/{name}", site=self.config.site, **context)
        return html.encode()

    def _hash(self) -> Any:
        if self._base is None:
            self._base = _base_hash(self.config, self.code)
        return self._base.copy()

    def base_digest(self) -> str:
        """What every page depends on besides the drafts: settings, code, page templates."""
        return str(self._hash().hexdigest())

    def month_key(
        self, month: str, folders: Sequence[str], infos: Mapping[str, FolderInfo], now: datetime
    ) -> str:
        """Everything a month page shows: what it shows of each draft, and per item whether
        its link is live yet (the only thing the clock changes)."""
        h = self._hash()
        h.update(month.encode())
        for folder in folders:
            info = infos[folder]
            h.update(f"{folder}:{_not_live_yet(info.published, now)}\n".encode())
            for platform, (file_digest, _status) in sorted(info.drafts.items()):
                h.update(f"{platform}:{file_digest}\n".encode())
        return h.hexdigest()

    def month_if_changed(
        self,
        outbox: Outbox,
        month: str,
        folders: Sequence[str],
        infos: Mapping[str, FolderInfo],
        now: datetime,
        known: Mapping[str, Sequence[Draft]] | None = None,
    ) -> tuple[str | None, bytes | None]:
        """The key of the page of `month` showing `folders` (their infos in `infos`), and the
        page, or None when the one in the outbox already shows this. Drafts come from `known`
        where given, else from the files."""
        if not folders:
            return None, None
        key = self.month_key(month, folders, infos, now)
        if _has_key(outbox, month_path(month), key):
            return key, None
        views = []
        for folder in folders:
            if known is not None and folder in known:
                drafts: Sequence[Draft] = known[folder]
            else:
                drafts = [s.draft for s in read_folder(outbox, folder).values() if s.draft]
            views.extend(view(self.config, d, now) for d in drafts)
        return key, self.render(
            "maand.html",
            page_key=key,
            month=month,
            month_label=month_label(month, self.config),
            groups=group_views(views),
            counts=status_counts(v.status for v in views),
            status_labels=STATUS_LABELS,
            total=len(views),
            index_url="../index.html",
        )

    def index_if_changed(
        self,
        outbox: Outbox,
        infos: Mapping[str, FolderInfo],
        by_month: Mapping[str, Sequence[str]],
        problems: Sequence[Problem],
        now: datetime,
    ) -> bytes | None:
        """The overview page, or None when the one in the outbox already shows this."""
        summaries = []
        for month, folders in sorted(by_month.items(), reverse=True):
            statuses = [s for f in folders for _d, s in infos[f].drafts.values()]
            summaries.append(
                {
                    "month": month,
                    "label": month_label(month, self.config),
                    "url": f"maanden/{month}.html",
                    "total": len(statuses),
                    "counts": status_counts(statuses),
                }
            )
        h = self._hash()
        h.update(repr((summaries, [str(p) for p in problems])).encode())
        key = h.hexdigest()
        if _has_key(outbox, INDEX, key):
            return None
        counts = status_counts(s for info in infos.values() for _d, s in info.drafts.values())
        return self.render(
            "index.html",
            page_key=key,
            months=summaries,
            counts=counts,
            status_labels=STATUS_LABELS,
            problems=list(problems),
            now=now,
            total=sum(counts.values()),
        )


def stale_month_pages(outbox: Outbox, months: Iterable[str]) -> list[str]:
    months = set(months)
    try:
        names = os.listdir(outbox.text_path(MONTH_DIR))
    except FileNotFoundError:
        return []
    return [
        f"{MONTH_DIR}/{name}"
        for name in sorted(names)
        if name.endswith(".html") and name.removesuffix(".html") not in months
    ]


def write_pages(
    config: Config,
    outbox: Outbox,
    infos: Mapping[str, FolderInfo],
    problems: Sequence[Problem],
    now: datetime,
    code: str,
) -> None:
    """Bring every review page up to date, reading drafts from the files."""
    pages = Pages(config, code)
    months = by_month(config, infos)
    month_pages: list[Page] = []
    for month, folders in months.items():
        _key, data = pages.month_if_changed(outbox, month, folders, infos, now)
        if data is not None:
            month_pages.append((month_path(month), data))
    index = pages.index_if_changed(outbox, infos, months, problems, now)
    commit_pages(outbox, month_pages, index, stale_month_pages(outbox, months))


def commit_pages(
    outbox: Outbox,
    month_pages: Sequence[Page],
    index: bytes | None,
    stale: Sequence[str],
    staged: Sequence[tuple[str, str]] = (),
) -> None:
    """Month pages (as bytes, or `staged` by workers), then the index that links to them,
    then the months no longer shown."""
    outbox.barrier()  # after whatever the caller staged before
    outbox.adopt(list(staged))
    for path, data in month_pages:
        outbox.stage(path, data)
    outbox.barrier()
    if index is not None:
        outbox.stage(INDEX, index)
    try:
        outbox.commit()
    except BaseException:
        outbox.discard()
        raise
    outbox.remove(list(stale))
