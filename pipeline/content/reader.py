"""Read every item under content/: parse, validate and render in parallel, cache by content hash.

`parse_item` is a pure function of a file's bytes and the reader settings, so its result is
cached (cache.py) and computed in worker processes; checks that look at the disk or across
files (asset existence, duplicate ids) run afterwards in the main process.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import os
import posixpath
import re
import stat
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from pipeline.config import Config
from pipeline.content import confine, fields, frontmatter
from pipeline.content.cache import Cached, RenderCache
from pipeline.content.model import ASSET_PREFIX, Attachment, Audio, Event, Item, ItemState
from pipeline.errors import Problem
from pipeline.fingerprints import output_fingerprint
from pipeline.workers import CRASHED, TIMED_OUT, cpu_count, map_with_deadline, parallel_map

CONTENT_DIR = "content"


_POOL_THRESHOLD = 64  # below this many uncached files a pool costs more than it saves


@dataclass(frozen=True)
class ParseResult:
    """The cacheable outcome of one file: an item, or its problems (never both empty)."""

    item: Item | None
    problems: tuple[Problem, ...]
    # Paths that must exist for the item to be valid: (key, candidate, raw value, line);
    # kept also for an item with problems, so a missing file is reported with them.
    required_files: tuple[fields.RequiredFile, ...] = ()


@dataclass(frozen=True)
class ContentSet:
    """All valid items (sorted newest first) and every problem found."""

    items: tuple[Item, ...]
    problems: tuple[Problem, ...]
    parsed: int = 0  # files parsed this run, not answered from the cache

    def by_state(self, now: datetime) -> dict[ItemState, list[Item]]:
        out: dict[ItemState, list[Item]] = {state: [] for state in ItemState}
        for item in self.items:
            out[item.state(now)].append(item)
        return out

    def published(self, now: datetime) -> list[Item]:
        return [item for item in self.items if item.state(now) is ItemState.PUBLISHED]


def settings_for(config: Config) -> fields.ReaderSettings:
    return fields.ReaderSettings(
        tracks=tuple(config.tracks),
        timezone=config.site.timezone,
        base_url=config.site.base_url,
        fingerprint=output_fingerprint(config),  # no template shapes a parsed item
    )


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def derived_id(relative: str) -> str:
    """`content/woningmarkt/Sloop & transformatie.md` -> `woningmarkt-sloop-transformatie`."""
    stem = relative.removeprefix(CONTENT_DIR + "/").removesuffix(Path(relative).suffix)
    return slugify(stem.replace("/", "-"))[:120].strip("-") or "item"


def asset_url(base_url: str, content_path: str) -> str:
    return urljoin(base_url, ASSET_PREFIX + quote(content_path))


def parse_item(relative: str, data: bytes, settings: fields.ReaderSettings) -> ParseResult:
    """Parse, validate and render one file. Never raises for any input."""
    try:
        return _parse(relative, data, settings)
    except RecursionError:  # Python-Markdown recurses once per level of nested lists or quotes
        message = (
            "de tekst is te diep genest (lijsten of citaten in elkaar): maak de opmaak platter"
        )
        return ParseResult(None, (Problem(relative, None, message),))
    except Exception as exc:
        return ParseResult(None, (Problem(relative, None, f"interne fout bij lezen: {exc!r}"),))


def _parse(relative: str, data: bytes, settings: fields.ReaderSettings) -> ParseResult:
    try:
        text = frontmatter.decode(data)
        doc = frontmatter.load(text)
    except frontmatter.FrontMatterError as exc:
        return ParseResult(None, (Problem(relative, exc.line, exc.message),))

    item_dir = posixpath.dirname(relative.removeprefix(CONTENT_DIR + "/"))
    values, problems = fields.validate(doc.data, doc.lines, settings, item_dir)
    if problems:
        found = tuple(Problem(relative, line, msg) for line, msg in problems)
        return ParseResult(None, found, values["files"])

    from pipeline.content import body  # Markdown and nh3: only when something must be parsed

    if problem := body.size_problem(doc.body):
        return ParseResult(None, (Problem(relative, doc.body_line, problem),))
    html = body.render_html(doc.body, settings.base_url, item_dir)
    if problem := body.html_size_problem(html):
        return ParseResult(None, (Problem(relative, doc.body_line, problem),))
    image_url = None
    if values["image"]:
        raw, path = values["image"]
        image_url = raw if path is None else path

    attachments = []
    for title, url_or_raw, path in values["attachments"]:
        attachments.append(
            Attachment(title=title, url=url_or_raw if path is None else "", path=path)
        )

    audio = None
    if values.get("audio"):
        (raw, path), length, duration, mime = values["audio"]
        audio = Audio(
            url=raw if path is None else path, length=length, duration=duration, type=mime
        )

    event = Event(*values["event"]) if values.get("event") else None
    item = Item(
        id=values["id"] or derived_id(relative),
        source=relative,
        title=values["title"],
        kind=values["kind"],
        track=values["track"],
        summary=values["summary"],
        date=values["date"],
        date_has_time=values["date_has_time"],
        publish_at=values["publish_at"],
        draft=values["draft"],
        tags=values["tags"],
        regions=values["regions"],
        image=image_url,
        image_alt=values["image_alt"],
        event=event,
        audio=audio,
        attachments=tuple(attachments),
        social_enabled=values["social_enabled"],
        social_overrides=values["social_overrides"],
        newsletter=values["newsletter"],
        html_utf8=html.encode(),
        assets=(),
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        lines=tuple(sorted(doc.lines.items())),
        transcript=values["transcript"],
        transcript_reason=values["transcript_reason"],
    )
    return ParseResult(item, (), values["files"])


def _resolve_files(result: ParseResult, content_dir: Path, base_url: str) -> ParseResult:
    """Find each referenced file on disk: next to the item first, then from content/'s root."""
    item = result.item
    body_files = _body_files(item.html, base_url) if item is not None else []
    if not result.required_files and not body_files:
        return result
    found: dict[str, str] = {}
    problems = list(result.problems)
    source = item.source if item is not None else result.problems[0].path
    real = content_dir.resolve()
    for key, candidate, raw, line in result.required_files:
        options = [candidate]
        rooted = posixpath.normpath(raw.lstrip("/"))
        if not raw.startswith("/") and not rooted.startswith("..") and rooted not in options:
            options.append(rooted)
        hit, why = None, "niet gevonden in content/"
        for option in options:
            try:
                path = content_dir / option
                if path.is_file():
                    hit = option
                    break
                if path.exists():  # a folder, a pipe, a device: never published
                    why = "is geen gewoon bestand (een map, pijp of apparaat)"
            except OSError as exc:  # a folder on the way that may not be entered
                why = f"kan niet gelezen worden: {confine.reason(exc)}"
        if hit is not None:
            why = _refusal(content_dir, real, hit)
        if why is not None:
            problems.append(Problem(source, line, f"'{key}': bestand {raw!r} {why}"))
        else:
            found[key] = hit
    if problems or item is None:
        return ParseResult(None, tuple(problems))
    # A file the body links to or shows (`![Kaart](kaart.png)`) is published with the item;
    # one that is missing or may not be published is reported with its line by the build's
    # link check (render/links.py), and the item still publishes.
    for rel in body_files:
        if (
            _publishable(rel)
            and (content_dir / rel).is_file()
            and _refusal(content_dir, real, rel) is None
        ):
            found[f"body:{rel}"] = rel

    image = asset_url(base_url, found["image"]) if "image" in found else item.image
    attachments = tuple(
        replace(
            a,
            path=found[f"attachments.{i}.path"],
            url=asset_url(base_url, found[f"attachments.{i}.path"]),
        )
        if a.path is not None
        else a
        for i, a in enumerate(item.attachments)
    )
    audio = item.audio
    if audio is not None and "audio.url" in found:
        audio = replace(audio, url=asset_url(base_url, found["audio.url"]))
    content_hash = item.content_hash
    transcript = found.get("transcript")
    if transcript is not None:
        # The episode's page shows the transcript: an edit of it is an edit of the item.
        try:
            data = confine.read_inside(content_dir / transcript, real, "content/")
        except (confine.Refused, OSError) as exc:
            why = str(exc) if isinstance(exc, confine.Refused) else confine.reason(exc)
            line = item.line_of("transcript")
            return ParseResult(None, (Problem(source, line, f"'transcript': {why}"),))
        from pipeline.content import body  # only for items with a transcript

        try:  # the page renders it: what would stop the build stops the item here
            problem = body.size_problem(frontmatter.decode(data))
        except frontmatter.FrontMatterError as exc:
            problem = exc.message
        if problem is not None:
            return ParseResult(None, (Problem(f"content/{transcript}", None, problem),))
        content_hash = hashlib.sha256(
            (content_hash + hashlib.sha256(data).hexdigest()).encode()
        ).hexdigest()
    resolved = replace(
        item,
        image=image,
        attachments=attachments,
        audio=audio,
        transcript=transcript,
        content_hash=content_hash,
        assets=tuple(sorted(set(found.values()))),
    )
    return ParseResult(resolved, ())


