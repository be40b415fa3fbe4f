"""Internal links: a link in an item's text to a page or file of the site that the build does
not make is a problem of that item, with the file and the line of the link.

The item still publishes (a broken link is no reason to keep the rest of the text offline);
`check` and `build` exit 1 on it. Only links into the site count (under `[site] base_url`):
a link elsewhere is the reader's browser's business.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Sequence
from urllib.parse import unquote, urlsplit

from pipeline.config import Config
from pipeline.content import confine
from pipeline.content.body import resolve_url
from pipeline.content.reader import CONTENT_DIR
from pipeline.errors import Problem
from pipeline.publish import Entry

_HREF = re.compile(r'<(?:a|img)\b[^>]*?\s(?:href|src)="([^"]*)"')
# How a link is written in Markdown or HTML: [tekst](doel "titel"), <doel>, [ref]: doel,
# href="doel" / src="doel".
_WRITTEN = re.compile(
    r"\]\(\s*<?([^)\s>]+)|<(https?://[^>\s]+)>|^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)|"
    r"(?:href|src)\s*=\s*(?:[\"']([^\"']+)|([^\s>\"']+))"
)


def site_path(url: str, base_url: str) -> str | None:
    """The outbox path (`site/…`) a link into the site names; None for a link elsewhere."""
    if not url.startswith(base_url):
        return None
    path = unquote(urlsplit(url).path)
    base = urlsplit(base_url).path
    rel = path[len(base) :] if path.startswith(base) else path.lstrip("/")
    if rel == "" or rel.endswith("/"):
        rel += "index.html"
    return "site/" + posixpath.normpath(rel)


def broken_links(config: Config, entries: Sequence[Entry], paths: Collection[str]) -> list[Problem]:
    """A problem per link (or image) in an entry's text to a site path not in `paths`."""
    base_url = config.site.base_url
    problems = []
    for entry in entries:
        missing = []
        for url in dict.fromkeys(_HREF.findall(entry.item.html)):
            url = url.replace("&amp;", "&")
            path = site_path(url, base_url)
            if path is not None and path not in paths and f"{path}/index.html" not in paths:
                missing.append(url)
        if missing:
            lines = _lines(config, entry, base_url)
            for url in missing:
                problems.append(
                    Problem(
                        entry.item.source,
                        lines.get(url.split("#")[0]),
                        f"link naar {url} wijst naar iets dat niet op de site staat (geen "
                        "pagina of bestand van deze build); het bericht staat wel online",
                    )
                )
    return problems


def _lines(config: Config, entry: Entry, base_url: str) -> dict[str, int]:
    """Resolved link target (without fragment) -> the line it is written on."""
    source = entry.item.source
    try:
        data = confine.read_inside(config.root / source, config.content_dir.resolve(), "content/")
    except (confine.Refused, OSError):
        return {}
    item_dir = posixpath.dirname(source.removeprefix(CONTENT_DIR + "/"))
    out: dict[str, int] = {}
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        for m in _WRITTEN.finditer(line):
            written = next(g for g in m.groups() if g)
            url = resolve_url(written, base_url, item_dir).split("#")[0]
            out.setdefault(url, number)
    return out
