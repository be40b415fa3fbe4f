"""`krimppost newsletter approve N --by NAAM` and `newsletter discard N`.

A compiled issue is a concept: not on the site, not sent (unless `[newsletter] approval =
false`). Approving records who and when, puts the web version on the site and, with
`send_on_approval`, sends it at once. Discarding an unsent concept gives its items back to
the pool for the next issue.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.commands.newsletter import (
    issue_dir,
    issue_problems,
    refresh_archive,
    render_issue,
    stage_issue,
)
from pipeline.config import Config, load_config
from pipeline.errors import KrimppostError, Problem, UsageError
from pipeline.outbox import Outbox
from pipeline.render.newsletter import web_path
from pipeline.state import BuildLock, IssueStore, StateStore


@dataclass
class ApprovalReport:
    number: int
    by: str
    at: datetime
    already: bool = False  # approved before; nothing changed
    send_now: bool = False  # send_on_approval: the caller sends it next
    by_service: bool = False  # auto_send with a newsletter slot: the service sends it

    def summary(self) -> str:
        when = self.at.strftime("%Y-%m-%d %H:%M")
        if self.already:
            return f"nieuwsbrief {self.number} was al goedgekeurd door {self.by} ({when})"
        if self.send_now:
            then = "; het wordt nu verstuurd"
        else:
            then = f"; versturen: `krimppost newsletter send {self.number}`"
            if self.by_service:
                then += ", of de planner doet het op het volgende nieuwsbriefmoment"
        return f"nieuwsbrief {self.number} goedgekeurd door {self.by} ({when}){then}"


@contextmanager
def _session(config: Config) -> Iterator[tuple[StateStore, Outbox]]:
    """The state store and the outbox, under the build lock (the archive is rewritten)."""
    state_path = config.path(config.state.path)
    with (
        BuildLock(state_path, 60),
        StateStore.of(config) as state,
        Outbox(config.outbox_dir).session(state_path) as outbox,
    ):
        yield state, outbox


def approve_issue(root: Path, number: int, by: str, now: datetime) -> ApprovalReport:
    by = " ".join(by.split())
    if not by:
        raise UsageError("--by: geef de naam van wie het nummer goedkeurt")
    config = load_config(root)
    now = config.moment(now)
    with _session(config) as (state, outbox):
        issues = IssueStore(state)
        record = issues.chosen(number)
        if record.approved:
            assert record.approved_by is not None and record.approved_at is not None
            return ApprovalReport(
                number, record.approved_by, record.approved_at.astimezone(config.site.tz), True
            )
        # The site may have changed since compile (an item withdrawn, a page gone): the
        # pre-flight again, against what the builds put online now.
        files = render_issue(config, record)
        if found := issue_problems(config, state, record, files):
            raise KrimppostError(
                [
                    *found,
                    Problem(
                        "krimppost",
                        None,
                        f"nieuwsbrief {number} is niet goedgekeurd; geef de berichten terug "
                        f"(krimppost newsletter discard {number}) en stel het opnieuw samen",
                    ),
                ]
            )
        with state.transaction():
            issues.approve(number, by, now)
        record = issues.chosen(number)
        # Now public: its web version and its line in the archive and the issue feed.
        stage_issue(config, outbox, record, files)
        refresh_archive(config, state, outbox, now)
    return ApprovalReport(
        number,
        by,
        now.astimezone(config.site.tz),
        send_now=config.newsletter.send_on_approval,
        by_service=config.schedule.auto_send and bool(config.schedule.newsletter),
    )


def discard_issue(root: Path, number: int, now: datetime) -> str:
    config = load_config(root)
    now = config.moment(now)
    with _session(config) as (state, outbox):
        issues = IssueStore(state)
        record = issues.chosen(number)
        if issues.send_begun(number):
            raise KrimppostError(f"nieuwsbrief {number} is (deels) verstuurd en kan niet weg")
        if record.approved:
            raise KrimppostError(
                f"nieuwsbrief {number} is goedgekeurd door {record.approved_by}; alleen een "
                "concept kan weg"
            )
        with state.transaction():
            issues.discard(number)
        # The manifest first: a folder without one is an issue a crash left half-made.
        folder = issue_dir(number)
        names = ["manifest.json", "message.eml", "message.html", "message.mjml", "message.txt"]
        outbox.remove([folder + names[0]])
        outbox.remove([folder + name for name in names[1:]])
        outbox.remove([f"site/{web_path(number)}index.html"])
        refresh_archive(config, state, outbox, now)
    return (
        f"nieuwsbrief {number} weggegooid: {len(record.items)} bericht(en) komen in het "
        "volgende nummer"
    )
