"""`krimppost check`: validate the config and every item."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.config import file_problems, load_config
from pipeline.content.model import ItemState
from pipeline.content.reader import ContentSet, read_content
from pipeline.errors import KrimppostError, Problem
from pipeline.render import templates


@dataclass(frozen=True)
class CheckReport:
    content: ContentSet
    counts: dict[ItemState, int]

    config_problems: tuple[Problem, ...] = ()

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.config_problems + self.content.problems

    def summary(self) -> str:
        c = self.counts
        return (
            f"{_count(sum(c.values()), 'item', 'items')}: {c[ItemState.PUBLISHED]} gepubliceerd, "
            f"{c[ItemState.EMBARGOED]} onder embargo, "
            f"{_count(c[ItemState.DRAFT], 'concept', 'concepten')}; "
            f"{_count(len(self.problems), 'fout', 'fouten')}"
        )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def check(root: Path, now: datetime) -> CheckReport:
    config = load_config(root)
    content = read_content(config)
    now = config.moment(now)
    counts = {state: len(items) for state, items in content.by_state(now).items()}
    from pipeline.social.compose import override_problems

    problems = [*file_problems(config), *override_problems(config, content.items)]
    try:  # the build reads every template first: what stops it there is a problem here too
        templates.fingerprint(templates.template_dirs(config.templates_dir))
    except KrimppostError as exc:
        problems.extend(exc.problems)
    return CheckReport(content, counts, tuple(problems))
