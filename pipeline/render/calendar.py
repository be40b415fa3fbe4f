"""iCalendar output: the agenda of upcoming events and one file per event, and their
place in the table of outputs.

UIDs are the permanent entry ids, so a calendar app updates an event instead of adding a
copy; DTSTAMP comes from the entry's last update, never from the build's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.publish import Entry
from pipeline.render.output import Output, key_of

if TYPE_CHECKING:
    from icalendar import Calendar

PRODID = "-//Programma Bevolkingsdaling//krimppost//NL"
DEFAULT_DURATION = timedelta(hours=2)


def _calendar(config: Config, name: str, entries: Sequence[Entry]) -> Calendar:
    from icalendar import Calendar, Event, Timezone  # only when a calendar is rendered

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", config.site.timezone)
    starts = [e.item.event.start for e in entries if e.item.event]
    first = min(starts).date() if starts else date(2026, 1, 1)
    last = max(starts).date() if starts else date(2026, 12, 31)
    # A fixed window around the events keeps the VTIMEZONE, and so the file, reproducible.
    cal.add_component(
        Timezone.from_tzid(
            config.site.timezone,
            first_date=date(first.year, 1, 1),
            last_date=date(last.year + 1, 1, 1),
        )
    )
    tz = config.site.tz
    for entry in entries:
        event = entry.item.event
        if event is None:
            continue
        ve = Event()
        ve.add("uid", entry.entry_id)
        ve.add("dtstamp", entry.updated.astimezone(tz))
        ve.add("summary", entry.item.title)
        ve.add("dtstart", event.start.astimezone(tz))
        ve.add("dtend", (event.end or event.start + DEFAULT_DURATION).astimezone(tz))
        ve.add("location", event.location)
        description = entry.item.summary
        if event.registration_url:
            description += f"\n\nAanmelden: {event.registration_url}"
        ve.add("description", f"{description}\n\n{entry.url}")
        ve.add("url", entry.url)
        ve.add("last-modified", entry.updated.astimezone(tz))
        cal.add_component(ve)
    return cal


def agenda(config: Config, upcoming: Sequence[Entry]) -> bytes:
    return _calendar(config, f"Agenda {config.site.title}", upcoming).to_ical()


def single(config: Config, entry: Entry) -> bytes:
    return _calendar(config, entry.item.title, [entry]).to_ical()


def upcoming_events(entries: Sequence[Entry], now: datetime) -> list[Entry]:
    """Events that have not ended yet, soonest first (the agenda, and the home page's)."""
    events = [
        e
        for e in entries
        if e.item.event is not None and (e.item.event.end or e.item.event.start) >= now
    ]
    return sorted(events, key=lambda e: (e.item.event.start, e.id))  # type: ignore[union-attr]


# agenda.ics keeps an event this long after it ended: a calendar subscriber otherwise sees
# it vanish from their own calendar the moment it is over.
KEEP_PAST = timedelta(days=365)


def ended(entry: Entry, now: datetime) -> bool:
    event = entry.item.event
    return event is not None and (event.end or event.start) < now


def past_events(entries: Sequence[Entry], now: datetime) -> list[Entry]:
    """Events that are over, latest first (the agenda page's second part)."""
    events = [e for e in entries if ended(e, now)]
    return sorted(events, key=lambda e: (e.item.event.start, e.id), reverse=True)  # type: ignore[union-attr]


def outputs(config: Config, entries: Sequence[Entry], fp: str, now: datetime) -> list[Output]:
    """The agenda (upcoming events and those of the last year) and one .ics per event."""
    since = now - KEEP_PAST
    kept = sorted(
        (
            e
            for e in entries
            if e.item.event is not None and (e.item.event.end or e.item.event.start) >= since
        ),
        key=lambda e: (e.item.event.start, e.id),  # type: ignore[union-attr]
    )
    out = [
        Output(
            "site/agenda.ics",
            key_of(fp, "agenda", [e.key for e in kept]),
            lambda: agenda(config, kept),
            3,
        )
    ]
    for entry in entries:
        if entry.item.event is not None:
            out.append(
                Output(
                    f"site/{entry.path}evenement.ics",
                    key_of(fp, "ics", entry.key),
                    lambda e=entry: single(config, e),
                    1,
                )
            )
    return out
