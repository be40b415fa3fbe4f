"""The one fingerprint of what shapes krimppost's output, which keys every cache.

An output (a parsed item, a page, a feed, a social draft) is made from its own input plus
the settings, the code, the installed libraries that turn text into HTML, feeds, calendars,
mails and posts, and (for most outputs) the templates. Whatever a cache holds was made under
one fingerprint and is used only under the same one: after an upgrade of nh3 every item is
parsed and sanitised again, after an edit of a template every page is rendered again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import Config

_PACKAGE = Path(__file__).resolve().parent

# Distributions whose code is in the output: Markdown and nh3 make an item's HTML and plain
# text, PyYAML reads its front matter, Jinja2 and MarkupSafe render and escape the templates,
# feedgen and lxml write the feeds, icalendar the calendars, mjml-python the newsletter,
# Babel the Dutch dates, twitter-text-parser and regex count and cut the social posts.
OUTPUT_LIBRARIES = (
    "markdown",
    "nh3",
    "pyyaml",
    "jinja2",
    "markupsafe",
    "feedgen",
    "lxml",
    "icalendar",
    "mjml-python",
    "babel",
    "twitter-text-parser",
    "regex",
)


@functools.cache
def code_fingerprint(subpackage: str = "") -> str:
    """A hash of the Python sources of `pipeline` or of one of its subpackages (`content`,
    `social`); read once per process."""
    h = hashlib.blake2b(digest_size=8)
    for source in sorted((_PACKAGE / subpackage).rglob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()


@functools.cache
def library_versions() -> tuple[tuple[str, str], ...]:
    """The installed version of each of `OUTPUT_LIBRARIES` and of Python itself (Unicode
    tables, `html`, `pickle`), as the package metadata says; read once per process."""
    versions = [("python", f"{platform.python_implementation()} {platform.python_version()}")]
    for name in OUTPUT_LIBRARIES:
        try:
            versions.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            versions.append((name, "-"))  # an import of it fails where it is needed
    return tuple(versions)


def output_fingerprint(config: Config, templates: str = "") -> str:
    """Settings, code and libraries, plus `templates`: the fingerprint of the templates the
    cached outputs are rendered with (`render.templates.fingerprint`), or "" for outputs no
    template shapes (parsed items: a template edit must not parse 5,000 items again)."""
    h = hashlib.blake2b(digest_size=16)
    for part in (config.fingerprint, code_fingerprint(), repr(library_versions()), templates):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()