_BODY_LINK = re.compile(r'\s(?:src|href)="([^"]*)"')


def _body_files(html: str, base_url: str) -> list[str]:
    """The content-relative paths of the published files (`…/bestanden/<path>`) that the
    body's links and images point to."""
    if urljoin(base_url, ASSET_PREFIX) not in html:  # most bodies: one scan, nothing to parse
        return []
    prefix = unquote(urlsplit(urljoin(base_url, ASSET_PREFIX)).path)
    host = urlsplit(base_url).netloc
    out = []
    for m in _BODY_LINK.finditer(html):
        url = urlsplit(htmllib.unescape(m.group(1)))
        path = unquote(url.path)
        if url.netloc == host and path.startswith(prefix) and len(path) > len(prefix):
            out.append(path[len(prefix) :])
    return out


def _publishable(rel: str) -> bool:
    """A file of content/ that may be published: no Markdown source (another item, a
    transcript), nothing hidden or skipped by the scan, nothing outside content/."""
    parts = rel.split("/")
    return not (
        rel.endswith(("~", ".md"))
        or any(p.startswith((".", "_")) or p in ("", "..") for p in parts)
    )


def _refusal(content_dir: Path, real: Path, rel: str) -> str | None:
    """Why a referenced file cannot be used: it must resolve to inside content/ (`real`,
    resolved), not through a link to a folder (those are not followed, see scan_content),
    and be readable."""
    path = content_dir / rel
    if confine.inside(path, real) is None or path.parent.resolve() != real.joinpath(rel).parent:
        return (
            "is een koppeling naar buiten content/ of ligt in een gekoppelde map; zo'n "
            "koppeling wordt niet gevolgd"
        )
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    except OSError as exc:
        return f"kan niet gelezen worden: {confine.reason(exc)}"
    return None


