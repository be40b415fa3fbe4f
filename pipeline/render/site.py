"""The static web archive: which pages exist, their keys, and how each is rendered.

Every output carries a key made of everything it depends on; the build renders only
outputs whose key changed, so a one-item edit re-renders a handful of pages. The feeds and
calendars list their own outputs (feeds.py, calendar.py); outputs.py puts them together.
"""

from __future__ import annotations

import functools
import hashlib
import os
import posixpath
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape as _escape_html
from html import unescape as _unescape_html
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urljoin, urlsplit

from pipeline.config import Config
from pipeline.content import taxonomy
from pipeline.content.confine import inside, read_confined
from pipeline.content.model import KIND_LABELS, KINDS
from pipeline.errors import KrimppostError, Problem
from pipeline.publish import Entry
from pipeline.render import feeds, images, listings, pages, templates
from pipeline.render.calendar import ended
from pipeline.render.newsletter import IssueLink
from pipeline.render.output import Output, key_of

if TYPE_CHECKING:
    import jinja2

KIND_PATHS: dict[str, tuple[str, str]] = {
    "finding": ("bevindingen", "Bevindingen"),
    "progress": ("voortgang", "Voortgang"),
    "event": ("evenementen", "Evenementen"),
    "podcast": ("podcasts", "Podcasts"),
    "publication": ("publicaties", "Publicaties"),
    "news": ("nieuws", "Nieuws"),
}
assert set(KIND_PATHS) == set(KINDS) == set(KIND_LABELS)


_TABLE = re.compile(r"<table\b[^>]*>|</table>")
_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r'\ssrc="([^"]*)"')
# The content column: the whole screen less its margins on a phone, at most 46rem.
IMAGE_SIZES = "(max-width: 48rem) calc(100vw - 2rem), 46rem"


def scrolling_tables(html: str) -> str:
    """Each table of a body in a named, focusable region that scrolls sideways when the
    table is wider than the screen (the site's pages only: feeds and mail get the table)."""
    number = 0

    def wrap(m: re.Match[str]) -> str:
        nonlocal number
        if m.group(0) == "</table>":
            return "</table></div>"
        number += 1
        label = f"Tabel {number}"
        return f'<div class="tabel" role="region" aria-label="{label}" tabindex="0">{m.group(0)}'

    return _TABLE.sub(wrap, html)


def transcript_html(config: Config, entry: Entry) -> str | None:
    """The episode's transcript file as HTML (read as the page is rendered; its digest
    is in the item's content hash, so the page's key follows an edit of it)."""
    path = entry.item.transcript
    if path is None:
        return None
    from pipeline.content import body, frontmatter

    data = read_confined(config.content_dir, path, f"content/{path}", "content/")
    try:
        text = frontmatter.decode(data)
    except frontmatter.FrontMatterError as exc:
        raise KrimppostError([Problem(f"content/{path}", exc.line, exc.message)]) from None
    return body.render_html(text, config.site.base_url, posixpath.dirname(path))


