"""`krimppost check`: validate the config and every item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.config import Config, file_problems, load_config
from pipeline.content import taxonomy
from pipeline.content.model import Item, ItemState
from pipeline.content.reader import ContentSet, read_content
from pipeline.errors import KrimppostError, Problem
from pipeline.horizon import EARLIEST, Horizons, count_before, horizons
from pipeline.render import templates
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


def item_problems(config: Config, items: Sequence[Item]) -> list[Problem]:
    """Problems of valid items that do not keep them offline (they publish; `check` and
    `build` exit 1): over-long social overrides, two spellings of one region or topic."""
    from pipeline.social.compose import override_problems

    return [*override_problems(config, items), *taxonomy.collision_problems(items)]


def check(root: Path, now: datetime) -> CheckReport:
    config = load_config(root)
    content = read_content(config)
    now = config.moment(now)
    by_state = content.by_state(now)
    counts = {state: len(items) for state, items in by_state.items()}
    problems = [*file_problems(config), *item_problems(config, content.items)]
    try:  # the build reads every template first: what stops it there is a problem here too
        templates.fingerprint(templates.template_dirs(config.templates_dir))
    except KrimppostError as exc:
        problems.extend(exc.problems)
    first_build = None
    address = StoreAddress.of(config)
    if address.exists():  # before any build the horizons count from now, as that build will
        try:
            with StateStore(address) as state:
                first_build = state.first_build()
        except KrimppostError as exc:  # the build would stop on it too
            problems.extend(exc.problems)
    reach = local_horizons(config, first_build, now)
    published = [i.published_at for i in by_state[ItemState.PUBLISHED]]
    before = (count_before(published, reach.newsletter), count_before(published, reach.social))
    return CheckReport(content, counts, tuple(problems), reach, before)