@dataclass(frozen=True)
class Source:
    relative: str  # root-relative POSIX path, e.g. "content/wrb/x.md"
    path: str
    signature: str  # size, mtime, ctime, inode: unchanged files are not even read


@dataclass(frozen=True)
class ContentFiles:
    sources: list[Source]  # the items: `.md` files, hidden folders and files and backups skipped
    signature: str  # every file under content/ (images too) by path, size, mtime, ctime, inode
    # Folders and files that cannot be read, and links that are not followed.
    problems: tuple[Problem, ...] = ()


def scan_content(root: Path) -> ContentFiles:
    """One walk of content/, sorted, one stat per file: what a build has to read, and whether
    anything at all changed since the last one.

    Links to folders are never followed (no loops, nothing walked twice); a link to a file
    counts only when it resolves to inside content/."""
    sources: list[Source] = []
    problems: list[Problem] = []
    h = hashlib.blake2b(digest_size=16)
    top = root / CONTENT_DIR
    real_top = top.resolve()

    def refuse(rel: str, message: str) -> None:
        problems.append(Problem(rel, None, message))
        h.update(f"{rel}:!{message}\n".encode())

    def walk(directory: str, prefix: str, items: bool) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            if directory != str(top) or not isinstance(exc, FileNotFoundError):
                refuse(
                    prefix.rstrip("/"),
                    f"map kan niet gelezen worden: {confine.reason(exc)}; wat erin stond "
                    "blijft online zoals het was",
                )
            return
        for entry in entries:
            name = entry.name
            rel = f"{prefix}{name}"
            try:
                link = entry.is_symlink()
                if link and (
                    problem := confine.link_problem(Path(entry.path), real_top, "content/")
                ):
                    refuse(rel, problem)
                    continue
                if entry.is_dir():  # a link here resolves to inside content/
                    if link:
                        refuse(
                            rel,
                            "koppeling naar een map wordt niet gevolgd; verplaats of "
                            "kopieer de bestanden zelf naar deze plek",
                        )
                    else:
                        walk(entry.path, f"{rel}/", items and not name.startswith((".", "_")))
                    continue
                st = entry.stat()
            except OSError as exc:
                refuse(rel, f"kan niet lezen: {confine.reason(exc)}")
                continue
            # The inode change time too: a file made unreadable (chmod, chown, an ACL) is read
            # again and reported, not answered from the cache.
            signature = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
            h.update(f"{rel}:{signature}\n".encode())
            if (
                items
                and not name.startswith(".")
                and not name.endswith("~")
                and name.lower().endswith(".md")
                and not name.lower().endswith(fields.TRANSCRIPT_SUFFIX)  # a podcast's, not an item
                and stat.S_ISREG(st.st_mode)
            ):
                sources.append(Source(rel, entry.path, signature))

    walk(str(top), CONTENT_DIR + "/", True)
    return ContentFiles(sources, h.hexdigest(), tuple(problems))