class Site:
    def __init__(
        self,
        config: Config,
        env: Callable[[], jinja2.Environment],
        template_dirs: list[Path],
        entries: Sequence[Entry],
        now: datetime,
        fingerprint: str,
        issues: Sequence[IssueLink] = (),
        redirects: Sequence[tuple[str, str]] = (),
        base_path: str | None = None,
    ) -> None:
        self.config = config
        self.redirects = redirects  # (old item folder, URL of the item now), see publish.py
        self._make_env = env
        self._env: jinja2.Environment | None = None
        self.template_dirs = template_dirs
        self.entries = entries
        self.now = now
        self.fp = fingerprint
        self.issues = issues
        # Key of each file in the outbox now: an asset that cannot be read keeps its copy.
        self.previous_keys: dict[str, str] = {}
        # Where links of the pages point: the site's own path, or the desk's preview of it.
        self.base_path = base_path or urlsplit(config.site.base_url).path or "/"
        # Resized copies exist for published images only: the desk's preview of a draft
        # shows its images as they are.
        self.variants = config.images.variants and base_path is None
        # content-relative path -> (width, height) of each published image, as the assets
        # are listed; the pages' <img> get their size and srcset from it.
        self.image_sizes: dict[str, tuple[int, int]] = {}
        self.track_labels = {t.id: t.label for t in config.tracks.values()}
        self.tracks = [
            {
                "id": t.id,
                "label": t.label,
                "description": t.description,
                "path": f"trajecten/{t.id}/",
            }
            for t in config.tracks.values()
        ]
        self.kinds = [
            {
                "id": k,
                "label": KIND_LABELS[k],
                "plural": KIND_PATHS[k][1],
                "path": f"soorten/{KIND_PATHS[k][0]}/",
            }
            for k in KINDS
        ]

    # helpers ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_path + path

    def absolute(self, path: str) -> str:
        return urljoin(self.config.site.base_url, path)

    def feeds(self, track: str | None = None) -> list[dict[str, str]]:
        if track is None:
            return self.feeds_of(None)
        return self.feeds_of((f"{track}/", self.track_labels[track]))

    def feeds_of(self, family: tuple[str, str] | None) -> list[dict[str, str]]:
        """The feeds a page announces: the site's, and (folder, label) of its own family."""
        out = []
        for folder, label in [("", self.config.site.title)] + ([family] if family else []):
            out += [
                {
                    "type": "application/rss+xml",
                    "title": f"{label} (RSS)",
                    "url": self.url(f"feeds/{folder}rss.xml"),
                },
                {
                    "type": "application/atom+xml",
                    "title": f"{label} (Atom)",
                    "url": self.url(f"feeds/{folder}atom.xml"),
                },
                {
                    "type": "application/feed+json",
                    "title": f"{label} (JSON Feed)",
                    "url": self.url(f"feeds/{folder}feed.json"),
                },
            ]
        return out

    def render(self, name: str, path: str, **context: object) -> bytes:
        base = {
            "site": self.config.site,
            "tracks": self.tracks,
            "kinds": self.kinds,
            "track_labels": self.track_labels,
            "url": self.url,
            "current": path,
            "canonical": self.absolute(path),
            "feeds": self.feeds(),
            "page_title": self.config.site.title,
            "page_description": self.config.site.description,
            "og_image": None,
            "og_image_size": None,
            "og_image_alt": None,
            "search": self.config.search.enabled,
        }
        base.update(context)
        if self._env is None:
            self._env = self._make_env()
            # For the listings' thumbnails (the macros see globals, not a page's context).
            self._env.globals["picture_of"] = self.picture
        return templates.render(self._env, name, **base).encode("utf-8")

    # outputs ----------------------------------------------------------------------------

    def outputs(self) -> list[Output]:
        out: list[Output] = []
        out += self._static()
        out += self._assets()
        out += self._item_pages()
        out += self._transcripts()
        out += pages.redirect_pages(self)
        out += listings.outputs(self)
        out += pages.outputs(self)
        return out

    def _static(self) -> list[Output]:
        out, seen = [], set()
        for directory in self.template_dirs:  # project files shadow the defaults
            static = directory / "static"
            if not static.is_dir():
                continue
            for path in sorted(static.rglob("*")):
                rel = path.relative_to(static).as_posix()
                if path.is_file() and rel not in seen and not path.name.startswith("."):
                    seen.add(rel)
                    # Read inside templates/ only, however links there point.
                    produce = functools.partial(
                        read_confined,
                        directory,
                        f"static/{rel}",
                        f"{directory.name}/static/{rel}",
                        "templates/",
                    )
                    out.append(Output(f"site/static/{rel}", key_of(self.fp, rel), produce, 0))
        return out

    def _assets(self) -> list[Output]:
        out, seen = [], set()
        content = self.config.content_dir
        real = content.resolve()
        # Images that are an item's picture get an Open Graph copy too.
        pictures = {self.asset_of(e.item.image) for e in self.entries if e.item.image}
        for entry in self.entries:
            for rel in entry.item.assets:
                if rel not in seen:
                    seen.add(rel)
                    if (asset := self._asset(content, real, rel, rel in pictures)) is not None:
                        out += asset
        return out

    def asset_of(self, url: str | None) -> str | None:
        """The content-relative path of a URL of a published file (`…/bestanden/<rel>`)."""
        prefix = self.config.site.base_url.rstrip("/") + "/bestanden/"
        if url is None or not url.startswith(prefix):
            return None
        return unquote(urlsplit(url).path[len(urlsplit(prefix).path) :])

    def _asset(self, content: Path, real: Path, rel: str, picture: bool) -> list[Output] | None:
        path = f"site/bestanden/{rel}"
        source = content / rel
        try:
            if inside(source, real) is None:
                source.stat()  # PermissionError: in an unreadable folder
                return None  # a last-good item's asset was removed or linked out meanwhile
            st = source.stat()
            os.close(os.open(source, os.O_RDONLY | os.O_NONBLOCK))
        except PermissionError:
            # Unreadable now (its folder or the file itself): the copy in the outbox stays,
            # as the item that links it stays at its last good version.
            kept = self.previous_keys.get(path)
            return None if kept is None else [images.asset_output(content, rel, None, kept)]
        except OSError:
            return None
        # Checked again as it is copied (inside content/, however links point), and an
        # image without its EXIF (GPS!) and other metadata.
        out = [images.asset_output(content, rel, st)]
        if self.variants and (size := images.size_of(content, rel, st)) is not None:
            self.image_sizes[rel] = size
            out += images.variant_outputs(content, rel, st, picture)
        return out

    def picture(self, url: str | None) -> dict[str, object] | None:
        """What an <img> of a published image needs besides its alt text: src, width,
        height, srcset and sizes (None: not one of the site's images with variants)."""
        rel = self.asset_of(url)
        size = self.image_sizes.get(rel) if rel is not None else None
        if size is None or url is None:
            return None
        widths = images.variant_widths(size)
        candidates = [f"{self.absolute(images.variant_path(rel, w))} {w}w" for w in widths]  # type: ignore[arg-type]
        return {
            "src": url,
            "width": size[0],
            "height": size[1],
            "srcset": ", ".join([*candidates, f"{url} {size[0]}w"]),
            "sizes": IMAGE_SIZES,
            "small": self.absolute(images.variant_path(rel, widths[0])) if widths else url,  # type: ignore[arg-type]
        }

    def responsive(self, html: str) -> str:
        """The body's <img> of the site's own images with width, height, srcset and sizes
        (no layout shift; a phone loads the small copy)."""
        if not self.image_sizes:
            return html

        def add(m: re.Match[str]) -> str:
            tag = m.group(0)
            src = _SRC.search(tag)
            info = self.picture(_unescape_html(src.group(1))) if src else None
            if info is None or "srcset=" in tag:
                return tag
            extra = ""
            if info["small"] != info["src"]:  # there are smaller copies to choose from
                extra = f' srcset="{_escape_html(str(info["srcset"]))}" sizes="{info["sizes"]}"'
            if " width=" not in tag and " height=" not in tag:
                extra += f' width="{info["width"]}" height="{info["height"]}"'
            end = -2 if tag.endswith("/>") else -1
            return tag[:end].rstrip() + extra + tag[end:]

        return _IMG.sub(add, html)

    def og_picture(self, entry: Entry) -> tuple[str | None, tuple[int, int] | None]:
        """The URL (and size) of the picture a link preview of the item shows."""
        rel = self.asset_of(entry.item.image)
        if rel is not None and rel in self.image_sizes:
            return self.absolute(images.og_path(rel)), images.OG_SIZE
        return entry.item.image, None

    def _item_pages(self) -> list[Output]:
        # Runs for every item on every build, whether or not its page is rendered: one hash.
        prefix = f"{self.fp}\x1fitem\x1f"
        return [
            Output(
                f"site/{entry.path}index.html",
                # An event's page says when it is over: its key changes then too.
                hashlib.blake2b(
                    (
                        prefix
                        + entry.key
                        + ("\x1fover" if ended(entry, self.now) else "")
                        + self._image_key(entry)
                    ).encode(),
                    digest_size=16,
                ).hexdigest(),
                functools.partial(self.render_item, entry),
                1,
            )
            for entry in self.entries
        ]

    def _image_key(self, entry: Entry) -> str:
        """The sizes of the item's images: its page sets them (a replaced image file that
        keeps its name changes the page)."""
        if not self.image_sizes:
            return ""
        return repr([self.image_sizes.get(rel) for rel in entry.item.assets])

    def transcript_html(self, entry: Entry) -> str | None:
        return transcript_html(self.config, entry)

    def _transcripts(self) -> list[Output]:
        from pipeline.content.plaintext import html_to_text

        def produce(entry: Entry) -> bytes:
            return (html_to_text(self.transcript_html(entry) or "") + "\n").encode()

        return [
            Output(
                f"site/{entry.path}{feeds.TRANSCRIPT_FILE}",
                key_of(self.fp, "transcript", entry.key),
                functools.partial(produce, entry),
                1,
            )
            for entry in self.entries
            if entry.item.transcript
        ]

    def render_item(self, entry: Entry) -> bytes:
        item = entry.item
        og_image, og_size = self.og_picture(entry)
        known = item.track in self.track_labels
        track = (
            next(t for t in self.tracks if t["id"] == item.track)
            if known
            else {"id": item.track, "label": item.track, "path": "archief/"}
        )
        return self.render(
            "site/item.html",
            entry.path,
            entry=entry,
            track=track,
            page_title=f"{item.title} | {self.config.site.title}",
            page_description=item.summary,
            og_type="article",
            og_image=og_image,
            og_image_size=og_size,
            og_image_alt=item.image_alt,
            picture=self.picture(item.image),
            event_over=ended(entry, self.now),
            body=self.responsive(scrolling_tables(item.html)),
            transcript=self.transcript_html(entry),
            transcript_file=self.url(entry.path + feeds.TRANSCRIPT_FILE),
            feeds=self.feeds(item.track if known else None),
        )

    @functools.cached_property
    def terms(self) -> dict[str, list[tuple[taxonomy.Term, list[Entry]]]]:
        """field -> every region or topic with its entries (newest first), by slug."""
        return {f: taxonomy.grouped(f, self.entries, lambda e: e.item) for f in taxonomy.KINDS}

    def newsletter_archive(self) -> Output:
        """The page of newsletter issues (its feed is feeds.issues_output; `compile` refreshes
        both through outputs.newsletter_archive)."""
        return pages.newsletter_archive(self)
