"""Social drafts on disk: generation during `build`, and the rules that never lose an edit.

A draft is `outbox/social/<item-id>/<platform>.md`: YAML front matter, then the post text.
Its id is `<item-id>/<platform>` (item ids are lowercase letters, digits and `-`, so the id is
always a safe path). The front matter holds everything the workflow needs, so the files are
the whole state of the review (no table in the state store):

    platform, item, status, limit, length, link,
    generated_hash   hash of the text the pipeline last wrote as the body
    approved_hash    hash of the text that was approved (only while approved)
    created, updated
    approved_by, approved_at, rejected_by, rejected_at, reason   (reviewer fields)
    title, image, image_alt, published  of the item, for the review page and the export
    source           template or override (the item's own `social:` text)
    item_hash        content hash of the item the text (or suggestion) was made from
    latest_hash      hash of the text last generated (the body's or the suggestion's)
    generator_key    hash of every input of the generation: while it holds, nothing is redone
    exported_at, exported_hash          set by `krimppost social export`
    withdrawn_from, withdrawn_reason    set while the item is not online
    suggestion                          a stale draft's new text (a YAML block)

Statuses: `pending` (te beoordelen), `approved`, `rejected`, `stale` (item changed after an
edit or a review: the new text is in `suggestion`), `withdrawn` (item no longer online, or
`social: false`, or the platform switched off; kept because comms may have edited it).

Rules (`reconcile`):
- The body counts as edited when its hash differs from `generated_hash`. An edited body is
  never overwritten by the pipeline; only front-matter fields around it are updated.
- When the item or its generated text changes, a pending unedited draft is regenerated; any
  other draft (edited, approved, rejected, stale) keeps its text and becomes `stale` with the
  new text in `suggestion` (absent when the new text equals the current one).
- An approved draft whose text no longer matches `approved_hash` is back in review
  (`pending`; `approved_by`/`approved_at` stay as history).
- A withdrawn draft whose item comes back returns to its earlier status, then the same rules.
- Before replacing a draft file the pipeline re-reads it; if it changed since it was read
  (someone saved it meanwhile) the file is left alone until the next run.
- A draft file deleted by hand is made again while its item is online (reject it instead).

Parsed headers are cached by file signature in `social-cache.json` beside the state store
(safe to delete), so a build with nothing new reads no YAML.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import regex
import yaml

from pipeline.config import Config, SocialPlatform
from pipeline.content.model import SOCIAL_PLATFORMS, Item
from pipeline.errors import KrimppostError, Problem
from pipeline.outbox import Outbox, digest
from pipeline.publish import Entry
from pipeline.render import templates
from pipeline.social.counting import UNITS, Fitted, Parts, counter, fit, length

DRAFT_DIR = "social"
INDEX = f"{DRAFT_DIR}/index.html"
CACHE_NAME = "social-cache.json"
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "stale", "withdrawn")
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
# At most this many hashtags come from an item's tags (the configured ones always come first).
MAX_TAG_HASHTAGS = 3
_ITEM_ID = regex.compile(r"^[a-z0-9](?:[a-z0-9-]{0,118}[a-z0-9])?$")
_HASHTAG_SPLIT = regex.compile(r"[^\w'’]+")

WITHDRAWN_GONE = "het item is niet (meer) online"
WITHDRAWN_SOCIAL_OFF = "het item heeft 'social: false'"
WITHDRAWN_PLATFORM_OFF = "dit platform staat uit in config.toml"


def _code_fingerprint() -> str:
    h = hashlib.blake2b(digest_size=8)
    for source in sorted(Path(__file__).parent.glob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()


_CODE = _code_fingerprint()  # drafts' generator keys and the parse cache follow the code


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


def normalize_text(text: str) -> str:
    """Post text as compared and stored: Unix line ends, no surrounding blank space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def draft_path(draft_id: str) -> str:
    """Outbox-relative path of a draft."""
    return f"{DRAFT_DIR}/{draft_id}.md"


def parse_draft_id(value: str) -> tuple[str, str] | None:
    """`<item-id>/<platform>`; the file's path (`outbox/social/<id>.md`) is accepted too."""
    value = value.strip().removesuffix(".md")
    for candidate in (value, value.removeprefix("outbox/").removeprefix(f"{DRAFT_DIR}/")):
        item_id, _, platform = candidate.partition("/")
        if platform in SOCIAL_PLATFORMS and _ITEM_ID.match(item_id):
            return item_id, platform
    return None


