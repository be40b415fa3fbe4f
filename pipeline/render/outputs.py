"""The table of outputs: every file a build produces, with its key and how to make it.

Each renderer lists its own outputs (site.py its pages and assets, feeds.py its feeds,
calendar.py its .ics files); this module puts them together into the one list the build
writes, and into the newsletter archive that `compile` refreshes on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pipeline.config import Config
from pipeline.publish import Publication
from pipeline.render import calendar, feeds, templates
from pipeline.render.newsletter import IssueLink
from pipeline.render.output import Output
from pipeline.render.site import Site


def all_outputs(
    config: Config,
    publication: Publication,
    now: datetime,
    *,
    template_dirs: list[Path],
    fp: str,
    issues: Sequence[IssueLink],
    previous_keys: Mapping[str, str],
) -> list[Output]:
    """Every output of a build, one per path: pages and assets, feeds, calendars (the
    search index is made beside them: search.start).

    `fp` is the fingerprint of what shapes every output (settings, templates, code);
    `previous_keys` the key of each file in the outbox now (an unreadable asset keeps its copy).
    """
    entries = publication.entries
    site = _site(config, template_dirs, fp, now, issues, publication)
    site.previous_keys = dict(previous_keys)
    out = [
        *site.outputs(),
        feeds.issues_output(config, fp, issues),
        *feeds.outputs(config, entries, fp, site.terms),
        *calendar.outputs(config, entries, fp, now),
    ]
    # The podcast cover may also be an item's asset: that output stays, listed once.
    paths = {o.path for o in out}
    out += [o for o in feeds.podcast_image_output(config) if o.path not in paths]
    return out


def newsletter_archive(
    config: Config,
    now: datetime,
    *,
    template_dirs: list[Path],
    fp: str,
    issues: Sequence[IssueLink],
) -> list[Output]:
    """The newsletter archive page and its feed of issues, exactly as `all_outputs` lists them."""
    site = _site(config, template_dirs, fp, now, issues, None)
    return [site.newsletter_archive(), feeds.issues_output(config, fp, issues)]


def _site(
    config: Config,
    template_dirs: list[Path],
    fp: str,
    now: datetime,
    issues: Sequence[IssueLink],
    publication: Publication | None,
) -> Site:
    return Site(
        config,
        lambda: templates.environment(template_dirs, config.site.tz, config.compiled_templates),
        template_dirs,
        publication.entries if publication is not None else (),
        now,
        fp,
        issues,
        publication.redirects if publication is not None else (),
    )
