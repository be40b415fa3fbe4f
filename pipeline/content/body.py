"""Markdown body -> sanitised HTML and plain text.

One Markdown and one sanitiser instance per process: building them costs more than
converting a document. `smarty` and `toc` are left out on purpose; together they nearly
triple the time per document.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from urllib.parse import urljoin, urlsplit

import markdown
import nh3
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from pipeline.content.fields import CONTROL_CHARACTERS
from pipeline.content.model import ASSET_PREFIX
from pipeline.content.plaintext import html_to_text

# A body larger than this is refused (a report belongs in an attachment): it would be
# copied into every feed and newsletter it appears in, and lxml refuses a text node of 10 MB.
MAX_BODY_BYTES = 1_000_000
# What the body may grow to once converted (entities, reference links used many times).
MAX_HTML_BYTES = 5_000_000

MARKDOWN_EXTENSIONS: tuple[str, ...] = ("extra", "sane_lists")
MARKDOWN_CONFIGS = {
    "extra": {
        "footnotes": {
            "BACKLINK_TITLE": "Terug naar voetnoot %d in de tekst",
            "SUPERSCRIPT_TEXT": "{}",
        }
    }
}

_ALLOWED_TAGS = (nh3.ALLOWED_TAGS - {"center", "acronym", "tt", "strike", "map", "area"}) | {
    "section",
}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"id", "title", "lang"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height"},
    "abbr": {"title"},
    "th": {"scope", "colspan", "rowspan", "align"},
    "td": {"colspan", "rowspan", "align"},
    "ol": {"start"},
    "blockquote": {"cite"},
    "sup": {"class"},
    "div": {"class"},
}
_URL_ATTRIBUTES = {("a", "href"), ("img", "src"), ("blockquote", "cite")}
_HEADING = re.compile(r"^h([1-6])$")
_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\salt=)")


class _ShiftHeadings(Treeprocessor):
    """The page title is the only h1: a body that uses `#` is shifted down a level."""

    def run(self, root: ET.Element) -> None:
        headings = [el for el in root.iter() if _HEADING.match(el.tag)]
        if any(el.tag == "h1" for el in headings):
            for el in headings:
                el.tag = f"h{min(int(el.tag[1]) + 1, 6)}"


class _ShiftHeadingsExtension(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:
        md.treeprocessors.register(_ShiftHeadings(md), "krimppost_headings", 1)


_md: markdown.Markdown | None = None


def _markdown() -> markdown.Markdown:
    global _md  # a per-process cache of a stateless converter, not a setting
    if _md is None:
        _md = markdown.Markdown(
            extensions=[*MARKDOWN_EXTENSIONS, _ShiftHeadingsExtension()],
            extension_configs=MARKDOWN_CONFIGS,
            output_format="html",
        )
    return _md


def resolve_url(value: str, base_url: str, item_dir: str) -> str:
    """Make a body link absolute.

    `https:`, `mailto:` and fragments stay as they are; `/x` is relative to the site root;
    `x` and `../x` are files under content/ next to the item, published under ASSET_PREFIX.
    """
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("#") or not value:
        return value
    if value.startswith("/"):
        return urljoin(base_url, value.lstrip("/"))
    path = posixpath.normpath(posixpath.join(item_dir, parts.path)) if parts.path else item_dir
    if path.startswith("../") or path == "..":
        # Points outside content/: keep it site-relative rather than inventing a file.
        path = path.lstrip("./")
        return urljoin(base_url, path)
    suffix = value[len(parts.path) :]
    return urljoin(base_url, ASSET_PREFIX + path.lstrip("./")) + suffix


def size_problem(body: str) -> str | None:
    size = len(body.encode())
    if size > MAX_BODY_BYTES:
        return (
            f"de tekst is te lang: {_megabytes(size)}, het maximum is {_megabytes(MAX_BODY_BYTES)}; "
            "zet lange stukken in een bijlage"
        )
    return None


def html_size_problem(html: str) -> str | None:
    size = len(html.encode())
    if size > MAX_HTML_BYTES:
        return (
            f"de tekst wordt na omzetten te groot: {_megabytes(size)} HTML, het maximum is "
            f"{_megabytes(MAX_HTML_BYTES)}; gebruik minder herhaalde links of tekens als &"
        )
    return None


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB".replace(".", ",")


def render(body: str, base_url: str, item_dir: str) -> tuple[str, str]:
    """Return (sanitised html, plain text) for a Markdown body."""
    html = render_html(body, base_url, item_dir)
    return html, html_to_text(html)


def render_html(body: str, base_url: str, item_dir: str) -> str:
    """Sanitised HTML for a Markdown body."""
    md = _markdown()
    md.reset()
    raw = md.convert(body)

    def rewrite(tag: str, attr: str, value: str) -> str | None:
        if (tag, attr) in _URL_ATTRIBUTES:
            return resolve_url(value, base_url, item_dir)
        return value

    html = nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel=None,
        attribute_filter=rewrite,
        strip_comments=True,
    )
    # nh3 decodes entities such as &#1; to the character itself: invisible control
    # characters (typed, pasted or as an entity) go, as XML feeds and iCalendar refuse them.
    html = CONTROL_CHARACTERS.sub("", html)
    # An <img> without alt fails WCAG; nh3's output is normalised, so a pattern is safe here.
    return _IMG_WITHOUT_ALT.sub('<img alt=""', html)
