"""Pre-flight of a newsletter issue: what a subscriber would click or load must work.

Run by `newsletter compile` on the rendered issue before it is made. Each problem names
where it came from: the item file and line whose text put the link, image or template
marker in the issue, the introduction, or else the issue template.

The checks read the HTML once with lxml (bounded by the size budget of an issue); finding
the line of a problem reads files only when there is a problem.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from markupsafe import escape

from pipeline.config import Config
from pipeline.content import frontmatter
from pipeline.content.model import ASSET_PREFIX, Item
from pipeline.errors import Problem
from pipeline.publish import Entry
from pipeline.render import templates
from pipeline.render.message import preferences_base
from pipeline.render.newsletter import MJML_TEMPLATE, TEXT_TEMPLATE, TOKEN_PLACEHOLDER

HTML_TEMPLATE_PATH = f"templates/{MJML_TEMPLATE}"
TEXT_TEMPLATE_PATH = f"templates/{TEXT_TEMPLATE}"
MARKERS = ("{{", "{%")
# Links a mail client opens without a web page: an address to write to or a number to call.
_OTHER_SCHEMES = ("mailto", "tel")
_DECORATIVE_ROLES = ("presentation", "none")
_PREFIX = "nieuwsbrief: "


@dataclass(frozen=True)
class _Place:
    path: str
    line: int | None


def preflight(
    config: Config,
    *,
    built: frozenset[str],
    entries: Sequence[Entry],
    html: str,
    text: str,
    own_pages: frozenset[str],
) -> list[Problem]:
    """The problems of a rendered issue; empty when it may be made.

    `built`: the files the last build recorded ("site/berichten/x/index.html");
    `own_pages`: site paths the compile itself writes (any path under one is fine)."""
    finder = _Finder(config, _items(entries))
    found: dict[Problem, None] = {}  # a link repeated in the issue is one problem

    def add(place: _Place, message: str) -> None:
        found[Problem(place.path, place.line, _PREFIX + message)] = None

    for kind, value, why in _link_problems(config, html, built, own_pages):
        add(finder.place_of_url(value, kind), why)
    for marker in MARKERS:
        for output, escaped, label, template in (
            (html, True, "de HTML", HTML_TEMPLATE_PATH),
            (text, False, "de tekstversie", TEXT_TEMPLATE_PATH),
        ):
            if marker not in output:
                continue
            places = finder.places_of_marker(marker, output, escaped=escaped)
            for place, field in places:
                add(
                    place,
                    f"'{marker}' uit {field} komt letterlijk in de nieuwsbrief; een mail mag "
                    "geen sjabloontekens bevatten: schrijf het anders",
                )
            if not places:
                add(
                    _Place(template, None),
                    f"'{marker}' staat nog in {label} van de nieuwsbrief: een deel van het "
                    "sjabloon is niet ingevuld",
                )
    return list(found)


def _items(entries: Iterable[Entry]) -> list[Item]:
    """Each item once (an event can be in its section and in the agenda)."""
    seen: dict[str, Item] = {}
    for entry in entries:
        seen.setdefault(entry.item.source, entry.item)
    return list(seen.values())


# The links ---------------------------------------------------------------------------------


def _link_problems(
    config: Config, html: str, built: frozenset[str], own_pages: frozenset[str]
) -> list[tuple[str, str, str]]:
    """(kind, value, message) for every link and image of the issue that would not work;
    kind is "link", "image" or "alt"."""
    from lxml import etree

    root = etree.fromstring(html.encode(), etree.HTMLParser(encoding="utf-8", no_network=True))
    if root is None:
        return []
    base = config.site.base_url
    unsubscribe = config.newsletter.unsubscribe_url
    preferences = preferences_base(config)
    allowed = {
        unsubscribe,
        unsubscribe + TOKEN_PLACEHOLDER,
        preferences,
        preferences + TOKEN_PLACEHOLDER,
    }
    out: list[tuple[str, str, str]] = []
    fragments: list[str] = []

    def check(kind: str, url: str, noun: str, also: tuple[str, ...] = ()) -> None:
        if url.startswith(base):
            path = unquote(urlsplit(url[len(base) :]).path)
            if any(path.startswith(own) for own in own_pages):
                return
            if path == "" or path.endswith("/"):
                path += "index.html"
            if "site/" + path not in built:
                out.append(
                    (
                        kind,
                        url,
                        f"{noun} {url!r} wijst naar iets dat niet op de site staat (de "
                        f"laatste build maakte geen site/{path}); controleer het adres",
                    )
                )
        elif (why := _not_https(url, also)) is not None:
            out.append((kind, url, f"{noun} {url!r} {why}"))

    for el in root.iter("a", "area", "link"):
        href = el.get("href")
        if href is None or (href := href.strip()) in allowed:
            continue
        if href.startswith("#") and len(href) > 1:
            fragments.append(href)
        else:
            check("link", href, "link", _OTHER_SCHEMES)
    for el in root.iter("img"):
        src = (el.get("src") or "").strip()
        check("image", src, "afbeelding")
        alt = el.get("alt")
        decorative = alt == "" and (el.get("role") or "").strip().lower() in _DECORATIVE_ROLES
        if not decorative and not (alt or "").strip():
            out.append(
                (
                    "alt",
                    src,
                    f"afbeelding {src!r} heeft geen alt-tekst: geef een korte beschrijving",
                )
            )
    for el in root.xpath("//*[@background]"):  # what mj-section and mj-hero background-url make
        check("image", el.get("background").strip(), "achtergrondafbeelding")
    if fragments:
        # A link within the mail itself works when what it points to is there.
        targets = set(root.xpath("//@id | //a/@name"))
        for href in fragments:
            if unquote(href[1:]) not in targets and href[1:] not in targets:
                out.append(
                    (
                        "link",
                        href,
                        f"link {href!r} wijst naar een plek die niet in de nieuwsbrief staat",
                    )
                )
    return out


def _not_https(url: str, also: tuple[str, ...]) -> str | None:
    """Why `url` is no absolute https: address (or one of the schemes `also`), else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is geen geldig adres"
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.netloc:
        return None
    if scheme in also:
        return None
    if scheme == "http":
        return "gebruikt http: in plaats van https: (mailprogramma's waarschuwen of blokkeren)"
    if not scheme:
        return "is geen volledig adres: in een mail werkt alleen een adres dat met https:// begint"
    return f"gebruikt {scheme}:, wat in een nieuwsbrief niet is toegestaan; gebruik https://"


