"""RSS 2.0, Atom 1.0, JSON Feed 1.1 and the podcast feed, from entries only (never the clock),
and their place in the table of outputs.

feedgen 1.0 pitfalls handled here: `updated`/`lastBuildDate` are set from content (it
would use now), entries are appended in our order (it prepends by default), and every
datetime is aware. JSON Feed is not in feedgen and is written directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.content import confine, taxonomy
from pipeline.content.reader import asset_url
from pipeline.publish import Entry
from pipeline.render import images
from pipeline.render.newsletter import IssueLink
from pipeline.render.output import Output, key_of

if TYPE_CHECKING:
    from feedgen.feed import FeedGenerator

GENERATOR = "krimppost"
ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class FeedSpec:
    """One feed family (all items, or one track) and where its files go."""

    folder: str  # "", "<track>/", "regios/<slug>/" or "onderwerpen/<slug>/"
    title: str
    description: str
    home: str  # absolute URL of the matching site page


def outputs(
    config: Config,
    entries: Sequence[Entry],
    fp: str,
    terms: Mapping[str, list[tuple[taxonomy.Term, list[Entry]]]],
) -> list[Output]:
    """RSS, Atom and JSON Feed of all items, of each track and of each region and topic
    (`terms`: the site's, by field), and the podcast feed."""
    site = config.site
    specs = [(FeedSpec("", site.title, site.description, site.base_url), entries)]
    for track in config.tracks.values():
        specs.append(
            (
                FeedSpec(
                    f"{track.id}/",
                    f"{site.title}: {track.label}",
                    track.description,
                    site.base_url + f"trajecten/{track.id}/",
                ),
                tuple(e for e in entries if e.item.track == track.id),
            )
        )
    for field in taxonomy.KINDS:
        for term, members in terms[field]:
            about = f"de regio {term.name}" if field == "regions" else term.name
            specs.append(
                (
                    FeedSpec(
                        term.path,
                        f"{site.title}: {term.name}",
                        f"Berichten over {about}",
                        site.base_url + term.path,
                    ),
                    tuple(members),
                )
            )
    out: list[Output] = []
    for spec, selected in specs:
        chosen = selected[: config.feeds.length]
        keys = [e.key for e in chosen]
        for name, writer in (("rss.xml", rss), ("atom.xml", atom), ("feed.json", json_feed)):
            out.append(
                Output(
                    f"site/feeds/{spec.folder}{name}",
                    key_of(fp, "feed", spec, name, keys),
                    lambda w=writer, s=spec, c=chosen: w(config, s, c),
                    3,
                )
            )
    image = podcast_image_url(config)
    episodes = [e.key for e in entries if e.item.audio is not None]
    out.append(
        Output(
            "site/feeds/podcast.xml",
            key_of(fp, "podcast", image, episodes),
            lambda: podcast(config, entries, image),
            3,
        )
    )
    return out


def podcast_image_url(config: Config) -> str | None:
    """The podcast's cover as a URL; None when it names a file missing from content/ (the
    build warns and makes the feed without it)."""
    image = config.podcast.image
    if not image:
        return None
    if "://" in image:
        return image
    if not (config.content_dir / image.lstrip("/")).is_file():
        return None
    return asset_url(config.site.base_url, image.lstrip("/"))


def podcast_image_output(config: Config) -> list[Output]:
    """The podcast's cover when it is a file under content/, published as an asset."""
    image = config.podcast.image
    if not image or "://" in image:
        return []
    rel = image.lstrip("/")
    source = config.content_dir / rel
    if confine.inside(source, config.content_dir.resolve()) is None:
        return []  # missing, or a link out of content/ (a problem of scan_content)
    return [images.asset_output(config.content_dir, rel, source.stat())]


def issues_output(config: Config, fp: str, issues: Sequence[IssueLink]) -> Output:
    """The feed of newsletter issues; its key is that of the archive page it goes with."""
    return Output(
        "site/nieuwsbrief/rss.xml",
        key_of(fp, "issues", list(issues)),
        lambda: issues_rss(config, issues),
        3,
    )


def _updated(entries: Sequence[Entry], fallback: datetime) -> datetime:
    return max((e.updated for e in entries), default=fallback)


def _categories(entry: Entry, config: Config) -> list[str]:
    track = config.tracks.get(entry.item.track)
    return [track.label if track else entry.item.track, *entry.item.tags]


def _generator(
    config: Config, spec: FeedSpec, self_url: str, entries: Sequence[Entry]
) -> FeedGenerator:
    from feedgen.feed import FeedGenerator  # with lxml: imported only when a feed is rendered

    site = config.site
    fg = FeedGenerator()
    fg.id(self_url)
    fg.title(spec.title)
    fg.subtitle(spec.description)
    fg.description(spec.description)
    # feedgen uses the last link as RSS <channel><link>: the site page, not the feed itself.
    fg.link(href=self_url, rel="self")
    fg.link(href=spec.home, rel="alternate", type="text/html")
    fg.language("nl")
    fg.author({"name": site.organisation, **({"email": site.email} if site.email else {})})
    fg.generator(GENERATOR, uri="https://www.bevolkingsdaling.nl/")
    fg.rights(f"© {site.organisation}")
    fg.updated(_updated(entries, _epoch(config)))
    fg.lastBuildDate(_updated(entries, _epoch(config)))
    for entry in entries:
        item = entry.item
        fe = fg.add_entry(order="append")
        fe.id(entry.entry_id)
        fe.guid(entry.entry_id, permalink=False)
        fe.title(item.title)
        fe.link(href=entry.url, rel="alternate", type="text/html")
        fe.summary(item.summary)
        fe.description(item.summary)
        fe.content(item.html, type="CDATA")
        fe.published(entry.published)
        fe.pubDate(entry.published)
        fe.updated(entry.updated)
        for term in _categories(entry, config):
            fe.category(term=term, label=term)
        if item.audio is not None:
            fe.enclosure(item.audio.url, str(item.audio.length), item.audio.type)
    return fg


def _epoch(config: Config) -> datetime:
    return datetime(
        2018, 1, 1, tzinfo=config.site.tz
    )  # the WRB's founding year; only for empty feeds


def rss(config: Config, spec: FeedSpec, entries: Sequence[Entry]) -> bytes:
    url = config.site.base_url + f"feeds/{spec.folder}rss.xml"
    return _generator(config, spec, url, entries).rss_str(pretty=True)


def atom(config: Config, spec: FeedSpec, entries: Sequence[Entry]) -> bytes:
    url = config.site.base_url + f"feeds/{spec.folder}atom.xml"
    fg = _generator(config, spec, url, entries)
    # Atom content of type html must be escaped text, not CDATA.
    for fe in fg.entry():
        fe.content(fe.content()["content"], type="html")
    return _restore_entry_links(fg.atom_str(pretty=True), entries)


def _restore_entry_links(xml: bytes, entries: Sequence[Entry]) -> bytes:
    """feedgen 1.0 drops rel/type from Atom entry links: put them back, per entry."""
    from lxml import etree

    # Our own output: no size limit on its text nodes (a long body is one).
    root = etree.fromstring(xml, etree.XMLParser(huge_tree=True))
    ns = {"a": ATOM_NS}
    for element, entry in zip(root.findall("a:entry", ns), entries, strict=True):
        for link in element.findall("a:link", ns):
            audio = entry.item.audio
            if audio is not None and link.get("href") == audio.url:
                link.set("rel", "enclosure")
                link.set("type", audio.type)
                link.set("length", str(audio.length))
            elif link.get("href") == entry.url:
                link.set("rel", "alternate")
                link.set("type", "text/html")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def json_feed(config: Config, spec: FeedSpec, entries: Sequence[Entry]) -> bytes:
    site = config.site
    url = site.base_url + f"feeds/{spec.folder}feed.json"
    items = []
    for entry in entries:
        item = entry.item
        data: dict[str, object] = {
            "id": entry.entry_id,
            "url": entry.url,
            "title": item.title,
            "content_html": item.html,
            "summary": item.summary,
            "date_published": entry.published.isoformat(),
            "date_modified": entry.updated.isoformat(),
            "tags": _categories(entry, config),
            "language": "nl-NL",
        }
        if item.image:
            data["image"] = item.image
        if item.audio is not None:
            data["attachments"] = [
                {
                    "url": item.audio.url,
                    "mime_type": item.audio.type,
                    "size_in_bytes": item.audio.length,
                    "duration_in_seconds": item.audio.seconds,
                }
            ]
        items.append(data)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": spec.title,
        "home_page_url": spec.home,
        "feed_url": url,
        "description": spec.description,
        "language": "nl-NL",
        "authors": [{"name": site.organisation, "url": site.base_url}],
        "items": items,
    }
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def podcast(config: Config, entries: Sequence[Entry], image_url: str | None) -> bytes:
    """The podcast feed with Apple Podcasts tags; only items that carry audio."""
    site, pc = config.site, config.podcast
    episodes = [e for e in entries if e.item.audio is not None]
    spec = FeedSpec(
        folder="",
        title=pc.title,
        description=pc.description,
        home=site.base_url + "soorten/podcasts/",
    )
    fg = _generator(config, spec, site.base_url + "feeds/podcast.xml", episodes)
    fg.load_extension("podcast")
    fg.podcast.itunes_author(pc.author)
    fg.podcast.itunes_category(pc.category)
    fg.podcast.itunes_explicit("yes" if pc.explicit else "no")
    fg.podcast.itunes_summary(spec.description)
    fg.podcast.itunes_owner(name=pc.author, email=pc.email or "info@example.nl")
    if image_url:
        fg.podcast.itunes_image(image_url)
        fg.image(url=image_url, title=spec.title, link=spec.home)
    for fe, entry in zip(fg.entry(), episodes, strict=True):
        audio = entry.item.audio
        assert audio is not None
        fe.podcast.itunes_duration(audio.duration)
        fe.podcast.itunes_summary(entry.item.summary)
        fe.podcast.itunes_explicit("yes" if pc.explicit else "no")
        if entry.item.image and entry.item.image.lower().endswith((".png", ".jpg", ".jpeg")):
            fe.podcast.itunes_image(entry.item.image)
    return _add_transcripts(fg.rss_str(pretty=True), episodes)