# The draft file -----------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    platform: str
    item: str
    status: str
    text: str
    limit: int = 0
    length: int = 0
    link: str = ""
    generated_hash: str = ""
    approved_hash: str | None = None
    created: str = ""
    updated: str = ""
    approved_by: str | None = None
    approved_at: str | None = None
    rejected_by: str | None = None
    rejected_at: str | None = None
    reason: str | None = None
    title: str = ""
    source: str = "template"
    item_hash: str = ""
    latest_hash: str = ""
    generator_key: str = ""  # inputs of the last generation: unchanged means nothing to redo
    image: str | None = None
    image_alt: str | None = None
    published: str | None = None
    exported_at: str | None = None
    exported_hash: str | None = None
    withdrawn_from: str | None = None
    withdrawn_reason: str | None = None
    suggestion: str | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # front-matter keys added by hand, kept as they are

    @property
    def id(self) -> str:
        return f"{self.item}/{self.platform}"

    @property
    def path(self) -> str:
        return draft_path(self.id)

    @property
    def edited(self) -> bool:
        """The body differs from the text the pipeline last wrote."""
        return text_hash(self.text) != self.generated_hash

    @property
    def exported(self) -> bool:
        return self.status == "approved" and self.exported_hash == self.approved_hash


_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Draft) if f.name not in ("text", "extra"))
# Always written (the reviewer fields too, as null); the rest only when set.
_ALWAYS = frozenset(
    (
        "platform",
        "item",
        "status",
        "limit",
        "length",
        "link",
        "generated_hash",
        "approved_hash",
        "created",
        "updated",
        "approved_by",
        "approved_at",
        "rejected_by",
        "rejected_at",
        "reason",
        "title",
        "source",
        "item_hash",
        "latest_hash",
        "generator_key",
    )
)
_INTS = frozenset(("limit", "length"))