# Where a problem came from -----------------------------------------------------------------


class _Finder:
    """The item file and line (or the introduction, or the template) a value came from."""

    def __init__(self, config: Config, items: list[Item]) -> None:
        self.config = config
        self.items = items
        self._texts: dict[str, tuple[list[str], int] | None] = {}

    # Files, read only when a problem is looked up.

    def _lines(self, relative: str, front_matter: bool) -> tuple[list[str], int] | None:
        """(lines of the file, index of the first line to search), or None if unreadable."""
        key = f"{front_matter}:{relative}"
        if key not in self._texts:
            try:
                text = frontmatter.decode(self.config.path(relative).read_bytes())
                start = frontmatter.split(text)[2] - 1 if front_matter else 0
            except (OSError, frontmatter.FrontMatterError):
                self._texts[key] = None
            else:
                self._texts[key] = (text.split("\n"), start)
        return self._texts[key]

    def _line_in(self, relative: str, needles: Sequence[str], front_matter: bool) -> int | None:
        """The first line (of the body, for an item) with the first needle found in it."""
        found = self._lines(relative, front_matter)
        if found is None:
            return None
        lines, start = found
        for needle in needles:
            for number in range(start, len(lines)):
                if needle in lines[number]:
                    return number + 1
        return None

    def _template_line(self, name: str, needles: Sequence[str]) -> int | None:
        for directory in templates.template_dirs(self.config.templates_dir):
            path = directory / name
            if path.is_file():
                try:
                    lines = path.read_text(encoding="utf-8").split("\n")
                except (OSError, UnicodeDecodeError):
                    return None
                for needle in (n for n in needles if len(n) > 1):
                    for number, line in enumerate(lines, 1):
                        if needle in line:
                            return number
                return None
        return None

    def _intro(self) -> str | None:
        intro = self.config.newsletter.intro
        return intro if intro and self.config.path(intro).is_file() else None

    # Links and images.

    def _written(self, url: str) -> list[str]:
        """How an editor may have written `url`: as is, or site-relative, or the content
        path of a published file, its name last."""
        needles = [url]
        base = self.config.site.base_url
        if url.startswith(base):
            rest = url[len(base) :]
            path = urlsplit(rest).path
            needles += ["/" + rest, "/" + path, unquote("/" + path)]
            if path.startswith(ASSET_PREFIX):
                content = unquote(path[len(ASSET_PREFIX) :])
                needles += [content, posixpath.basename(content)]
        return [n for n in dict.fromkeys(needles) if len(n) > 1]

    def place_of_url(self, url: str, kind: str) -> _Place:
        attribute = {'"' + url + '"', '"' + _attr_escape(url) + '"'} if url else set()
        for item in self.items:
            if kind in ("image", "alt") and item.image is not None and url == item.image:
                key = "image_alt" if kind == "alt" and "image_alt" in dict(item.lines) else "image"
                return _Place(item.source, _line(item, key))
            if item.event is not None and url == item.event.registration_url:
                return _Place(item.source, _line(item, "event.registration_url"))
            if item.audio is not None and url == item.audio.url:
                return _Place(item.source, _line(item, "audio.url"))
            if any(url == a.url for a in item.attachments):
                return _Place(item.source, _line(item, "attachments"))
            if any(a in item.html for a in attribute):
                line = self._line_in(item.source, self._written(url), front_matter=True)
                return _Place(item.source, line or self._body_line(item))
        intro = self._intro()
        line = None if intro is None else self._line_in(intro, self._written(url), False)
        if intro is not None and line is not None:
            return _Place(intro, line)
        return _Place(HTML_TEMPLATE_PATH, self._template_line(MJML_TEMPLATE, [url]))

    def _body_line(self, item: Item) -> int | None:
        found = self._lines(item.source, front_matter=True)
        return None if found is None else found[1] + 1

    # Template markers.

    def places_of_marker(
        self, marker: str, output: str, *, escaped: bool
    ) -> list[tuple[_Place, str]]:
        """Where the `marker`s in the issue came from, with a name of the field; empty
        when no item nor the introduction explains them."""
        out = []
        flat = " ".join(output.split())
        for item in self.items:
            fields = [
                ("title", "de titel", item.title),
                ("summary", "de samenvatting", item.summary),
                ("image_alt", "de alt-tekst", item.image_alt or ""),
                ("event.location", "de plaats", item.event.location if item.event else ""),
            ]
            for key, label, value in fields:
                if _shows(value, marker, flat, escaped):
                    out.append((_Place(item.source, _line(item, key)), label))
            body = item.html if escaped else item.text
            if _shows(body, marker, flat, escaped=False):
                line = self._line_in(item.source, [marker], front_matter=True)
                out.append((_Place(item.source, line or self._body_line(item)), "de tekst"))
        intro = self._intro()
        written = None if intro is None else self._lines(intro, front_matter=False)
        # An introduction is in one issue only: blamed when its text is in this one.
        if intro and written and _shows("\n".join(written[0]), marker, flat, escaped):
            line = self._line_in(intro, [marker], front_matter=False)
            out.append((_Place(intro, line), "de inleiding"))
        return out


def _shows(value: str, marker: str, flat_output: str, escaped: bool) -> bool:
    """Whether `value` holds `marker` and that part of it, with its context, is in the
    issue (a field the template leaves out does not explain a marker in the issue).
    Compared with white space collapsed: the text part wraps its lines."""
    at = value.find(marker)
    if at < 0:
        return False
    start, end = max(0, at - 24), at + len(marker) + 24
    # Context on both sides, or on one: a shortened teaser cuts the text after it.
    for snippet in (value[start:end], value[start : at + len(marker)], value[at:end]):
        if escaped:
            snippet = str(escape(snippet))
        if " ".join(snippet.split()) in flat_output:
            return True
    return False


def _attr_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;")


def _line(item: Item, key: str) -> int:
    """The line of a front-matter key, or of the nearest enclosing key that has one."""
    lines = dict(item.lines)
    while key:
        if key in lines:
            return lines[key]
        key = key.rpartition(".")[0]
    return 1