PODCAST_NS = "https://podcastindex.org/namespace/1.0"
TRANSCRIPT_FILE = "transcript.txt"  # beside the episode's page (site.py writes it)


def _add_transcripts(xml: bytes, episodes: Sequence[Entry]) -> bytes:
    """`<podcast:transcript>` (Podcasting 2.0) for each episode with a transcript; feedgen
    has no such tag."""
    from lxml import etree

    urls = {e.entry_id: e.url + TRANSCRIPT_FILE for e in episodes if e.item.transcript}
    if not urls:
        return xml
    old = etree.fromstring(xml, etree.XMLParser(huge_tree=True))
    # A namespace can only be declared on a new element: the root again, with it added.
    root = etree.Element(
        old.tag, attrib=dict(old.attrib), nsmap={**old.nsmap, "podcast": PODCAST_NS}
    )
    root.extend(list(old))
    for item in root.iter("item"):
        url = urls.get(item.findtext("guid") or "")
        if url is not None:
            tag = etree.SubElement(item, f"{{{PODCAST_NS}}}transcript")
            tag.set("url", url)
            tag.set("type", "text/plain")
            tag.set("language", "nl")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def issues_rss(config: Config, issues: Sequence[IssueLink]) -> bytes:
    """RSS of newsletter issues, for readers who want the web version of each new issue."""
    from feedgen.feed import FeedGenerator

    site = config.site
    fg = FeedGenerator()
    self_url = site.base_url + "nieuwsbrief/rss.xml"
    fg.id(self_url)
    fg.title(f"Nieuwsbrief {site.title}")
    fg.description(f"Alle nummers van de nieuwsbrief van {site.title}.")
    fg.link(href=self_url, rel="self")
    fg.link(href=site.base_url + "nieuwsbrief/", rel="alternate", type="text/html")
    fg.language("nl")
    fg.generator(GENERATOR)
    newest = max((i.created_at for i in issues), default=_epoch(config))
    fg.lastBuildDate(newest)
    host = site.host
    for issue in issues:  # newest first, as listed
        fe = fg.add_entry(order="append")
        fe.guid(
            f"tag:{host},{issue.created_at.date().isoformat()}:nieuwsbrief-{issue.number}",
            permalink=False,
        )
        fe.title(issue.subject)
        fe.link(href=site.base_url + issue.path)
        fe.description(issue.subject)
        fe.pubDate(issue.created_at)
    return fg.rss_str(pretty=True)
