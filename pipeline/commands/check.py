"""`krimppost check`: validate the config and every item."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.commands.problems import item_problems
from pipeline.config import Config, file_problems, load_config
from pipeline.content.model import ItemState
from pipeline.content.reader import ContentSet, read_content
from pipeline.errors import KrimppostError, Problem
from pipeline.horizon import EARLIEST, Horizons, count_before, horizons
from pipeline.publish import Publication, decide, fresh_entry
from pipeline.render import templates
from pipeline.render.newsletter import IssueLink
from pipeline.state import StateStore, StoreAddress


@dataclass(frozen=True)
class CheckReport:
    content: ContentSet
    counts: dict[ItemState, int]

    config_problems: tuple[Problem, ...] = ()
    horizons: Horizons | None = None
    before_horizon: tuple[int, int] = (0, 0)  # published items before (newsletter, social)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.config_problems + self.content.problems

    def summary(self) -> str:
        c = self.counts
        text = (
            f"{_count(sum(c.values()), 'item', 'items')}: {c[ItemState.PUBLISHED]} gepubliceerd, "
            f"{c[ItemState.EMBARGOED]} onder embargo, "
            f"{_count(c[ItemState.DRAFT], 'concept', 'concepten')}; "
            f"{_count(len(self.problems), 'fout', 'fouten')}"
        )
        # Only when the horizons leave something out (an adopted archive, say); before
        # the counts, which stay the last line.
        if self.horizons is not None and any(self.before_horizon):
            text = "\n".join([*horizon_lines(self.horizons, self.before_horizon), text])
        return text


def horizon_lines(reach: Horizons, before: tuple[int, int]) -> list[str]:
    """How many published items lie before each horizon (also for `status`)."""
    newsletter, social = before
    return [
        f"horizon nieuwsbrief: {_moment(reach.newsletter)}; "
        f"{_published(newsletter)} van daarvoor in geen nummer",
        f"horizon social-concepten: {_moment(reach.social)}; "
        f"{_published(social)} van daarvoor zonder concepten",
    ]


def local_horizons(config: Config, first_build: datetime | None, now: datetime) -> Horizons:
    """The horizons, in the site's zone for display."""
    reach = horizons(config, first_build, now)
    return Horizons(
        *(
            h if h == EARLIEST else h.astimezone(config.site.tz)
            for h in (reach.newsletter, reach.social)
        )
    )


def _moment(moment: datetime) -> str:
    return "geen (alles telt mee)" if moment == EARLIEST else moment.isoformat(timespec="minutes")


def _published(n: int) -> str:
    return _count(n, "gepubliceerd item", "gepubliceerde items")


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def link_problems(
    config: Config, publication: Publication, now: datetime, issues: Sequence[IssueLink]
) -> list[Problem]:
    """The items' links into the site that the build's outputs would not satisfy."""
    from pipeline.commands.build import site_paths
    from pipeline.render.links import broken_links
    from pipeline.render.outputs import all_outputs

    outputs = all_outputs(
        config,
        publication,
        now,
        template_dirs=templates.template_dirs(config.templates_dir),
        fp="",
        issues=issues,
        previous_keys={},
    )
    return broken_links(config, publication.entries, site_paths(outputs, issues))


LINKS_CACHE = "links.json"  # beside the render cache


def _checked_links(
    config: Config, content: ContentSet, now: datetime, state: StateStore | None
) -> list[Problem]:
    """`link_problems` of what the build would publish now, answered from a small cache
    when nothing it depends on changed: listing every output of a 5,000-item site costs
    more than the rest of a warm check (bench/README.md)."""
    from pipeline.commands.build import issue_links
    from pipeline.fingerprints import output_fingerprint

    published = [i for i in content.items if i.state(now) is ItemState.PUBLISHED]
    issues = issue_links(config, state) if state is not None else ()
    aliases = state.aliases() if state is not None else {}
    # The last build's inputs: what it recorded (last good versions, moves) shapes decide().
    built = state.build_meta().get("inputs") if state is not None else None
    key = hashlib.blake2b(
        repr(
            (
                output_fingerprint(
                    config, templates.fingerprint(templates.template_dirs(config.templates_dir))
                ),
                sorted((i.id, i.source, i.content_hash) for i in published),
                sorted(aliases.items()),
                [(i.number, i.path) for i in issues],
                sorted({p.path for p in content.problems}),
                built,
            )
        ).encode(),
        digest_size=16,
    ).hexdigest()
    path = config.path(config.build.cache).with_name(LINKS_CACHE)
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept.get("key") == key:
            return [Problem(p["path"], p["line"], p["message"]) for p in kept["problems"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or not ours: work it out
    if state is not None:
        publication = decide(config, content, state, now)
    else:
        publication = Publication(entries=tuple(fresh_entry(config, i) for i in published))
    found = link_problems(config, publication, now, issues)
    data = {"key": key, "problems": [dataclasses.asdict(p) for p in found]}
    temp = path.with_name(f".{LINKS_CACHE}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()
    return found


def check(root: Path, now: datetime) -> CheckReport:
    config = load_config(root)
    content = read_content(config)
    now = config.moment(now)
    by_state = content.by_state(now)
    counts = {state: len(items) for state, items in by_state.items()}
    problems = [*file_problems(config), *item_problems(config, content.items)]
    template_ok = True
    try:  # the build reads every template first: what stops it there is a problem here too
        templates.fingerprint(templates.template_dirs(config.templates_dir))
    except KrimppostError as exc:
        problems.extend(exc.problems)
        template_ok = False
    first_build = None
    address = StoreAddress.of(config)
    links: list[Problem] = []
    if address.exists():  # before any build the horizons count from now, as that build will
        try:
            with StateStore(address) as state:
                first_build = state.first_build()
                if template_ok:
                    links = _checked_links(config, content, now, state)
        except KrimppostError as exc:  # the build would stop on it too
            problems.extend(exc.problems)
    elif template_ok:
        links = _checked_links(config, content, now, None)
    problems.extend(links)
    reach = local_horizons(config, first_build, now)
    published = [i.published_at for i in by_state[ItemState.PUBLISHED]]
    before = (count_before(published, reach.newsletter), count_before(published, reach.social))
    return CheckReport(content, counts, tuple(problems), reach, before)
