"""The draft file: `outbox/social/<item-id>/<platform>.md`, front matter then the post text.

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

The pipeline writes the front matter as flat `key: value` lines (plain words, integers, null
or double-quoted strings, a block for text over several lines): YAML, which `parse_draft`
reads with libyaml's safe loader like anything comms staff write by hand.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from typing import Any

import regex
import yaml

from pipeline.content.model import SOCIAL_PLATFORMS
from pipeline.errors import Problem
from pipeline.outbox import Outbox, digest

DRAFT_DIR = "social"
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "stale", "withdrawn")
ITEM_ID = regex.compile(r"^[a-z0-9](?:[a-z0-9-]{0,118}[a-z0-9])?$")


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
        if platform in SOCIAL_PLATFORMS and ITEM_ID.match(item_id):
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


# libyaml when available: a hand-edited header is parsed as YAML.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)

# A word YAML reads back as the same string (no number, date, bool or null look-alike).
_PLAIN = regex.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "true", "false", "on", "off", "null"))
# Characters a double-quoted scalar must escape: quote and backslash, and whatever YAML does
# not allow raw or would read as a line break (C0/C1 controls, DEL, U+2028/9, BOM, U+FFFE/F).
_ESCAPE = regex.compile('["\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]')
_AWKWARD = regex.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]|\\\\[bf/]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _scalar(value: Any) -> str | None:
    """`value` as a flat front-matter scalar; None when it needs YAML (a block, a list)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str) or "\n" in value:
        return None
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    quoted = json.dumps(value, ensure_ascii=False)  # C speed; YAML reads JSON strings...
    if _AWKWARD.search(quoted) is None:
        return quoted
    # ...but not raw DEL, C1 controls, line separators or a BOM: escaped one by one.
    return '"' + _ESCAPE.sub(lambda m: _ESCAPES.get(m[0]) or f"\\u{ord(m[0]):04x}", value) + '"'


def _yaml(meta: dict[Any, Any]) -> str:
    text = yaml.dump(meta, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000)
    # After a keep-chomped block (`|+`) PyYAML ends the document with a `...` line, which would
    # close the front matter early; the next line ends the block just as well. (An indented
    # `...` is the block's own last line.)
    text = text[:-4] if text.endswith("\n...\n") else text
    # A value ending in a line separator PyYAML does not end with a newline: the next key
    # would join its last line.
    return text if text.endswith("\n") else text + "\n"


def dump_meta(meta: dict[str, Any], extra: dict[Any, Any]) -> str:
    """Front-matter lines: the pipeline's keys as flat scalars where possible, YAML for the
    rest and for keys added by hand."""
    out: list[str] = []
    for key, value in meta.items():
        flat = _scalar(value)
        out.append(f"{key}: {flat}\n" if flat is not None else _yaml({key: value}))
    if extra:
        out.append(_yaml(extra))
    return "".join(out)


def dump_draft(draft: Draft) -> bytes:
    meta: dict[str, Any] = {}
    for key in _KEYS:
        value = getattr(draft, key)
        if key in _ALWAYS or value is not None:
            meta[key] = value
    return f"---\n{dump_meta(meta, dict(draft.extra))}---\n{normalize_text(draft.text)}\n".encode()


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
    signature: list[int] | None = None  # [mtime_ns, size, inode] of the file as read


def scan(outbox: Outbox) -> dict[str, Stored]:
    """Every draft file under outbox/social/, by id."""
    base = outbox.path_for(DRAFT_DIR)
    try:
        folders = sorted(e.name for e in os.scandir(base) if e.is_dir() and ITEM_ID.match(e.name))
    except FileNotFoundError:
        return {}
    found: dict[str, Stored] = {}
    for folder in folders:
        found.update(read_folder(outbox, folder))
    return found


def read_folder(outbox: Outbox, folder: str) -> dict[str, Stored]:
    """The drafts in one item folder, by id."""
    found: dict[str, Stored] = {}
    for platform in SOCIAL_PLATFORMS:
        draft_id = f"{folder}/{platform}"
        stored = read_stored(outbox, draft_id)
        if stored is not None:
            found[draft_id] = stored
    return found


def read_stored(outbox: Outbox, draft_id: str) -> Stored | None:
    path = outbox.text_path(draft_path(draft_id))  # a string: this runs per draft
    try:
        with open(path, "rb") as fh:
            before = os.fstat(fh.fileno())
            raw = fh.read()
            st = os.fstat(fh.fileno())
    except FileNotFoundError:
        return None
    except OSError as exc:
        problem = Problem(display_path(draft_path(draft_id)), None, f"kan niet lezen: {exc}")
        return Stored(draft_id, None, None, problem)
    # Saved while we read: no signature, so the index never vouches for these bytes.
    same = (
        (before.st_mtime_ns, before.st_size)
        == (st.st_mtime_ns, st.st_size)
        == (
            st.st_mtime_ns,
            len(raw),
        )
    )
    signature = [st.st_mtime_ns, st.st_size, st.st_ino] if same else None
    try:
        return Stored(draft_id, digest(raw), parse_draft(raw, draft_id), None, signature)
    except DraftError as exc:
        return Stored(draft_id, digest(raw), None, exc.problem, signature)


def write_if_unchanged(
    outbox: Outbox,
    draft: Draft,
    expected: str | None,
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
        return False
    data = dump_draft(draft)
    if data != current:
        # Staged, not written: the caller commits all drafts with one sync (25,000 drafts
        # fsync'ed one by one cost a minute on a cold build).
        outbox.stage(draft.path, data, expect=expected)
    if digests is not None:
        digests[draft.id] = digest(data)
    return True


def in_review(draft: Draft) -> Draft:
    """The draft with the approval dropped when its text changed after approval."""
    if draft.status == "approved" and draft.approved_hash != text_hash(draft.text):
        return replace(draft, status="pending", approved_hash=None)
    return draft
