"""Declared front-matter fields: every rule of the content contract, every error with its line.

Validation never stops at the first problem: an editor sees all of them in one `check`.
Checks that need the file system (does an image exist?) live in `reader.py`, so the
result of this module depends only on the file's text and the settings, and can be cached.
"""

from __future__ import annotations

import calendar
import difflib
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pipeline.content.model import KINDS, SOCIAL_PLATFORMS

ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,118}[a-z0-9])?$")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DATETIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_DURATION = re.compile(r"^(\d{1,3}):([0-5]\d):([0-5]\d)$")
_MIME = re.compile(r"^(audio|video)/[a-z0-9][a-z0-9.+-]*$")
# Years an item's dates may have: wide enough for any archive and any plan, narrow enough
# that an offset, a default event duration or a month arithmetic never leaves Python's range.
# From 1970: before 1940 Europe/Amsterdam's offset was +00:19:32, which RFC 822 and RFC 3339
# dates in the feeds cannot write.
MIN_YEAR, MAX_YEAR = 1970, 2999
# Upper bounds on what one item may hold: far above any real item, low enough that the
# feeds, calendars and social drafts stay fast (feedgen's category() is quadratic).
MAX_TAGS = 50
MAX_REGIONS = 50
MAX_ATTACHMENTS = 100
MAX_AUDIO_BYTES = 5_000_000_000  # 5 GB: a 24-hour episode at 320 kbit/s is 3.5 GB
MAX_CHARS: dict[str, int] = {
    "title": 300,
    "summary": 2000,
    "image_alt": 1000,
    "location": 300,
    "tag": 100,
    "attachment": 300,
    "social": 5000,
    "url": 2000,
}
# Line breaks (also U+2028/U+2029, NEL, VT, FF) in a one-line field come from a YAML block
# scalar or a paste: folded into one space. Other control characters, surrogates and the
# non-characters U+FFFE/U+FFFF are invisible and break XML and iCalendar: rejected.
_BREAKS = re.compile(r"\s*[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]\s*")
_MULTILINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# The bidi embeddings and overrides U+202A-U+202E too: they make a title read otherwise than it
# is stored ("Trojan Source"); the isolates and marks that right-to-left text needs stay.
CONTROL_CHARACTERS = _CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff\ufffe\uffff]"
)
_MONTHS = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
]


class FieldError(ValueError):
    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.key = key  # a more precise key path for the line, e.g. "event.start"


