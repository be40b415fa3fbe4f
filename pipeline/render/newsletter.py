"""A newsletter issue as MJML, HTML (mjml-python) and plain text, for all or some tracks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from pipeline.config import Config
from pipeline.errors import KrimppostError, Problem
from pipeline.publish import Entry, entry_from_json
from pipeline.render import templates
from pipeline.render.message import preferences_base
from pipeline.state import IssueRecord

if TYPE_CHECKING:
    import jinja2

MJML_TEMPLATE = "newsletter/issue.mjml.j2"
TEXT_TEMPLATE = "newsletter/issue.txt.j2"
# Delivery replaces this with each recipient's token; it never reaches a reader unreplaced.
TOKEN_PLACEHOLDER = "%%AFMELDTOKEN%%"


@dataclass(frozen=True)
class Section:
    track: str
    label: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class IssueView:
    number: int
    subject: str
    created_at: datetime
    sections: tuple[Section, ...]
    agenda: tuple[Entry, ...]
    intro_html: str | None
    intro_text: str | None
    web_url: str

    @property
    def tracks(self) -> frozenset[str]:
        return frozenset(s.track for s in self.sections)

    def for_tracks(self, tracks: frozenset[str] | set[str]) -> IssueView:
        """Only the sections, and the events in the agenda, of the tracks a subscriber chose."""
        return replace(
            self,
            sections=tuple(s for s in self.sections if s.track in tracks),
            agenda=tuple(e for e in self.agenda if e.item.track in tracks),
        )

    @property
    def preheader(self) -> str:
        titles = [e.item.title for s in self.sections for e in s.entries]
        text = " · ".join(titles)
        return text if len(text) <= 140 else text[:139].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class RenderedIssue:
    mjml: str
    html: str
    text: str
    short: bool
    warnings: tuple[str, ...]


def _context(
    config: Config, view: IssueView, unsubscribe_url: str, short: bool
) -> dict[str, object]:
    tracks_line = ", ".join(s.label for s in view.sections)
    return {
        "site": config.site,
        "subject": view.subject,
        "preheader": view.preheader,
        "number": view.number,
        "created_at": view.created_at,
        "sections": view.sections,
        "agenda": view.agenda,
        "intro_html": view.intro_html,
        "intro_text": view.intro_text,
        "web_url": view.web_url,
        "unsubscribe_url": unsubscribe_url,
        # the same token as the unsubscribe link: one placeholder, replaced per recipient
        "preferences_url": preferences_base(config) + TOKEN_PLACEHOLDER,
        "reply_to": config.newsletter.reply_to,
        "sender_address": config.newsletter.sender_address,
        "tracks_line": tracks_line,
        "short": short,
    }


def to_html(mjml_text: str) -> str:
    from mjml import mjml2html

    try:
        # fonts={}: no font requests to third parties from a government e-mail.
        html = mjml2html(mjml_text, disable_comments=True, fonts={})
    except ValueError as exc:
        raise KrimppostError(
            [Problem(f"templates/{MJML_TEMPLATE}", None, f"MJML afgewezen: {exc}")]
        ) from None
    if "<mj-" in html:
        tag = html[html.index("<mj-") :].split(">", 1)[0] + ">"
        raise KrimppostError(
            [Problem(f"templates/{MJML_TEMPLATE}", None, f"onbekende MJML-tag {tag}")]
        )
    return html


def render(
    env: jinja2.Environment, config: Config, view: IssueView, unsubscribe_url: str
) -> RenderedIssue:
    """Render MJML, HTML and text; switch to short teasers when the HTML exceeds the budget."""
    budget = config.newsletter.size_budget
    warnings: list[str] = []
    short = False
    mjml_text = templates.render(
        env, MJML_TEMPLATE, **_context(config, view, unsubscribe_url, False)
    )
    html = to_html(mjml_text)
    if len(html.encode()) > budget:
        warnings.append(
            f"nieuwsbrief {view.number}: HTML is {len(html.encode()):,} bytes, meer dan {budget:,}; "
            "kortere teasers zonder afbeeldingen gebruikt".replace(",", ".")
        )
        short = True
        mjml_text = templates.render(
            env, MJML_TEMPLATE, **_context(config, view, unsubscribe_url, True)
        )
        html = to_html(mjml_text)
        if len(html.encode()) > budget:
            warnings.append(
                f"nieuwsbrief {view.number}: ook met korte teasers {len(html.encode()):,} bytes; "
                "Gmail kort het bericht in".replace(",", ".")
            )
    text = templates.render(env, TEXT_TEMPLATE, **_context(config, view, unsubscribe_url, short))
    return RenderedIssue(mjml_text, html, text, short, tuple(warnings))


def sections_for(config: Config, entries: Sequence[Entry]) -> tuple[Section, ...]:
    """Group by track in config order, newest first within a track."""
    out = []
    for track in config.tracks.values():
        chosen = sorted(
            (e for e in entries if e.item.track == track.id),
            key=lambda e: e.published,
            reverse=True,
        )
        if chosen:
            out.append(Section(track.id, track.label, tuple(chosen)))
    return tuple(out)


def web_path(number: int) -> str:
    return f"nieuwsbrief/{number}/"


@dataclass(frozen=True)
class IssueLink:
    """A newsletter issue in the web archive: its page (site.py) and feed (feeds.py)."""

    number: int
    subject: str
    created_at: datetime
    path: str  # web_path(number)


def view_of(config: Config, record: IssueRecord) -> IssueView:
    entries = [entry_from_json(config, snapshot) for _, snapshot in record.items]
    agenda = tuple(entry_from_json(config, s) for s in json.loads(record.agenda))
    intro = json.loads(record.intro) if record.intro else None
    return IssueView(
        number=record.number,
        subject=record.subject,
        created_at=record.created_at.astimezone(config.site.tz),
        sections=sections_for(config, entries),
        agenda=agenda,
        intro_html=intro["html"] if intro else None,
        intro_text=intro["text"] if intro else None,
        web_url=config.site.base_url + web_path(record.number),
    )
