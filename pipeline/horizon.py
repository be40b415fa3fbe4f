"""The horizons: how far back a project's newsletter and social drafts reach.

An item first published before a horizon is on the site and in the feeds, but in no
newsletter issue and gets no social drafts: a programme that adopts krimppost with years of
items does not mail or post its archive again. The horizons are counted from the clock of
the project's first build (the state store keeps it), or start at a configured date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pipeline.config import Config

EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Horizons:
    newsletter: datetime
    social: datetime


def _horizon(start: datetime, lookback_days: int, since: str, tz: ZoneInfo) -> datetime:
    if since:
        # From the start of that day where the site is.
        return datetime.combine(date.fromisoformat(since), time(0), tz).astimezone(UTC)
    try:
        # In UTC: a day back across a DST change is still 24 hours.
        return start.astimezone(UTC) - timedelta(days=lookback_days)
    except OverflowError:  # a first build "at" 0001-01-01
        return EARLIEST


def horizons(config: Config, first_build: datetime | None, now: datetime) -> Horizons:
    """The horizons of a project whose first build ran at `first_build` (None: it has not
    run yet, and this run is the first, at `now`)."""
    start = first_build or now
    tz = config.site.tz
    nl, social = config.newsletter, config.social_horizon
    return Horizons(
        newsletter=_horizon(start, nl.lookback_days, nl.since, tz),
        social=_horizon(start, social.lookback_days, social.since, tz),
    )


def count_before(moments: Iterable[datetime], horizon: datetime) -> int:
    return sum(1 for moment in moments if moment < horizon)
