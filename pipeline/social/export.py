"""Export of approved drafts for a scheduling tool: CSV (Buffer's bulk upload) or JSON.

Only drafts that are approved now (status `approved` and the text still the approved text),
within their platform's limit, are exported. Exported drafts get `exported_at` and
`exported_hash` (the approved hash) in their front matter; a later export skips them unless
`include_all` (`--all`) is given. A draft edited and approved again is exported again.

Formats (UTF-8, no BOM; CSV per RFC 4180 with CRLF line ends):

- `csv`: `Text, Image URL, Tags, Posting Time` (Buffer's bulk-upload columns, first, by
  name), then `Platform, Link, Image Alt Text, Draft ID`. One file, every platform.
- `buffer`: exactly Buffer's four columns, one file per platform, because Buffer imports a
  bulk CSV into one channel at a time: `<stamp>-buffer-<platform>.csv` for each platform
  with drafts to export (with `output`, `<stem>-<platform><suffix>` beside it; standard
  output cannot take several files and is refused). With `platform` it is the one file of
  that platform, named as for the other formats.
- `json`: `{"exported_at", "timezone", "drafts": [{id, platform, item, title, text, link,
  image_url, image_alt, publish_at, length, limit, unit, approved_by, approved_at}]}`.

`ExportResult.files` lists every file an export produced (`ExportFile`: the path as shown
to the user, the path inside the outbox when it is there, the bytes, the platform and the
number of drafts), so a caller such as the desk can offer them for download.

`Posting Time` is `YYYY-MM-DD HH:MM` in the site's time zone (Europe/Amsterdam); JSON's
`publish_at` is ISO-8601 with offset. `Tags` is the item id. The suggested time is the
moment the item went live, or now if that is later, rounded up to the quarter hour, moved
into the posting day (09:00-20:00) and then shifted by the platform's offset, so the
platforms do not all post at once.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path

from pipeline.config import Config
from pipeline.content.model import SOCIAL_PLATFORMS
from pipeline.csvcells import SafeWriter
from pipeline.errors import Problem, UsageError
from pipeline.outbox import Outbox
from pipeline.social.draftfile import (
    DRAFT_DIR,
    Draft,
    Stored,
    display_path,
    in_review,
    scan,
    write_if_unchanged,
)
from pipeline.social.drafts import refresh_review_page, stamp
from pipeline.social.review import locked
from pipeline.social.reviewpage import view

FORMATS: tuple[str, ...] = ("csv", "buffer", "json")
BUFFER_COLUMNS: tuple[str, ...] = ("Text", "Image URL", "Tags", "Posting Time")
CSV_COLUMNS: tuple[str, ...] = (*BUFFER_COLUMNS, "Platform", "Link", "Image Alt Text", "Draft ID")
EXPORT_DIR = f"{DRAFT_DIR}/_export"  # item ids never start with `_`
# Minutes after the suggested moment each platform posts, unless `[social.<platform>]`
# gets a `post_offset` option.
DEFAULT_OFFSETS: dict[str, int] = {
    "x": 0,
    "bluesky": 15,
    "mastodon": 30,
    "threads": 45,
    "linkedin": 60,
}
POSTING_DAY = (time(9, 0), time(20, 0))
POSTING_TIME_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class ExportRow:
    id: str
    platform: str
    item: str
    title: str
    text: str
    link: str
    image_url: str
    image_alt: str
    publish_at: datetime
    length: int
    limit: int
    unit: str
    approved_by: str
    approved_at: str


@dataclass(frozen=True)
class ExportFile:
    """One file of an export."""

    path: str  # as shown to the user: `outbox/social/_export/…`, the `--output` path, or "-"
    data: bytes
    outbox_path: str | None = None  # relative to the outbox, None outside it or for "-"
    platform: str | None = None  # the one platform of its drafts, None for several
    count: int = 0  # drafts in the file

    @property
    def name(self) -> str:
        """A file name to offer it for download under."""
        return Path(self.outbox_path or self.path).name


@dataclass
class ExportResult:
    rows: list[ExportRow]
    files: list[ExportFile] = field(default_factory=list)  # empty when nothing was written
    problems: list[Problem] = field(default_factory=list)

    @property
    def destination(self) -> str | None:
        """The first file's path ("-" for standard output), None when nothing was written;
        `files` has them all (`--format buffer` writes one per platform)."""
        return self.files[0].path if self.files else None

    @property
    def data(self) -> bytes:
        """The first file's bytes (b"" when nothing was written); see `files`."""
        return self.files[0].data if self.files else b""