class FieldErrors(ValueError):
    """Several problems of one value (elements of a list), each reported on its own line."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class ReaderSettings:
    """What item validation needs from the config; small and picklable for worker processes."""

    tracks: tuple[str, ...]
    timezone: str
    base_url: str
    fingerprint: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def type_name(value: object) -> str:
    if value is None:
        return "leeg"
    return {
        str: "tekst",
        int: "een getal",
        float: "een getal",
        bool: "true/false",
        list: "een lijst",
        dict: "een tabel met sleutels",
    }.get(type(value), type(value).__name__)


def control_problem(value: str) -> str | None:
    """The Dutch complaint about the first invisible control character in `value`, if any."""
    if m := _CONTROL.search(value):
        return (
            f"bevat een onzichtbaar stuurteken (U+{ord(m.group()):04X}) op positie "
            f"{m.start() + 1}; verwijder het"
        )
    return None


def text(
    value: Any, *, empty_ok: bool = False, multiline: bool = False, limit: int | None = None
) -> str:
    """A string field: one line (line breaks folded into a space) unless `multiline`."""
    if not isinstance(value, str):
        hint = "; zet de waarde tussen aanhalingstekens" if isinstance(value, int | float) else ""
        raise FieldError(f"moet tekst zijn, niet {type_name(value)}{hint}")
    value = (_MULTILINE_BREAKS.sub("\n", value) if multiline else _BREAKS.sub(" ", value)).strip()
    if problem := control_problem(value):
        raise FieldError(problem)
    if not empty_ok and not value:
        raise FieldError("mag niet leeg zijn")
    if limit is not None and len(value) > limit:
        raise FieldError(f"is te lang: {len(value)} tekens, het maximum is {limit}")
    return value


def limited(limit: int, **options: Any) -> Callable[[Any], str]:
    return lambda value: text(value, limit=limit, **options)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"moet true of false zijn, niet {type_name(value)}")
    return value


def string_list(value: Any, maximum: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FieldError(
            f"moet een lijst zijn, bijvoorbeeld [wonen, krimp], niet {type_name(value)}"
        )
    if len(value) > maximum:
        raise FieldError(f"heeft {len(value)} elementen; het maximum is {maximum}")
    out: list[str] = []
    errors: list[FieldError] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            errors.append(
                FieldError(
                    f"element {index + 1} moet niet-lege tekst zijn, niet {type_name(entry)}",
                    str(index),
                )
            )
            continue
        try:
            entry = text(entry, limit=MAX_CHARS["tag"])
        except FieldError as exc:
            errors.append(FieldError(f"element {index + 1} {exc.message}", str(index)))
            continue
        if entry not in out:
            out.append(entry)
    if len(errors) == 1:
        raise FieldError(errors[0].message)
    if errors:
        raise FieldErrors(errors)
    return tuple(out)


def http_url(value: Any) -> str:
    url = text(value, limit=MAX_CHARS["url"])
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise FieldError(f"moet een volledige http(s)-URL zijn, niet {url!r}")
    return url


def moment(value: Any, tz: ZoneInfo) -> tuple[datetime, bool]:
    """A date or datetime; without offset it is in the site time zone. Returns (aware, has_time)."""
    if isinstance(value, datetime | date):  # only when a caller bypasses the YAML loader
        value = value.isoformat()
    if not isinstance(value, str):
        raise FieldError(
            f"moet een datum (2026-11-27) of datum met tijd (2026-11-27T10:00) zijn, "
            f"niet {type_name(value)}"
        )
    raw = value.strip()
    if m := _DATE.match(raw):
        return datetime.combine(_calendar_date(raw, *m.groups()), time(0), tz), False
    if m := _DATETIME.match(raw):
        y, mo, d, hh, mm, ss, frac, offset = m.groups()
        day = _calendar_date(raw, y, mo, d)
        if int(hh) > 23 or int(mm) > 59 or int(ss or 0) > 59:
            raise FieldError(f"{raw!r} is geen bestaande tijd")
        try:
            parsed = datetime.fromisoformat(
                f"{day.isoformat()}T{int(hh):02d}:{mm}:{ss or '00'}{frac or ''}"
                + ("" if offset is None else ("+00:00" if offset == "Z" else _colon(offset)))
            )
        except ValueError:
            raise FieldError(f"{raw!r} is geen geldige datum met tijd") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=tz), True
        return parsed.astimezone(tz), True
    raise FieldError(
        f"{raw!r} is geen datum; schrijf 2026-11-27 of 2026-11-27T10:00 (eventueel met +01:00)"
    )


def _colon(offset: str) -> str:
    return offset if ":" in offset else f"{offset[:3]}:{offset[3:]}"


def _calendar_date(raw: str, y: str, mo: str, d: str) -> date:
    year, month, day = int(y), int(mo), int(d)
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise FieldError(
            f"{raw!r} ligt buiten het toegestane bereik: het jaar moet tussen "
            f"{MIN_YEAR} en {MAX_YEAR} liggen"
        )
    if not 1 <= month <= 12:
        raise FieldError(f"{raw!r} is geen bestaande datum: maand {month} bestaat niet")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise FieldError(
            f"{raw!r} is geen bestaande datum: {day} {_MONTHS[month - 1]} {year} bestaat niet"
        )
    return date(year, month, day)


def confined_path(value: str, item_dir: str) -> str:
    """A path relative to the item's folder, or `/`-rooted in content/; never outside it.

    Returns the normalised candidate relative to the item folder; `reader.py` resolves it
    against the disk (falling back to the content root) and reports a missing file.
    """
    if "\\" in value or "\x00" in value:
        raise FieldError(f"ongeldig pad {value!r}: gebruik '/' als scheidingsteken")
    base = "" if value.startswith("/") else item_dir
    joined = posixpath.normpath(posixpath.join(base, value.lstrip("/")))
    if joined == ".." or joined.startswith("../") or joined.startswith("/"):
        raise FieldError(f"pad {value!r} verwijst naar een plek buiten content/")
    if joined in (".", ""):
        raise FieldError(f"pad {value!r} wijst geen bestand aan")
    return joined


def is_url(value: str) -> bool:
    return bool(urlsplit(value).scheme)


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; bedoelde je '{close[0]}'?" if close else ""


# A file an item names, checked on disk by the reader: (key, candidate path, raw value, line).
RequiredFile = tuple[str, str, str, int]


@dataclass
class Fields:
    """Collects validated values and problems for one file."""

    data: dict[str, Any]
    lines: dict[str, int]
    problems: list[tuple[int, str]]
    values: dict[str, Any]
    # Every local file named by a value that passed, also when other keys failed: the reader
    # reports a missing file in the same run as the item's other problems.
    files: list[RequiredFile] = field(default_factory=list)

    def line(self, key: str) -> int:
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key.rpartition(".")[0]
        return 1

    def error(self, key: str, message: str) -> None:
        self.problems.append((self.line(key), message))

    def take(self, key: str, check: Callable[[Any], Any], *, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                self.problems.append((1, f"verplichte sleutel '{key}' ontbreekt"))
            return None
        try:
            return check(self.data[key])
        except FieldError as exc:
            self.error(exc.key or key, f"'{exc.key or key}' {exc.message}")
        except FieldErrors as group:  # one line per element: each at its own line
            for exc in group.errors:
                self.error(f"{key}.{exc.key}" if exc.key else key, f"'{key}' {exc.message}")
        return None

    def need_file(self, key: str, value: tuple[str, str | None] | None) -> None:
        """Note a local file (`value` from `_path_or_url`) for the reader to look for."""
        if value is not None and value[1] is not None:
            self.files.append((key, value[1], value[0], self.line(key)))


ALLOWED_KEYS: tuple[str, ...] = (
    "title", "date", "kind", "track", "summary", "tags", "regions", "publish_at", "draft",
    "id", "image", "image_alt", "event", "audio", "attachments", "social", "newsletter",
    "transcript", "transcript_reason",
)  # fmt: skip
REQUIRED_KEYS: tuple[str, ...] = ("title", "date", "kind", "track", "summary")


def validate(
    data: dict[str, Any], lines: dict[str, int], settings: ReaderSettings, item_dir: str
) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """Validate front matter. Returns (values, problems as (line, message))."""
    f = Fields(data=data, lines=lines, problems=[], values={})
    tz = settings.tz

    for key in data:
        if not isinstance(key, str):
            f.problems.append((1, f"sleutel {key!r} moet tekst zijn"))
        elif key not in ALLOWED_KEYS:
            f.error(
                key,
                f"onbekende sleutel '{key}'{_suggest(key, list(ALLOWED_KEYS))}",
            )

    v = f.values
    v["title"] = f.take("title", limited(MAX_CHARS["title"]), required=True)
    v["summary"] = f.take("summary", limited(MAX_CHARS["summary"]), required=True)
    date_value = f.take("date", lambda x: moment(x, tz), required=True)

    def kind(value: Any) -> str:
        if value not in KINDS:
            raise FieldError(
                f"moet een van {', '.join(KINDS)} zijn, niet {value!r}{_suggest(str(value), list(KINDS))}"
            )
        return value

    def track(value: Any) -> str:
        if not isinstance(value, str) or value not in settings.tracks:
            raise FieldError(
                f"onbekend traject {value!r} (in config.toml staan: "
                f"{', '.join(settings.tracks)}){_suggest(str(value), list(settings.tracks))}"
            )
        return value

    def item_id(value: Any) -> str:
        value = text(value)
        if not ID_PATTERN.match(value):
            raise FieldError(
                f"{value!r} is geen geldige id: kleine letters, cijfers en '-', "
                "beginnend en eindigend met een letter of cijfer"
            )
        return value

    v["kind"] = f.take("kind", kind, required=True)
    v["track"] = f.take("track", track, required=True)
    v["tags"] = f.take("tags", lambda x: string_list(x, MAX_TAGS)) or ()
    v["regions"] = f.take("regions", lambda x: string_list(x, MAX_REGIONS)) or ()
    publish = f.take("publish_at", lambda x: moment(x, tz))
    v["draft"] = bool(f.take("draft", boolean))
    v["newsletter"] = f.take("newsletter", boolean) is not False
    v["id"] = f.take("id", item_id)
    if date_value:
        v["date"], v["date_has_time"] = date_value
    v["publish_at"] = publish[0] if publish else None

    _image(f, item_dir)
    _event(f, tz)
    _audio(f, item_dir)
    _transcript(f, item_dir)
    _attachments(f, item_dir)
    _social(f)
    v["files"] = tuple(f.files)
    return v, f.problems


def _path_or_url(value: Any, item_dir: str) -> tuple[str, str | None]:
    """Returns (url-or-path, confined content path or None for URLs)."""
    raw = text(value)
    if is_url(raw):
        return http_url(raw), None
    return raw, confined_path(raw, item_dir)


def _image(f: Fields, item_dir: str) -> None:
    f.values["image"] = f.take("image", lambda x: _path_or_url(x, item_dir))
    f.need_file("image", f.values["image"])
    f.values["image_alt"] = f.take("image_alt", limited(MAX_CHARS["image_alt"]))
    if "image" in f.data and "image_alt" not in f.data:
        f.error(
            "image",
            "'image_alt' ontbreekt: een afbeelding heeft een beschrijving nodig (alt-tekst)",
        )
    if "image_alt" in f.data and "image" not in f.data:
        f.error("image_alt", "'image_alt' zonder 'image'")


def _nested(
    f: Fields,
    key: str,
    value: Any,
    checks: dict[str, Callable[[Any], Any]],
    required: tuple[str, ...],
    label: str = "",
) -> tuple[dict[str, Any], bool]:
    """Validate a nested mapping, every bad key reported in one run.

    Returns the values that passed and whether all did: a caller may still use a good key
    (look for a named file) when another key of the mapping is bad."""
    allowed = tuple(checks)
    if not isinstance(value, dict):
        f.error(
            key,
            f"'{key}' {label}moet een tabel met sleutels zijn ({', '.join(allowed)}), "
            f"niet {type_name(value)}",
        )
        return {}, False
    ok = True
    meant: set[str] = set()  # a misspelt key is reported once, not also as missing
    for name in value:
        if name not in allowed:
            ok = False
            meant.update(difflib.get_close_matches(str(name), list(allowed), n=1, cutoff=0.6))
            f.error(
                f"{key}.{name}",
                f"'{key}.{name}' {label}onbekende sleutel '{name}'"
                f"{_suggest(str(name), list(allowed))} (toegestaan: {', '.join(allowed)})",
            )
    for name in required:
        if name not in value:
            ok = False
            if name not in meant:
                f.error(key, f"'{key}' {label}mist verplichte sleutel '{name}'")
    out: dict[str, Any] = {}
    for name, check in checks.items():
        if name not in value:
            continue
        try:
            out[name] = check(value[name])
        except FieldError as exc:
            ok = False
            sub = exc.key or f"{key}.{name}"
            f.error(sub, f"'{sub}' {exc.message}")
    return out, ok


def _event(f: Fields, tz: ZoneInfo) -> None:
    kind = f.data.get("kind")
    if "event" not in f.data:
        if kind == "event":
            f.problems.append(
                (
                    f.line("kind"),
                    "een item met kind: event heeft een 'event'-blok nodig met start en location",
                )
            )
        return
    # A wrong kind is one problem; the block's own problems are reported with it, so that
    # correcting the kind does not reveal new ones. An unknown kind has its own message.
    fits = kind == "event"
    if not fits and kind in KINDS:
        f.error("event", f"'event' hoort alleen bij kind: event (dit item is {kind!r})")

    def when(value: Any) -> datetime:
        return moment(value, tz)[0]

    def registration(value: Any) -> str | None:
        return None if value is None else http_url(value)

    m, ok = _nested(
        f,
        "event",
        f.data["event"],
        {
            "start": when,
            "end": when,
            "location": limited(MAX_CHARS["location"]),
            "registration_url": registration,
        },
        ("start", "location"),
    )
    if m.get("end") is not None and m.get("start") is not None and m["end"] < m["start"]:
        f.error("event.end", "'event.end' mag niet vóór 'event.start' liggen")
        ok = False
    if ok and fits:
        f.values["event"] = (m["start"], m.get("end"), m["location"], m.get("registration_url"))


def _audio(f: Fields, item_dir: str) -> None:
    kind = f.data.get("kind")
    if "audio" not in f.data:
        if kind == "podcast":
            f.problems.append(
                (
                    f.line("kind"),
                    "een item met kind: podcast heeft een 'audio'-blok nodig met url, length, duration en type",
                )
            )
        return
    fits = kind == "podcast"  # as for 'event': the block's problems come with the kind's
    if not fits and kind in KINDS:
        f.error("audio", f"'audio' hoort alleen bij kind: podcast (dit item is {kind!r})")

    def length(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FieldError(f"moet een positief geheel aantal bytes zijn, niet {value!r}")
        if value > MAX_AUDIO_BYTES:
            raise FieldError(
                f"is {value} bytes; het maximum is {MAX_AUDIO_BYTES} (5 GB): "
                "klopt de bestandsgrootte?"
            )
        return value

    def duration(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 1:02:03 as a base-60 number.
            value = f"{value // 3600}:{value // 60 % 60:02d}:{value % 60:02d}"
        raw = text(value)
        m = _DURATION.match(raw)
        if not m:
            raise FieldError(f"moet de vorm UU:MM:SS hebben, bijvoorbeeld 00:42:10, niet {raw!r}")
        return f"{int(m.group(1)):02d}:{m.group(2)}:{m.group(3)}"

    def mime(value: Any) -> str:
        raw = text(value).lower()
        if not _MIME.match(raw):
            raise FieldError(f"moet een MIME-type voor audio zijn, zoals audio/mpeg, niet {raw!r}")
        return raw

    checks = {
        "url": lambda x: _path_or_url(x, item_dir),
        "length": length,
        "duration": duration,
        "type": mime,
    }
    m, ok = _nested(f, "audio", f.data["audio"], checks, tuple(checks))
    f.need_file("audio.url", m.get("url"))
    if ok and fits:
        f.values["audio"] = (m["url"], m["length"], m["duration"], m["type"])


TRANSCRIPT_SUFFIX = ".transcript.md"


def _transcript(f: Fields, item_dir: str) -> None:
    """A podcast's transcript (WCAG 2.1 SC 1.2.1 for audio-only content): a Markdown file
    named `*.transcript.md` (not an item: the reader skips such files), or `false` with the
    reason in `transcript_reason`."""
    kind = f.data.get("kind")
    f.values["transcript"] = None
    f.values["transcript_reason"] = None
    if kind != "podcast":
        for key in ("transcript", "transcript_reason"):
            if key in f.data and kind in KINDS:
                f.error(key, f"'{key}' hoort alleen bij kind: podcast (dit item is {kind!r})")
        return
    if "transcript" not in f.data:
        f.error(
            "kind",
            "een podcast heeft een transcript nodig (WCAG 1.2.1, audio alleen): "
            f"'transcript: <naam>{TRANSCRIPT_SUFFIX}' (een Markdown-bestand naast het item), "
            "of 'transcript: false' met 'transcript_reason' als er bewust geen is",
        )
        return
    value = f.data["transcript"]
    if value is False:
        reason = f.take("transcript_reason", limited(MAX_CHARS["summary"]))
        if not reason:
            if "transcript_reason" not in f.data:
                f.error(
                    "transcript",
                    "'transcript: false' heeft een 'transcript_reason' nodig: waarom is er "
                    "geen transcript?",
                )
            return
        f.values["transcript_reason"] = reason
        return
    if "transcript_reason" in f.data:
        f.error("transcript_reason", "'transcript_reason' hoort alleen bij 'transcript: false'")

    def transcript_file(x: Any) -> tuple[str, str | None]:
        raw = text(x)
        if is_url(raw):
            raise FieldError(
                "moet een bestand in content/ zijn (het transcript staat op de pagina zelf), "
                f"geen webadres: {raw!r}"
            )
        if not raw.lower().endswith(TRANSCRIPT_SUFFIX):
            raise FieldError(
                f"moet een bestand zijn waarvan de naam eindigt op {TRANSCRIPT_SUFFIX} (andere "
                f".md-bestanden in content/ zijn items), niet {raw!r}"
            )
        return raw, confined_path(raw, item_dir)

    found = f.take("transcript", transcript_file)
    f.need_file("transcript", found)
    if found is not None:
        f.values["transcript"] = found[1]


def _attachments(f: Fields, item_dir: str) -> None:
    """Every bad attachment is reported, each with all of its bad keys."""
    f.values["attachments"] = ()
    if "attachments" not in f.data:
        return
    value = f.data["attachments"]
    if not isinstance(value, list):
        f.error(
            "attachments",
            "'attachments' moet een lijst zijn van {title, url} of {title, path}, "
            f"niet {type_name(value)}",
        )
        return
    if len(value) > MAX_ATTACHMENTS:
        f.error(
            "attachments",
            f"'attachments' heeft {len(value)} bijlagen; het maximum is {MAX_ATTACHMENTS}",
        )
        return
    out = []
    for index, entry in enumerate(value):
        key = f"attachments.{index}"
        checks = {
            "title": limited(MAX_CHARS["attachment"]),
            "url": http_url,
            "path": lambda x: (text(x), confined_path(text(x), item_dir)),
        }
        m, ok = _nested(f, key, entry, checks, ("title",), f"bijlage {index + 1}: ")
        if isinstance(entry, dict) and ("url" in entry) == ("path" in entry):
            f.error(
                key,
                f"'{key}' bijlage {index + 1} heeft óf 'url' óf 'path' nodig, niet beide of geen",
            )
            ok = False
        f.need_file(f"{key}.path", m.get("path"))
        if not ok:
            out = None
            continue
        if out is not None:
            out.append((m["title"], m["url"], None) if "url" in m else (m["title"], *m["path"]))
    if out is not None:
        f.values["attachments"] = tuple(out)


def _social(f: Fields) -> None:
    f.values["social_enabled"], f.values["social_overrides"] = True, ()
    if "social" not in f.data:
        return
    value = f.data["social"]
    if isinstance(value, bool):
        f.values["social_enabled"] = value
        return
    own_text = limited(MAX_CHARS["social"], multiline=True)
    m, ok = _nested(f, "social", value, dict.fromkeys(SOCIAL_PLATFORMS, own_text), ())
    if ok:
        f.values["social_overrides"] = tuple(
            (name, m[name]) for name in SOCIAL_PLATFORMS if name in m
        )