def _parse_chunk(
    settings: fields.ReaderSettings, chunk: list[tuple[str, bytes]]
) -> list[ParseResult]:
    return [parse_item(rel, data, settings) for rel, data in chunk]


def read_content(
    config: Config, *, use_cache: bool = True, files: ContentFiles | None = None
) -> ContentSet:
    """Read, validate and render every item under content/ (`files`: as just scanned)."""
    settings = settings_for(config)
    problems: list[Problem] = []
    cache = RenderCache(config.path(config.build.cache), settings.fingerprint)
    cached = cache.load() if use_cache else {}
    files = files or scan_content(config.root)
    sources = files.sources
    problems.extend(files.problems)
    real_content = config.content_dir.resolve()
    results: dict[str, ParseResult] = {}
    todo: list[tuple[str, bytes]] = []
    entries: dict[str, Cached] = {}  # what the cache should hold after this run
    changed: set[str] = set()
    for source in sources:
        rel = source.relative
        hit = cached.get(rel)
        if hit is not None and hit.signature == source.signature:
            results[rel] = hit.result
            entries[rel] = hit
            continue
        try:
            data = confine.read_inside(Path(source.path), real_content, "content/")
        except confine.Refused as exc:
            problems.append(Problem(rel, None, str(exc)))
            continue
        except OSError as exc:
            problems.append(Problem(rel, None, f"kan niet lezen: {confine.reason(exc)}"))
            continue
        digest = hashlib.blake2b(data, digest_size=20).hexdigest()
        changed.add(rel)
        if hit is not None and hit.digest == digest:  # touched, not changed
            results[rel] = hit.result
            entries[rel] = hit._replace(signature=source.signature)
            continue
        entries[rel] = Cached(source.signature, digest, None)
        todo.append((rel, data))

    fresh = _parse_all(todo, settings, config)
    results.update(fresh)
    if use_cache:
        for rel, result in fresh.items():
            entries[rel] = entries[rel]._replace(result=result)
        cache.store(entries, changed)

    items: list[Item] = []
    for source in sources:
        if source.relative not in results:
            continue
        result = _resolve_files(results[source.relative], config.content_dir, config.site.base_url)
        problems.extend(result.problems)
        if result.item is not None:
            items.append(result.item)

    items, duplicate_problems = _unique_ids(items)
    problems.extend(duplicate_problems)
    items.sort(key=lambda i: (i.published_at, i.id), reverse=True)
    return ContentSet(tuple(items), tuple(sorted(problems, key=Problem.sort_key)), len(fresh))


