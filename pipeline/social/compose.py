"""Posts generated from items: the per-platform templates, hashtags and tracked links, what a
post depends on (so that nothing is generated twice), and overrides that do not fit."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlencode

import regex

from pipeline.config import Config, SocialPlatform
from pipeline.content.model import Item
from pipeline.errors import Problem
from pipeline.fingerprints import code_fingerprint
from pipeline.publish import Entry
from pipeline.render import templates
from pipeline.social.counting import UNITS, counter, length
from pipeline.social.draftfile import normalize_text
from pipeline.social.reviewpage import PLATFORM_LABELS
from pipeline.social.shortening import Fitted, Parts, fit

CODE = code_fingerprint("social")  # generated posts follow the code that made them

# At most this many hashtags come from an item's tags (the configured ones always come first).
MAX_TAG_HASHTAGS = 3
_HASHTAG_SPLIT = regex.compile(r"[^\w'’]+")


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


# Generation -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
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


def base_key(config: Config, composer: Composer) -> str:
    """What every draft's text depends on besides its item and platform: the site and track
    settings, the post templates (not the review pages' or the site's: a CSS change must not
    touch 20,000 drafts) and this code."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((config.site, tuple(config.tracks.values()), CODE)).encode())
    seen: set[str] = set()
    for directory in composer.dirs:
        folder = directory / "social"
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and not name.endswith(".html") and name not in seen:
                seen.add(name)  # the first directory wins, as in the template loader
                h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def source_hash(item: Item, platform: SocialPlatform, reads: tuple[str, ...] | None) -> str:
    """What of the item the generated text may depend on: with `reads` (the item fields the
    post templates read) a change to any other field, such as the body, does not count."""
    if reads is None:
        return item.content_hash
    what = (tuple(getattr(item, name, None) for name in reads), item.social_override(platform.id))
    return hashlib.sha256(repr(what).encode()).hexdigest()


# An item's fields but the body and bookkeeping: `item_hash` of a draft, which makes a
# reviewed draft stale when it changes. Fixed, so that a template reading one more field
# does not make every approved draft stale.
_ITEM_FIELDS = tuple(
    f.name
    for f in fields(Item)
    if f.name not in ("html_utf8", "lines", "content_hash", "source", "assets")
)


def item_hash_of(item: Item) -> str:
    what = tuple(getattr(item, name) for name in _ITEM_FIELDS)
    return "f:" + hashlib.sha256(repr(what).encode()).hexdigest()


def generator_key(
    base: str, entry: Entry, platform: SocialPlatform, reads: tuple[str, ...] | None = None
) -> str:
    """Changes whenever the generated text could change."""
    what = source_hash(entry.item, platform, reads)
    parts = (base, repr(platform), what, entry.url, entry.published.isoformat())
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


# Fields every post is made from, whatever the template: the parts `fit` shortens and the
# context `Composer.generate` passes besides `item`.
_ALWAYS_READ = (
    "id",
    "title",
    "summary",
    "tags",
    "kind",
    "track",
    "event",
    "image",
    "image_alt",
    "social_enabled",
)


def template_reads(env: Any, names: Sequence[str]) -> tuple[str, ...] | None:
    """The item fields the post templates read: `_ALWAYS_READ` plus every `item.<field>` in
    them; None when a template uses `item` any other way (whole, in a loop, through an
    include or import), so that any change of the item counts."""
    from jinja2 import TemplateNotFound, TemplateSyntaxError, nodes

    reads = set(_ALWAYS_READ)
    for name in names:
        try:
            tree = env.parse(env.loader.get_source(env, name)[0])
        except TemplateNotFound:
            continue  # no template, no post: generation reports it
        except TemplateSyntaxError:
            return None
        if any(tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport))):
            return None
        attributes = {
            id(node.node): node.attr
            for node in tree.find_all(nodes.Getattr)
            if isinstance(node.node, nodes.Name)
        }
        for node in tree.find_all(nodes.Name):
            if node.name == "item":
                if id(node) not in attributes:
                    return None
                reads.add(attributes[id(node)])
    return tuple(sorted(reads))


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