# libyaml when available: parsing every draft on every build must stay cheap.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_draft(draft: Draft) -> bytes:
    meta: dict[str, Any] = {}
    for key in _KEYS:
        value = getattr(draft, key)
        if key in _ALWAYS or value is not None:
            meta[key] = value
    meta.update(dict(draft.extra))
    front = yaml.dump(meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    # After a keep-chomped block (`|+`) PyYAML ends the document with `...`, which would close
    # the front matter early; the `---` line below ends it just as well.
    front = front.removesuffix("...\n")
    return f"---\n{front}---\n{normalize_text(draft.text)}\n".encode()


class DraftError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def display_path(relative: str) -> str:
    """How a draft file is named in messages: relative to the project root."""
    return f"outbox/{relative}"


def parse_draft(data: bytes, draft_id: str) -> Draft:
    """Read a draft file; raises DraftError with the file and line of the problem."""
    item_id, platform = draft_id.split("/")
    display = display_path(draft_path(draft_id))

    def problem(line: int | None, message: str) -> DraftError:
        return DraftError(Problem(display, line, message))

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise problem(data[: exc.start].count(b"\n") + 1, "geen geldige UTF-8") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[0].rstrip() != "---":
        raise problem(1, "front matter ontbreekt: de eerste regel moet '---' zijn")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() == "---"), None)
    if end is None:
        raise problem(1, "front matter is niet afgesloten met een regel '---'")

    def line_of(key: str) -> int:
        for number in range(1, end):
            if lines[number].startswith(f"{key}:"):
                return number + 1
        return 1

    try:
        # The final newline matters: a block scalar as last key keeps its own line end.
        meta = yaml.load("\n".join(lines[1:end]) + "\n", Loader=_Loader)  # a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 2 if mark is not None else 1
        raise problem(line, f"ongeldige YAML in de front matter: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise problem(1, f"ongeldige YAML in de front matter: {exc}") from None
    if not isinstance(meta, dict):
        raise problem(2, "de front matter moet sleutels met waarden bevatten")

    values: dict[str, Any] = {}
    for key in _KEYS:
        value = meta.get(key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        if value is None:
            continue
        if key in _INTS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise problem(line_of(key), f"'{key}' moet een geheel getal zijn")
        elif not isinstance(value, str):
            value = str(value)
        values[key] = value
    if values.get("platform") != platform:
        raise problem(line_of("platform"), f"'platform' moet '{platform}' zijn (de bestandsnaam)")
    if values.get("item") != item_id:
        raise problem(line_of("item"), f"'item' moet '{item_id}' zijn (de mapnaam)")
    status = values.get("status")
    if status not in STATUSES:
        raise problem(
            line_of("status"),
            f"'status' moet een van {', '.join(STATUSES)} zijn, niet {status!r}",
        )
    if not values.get("generated_hash"):
        raise problem(line_of("generated_hash"), "'generated_hash' ontbreekt")
    extra = tuple((k, v) for k, v in meta.items() if k not in _KEYS)
    return Draft(text=normalize_text("\n".join(lines[end + 1 :])), extra=extra, **values)


@dataclass(frozen=True)
class Stored:
    """A draft as found on disk: the parsed draft, or the problem that stops it being read.

    `digest` identifies the bytes that were read: a later write first checks that the file
    still has them, so an edit saved meanwhile is never replaced."""

    id: str
    digest: str | None
    draft: Draft | None
    problem: Problem | None


def _signature(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


class ParseCache:
    """Parsed drafts by file signature (size, mtime, inode), so that a build with nothing new
    does not parse thousands of YAML headers. A plain JSON file beside the state store; safe
    to delete. Writes never trust it: they compare the file's bytes first."""

    VERSION = 1

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if path is None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if (
            isinstance(data, dict)
            and data.get("version") == self.VERSION
            and data.get("code") == _CODE
        ):
            entries = data.get("drafts")
            if isinstance(entries, dict):
                self.entries = entries

    @classmethod
    def for_config(cls, config: Config) -> ParseCache:
        return cls(config.path(config.state.path).with_name(CACHE_NAME))

    def get(self, draft_id: str, signature: str) -> Stored | None:
        entry = self.entries.get(draft_id)
        if not entry or entry.get("sig") != signature:
            return None
        try:
            draft = Draft(**entry["draft"]) if entry.get("draft") is not None else None
            problem = Problem(*entry["problem"]) if entry.get("problem") is not None else None
        except TypeError:
            return None
        return Stored(draft_id, entry["digest"], draft, problem)

    def put(self, stored: Stored, signature: str) -> None:
        if stored.draft is not None and stored.draft.extra:
            self.forget(stored.id)  # hand-added keys may hold anything: not cached
            return
        draft = (
            {f.name: getattr(stored.draft, f.name) for f in fields(Draft) if f.name != "extra"}
            if stored.draft is not None
            else None
        )
        problem = list(astuple(stored.problem)) if stored.problem is not None else None
        entry = {"sig": signature, "digest": stored.digest, "draft": draft, "problem": problem}
        if self.entries.get(stored.id) != entry:
            self.entries[stored.id] = entry
            self.dirty = True

    def remember(self, outbox: Outbox, draft: Draft, data: bytes) -> None:
        """After writing `data` for `draft`."""
        try:
            st = outbox.path_for(draft.path).stat()
        except OSError:
            self.forget(draft.id)
            return
        self.put(Stored(draft.id, digest(data), draft, None), _signature(st))

    def forget(self, draft_id: str) -> None:
        if self.entries.pop(draft_id, None) is not None:
            self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        document = {"version": self.VERSION, "code": _CODE, "drafts": self.entries}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
            os.replace(temp, self.path)
            self.dirty = False
        except OSError:
            temp.unlink(missing_ok=True)  # a cache that cannot be written is not an error


def scan(outbox: Outbox, cache: ParseCache | None = None) -> dict[str, Stored]:
    """Every draft file under outbox/social/, by id."""
    base = outbox.path_for(DRAFT_DIR)
    found: dict[str, Stored] = {}
    try:
        folders = sorted(e.name for e in os.scandir(base) if e.is_dir() and _ITEM_ID.match(e.name))
    except FileNotFoundError:
        return found
    for folder in folders:
        for platform in SOCIAL_PLATFORMS:
            draft_id = f"{folder}/{platform}"
            stored = read_stored(outbox, draft_id, cache)
            if stored is not None:
                found[draft_id] = stored
    return found


def read_stored(outbox: Outbox, draft_id: str, cache: ParseCache | None = None) -> Stored | None:
    path = outbox.text_path(draft_path(draft_id))  # a string: this runs per draft
    try:
        st = os.stat(path)
        signature = _signature(st)
        if cache is not None and (hit := cache.get(draft_id, signature)) is not None:
            return hit
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if cache is not None:
            cache.forget(draft_id)
        return None
    except OSError as exc:
        problem = Problem(display_path(draft_path(draft_id)), None, f"kan niet lezen: {exc}")
        return Stored(draft_id, None, None, problem)
    try:
        stored = Stored(draft_id, digest(raw), parse_draft(raw, draft_id), None)
    except DraftError as exc:
        stored = Stored(draft_id, digest(raw), None, exc.problem)
    if cache is not None and len(raw) == st.st_size:
        cache.put(stored, signature)
    return stored


def write_if_unchanged(
    outbox: Outbox,
    draft: Draft,
    expected: str | None,
    cache: ParseCache | None = None,
    digests: dict[str, str] | None = None,
) -> bool:
    """Stage an atomic replacement of a draft, unless the file changed since it was read
    (`expected` is the digest of the bytes read then, None when there was no file).
    The caller commits the outbox."""
    target = outbox.path_for(draft.path)
    try:
        current: bytes | None = target.read_bytes()
    except FileNotFoundError:
        current = None
    if (digest(current) if current is not None else None) != expected:
        if cache is not None:
            cache.forget(draft.id)
        return False
    data = dump_draft(draft)
    if data != current:
        # Staged, not written: the caller commits all drafts with one sync (25,000 drafts
        # fsync'ed one by one cost a minute on a cold build).
        outbox.stage(draft.path, data)
    if cache is not None:
        cache.remember(outbox, draft, data)
    if digests is not None:
        digests[draft.id] = digest(data)
    return True


# Status rules ---------------------------------------------------------------------------


def in_review(draft: Draft) -> Draft:
    """The draft with the approval dropped when its text changed after approval."""
    if draft.status == "approved" and draft.approved_hash != text_hash(draft.text):
        return replace(draft, status="pending", approved_hash=None)
    return draft


@dataclass(frozen=True)
class Generated:
    """A freshly generated post for one item and platform."""

    text: str
    length: int
    limit: int
    link: str
    source: str  # "template" or "override"
    shortened: bool = False

    @property
    def fits(self) -> bool:
        return self.length <= self.limit


def reconcile(
    existing: Draft | None,
    generated: Generated,
    entry: Entry,
    platform: SocialPlatform,
    now: str,
    key: str = "",
) -> tuple[Draft, str]:
    """The draft after this run, and what happened: created, regenerated, stale, reopened,
    returned or unchanged. Never changes the text of an edited, approved or stale draft."""
    item = entry.item
    new_hash = text_hash(generated.text)
    meta: dict[str, Any] = {
        "limit": platform.limit,
        "link": generated.link,
        "title": item.title,
        "image": item.image,
        "image_alt": item.image_alt,
        "published": entry.published.isoformat(),
        "generator_key": key,
    }
    if existing is None:
        draft = Draft(
            platform=platform.id,
            item=item.id,
            status="pending",
            text=generated.text,
            length=generated.length,
            generated_hash=new_hash,
            created=now,
            updated=now,
            source=generated.source,
            item_hash=item.content_hash,
            latest_hash=new_hash,
            **meta,
        )
        return draft, "created"

    draft = in_review(existing)
    outcome = "reopened" if draft.status != existing.status else "unchanged"
    if draft.status == "withdrawn":
        draft = in_review(
            replace(
                draft,
                status=draft.withdrawn_from or "pending",
                withdrawn_from=None,
                withdrawn_reason=None,
            )
        )
        outcome = "returned"
    if new_hash != draft.latest_hash or item.content_hash != draft.item_hash:
        if draft.status == "pending" and not draft.edited:
            if new_hash != draft.generated_hash:
                draft = replace(
                    draft, text=generated.text, generated_hash=new_hash, source=generated.source
                )
                outcome = "regenerated"
            draft = replace(draft, suggestion=None)
        else:
            draft = replace(
                draft,
                status="stale",
                approved_hash=None,
                suggestion=generated.text if generated.text != draft.text else None,
                source=generated.source,
            )
            outcome = "stale"
        draft = replace(draft, latest_hash=new_hash, item_hash=item.content_hash)
    draft = replace(draft, length=length(platform, draft.text), **meta)
    return _stamped(existing, draft, now, outcome)


def refresh(existing: Draft, platform: SocialPlatform, now: str) -> tuple[Draft, str]:
    """A draft whose inputs did not change since it was generated: only what a hand edit
    changes (its length, an approval that no longer holds) is brought up to date."""
    draft = in_review(existing)
    outcome = "reopened" if draft.status != existing.status else "unchanged"
    if draft.edited:
        draft = replace(draft, length=length(platform, draft.text))
    return _stamped(existing, draft, now, outcome)


def _stamped(existing: Draft, draft: Draft, now: str, outcome: str) -> tuple[Draft, str]:
    """`updated` moves only when something a reviewer sees changed."""
    if draft == existing:
        return existing, "unchanged"
    if replace(draft, generator_key=existing.generator_key) == existing:
        return draft, "unchanged"
    return replace(draft, updated=now), outcome


def withdraw(existing: Draft, reason: str, now: str) -> Draft:
    draft = in_review(existing)
    if draft.status != "withdrawn":
        draft = replace(draft, status="withdrawn", withdrawn_from=draft.status)
    draft = replace(draft, withdrawn_reason=reason)
    return existing if draft == existing else replace(draft, updated=now)


# Generation -----------------------------------------------------------------------------


def hashtag(tag: str) -> str | None:
    """`#tag` for a tag or configured hashtag: words joined in CamelCase (screen readers read
    `#ParkstadLimburg` as words), apostrophes and other non-word characters dropped."""
    words = [w.replace("'", "").replace("’", "") for w in _HASHTAG_SPLIT.split(tag)]
    words = [w for w in words if w]
    if not words:
        return None
    body = words[0] if len(words) == 1 else "".join(w[:1].upper() + w[1:] for w in words)
    if not any(c.isalpha() for c in body):
        return None
    return "#" + body


def hashtags_for(item: Item, platform: SocialPlatform) -> tuple[str, ...]:
    """Configured hashtags first, then up to MAX_TAG_HASHTAGS from the item's tags."""
    out: list[str] = []
    seen: set[str] = set()
    from_tags = 0
    for source, raw in [("config", t) for t in platform.hashtags] + [
        ("item", t) for t in item.tags
    ]:
        tag = hashtag(raw)
        if tag is None or tag.casefold() in seen:
            continue
        if source == "item":
            if from_tags >= MAX_TAG_HASHTAGS:
                continue
            from_tags += 1
        seen.add(tag.casefold())
        out.append(tag)
    return tuple(out)


def utm_link(url: str, platform: SocialPlatform) -> str:
    params = [
        (key, value)
        for key, value in (
            ("utm_source", platform.utm_source),
            ("utm_medium", platform.utm_medium),
            ("utm_campaign", platform.utm_campaign),
        )
        if value
    ]
    if not params:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(params)


class Composer:
    """Renders posts from the per-platform templates `templates/social/<platform>.txt.j2`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.dirs = templates.template_dirs(config.templates_dir)
        self._text_env: Any = None
        self.track_labels = {t.id: t.label for t in config.tracks.values()}

    @property
    def text_env(self) -> Any:
        if self._text_env is None:
            env = templates.environment(self.dirs, self.config.site.tz)
            env.autoescape = False  # plain text: `&` stays `&`
            self._text_env = env
        return self._text_env

    def generate(self, entry: Entry, platform: SocialPlatform) -> Generated:
        item = entry.item
        link = utm_link(entry.url, platform)
        override = item.social_override(platform.id)
        if override is not None:
            text = normalize_text(override)
            return Generated(text, length(platform, text), platform.limit, link, "override")
        context = {
            "item": item,
            "event": item.event,
            "kind_label": item.kind_label,
            "track_label": self.track_labels.get(item.track, item.track),
            "site": self.config.site,
            "link": link,
            "platform": platform.id,
        }
        name = f"social/{platform.id}.txt.j2"

        def render(parts: Parts) -> str:
            return normalize_text(
                templates.render(
                    self.text_env,
                    name,
                    title=parts.title,
                    summary=parts.summary,
                    hashtags=list(parts.hashtags),
                    details=parts.details,
                    **context,
                )
            )

        parts = Parts(
            title=normalize_text(item.title),
            summary=normalize_text(item.summary),
            hashtags=hashtags_for(item, platform),
        )
        fitted: Fitted = fit(render, parts, counter(platform), platform.limit)
        return Generated(
            fitted.text, fitted.length, fitted.limit, link, "template", fitted.shortened
        )


# Build ------------------------------------------------------------------------------------


@dataclass
class SocialReport:
    created: int = 0
    regenerated: int = 0
    stale: int = 0
    unchanged: int = 0
    withdrawn: int = 0
    reopened: int = 0  # approved, then edited: back in review
    returned: int = 0  # item back online
    problems: tuple[Problem, ...] = ()

    def summary(self) -> str:
        extra = ""
        if self.reopened:
            extra += f", {self.reopened} na bewerking terug ter beoordeling"
        if self.returned:
            extra += f", {self.returned} terug online"
        return (
            f"social: {self.created} nieuw, {self.regenerated} opnieuw gemaakt, "
            f"{self.stale} verouderd, {self.withdrawn} ingetrokken, "
            f"{self.unchanged} ongewijzigd{extra}"
        )


def _moment(now: datetime, config: Config) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=config.site.tz)


def stamp(now: datetime, config: Config) -> str:
    return _moment(now, config).astimezone(config.site.tz).isoformat(timespec="seconds")


def sync_drafts(config: Config, entries: Sequence[Entry], now: datetime) -> SocialReport:
    """Bring outbox/social/ in line with the live entries; write the review page.

    Call with the build lock held (the build does); review commands take the same lock.

    Incremental: `social-index.json` (beside the state store, safe to delete) records per
    item folder the key of the entry its drafts were made from and the signature (size,
    mtime, inode) of the folder and of every draft file in it, as this function left them.
    While the global inputs (settings, templates, code) are the same, a folder whose entry
    key and signatures all still hold is left alone: no read, no parse, no generation. Any
    difference (a hand edit, a new or deleted file, a changed item) sends the folder through
    the full rules below.
    """
    moment = _moment(now, config)
    when = stamp(moment, config)
    outbox = Outbox(config.outbox_dir)
    report = SocialReport()
    problems: list[Problem] = []
    composer = Composer(config)
    base_key = _base_key(config, composer)
    enabled = [p for p in config.social.values() if p.enabled]
    index = SyncIndex.for_config(config)
    fingerprint = _global_fingerprint(config, base_key)
    previous = index.folders if index.fingerprint == fingerprint else {}
    root = outbox.text_path(DRAFT_DIR)
    try:
        folders = {e.name for e in os.scandir(root) if e.is_dir() and _ITEM_ID.match(e.name)}
    except FileNotFoundError:
        folders = set()

    live: dict[str, Item] = {}
    entry_keys: dict[str, str] = {}
    clean: dict[str, list[Any]] = {}
    dirty: list[Entry] = []
    for entry in entries:
        item = entry.item
        live[item.id] = item
        key = _entry_key(entry)
        entry_keys[item.id] = key
        record = previous.get(item.id)
        if record is not None and record[0] == key and _folder_holds(root, item.id, record):
            clean[item.id] = record
        else:
            dirty.append(entry)
    dirty_gone: list[str] = []
    for folder in folders:
        if folder in live:
            continue
        record = previous.get(folder)
        if record is not None and record[0] == _GONE and _folder_holds(root, folder, record):
            clean[folder] = record
        else:
            dirty_gone.append(folder)

    dirty_folders = sorted({e.item.id for e in dirty if e.item.id in folders} | set(dirty_gone))
    # The parse cache pays for itself only when many drafts must be read.
    cache = ParseCache.for_config(config) if len(dirty_folders) > _CACHE_THRESHOLD else None
    stored = _scan_folders(outbox, dirty_folders, cache)
    current: dict[str, Draft] = {}
    created: list[tuple[Draft, bytes]] = []
    broken_platforms: set[str] = set()
    wanted: set[str] = set()
    unsettled: set[str] = set()  # item folders not left in a state the index may vouch for
    digests = {draft_id: found.digest for draft_id, found in stored.items() if found.digest}

    for entry in dirty:
        item = entry.item
        if not item.social_enabled:
            continue
        for platform in enabled:
            draft_id = f"{item.id}/{platform.id}"
            wanted.add(draft_id)
            found = stored.get(draft_id)
            if found is not None and found.problem is not None:
                problems.append(found.problem)
                unsettled.add(item.id)
                continue
            existing = found.draft if found is not None else None
            key = generator_key(base_key, entry, platform)
            if (
                existing is not None
                and existing.generator_key == key
                and (existing.status != "withdrawn")
            ):
                draft, outcome = refresh(existing, platform, when)
            elif platform.id in broken_platforms:
                unsettled.add(item.id)
                if existing is not None:
                    current[draft_id] = existing
                continue
            else:
                try:
                    generated = composer.generate(entry, platform)
                except KrimppostError as exc:
                    broken_platforms.add(platform.id)
                    problems.extend(_project_relative(p, config) for p in exc.problems)
                    unsettled.add(item.id)
                    if existing is not None:
                        current[draft_id] = existing
                    continue
                draft, outcome = reconcile(existing, generated, entry, platform, when, key)
            if found is None:
                data = dump_draft(draft)
                outbox.stage(draft.path, data)  # new files: committed together, one sync
                created.append((draft, data))
                digests[draft_id] = digest(data)
            elif draft is not existing and not write_if_unchanged(
                outbox, draft, found.digest, cache, digests
            ):
                outcome = "unchanged"  # saved by someone meanwhile: next run
                draft = existing or draft
                unsettled.add(item.id)
            current[draft_id] = draft
            _count(report, outcome)
    try:
        outbox.commit()
    except BaseException:
        outbox.discard()
        raise
    if cache is not None:
        for draft, data in created:
            cache.remember(outbox, draft, data)

    for draft_id, found in stored.items():
        if draft_id in wanted:
            continue
        item_id = draft_id.split("/")[0]
        if found.draft is None:
            if found.problem is not None:
                problems.append(found.problem)
            unsettled.add(item_id)
            continue
        if item_id not in live:
            reason = WITHDRAWN_GONE
        elif not live[item_id].social_enabled:
            reason = WITHDRAWN_SOCIAL_OFF
        else:
            reason = WITHDRAWN_PLATFORM_OFF
        draft = withdraw(found.draft, reason, when)
        if draft is not found.draft:
            if write_if_unchanged(outbox, draft, found.digest, cache, digests):
                if found.draft.status != "withdrawn":
                    report.withdrawn += 1
            else:
                draft = found.draft
                unsettled.add(item_id)
        current[draft_id] = draft

    outbox.commit()
    enabled_ids = {p.id for p in enabled}
    report.unchanged += sum(
        sum(1 for platform in record[2] if platform in enabled_ids)
        for folder, record in clean.items()
        if folder in live and live[folder].social_enabled
    )
    report.problems = tuple(sorted(set(problems), key=Problem.sort_key))

    folders_now = dict(clean)
    for folder in [e.item.id for e in dirty] + dirty_gone:
        if folder in unsettled:
            continue
        record = _folder_record(root, folder, entry_keys.get(folder, _GONE), digests)
        if record is not None:
            folders_now[folder] = record
    page_key = _index_page_key(config, folders_now, report.problems)
    if unsettled or not _page_has_key(outbox, page_key):
        # Drafts left as they were (clean folders) are read back; the cache makes it cheap.
        if cache is None:
            cache = ParseCache.for_config(config)
        rest = _scan_folders(outbox, sorted(clean), cache)
        for draft_id, found in rest.items():
            if found.draft is not None:
                current.setdefault(draft_id, found.draft)
        drafts = sorted(current.values(), key=lambda d: d.id)
        # Folders the index cannot vouch for: the key must come from the drafts themselves.
        key = "" if unsettled else page_key
        write_review_page(config, outbox, drafts, report.problems, moment, key)
    if cache is not None:
        cache.save()
    index.save(fingerprint, folders_now)
    return report


# Incremental sync -------------------------------------------------------------------------

INDEX_NAME = "social-index.json"
_GONE = "-"  # the entry key of a folder whose item is not live
_CACHE_THRESHOLD = 50


class SyncIndex:
    """Per item folder, what `sync_drafts` left there: `[entry key, folder signature,
    {platform: draft file signature}]`, under a fingerprint of the global inputs. A plain
    JSON file beside the state store, safe to delete (the next build reads every draft)."""

    VERSION = 2

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.fingerprint = ""
        self.folders: dict[str, list[Any]] = {}
        if path is None:
            return
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return
        if isinstance(data, dict) and data.get("version") == self.VERSION:
            folders = data.get("folders")
            if isinstance(folders, dict) and isinstance(data.get("fingerprint"), str):
                self.fingerprint = data["fingerprint"]
                self.folders = folders

    @classmethod
    def for_config(cls, config: Config) -> SyncIndex:
        return cls(config.path(config.state.path).with_name(INDEX_NAME))

    def save(self, fingerprint: str, folders: dict[str, list[Any]]) -> None:
        if self.path is None or (fingerprint == self.fingerprint and folders == self.folders):
            return
        document = {"version": self.VERSION, "fingerprint": fingerprint, "folders": folders}
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temp.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")
            os.replace(temp, self.path)
        except OSError:
            temp.unlink(missing_ok=True)  # an index that cannot be written is not an error


def _entry_key(entry: Entry) -> str:
    """What a draft depends on of its entry (the rest is in the global fingerprint)."""
    item = entry.item
    if not item.social_enabled:
        return "off"
    return f"{item.content_hash}|{entry.url}|{entry.published.isoformat()}"


def _global_fingerprint(config: Config, base_key: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(base_key.encode())
    h.update(repr((tuple(config.social.values()), _CODE, INDEX_NAME)).encode())
    return h.hexdigest()


def _folder_holds(root: str, folder: str, record: list[Any]) -> bool:
    """The folder and every draft in it are as the index recorded them."""
    directory = os.path.join(root, folder)
    try:
        if os.stat(directory).st_mtime_ns != record[1]:
            return False  # a file added, removed or replaced
        for platform, (signature, _digest) in record[2].items():
            if _signature(os.stat(os.path.join(directory, platform + ".md"))) != signature:
                return False
    except (OSError, TypeError, AttributeError, IndexError):
        return False
    return True


def _folder_record(
    root: str, folder: str, key: str, digests: Mapping[str, str]
) -> list[Any] | None:
    """`[entry key, folder mtime, {platform: [file signature, digest of its bytes]}]`."""
    directory = os.path.join(root, folder)
    try:
        mtime = os.stat(directory).st_mtime_ns
        signatures: dict[str, list[str]] = {}
        for platform in SOCIAL_PLATFORMS:
            path = os.path.join(directory, platform + ".md")
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            known = digests.get(f"{folder}/{platform}")
            if known is None:
                return None  # not a file this run read or wrote
            signatures[platform] = [_signature(st), known]
        if os.stat(directory).st_mtime_ns != mtime:
            return None  # changed while we looked
    except OSError:
        return None
    return [key, mtime, signatures]


def _scan_folders(
    outbox: Outbox, folders: Iterable[str], cache: ParseCache | None
) -> dict[str, Stored]:
    found: dict[str, Stored] = {}
    for folder in folders:
        for platform in SOCIAL_PLATFORMS:
            draft_id = f"{folder}/{platform}"
            stored = read_stored(outbox, draft_id, cache)
            if stored is not None:
                found[draft_id] = stored
    return found


def _review_template(config: Config) -> bytes:
    for directory in templates.template_dirs(config.templates_dir):
        page = directory / "social" / "index.html"
        if page.is_file():
            return page.read_bytes()
    return b""


def _index_page_key(
    config: Config, folders: Mapping[str, list[Any]], problems: Sequence[Problem]
) -> str:
    """The review page's key from the index: the digests of the draft files' bytes (the
    page of unsettled folders is keyed by `_page_key` instead)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((config.site, tuple(config.social.values()), _CODE, "index")).encode())
    h.update(_review_template(config))
    for folder in sorted(folders):
        for platform, (_sig, file_digest) in folders[folder][2].items():
            h.update(f"{folder}/{platform}:{file_digest}\n".encode())
    for problem in problems:
        h.update(str(problem).encode())
    return h.hexdigest()


def _page_has_key(outbox: Outbox, key: str) -> bool:
    try:
        with open(outbox.text_path(INDEX), "rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    m = _PAGE_KEY.search(head)
    return m is not None and m.group(1).decode() == key


def _base_key(config: Config, composer: Composer) -> str:
    """What every draft's text depends on besides its item and platform: the site and track
    settings, the social templates (not the site's: a CSS change must not touch 20,000
    drafts) and this code."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((config.site, tuple(config.tracks.values()), _CODE)).encode())
    seen: set[str] = set()
    for directory in composer.dirs:
        folder = directory / "social"
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and name != "index.html" and name not in seen:
                seen.add(name)  # the first directory wins, as in the template loader
                h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def generator_key(base: str, entry: Entry, platform: SocialPlatform) -> str:
    """Changes whenever the generated text could change."""
    parts = (
        base,
        repr(platform),
        entry.item.content_hash,
        entry.url,
        entry.published.isoformat(),
    )
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def _project_relative(problem: Problem, config: Config) -> Problem:
    """A template problem names the file as the editor knows it: `templates/social/x.txt.j2`."""
    try:
        relative = Path(problem.path).resolve().relative_to(config.root.resolve())
    except (ValueError, OSError):
        return problem
    return replace(problem, path=relative.as_posix())


def _count(report: SocialReport, outcome: str) -> None:
    setattr(report, outcome, getattr(report, outcome) + 1)


def override_problems(config: Config, items: Sequence[Item]) -> list[Problem]:
    """Per-platform overrides (`social: {x: …}`) longer than the platform's limit."""
    problems = []
    for item in items:
        if not item.social_enabled:
            continue
        for platform_id, text in item.social_overrides:
            platform = config.social.get(platform_id)
            if platform is None or not platform.enabled:
                continue
            n = length(platform, normalize_text(text))
            if n > platform.limit:
                problems.append(
                    Problem(
                        item.source,
                        item.line_of(f"social.{platform_id}"),
                        f"'social.{platform_id}': de eigen tekst voor "
                        f"{PLATFORM_LABELS[platform_id]} is {n} {UNITS[platform_id]} lang, "
                        f"de limiet is {platform.limit}; kort de tekst in",
                    )
                )
    return problems


# Review views and the review page ---------------------------------------------------------


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


def view(config: Config, draft: Draft, now: datetime) -> DraftView:
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
    elif reviewed.published and _parse_moment(reviewed.published) > _moment(now, config):
        warnings.append(
            "link nog niet live: embargo tot "
            f"{templates.dutch_date(_parse_moment(reviewed.published), config.site.tz)} "
            f"{templates.dutch_time(_parse_moment(reviewed.published), config.site.tz)} uur"
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


def _parse_moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class ItemGroup:
    item: str
    title: str
    link: str
    published: str | None
    drafts: tuple[DraftView, ...]


def group_views(views: Iterable[DraftView]) -> list[ItemGroup]:
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


def status_counts(views: Iterable[DraftView]) -> Mapping[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for v in views:
        counts[v.status] += 1
    return counts


_PAGE_KEY = regex.compile(rb'<meta name="krimppost-sleutel" content="([0-9a-f]+)">')


def _page_key(config: Config, drafts: Sequence[Draft], problems: Sequence[Problem]) -> str:
    """Everything the review page shows, so an unchanged page is not rendered again."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((config.site, tuple(config.social.values()), _CODE)).encode())
    for directory in templates.template_dirs(config.templates_dir):
        page = directory / "social" / "index.html"
        if page.is_file():
            h.update(page.read_bytes())
            break
    for draft in sorted(drafts, key=lambda d: d.id):
        h.update(repr(draft).encode())
    for problem in problems:
        h.update(str(problem).encode())
    return h.hexdigest()


def render_review_page(
    config: Config,
    drafts: Sequence[Draft],
    problems: Sequence[Problem],
    now: datetime,
    key: str = "",
) -> bytes:
    moment = _moment(now, config)
    views = [view(config, d, moment) for d in drafts]
    env = templates.environment(templates.template_dirs(config.templates_dir), config.site.tz)
    html = templates.render(
        env,
        "social/index.html",
        page_key=key or _page_key(config, drafts, problems),
        site=config.site,
        groups=group_views(views),
        counts=status_counts(views),
        status_labels=STATUS_LABELS,
        problems=list(problems),
        now=moment,
        total=len(views),
    )
    return html.encode()


def write_review_page(
    config: Config,
    outbox: Outbox,
    drafts: Sequence[Draft],
    problems: Sequence[Problem],
    now: datetime,
    key: str = "",
) -> None:
    """Render outbox/social/index.html, unless what it shows did not change."""
    key = key or _page_key(config, drafts, problems)
    target = outbox.path_for(INDEX)
    try:
        current: bytes | None = target.read_bytes()
    except FileNotFoundError:
        current = None
    if current is not None and (m := _PAGE_KEY.search(current)) and m.group(1).decode() == key:
        return
    data = render_review_page(config, drafts, problems, now, key)
    if data != current:
        outbox.write_now(INDEX, data)


def load_all(config: Config) -> tuple[list[Draft], list[Problem]]:
    """Every readable draft, and a problem for every draft file that cannot be read."""
    outbox = Outbox(config.outbox_dir)
    drafts: list[Draft] = []
    problems: list[Problem] = []
    cache = ParseCache.for_config(config)
    found_all = scan(outbox, cache)
    cache.save()
    for found in found_all.values():
        if found.draft is not None:
            drafts.append(found.draft)
        elif found.problem is not None:
            problems.append(found.problem)
    return drafts, problems


def refresh_review_page(config: Config, now: datetime) -> None:
    drafts, problems = load_all(config)
    write_review_page(config, Outbox(config.outbox_dir), drafts, problems, now)