def read_one(config: Config, relative: str, base_url: str) -> ParseResult:
    """One item file (`content/…`) read and validated as `read_content` reads it, its own
    files addressed under `base_url`: the desk's preview shows a draft's images from
    content/, before any build has published them. Nothing is cached."""
    settings = replace(settings_for(config), base_url=base_url)
    try:
        data = confine.read_inside(config.root / relative, config.content_dir.resolve(), "content/")
    except confine.Refused as exc:
        return ParseResult(None, (Problem(relative, None, str(exc)),))
    except OSError as exc:
        return ParseResult(
            None, (Problem(relative, None, f"kan niet lezen: {confine.reason(exc)}"),)
        )
    result = _parse_all([(relative, data)], settings, config)[relative]
    return _resolve_files(result, config.content_dir, base_url)


# Python-Markdown's worst cases grow with (Markdown syntax characters) x (length): 1,000 `[`
# in 32 KB take 3 s. Below this product a file takes at most ~0.4 s and is parsed here; above
# it (no real item comes near: the bench corpus peaks at 0.9 million) it goes to a process that
# is killed past `[build] item_timeout`. Spawning that process costs ~0.2 s (bench/README.md).
_SLOW_WORK = 4_000_000
_NOT_SYNTAX = bytes(b for b in range(256) if chr(b) not in "\\`*_[]()!<>&#|{}:-+^~=")


def _may_be_slow(data: bytes) -> bool:
    return len(data.translate(None, _NOT_SYNTAX)) * len(data) > _SLOW_WORK


def _parse_one(task: tuple[str, bytes, fields.ReaderSettings]) -> ParseResult:
    return parse_item(*task)


def _parse_all(
    todo: list[tuple[str, bytes]], settings: fields.ReaderSettings, config: Config
) -> dict[str, ParseResult]:
    quick: list[tuple[str, bytes]] = []
    suspect: list[tuple[str, bytes]] = []
    for task in todo:
        (suspect if _may_be_slow(task[1]) else quick).append(task)
    out = _parse_quick(quick, settings, config)
    if suspect:
        out.update(_parse_with_deadline(suspect, settings, config))
    return out


def _parse_with_deadline(
    todo: list[tuple[str, bytes]], settings: fields.ReaderSettings, config: Config
) -> dict[str, ParseResult]:
    timeout = config.build.item_timeout
    answers = map_with_deadline(
        _parse_one,
        [(rel, data, settings) for rel, data in todo],
        min(len(todo), cpu_count(config.build.workers)),
        timeout,
    )
    out: dict[str, ParseResult] = {}
    for (rel, _), answer in zip(todo, answers, strict=True):
        if answer is TIMED_OUT or answer is CRASHED:
            why = (
                f"duurde langer dan {timeout:g} s"
                if answer is TIMED_OUT
                else "brak af (te veel geheugen?)"
            )
            message = (
                f"het omzetten van de tekst {why} en is gestopt: vereenvoudig de opmaak "
                "(bijvoorbeeld lange reeksen van [, *, _, <, > of `)"
            )
            answer = ParseResult(None, (Problem(rel, 1, message),))
        out[rel] = answer
    return out


def _parse_quick(
    todo: list[tuple[str, bytes]], settings: fields.ReaderSettings, config: Config
) -> dict[str, ParseResult]:
    workers = cpu_count(config.build.workers)
    if workers <= 1 or len(todo) < _POOL_THRESHOLD:
        return {rel: parse_item(rel, data, settings) for rel, data in todo}
    # Small chunks keep both cores busy to the end; large ones cut pickling overhead.
    size = max(8, len(todo) // (workers * 16))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    out: dict[str, ParseResult] = {}
    answers = parallel_map(_parse_chunk, settings, chunks, workers)
    for chunk, results in zip(chunks, answers, strict=True):
        for (rel, _), result in zip(chunk, results, strict=True):
            out[rel] = result
    return out


def _unique_ids(items: list[Item]) -> tuple[list[Item], list[Problem]]:
    by_id: dict[str, list[Item]] = {}
    for item in items:
        by_id.setdefault(item.id, []).append(item)
    keep, problems = [], []
    for item_id, group in by_id.items():
        if len(group) == 1:
            keep.append(group[0])
            continue
        for item in group:
            others = ", ".join(o.source for o in group if o is not item)
            problems.append(
                Problem(
                    item.source,
                    item.line_of("id"),
                    f"id '{item_id}' is niet uniek: ook gebruikt door {others}",
                )
            )
    return keep, problems
