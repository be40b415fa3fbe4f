"""Review of social drafts: list, show, approve, reject, and take a stale draft's suggestion.

Comms staff edit the draft files by hand (the primary way to edit); these functions record
the decisions in the same files. Every change re-reads the file just before replacing it, runs
under the build lock (one build or review action at a time), and refreshes the review page.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from pipeline.config import Config
from pipeline.content.model import SOCIAL_PLATFORMS
from pipeline.errors import KrimppostError, Problem, UsageError
from pipeline.outbox import Outbox
from pipeline.social.counting import length
from pipeline.social.draftfile import (
    STATUSES,
    Draft,
    Stored,
    display_path,
    draft_path,
    in_review,
    parse_draft_id,
    read_stored,
    text_hash,
    write_if_unchanged,
)
from pipeline.social.drafts import load_all, refresh_review_page, stamp
from pipeline.social.reviewpage import PLATFORM_LABELS, STATUS_LABELS, DraftView, view
from pipeline.state import BuildLock

LOCK_TIMEOUT = 60.0
REVIEWER_ENV = "KRIMPPOST_REVIEWER"


@contextmanager
def locked(config: Config, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """The build's lock: a review action never interleaves with a build writing drafts."""
    with BuildLock(config.path(config.state.path), timeout):
        yield


