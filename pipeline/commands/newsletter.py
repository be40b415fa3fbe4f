"""`krimppost newsletter compile`: the next issue from published items not in an earlier one.

The issue is allocated in one state-store transaction (items are a primary key of
issue_items), then rendered from what the store recorded, so a crash between the two is
repaired by the next compile, and concurrent compiles never share an item.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.config import CONFIG_NAME, Config, ConfigError, load_config, newsletter_problems
from pipeline.content.model import item_from_json
from pipeline.content.reader import ContentSet, read_content
from pipeline.errors import KrimppostError, Problem
from pipeline.horizon import horizons
from pipeline.outbox import Outbox, digest
from pipeline.publish import Entry, Publication, decide, entry_to_json, online_entry
from pipeline.render import message, templates
from pipeline.render.newsletter import (
    TOKEN_PLACEHOLDER,
    RenderedIssue,
    render,
    view_of,
    web_path,
)
from pipeline.render.outputs import newsletter_archive
from pipeline.render.preflight import preflight
from pipeline.state import BuildLock, IssueRecord, IssueStore, ItemRecord, StateStore


@dataclass
class CompileReport:
    number: int | None
    subject: str = ""
    items: int = 0
    agenda: int = 0
    size: int = 0
    waiting: int = 0  # items left for a next issue by max_items
    before_horizon: int = 0  # items never in an issue: first published before the horizon
    approval: bool = False  # the issue made waits for approval
    warnings: list[str] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        if self.number is None:
            text = "geen nieuwe berichten sinds de vorige nieuwsbrief; er is geen nummer gemaakt"
        else:
            text = (
                f"nieuwsbrief {self.number} gemaakt: {_count(self.items, 'bericht', 'berichten')}, {self.agenda} in "
                f"de agenda, HTML {self.size / 1000:.1f} kB — {self.subject}"
            )
        if self.waiting:
            text += (
                f"; {_count(self.waiting, 'bericht wacht', 'berichten wachten')} op een "
                "volgend nummer (max_items)"
            )
        if self.before_horizon:
            text += f"; {self.before_horizon} bericht(en) van vóór de horizon komen in geen nummer"
        if self.approval and self.number is not None:
            text += (
                f"\nnummer {self.number} wacht op goedkeuring: bekijk het (krimppost newsletter "
                f"send {self.number} --test ADRES) en keur het goed (krimppost newsletter approve "
                f"{self.number} --by NAAM)"
            )
        return text


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def issue_dir(number: int) -> str:
    return f"newsletters/{number:04d}/"


def subject_for(config: Config, number: int, created_at: datetime) -> str:
    from babel.dates import format_date

    local = created_at.astimezone(config.site.tz)
    return config.newsletter.subject.format(
        site=config.site.title,
        number=number,
        month=format_date(local.date(), "MMMM", locale="nl_NL"),
        year=local.year,
    )


def _intro(config: Config) -> tuple[str, str] | None:
    """The editor's introduction for the next issue: (hash, JSON of html and text), if any."""
    path = config.path(config.newsletter.intro)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        text = raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise KrimppostError(
            [Problem(config.newsletter.intro, None, "geen geldige UTF-8")]
        ) from None
    if not text.strip():
        return None
    from pipeline.content import body

    html, plain = body.render(text, config.site.base_url, "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest, json.dumps({"html": html, "text": plain}, ensure_ascii=False)


@dataclass(frozen=True)
class IssueFiles:
    """The files of an issue, rendered and not yet staged."""

    rendered: RenderedIssue
    files: dict[str, bytes]  # name in the issue's folder -> bytes, the manifest last
    web_page: bytes  # site/nieuwsbrief/N/index.html


def render_issue(config: Config, record: IssueRecord) -> IssueFiles:
    """Render an issue from its record in the store."""
    env = templates.environment(
        templates.template_dirs(config.templates_dir), config.site.tz, config.compiled_templates
    )
    view = view_of(config, record)
    base = message.unsubscribe_base(config)
    rendered = render(env, config, view, base + TOKEN_PLACEHOLDER)
    # The list copy and the web version carry the general unsubscribe page, not a token.
    list_html = rendered.html.replace(TOKEN_PLACEHOLDER, "")
    list_text = rendered.text.replace(TOKEN_PLACEHOLDER, "")
    envelope = message.Envelope(
        to=config.newsletter.list_address,
        subject=record.subject,
        date=record.created_at,
        message_id=message.message_id(config, f"nieuwsbrief-{record.number:04d}", "lijst"),
        unsubscribe_https=base,
        unsubscribe_mailto=config.newsletter.unsubscribe_mailto,
    )
    eml = message.build(config, envelope, list_text, list_html).as_bytes()
    files = {
        "message.mjml": rendered.mjml.encode(),
        "message.html": rendered.html.encode(),
        "message.txt": rendered.text.encode(),
        "message.eml": eml,
    }
    manifest = {
        "issue": record.number,
        "subject": record.subject,
        "created_at": record.created_at.astimezone(UTC).isoformat(),
        "items": [item_id for item_id, _ in record.items],
        "agenda": [e.item.id for e in view.agenda],
        "tracks": [s.track for s in view.sections],
        "web_url": view.web_url,
        "short_teasers": rendered.short,
        "warnings": list(rendered.warnings),
        "sizes": {name: len(data) for name, data in files.items()},
    }
    files["manifest.json"] = (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode()
    return IssueFiles(rendered, files, list_html.encode())


# Who approved an issue made while `[newsletter] approval = false`.
APPROVAL_OFF = "(goedkeuring uitgeschakeld)"


def public(config: Config, record: IssueRecord) -> bool:
    """Whether the issue is on the site: a concept waiting for approval is not."""
    return record.approved


def stage_issue(config: Config, outbox: Outbox, record: IssueRecord, issue: IssueFiles) -> None:
    """Stage the files of an issue, its manifest last (it marks the issue complete), and
    its web version once it is public."""
    folder = issue_dir(record.number)
    for name, data in issue.files.items():
        outbox.stage(folder + name, data)
    if public(config, record):
        outbox.stage(f"site/{web_path(record.number)}index.html", issue.web_page)


def write_issue(config: Config, outbox: Outbox, record: IssueRecord) -> RenderedIssue:
    """Render an issue from the store and stage all its files."""
    issue = render_issue(config, record)
    stage_issue(config, outbox, record, issue)
    return issue.rendered


def refresh_archive(config: Config, state: StateStore, outbox: Outbox, now: datetime) -> None:
    """Re-render the newsletter archive page and issue feed as `build` would, commit them with
    whatever else is staged, and record them."""
    from pipeline.commands.build import issue_links, site_fingerprint

    dirs = templates.template_dirs(config.templates_dir)
    archive = newsletter_archive(
        config,
        now,
        template_dirs=dirs,
        fp=site_fingerprint(config, dirs),
        issues=issue_links(config, state),
    )
    changed = {}
    for out in archive:
        data = out.produce()
        outbox.stage(out.path, data)
        changed[out.path] = (out.key, digest(data))
    with state.transaction():
        state.note_outputs(list(changed))
    outbox.commit()
    with state.transaction():
        state.update_outputs(changed, [])


def _on_site(
    config: Config, state: StateStore, records: dict[str, ItemRecord], publication: Publication
) -> tuple[list[Entry], list[str]]:
    """The entries of the publication decision (the one the feeds come from) as the last
    successful build put them on the site.

    An issue links to item pages, so it takes only entries that build recorded as online
    (the store learns of them after their pages are committed: a failed or interrupted build
    recorded nothing), in the version their page shows, with the dates their feed entry has.
    """
    out, warnings, unbuilt = [], [], []
    for entry in publication.entries:
        record = records.get(entry.id)
        if record is None or not record.live:
            unbuilt.append(entry.id)
        elif record.content_hash == entry.item.content_hash:
            out.append(entry)
        elif (stored := state.last_good(entry.id)) is not None:
            out.append(online_entry(config, item_from_json(stored), record))
            warnings.append(
                f"{entry.item.source}: gewijzigd sinds de laatste build; de nieuwsbrief neemt "
                "de versie die online staat (draai eerst `krimppost build`)"
            )
    if unbuilt:
        warnings.append(
            f"{len(unbuilt)} bericht(en) nog niet online, want nog niet gebouwd of de laatste "
            f"build mislukte: {', '.join(sorted(unbuilt)[:10])}"
            f"{' …' if len(unbuilt) > 10 else ''}; ze komen in een volgend nummer na een "
            "geslaagde `krimppost build`"
        )
    return out, warnings


def _ended(entry: Entry, now: datetime) -> bool:
    event = entry.item.event
    return event is not None and (event.end or event.start) < now


def _candidates(
    config: Config,
    state: StateStore,
    issues: IssueStore,
    content: ContentSet,
    now: datetime,
    report: CompileReport,
) -> tuple[list[Entry], list[Entry]]:
    """(entries as online, every entry waiting for an issue, oldest first)."""
    records = state.items()
    publication = decide(config, content, state, now)
    online, skipped = _on_site(config, state, records, publication)
    report.warnings.extend(skipped)
    horizon = horizons(config, state.first_build(), now).newsletter
    # An item's feed entry id survives a move of its file (publish.py): an item issued
    # under its old id is not taken again under the new one, nor a copy of an issued text.
    issued, texts = issues.issued_entry_ids(), issues.issued_content_hashes()
    waiting = []
    for e in online:
        if not e.item.newsletter or e.entry_id in issued or e.item.content_hash in texts:
            continue
        if e.published < horizon:
            report.before_horizon += 1
        elif not _ended(e, now):
            waiting.append(e)
    waiting.sort(key=lambda e: (e.published, e.id))
    return online, waiting


def _take(
    config: Config, online: list[Entry], waiting: list[Entry], now: datetime
) -> tuple[list[Entry], list[Entry]]:
    """(the items of the next issue, its agenda: every upcoming event online)."""
    chosen = waiting[: config.newsletter.max_items]
    if not chosen:
        return [], []
    agenda = sorted(
        (e for e in online if e.item.event is not None and not _ended(e, now)),
        key=lambda e: (e.item.event.start, e.id),  # type: ignore[union-attr]
    )
    return chosen, agenda


@dataclass(frozen=True)
class NextIssue:
    """What `newsletter compile` would take now, worked out without making anything."""

    concept: IssueRecord | None  # waiting for approval: the compile would refuse
    items: tuple[Entry, ...]
    agenda: tuple[Entry, ...]
    waiting: int  # left for the issue after it by max_items
    before_horizon: int
    warnings: tuple[str, ...]


def next_issue(root: Path, now: datetime) -> NextIssue:
    """The next compile's choice, as `compile_issue` makes it, read-only (the desk shows it;
    nothing is allocated, rendered or written)."""
    config = load_config(root)
    now = config.moment(now)
    content = read_content(config)
    with StateStore.of(config) as state:
        issues = IssueStore(state)
        report = CompileReport(number=None)
        concept = _concept_waiting(config, issues)
        online, waiting = _candidates(config, state, issues, content, now, report)
    chosen, agenda = _take(config, online, waiting, now)
    return NextIssue(
        concept,
        tuple(chosen),
        tuple(agenda),
        len(waiting) - len(chosen),
        report.before_horizon,
        tuple(report.warnings),
    )


def _dutch(number: int) -> str:
    return f"{number:,}".replace(",", ".")


def _refuse_oversize(config: Config, number: int, rendered: RenderedIssue) -> None:
    size = len(rendered.html.encode())
    budget = config.newsletter.size_budget
    if size > budget:
        raise KrimppostError(
            [
                Problem(
                    CONFIG_NAME,
                    config.line("newsletter", "size_budget"),
                    f"nieuwsbrief {number} zou ook met korte teasers {_dutch(size)} bytes HTML "
                    f"zijn, meer dan size_budget ({_dutch(budget)}); het nummer is niet "
                    "gemaakt: verlaag [newsletter] max_items of verhoog size_budget",
                )
            ]
        )


def issue_problems(
    config: Config, state: StateStore, record: IssueRecord, files: IssueFiles
) -> list[Problem]:
    """The pre-flight of a rendered issue against what the builds put on the site."""
    view = view_of(config, record)
    return preflight(
        config,
        built=frozenset(state.outputs()),
        entries=[e for sec in view.sections for e in sec.entries] + list(view.agenda),
        html=files.rendered.html,
        text=files.rendered.text,
        own_pages=frozenset({web_path(record.number), "nieuwsbrief/"}),
    )


def _concept_waiting(config: Config, issues: IssueStore) -> IssueRecord | None:
    """The oldest issue that waits for approval (none when approval is off)."""
    if not config.newsletter.approval:
        return None
    return next((r for r in issues.unsent() if not r.approved), None)


def compile_issue(root: Path, now: datetime) -> CompileReport:
    """The next issue, as a concept waiting for approval (unless approval is off). While a
    concept waits, no next one is made: a second would only hide the first."""
    started = time.perf_counter()
    config = load_config(root)
    if problems := newsletter_problems(config):
        raise ConfigError(problems)
    now = config.moment(now)
    state_path = config.path(config.state.path)
    with BuildLock(state_path, 60):
        content = read_content(config)
        # Temp files of a killed run go first, those of a failing compile with it.
        with (
            StateStore.of(config) as state,
            Outbox(config.outbox_dir).session(state_path) as outbox,
        ):
            issues = IssueStore(state)
            report = CompileReport(number=None, problems=content.problems)
            for number in issues.numbers():  # repair issues a crash left without files
                if not outbox.exists(issue_dir(number) + "manifest.json"):
                    record = issues.get(number)
                    assert record is not None
                    write_issue(config, outbox, record)
                    report.repaired.append(number)
            outbox.commit()
            if (concept := _concept_waiting(config, issues)) is not None:
                raise KrimppostError(
                    f"nieuwsbrief {concept.number} wacht nog op goedkeuring; keur het eerst "
                    f"goed (krimppost newsletter approve {concept.number} --by NAAM) of geef "
                    f"de berichten terug (krimppost newsletter discard {concept.number})"
                )
            online, waiting = _candidates(config, state, issues, content, now, report)
            chosen, agenda = _take(config, online, waiting, now)
            report.waiting = len(waiting) - len(chosen)
            if chosen:
                with issues.allocate(
                    [(e.id, entry_to_json(e)) for e in chosen],
                    lambda n: subject_for(config, n, now),
                    now,
                    _intro(config),
                    json.dumps([entry_to_json(e) for e in agenda]),
                    lambda ids: json.dumps(sorted({e.item.track for e in chosen if e.id in ids})),
                    {e.id: e.entry_id for e in chosen},
                ) as record:
                    # Inside the allocation: a refused issue is rolled back, never made.
                    if record is not None:
                        files = render_issue(config, record)
                        _refuse_oversize(config, record.number, files.rendered)
                        if found := issue_problems(config, state, record, files):
                            raise KrimppostError(found)
                if record is not None:
                    if not config.newsletter.approval:
                        # Approved as it is made: only approved issues are public or sent.
                        with state.transaction():
                            issues.approve(record.number, APPROVAL_OFF, now)
                        record = issues.get(record.number)
                        assert record is not None
                    stage_issue(config, outbox, record, files)
                    refresh_archive(config, state, outbox, now)  # commits the issue with it
                    report.number = record.number
                    report.subject = record.subject
                    report.items = len(record.items)
                    report.agenda = len(agenda)
                    report.size = len(files.rendered.html.encode())
                    report.warnings.extend(files.rendered.warnings)
                    report.approval = config.newsletter.approval
    report.seconds = time.perf_counter() - started
    return report
