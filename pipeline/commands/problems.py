"""Problems of valid items that `check` and `build` both report."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.config import Config
from pipeline.content import taxonomy
from pipeline.content.model import Item
from pipeline.errors import Problem


def item_problems(config: Config, items: Sequence[Item]) -> list[Problem]:
    """Problems of valid items that do not keep them offline (they publish; `check` and
    `build` exit 1): over-long social overrides, two spellings of one region or topic."""
    from pipeline.social.compose import override_problems

    return [*override_problems(config, items), *taxonomy.collision_problems(items)]