def default_reviewer() -> str:
    """`--by` when not given: $KRIMPPOST_REVIEWER, else the login name."""
    name = os.environ.get(REVIEWER_ENV, "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "onbekend"


def parse_status(value: str) -> str:
    """A status filter, in English (`pending`) or Dutch (`te beoordelen`)."""
    wanted = value.strip().lower()
    for status, label in STATUS_LABELS.items():
        if wanted in (status, label):
            return status
    choices = ", ".join(f"{s} ({label})" for s, label in STATUS_LABELS.items())
    raise UsageError(f"onbekende status {value!r}; kies uit: {choices}")


def parse_platform(value: str) -> str:
    wanted = value.strip().lower()
    if wanted not in SOCIAL_PLATFORMS:
        raise UsageError(f"onbekend platform {value!r}; kies uit: {', '.join(SOCIAL_PLATFORMS)}")
    return wanted


def list_views(
    config: Config, now: datetime, status: str | None = None, platform: str | None = None
) -> tuple[list[DraftView], list[Problem]]:
    """Drafts sorted by id, optionally filtered; and the files that cannot be read."""
    drafts, problems = load_all(config)
    views = [view(config, d, now) for d in drafts]
    if status is not None:
        views = [v for v in views if v.status == status]
    if platform is not None:
        views = [v for v in views if v.draft.platform == platform]
    return sorted(views, key=lambda v: v.id), problems


def find(config: Config, draft_id: str) -> Stored:
    parsed = parse_draft_id(draft_id)
    if parsed is None:
        raise UsageError(
            f"ongeldig concept-id {draft_id!r}: gebruik <item-id>/<platform>, "
            "bijvoorbeeld wrb-mijn-item/x (zie krimppost social list)"
        )
    clean = "/".join(parsed)
    stored = read_stored(Outbox(config.outbox_dir), clean)
    if stored is None:
        raise UsageError(
            [Problem(display_path(draft_path(clean)), None, "dit concept bestaat niet")]
        )
    if stored.problem is not None:
        raise KrimppostError([stored.problem])
    return stored


def show(config: Config, draft_id: str, now: datetime) -> DraftView:
    stored = find(config, draft_id)
    assert stored.draft is not None
    return view(config, stored.draft, now)


def _save(config: Config, stored: Stored, draft: Draft, now: datetime) -> DraftView:
    outbox = Outbox(config.outbox_dir)
    written = write_if_unchanged(outbox, draft, stored.digest)
    outbox.commit()
    if not written:
        raise KrimppostError(
            [
                Problem(
                    display_path(draft.path),
                    None,
                    "het bestand is net door iemand anders gewijzigd; bekijk het en probeer opnieuw",
                )
            ]
        )
    refresh_review_page(config, now)
    return view(config, draft, now)


def _refuse(draft: Draft, message: str) -> KrimppostError:
    return KrimppostError([Problem(display_path(draft.path), None, message)])


class EditConflict(KrimppostError):
    """The file changed since the editor loaded it (a hand edit, another person, a build):
    nothing is written, and `current` is the text the file has now."""

    def __init__(self, draft: Draft) -> None:
        super().__init__(
            [
                Problem(
                    display_path(draft.path),
                    None,
                    "het concept is gewijzigd sinds je het opende; je tekst is niet opgeslagen",
                )
            ]
        )
        self.current = draft.text


def _current(config: Config, draft_id: str, expected: str | None) -> tuple[Stored, Draft]:
    """The stored draft in review; with `expected` (the digest the editor's page carried),
    refused when the file has changed since."""
    stored = find(config, draft_id)
    assert stored.draft is not None
    if expected is not None and stored.digest != expected:
        raise EditConflict(stored.draft)
    return stored, in_review(stored.draft)


def _with_text(config: Config, draft: Draft, text: str, when: str) -> Draft:
    """The draft with a new text (line ends as in the files); a changed text is reviewed
    again, as a hand edit of the file is."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if text == draft.text:
        return draft
    status = "pending" if draft.status in ("approved", "rejected") else draft.status
    return replace(
        draft,
        text=text,
        status=status,
        approved_hash=None if status == "pending" else draft.approved_hash,
        length=length(config.social[draft.platform], text),
        updated=when,
    )


def save_text(
    config: Config, draft_id: str, text: str, expected: str, now: datetime
) -> tuple[DraftView, str]:
    """Replace a draft's text, unless its file changed since the editor read it
    (`expected`: that digest). The view and the text before."""
    with locked(config):
        stored, draft = _current(config, draft_id, expected)
        edited = _with_text(config, draft, text, stamp(now, config))
        if edited == draft:
            return view(config, draft, now), draft.text
        return _save(config, stored, edited, now), draft.text


def approve(
    config: Config,
    draft_id: str,
    by: str | None,
    now: datetime,
    text: str | None = None,
    expected: str | None = None,
) -> DraftView:
    """Approve the text as it is now: records who, when and the hash of the approved text.
    With `text` (the desk), that text is saved and approved in one step, refused as a whole
    when it is too long or the file changed since `expected`.

    A stale draft's suggestion is dismissed (approving keeps the current text)."""
    with locked(config):
        stored, draft = _current(config, draft_id, expected)
        if text is not None:
            draft = _with_text(config, draft, text, stamp(now, config))
        if draft.status == "withdrawn":
            raise _refuse(
                draft,
                f"kan niet goedkeuren: het concept is ingetrokken ({draft.withdrawn_reason})",
            )
        if not draft.text:
            raise _refuse(draft, "kan niet goedkeuren: de tekst is leeg")
        platform = config.social[draft.platform]
        n = length(platform, draft.text)
        if n > platform.limit:
            v = view(config, draft, now)
            raise _refuse(
                draft,
                f"kan niet goedkeuren: te lang voor {PLATFORM_LABELS[draft.platform]} "
                f"({n} van {platform.limit} {v.unit}); kort de tekst in het bestand in",
            )
        when = stamp(now, config)
        approved = replace(
            draft,
            status="approved",
            approved_hash=text_hash(draft.text),
            approved_by=(by or default_reviewer()).strip() or default_reviewer(),
            approved_at=when,
            rejected_by=None,
            rejected_at=None,
            reason=None,
            suggestion=None,
            length=n,
            limit=platform.limit,
            updated=when,
        )
        return _save(config, stored, approved, now)


def reject(
    config: Config,
    draft_id: str,
    by: str | None,
    reason: str,
    now: datetime,
    expected: str | None = None,
) -> DraftView:
    if not reason.strip():
        raise UsageError("geef een reden op met --reason")
    with locked(config):
        stored, draft = _current(config, draft_id, expected)
        if draft.status == "withdrawn":
            raise _refuse(
                draft, f"het concept is al ingetrokken ({draft.withdrawn_reason}); niets te doen"
            )
        when = stamp(now, config)
        rejected = replace(
            draft,
            status="rejected",
            approved_hash=None,
            approved_by=None,
            approved_at=None,
            rejected_by=(by or default_reviewer()).strip() or default_reviewer(),
            rejected_at=when,
            reason=reason.strip(),
            updated=when,
        )
        return _save(config, stored, rejected, now)


def take_suggestion(
    config: Config, draft_id: str, now: datetime, expected: str | None = None
) -> DraftView:
    """Replace a stale draft's text by its suggestion; it is then pending and unedited."""
    with locked(config):
        stored, draft = _current(config, draft_id, expected)
        if draft.suggestion is None:
            raise _refuse(
                draft,
                "dit concept heeft geen nieuw voorstel; keur het goed om de tekst te houden",
            )
        when = stamp(now, config)
        platform = config.social[draft.platform]
        taken = replace(
            draft,
            text=draft.suggestion,
            generated_hash=text_hash(draft.suggestion),
            latest_hash=text_hash(draft.suggestion),
            suggestion=None,
            status="pending",
            approved_hash=None,
            approved_by=None,
            approved_at=None,
            rejected_by=None,
            rejected_at=None,
            reason=None,
            length=length(platform, draft.suggestion),
            updated=when,
        )
        return _save(config, stored, taken, now)


__all__ = [
    "STATUSES",
    "EditConflict",
    "approve",
    "default_reviewer",
    "find",
    "list_views",
    "locked",
    "parse_platform",
    "parse_status",
    "reject",
    "save_text",
    "show",
    "take_suggestion",
]