def offset_minutes(config: Config, platform_id: str) -> int:
    platform = config.social.get(platform_id)
    configured = getattr(platform, "post_offset", None)
    return configured if isinstance(configured, int) else DEFAULT_OFFSETS.get(platform_id, 0)


def suggested_time(
    config: Config, published: datetime | None, platform_id: str, now: datetime
) -> datetime:
    tz = config.site.tz
    moment = now.astimezone(tz)
    if published is not None and published.astimezone(tz) > moment:
        moment = published.astimezone(tz)
    moment = moment.replace(second=0, microsecond=0)
    if moment.minute % 15:
        moment += timedelta(minutes=15 - moment.minute % 15)
    start, end = POSTING_DAY
    if moment.time() < start:
        moment = datetime.combine(moment.date(), start, tzinfo=tz)
    elif moment.time() >= end:
        moment = datetime.combine(moment.date() + timedelta(days=1), start, tzinfo=tz)
    # Wall-clock arithmetic in the site zone (Python adds to the local time).
    return moment + timedelta(minutes=offset_minutes(config, platform_id))


def select(
    config: Config, now: datetime, platform: str | None = None, include_all: bool = False
) -> tuple[list[tuple[Stored, Draft]], list[Problem]]:
    """Approved drafts to export, and problems (unreadable files, approved but too long)."""
    chosen: list[tuple[Stored, Draft]] = []
    problems: list[Problem] = []
    for found in scan(Outbox(config.outbox_dir)).values():
        if found.draft is None:
            if found.problem is not None:
                problems.append(found.problem)
            continue
        draft = in_review(found.draft)
        if draft.status != "approved" or (platform and draft.platform != platform):
            continue
        if draft.exported and not include_all:
            continue
        v = view(config, draft, now)
        if v.length > v.limit:
            problems.append(
                Problem(
                    display_path(draft.path),
                    None,
                    f"goedgekeurd maar te lang ({v.length} van {v.limit} {v.unit}); niet geëxporteerd",
                )
            )
            continue
        chosen.append((found, draft))
    chosen.sort(key=lambda pair: pair[1].id)
    return chosen, problems


def row_for(config: Config, draft: Draft, now: datetime) -> ExportRow:
    v = view(config, draft, now)
    published = datetime.fromisoformat(draft.published) if draft.published else None
    return ExportRow(
        id=draft.id,
        platform=draft.platform,
        item=draft.item,
        title=draft.title,
        text=draft.text,
        link=draft.link,
        image_url=draft.image or "",
        image_alt=draft.image_alt or "",
        publish_at=suggested_time(config, published, draft.platform, now),
        length=v.length,
        limit=v.limit,
        unit=v.unit,
        approved_by=draft.approved_by or "",
        approved_at=draft.approved_at or "",
    )


