"""Pelican settings for bench/bench_build.py (the side-by-side reference, not part of krimppost).

Read by `pelican -s bench/pelican/pelicanconf.py`; bench_build.py passes the paths and the
variant through the environment:

- KP_PELICAN_ROOT: the converted project (content/ in it; output/ and cache/ are written there)
- KP_PELICAN_SMARTY: "1" adds the `smarty` extension (the issue's reference figures include it)

Feeds on (all + per category, Atom and RSS, 50 entries like krimppost's [feeds] length), the
built-in `simple` theme, YAML front matter through the `pelican-yaml-metadata` plugin, and the
Markdown extensions of pipeline/content/body.py (`extra` with the same footnote config,
`sane_lists`). The content cache is on, as the issue's rebuild figure was measured with it.
"""

import os

ROOT = os.environ["KP_PELICAN_ROOT"]
SMARTY = os.environ.get("KP_PELICAN_SMARTY") == "1"

SITENAME = "Bevolkingsdaling"
SITEURL = "https://www.bevolkingsdaling.nl"
RELATIVE_URLS = False
TIMEZONE = "Europe/Amsterdam"
DEFAULT_LANG = "nl"
DEFAULT_DATE_FORMAT = "%d %B %Y"

PATH = os.path.join(ROOT, "content")
OUTPUT_PATH = os.path.join(ROOT, "output")
CACHE_PATH = os.path.join(ROOT, "cache")
THEME = "simple"
PLUGINS = ["yaml_metadata"]

# Unique slugs: titles repeat across 5,000 generated items; the file names do not.
SLUGIFY_SOURCE = "basename"
DEFAULT_PAGINATION = 10

FEED_DOMAIN = SITEURL
FEED_ALL_ATOM = "feeds/all.atom.xml"
FEED_ALL_RSS = "feeds/all.rss.xml"
CATEGORY_FEED_ATOM = "feeds/{slug}.atom.xml"
CATEGORY_FEED_RSS = "feeds/{slug}.rss.xml"
FEED_MAX_ITEMS = 50

LOAD_CONTENT_CACHE = True
CACHE_CONTENT = True

_footnotes = {"BACKLINK_TITLE": "Terug naar voetnoot %d in de tekst", "SUPERSCRIPT_TEXT": "{}"}
MARKDOWN = {
    "extension_configs": {
        "markdown.extensions.extra": {"footnotes": _footnotes},
        "markdown.extensions.sane_lists": {},
        **({"markdown.extensions.smarty": {}} if SMARTY else {}),
    },
    "output_format": "html5",
}
