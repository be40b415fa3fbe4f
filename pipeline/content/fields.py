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
from dataclasses import dataclass
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


def text(value: Any, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        hint = "; zet de waarde tussen aanhalingstekens" if isinstance(value, int | float) else ""
        raise FieldError(f"moet tekst zijn, niet {type_name(value)}{hint}")
    if not empty_ok and not value.strip():
        raise FieldError("mag niet leeg zijn")
    return value.strip()


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FieldError(f"moet true of false zijn, niet {type_name(value)}")
    return value


def string_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise FieldError(
            f"moet een lijst zijn, bijvoorbeeld [wonen, krimp], niet {type_name(value)}"
        )
    out: list[str] = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise FieldError(
                f"element {index + 1} moet niet-lege tekst zijn, niet {type_name(entry)}"
            )
        if entry.strip() not in out:
            out.append(entry.strip())
    return tuple(out)


def http_url(value: Any) -> str:
    url = text(value)
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
    if not 1 <= month <= 12:
        raise FieldError(f"{raw!r} is geen bestaande datum: maand {month} bestaat niet")
    if year < 1 or not 1 <= day <= calendar.monthrange(year, month)[1]:
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


@dataclass
class Fields:
    """Collects validated values and problems for one file."""

    data: dict[str, Any]
    lines: dict[str, int]
    problems: list[tuple[int, str]]
    values: dict[str, Any]

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
            return None


ALLOWED_KEYS: tuple[str, ...] = (
    "title", "date", "kind", "track", "summary", "tags", "regions", "publish_at", "draft",
    "id", "image", "image_alt", "event", "audio", "attachments", "social", "newsletter",
)  # fmt: skip
REQUIRED_KEYS: tuple[str, ...] = ("title", "date", "kind", "track", "summary")


def _mapping(value: Any, key: str, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise FieldError(
            f"moet een tabel met sleutels zijn ({', '.join(allowed)}), niet {type_name(value)}"
        )
    for name in value:
        if name not in allowed:
            raise FieldError(
                f"onbekende sleutel '{name}'{_suggest(str(name), list(allowed))} "
                f"(toegestaan: {', '.join(allowed)})",
                f"{key}.{name}",
            )
    for name in required:
        if name not in value:
            raise FieldError(f"mist verplichte sleutel '{name}'", key)
    return value


def _sub(key: str, name: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except FieldError as exc:
        raise FieldError(exc.message, exc.key or f"{key}.{name}") from None


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
    v["title"] = f.take("title", text, required=True)
    v["summary"] = f.take("summary", text, required=True)
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
    v["tags"] = f.take("tags", string_list) or ()
    v["regions"] = f.take("regions", string_list) or ()
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
    _attachments(f, item_dir)
    _social(f)
    return v, f.problems


def _path_or_url(value: Any, item_dir: str) -> tuple[str, str | None]:
    """Returns (url-or-path, confined content path or None for URLs)."""
    raw = text(value)
    if is_url(raw):
        return http_url(raw), None
    return raw, confined_path(raw, item_dir)


def _image(f: Fields, item_dir: str) -> None:
    f.values["image"] = f.take("image", lambda x: _path_or_url(x, item_dir))
    f.values["image_alt"] = f.take("image_alt", text)
    if "image" in f.data and "image_alt" not in f.data:
        f.error(
            "image",
            "'image_alt' ontbreekt: een afbeelding heeft een beschrijving nodig (alt-tekst)",
        )
    if "image_alt" in f.data and "image" not in f.data:
        f.error("image_alt", "'image_alt' zonder 'image'")


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
    if kind != "event":
        f.error("event", f"'event' hoort alleen bij kind: event (dit item is {kind!r})")
        return

    def check(value: Any) -> tuple:
        m = _mapping(
            value, "event", ("start", "end", "location", "registration_url"), ("start", "location")
        )
        start = _sub("event", "start", lambda x: moment(x, tz), m["start"])
        end = _sub("event", "end", lambda x: moment(x, tz), m["end"]) if "end" in m else None
        if end and end[0] < start[0]:
            raise FieldError("mag niet vóór 'event.start' liggen", "event.end")
        location = _sub("event", "location", text, m["location"])
        reg = (
            _sub("event", "registration_url", http_url, m["registration_url"])
            if m.get("registration_url") is not None
            else None
        )
        return start[0], end[0] if end else None, location, reg

    f.values["event"] = f.take("event", check)


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
    if kind != "podcast":
        f.error("audio", f"'audio' hoort alleen bij kind: podcast (dit item is {kind!r})")
        return

    def length(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FieldError(f"moet een positief geheel aantal bytes zijn, niet {value!r}")
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

    def check(value: Any) -> tuple:
        m = _mapping(
            value,
            "audio",
            ("url", "length", "duration", "type"),
            ("url", "length", "duration", "type"),
        )
        url = _sub("audio", "url", lambda x: _path_or_url(x, item_dir), m["url"])
        return (
            url,
            _sub("audio", "length", length, m["length"]),
            _sub("audio", "duration", duration, m["duration"]),
            _sub("audio", "type", mime, m["type"]),
        )

    f.values["audio"] = f.take("audio", check)


def _attachments(f: Fields, item_dir: str) -> None:
    def check(value: Any) -> tuple:
        if not isinstance(value, list):
            raise FieldError(
                f"moet een lijst zijn van {{title, url}} of {{title, path}}, niet {type_name(value)}"
            )
        out = []
        for index, entry in enumerate(value):
            key = f"attachments.{index}"
            try:
                m = _mapping(entry, key, ("title", "url", "path"), ("title",))
            except FieldError as exc:
                raise FieldError(f"bijlage {index + 1}: {exc.message}", exc.key or key) from None
            if ("url" in m) == ("path" in m):
                raise FieldError(
                    f"bijlage {index + 1} heeft óf 'url' óf 'path' nodig, niet beide of geen", key
                )
            title = _sub(key, "title", text, m["title"])
            if "url" in m:
                out.append((title, _sub(key, "url", http_url, m["url"]), None))
            else:
                raw = _sub(key, "path", text, m["path"])
                out.append(
                    (title, raw, _sub(key, "path", lambda x: confined_path(x, item_dir), raw))
                )
        return tuple(out)

    f.values["attachments"] = f.take("attachments", check) or ()


def _social(f: Fields) -> None:
    def check(value: Any) -> tuple[bool, tuple[tuple[str, str], ...]]:
        if isinstance(value, bool):
            return value, ()
        m = _mapping(value, "social", SOCIAL_PLATFORMS, ())
        return True, tuple(
            (name, _sub("social", name, text, m[name])) for name in SOCIAL_PLATFORMS if name in m
        )

    result = f.take("social", check)
    f.values["social_enabled"], f.values["social_overrides"] = result or (True, ())