def csv_bytes(rows: list[ExportRow], columns: tuple[str, ...] = CSV_COLUMNS) -> bytes:
    out = io.StringIO()
    writer = SafeWriter(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        values = {
            "Text": row.text,
            "Image URL": row.image_url,
            "Tags": row.item,
            "Posting Time": row.publish_at.strftime(POSTING_TIME_FORMAT),
            "Platform": row.platform,
            "Link": row.link,
            "Image Alt Text": row.image_alt,
            "Draft ID": row.id,
        }
        writer.writerow([values[c] for c in columns])
    return out.getvalue().encode()


def json_bytes(config: Config, rows: list[ExportRow], now: datetime) -> bytes:
    document = {
        "exported_at": stamp(now, config),
        "timezone": config.site.timezone,
        "drafts": [
            {
                "id": r.id,
                "platform": r.platform,
                "item": r.item,
                "title": r.title,
                "text": r.text,
                "link": r.link,
                "image_url": r.image_url or None,
                "image_alt": r.image_alt or None,
                "publish_at": r.publish_at.isoformat(timespec="minutes"),
                "length": r.length,
                "limit": r.limit,
                "unit": r.unit,
                "approved_by": r.approved_by,
                "approved_at": r.approved_at,
            }
            for r in rows
        ],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()


def _write_file(config: Config, path: Path, data: bytes) -> str | None:
    """Atomically write an export file; inside outbox/ through the Outbox.

    Returns the path relative to the outbox, None when the file is outside it."""
    target = path if path.is_absolute() else Path.cwd() / path
    target = Path(os.path.abspath(target))
    outbox_dir = Path(os.path.abspath(config.outbox_dir))
    if target.is_relative_to(outbox_dir):
        relative = target.relative_to(outbox_dir).as_posix()
        Outbox(outbox_dir).write_now(relative, data)
        return relative
    if target.is_dir():
        raise UsageError(f"--output {path} is een map; geef een bestandsnaam")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.krimppost-tmp-{os.getpid()}")
    try:
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return None


def _per_platform(rows: list[ExportRow]) -> list[tuple[str, list[ExportRow]]]:
    """The rows grouped by platform, platforms in the usual order, each keeping its order."""
    order = {p: i for i, p in enumerate(SOCIAL_PLATFORMS)}
    groups: dict[str, list[ExportRow]] = {}
    for row in rows:
        groups.setdefault(row.platform, []).append(row)
    return sorted(groups.items(), key=lambda g: (order.get(g[0], len(order)), g[0]))


def _beside(output: str, platform: str) -> Path:
    """`export.csv` -> `export-x.csv`: the file of one platform next to the given path."""
    path = Path(output)
    return path.with_name(f"{path.stem}-{platform}{path.suffix}")


def export(
    config: Config,
    now: datetime,
    fmt: str = "csv",
    platform: str | None = None,
    output: str | None = None,
    include_all: bool = False,
) -> ExportResult:
    """Write approved drafts (not yet exported, unless `include_all`) and mark them exported.

    `output`: a file path, `-` for standard output (the caller prints `files[0].data`), or
    None for `outbox/social/_export/<YYYYMMDD-HHMMSS>[-<platform>].<csv|json>` (only when
    there is something to export). `buffer` without `platform` writes one file per platform
    with drafts: `<YYYYMMDD-HHMMSS>-buffer-<platform>.csv`, or `<stem>-<platform><suffix>`
    beside `output`; it cannot go to standard output. Every file is written before any
    draft is marked, so a crash in between repeats an export rather than losing one.
    """
    if fmt not in FORMATS:
        raise UsageError(f"onbekend formaat {fmt!r}; kies uit: {', '.join(FORMATS)}")
    split = fmt == "buffer" and not platform
    if split and output == "-":
        raise UsageError(
            "--format buffer maakt een bestand per platform (Buffer importeert per kanaal); "
            "kies met --platform één platform voor de standaarduitvoer"
        )
    moment = config.moment(now)
    with locked(config):
        chosen, problems = select(config, moment, platform, include_all)
        rows = [row_for(config, draft, moment) for _, draft in chosen]
        result = ExportResult(rows, [], problems)
        name = moment.astimezone(config.site.tz).strftime("%Y%m%d-%H%M%S")
        if split:
            for each, group in _per_platform(rows):
                data = csv_bytes(group, BUFFER_COLUMNS)
                if output:
                    target = _beside(output, each)
                    inside = _write_file(config, target, data)
                    shown = str(target)
                else:
                    inside = f"{EXPORT_DIR}/{name}-buffer-{each}.csv"
                    Outbox(config.outbox_dir).write_now(inside, data)
                    shown = display_path(inside)
                result.files.append(ExportFile(shown, data, inside, each, len(group)))
        else:
            if fmt == "json":
                data = json_bytes(config, rows, moment)
            else:
                data = csv_bytes(rows, BUFFER_COLUMNS if fmt == "buffer" else CSV_COLUMNS)
            platforms = {r.platform for r in rows}
            only = platform or (platforms.pop() if len(platforms) == 1 else None)
            if output == "-":
                result.files.append(ExportFile("-", data, None, only, len(rows)))
            elif output:
                inside = _write_file(config, Path(output), data)
                result.files.append(ExportFile(str(Path(output)), data, inside, only, len(rows)))
            elif rows:
                suffix = f"-{platform}" if platform else ""
                inside = f"{EXPORT_DIR}/{name}{suffix}.{'json' if fmt == 'json' else 'csv'}"
                Outbox(config.outbox_dir).write_now(inside, data)
                result.files.append(ExportFile(display_path(inside), data, inside, only, len(rows)))

        if rows:
            outbox = Outbox(config.outbox_dir)
            when = stamp(moment, config)
            for found, draft in chosen:
                marked = replace(
                    draft, exported_at=when, exported_hash=draft.approved_hash, updated=when
                )
                write_if_unchanged(outbox, marked, found.digest)
            outbox.commit()
            refresh_review_page(config, moment)
    return result


__all__ = ["BUFFER_COLUMNS", "CSV_COLUMNS", "FORMATS", "ExportFile", "ExportResult", "export"]
