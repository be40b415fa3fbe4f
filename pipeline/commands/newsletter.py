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

from pipeline.config import Config, ConfigError, load_config, newsletter_problems
from pipeline.content.model import item_from_json
from pipeline.content.reader import ContentSet, read_content
from pipeline.errors import KrimppostError, Problem
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
from pipeline.state import BuildLock, IssueRecord, IssueStore, ItemRecord, StateStore


@dataclass
class CompileReport:
    number: int | None
    subject: str = ""
    items: int = 0
    agenda: int = 0
    size: int = 0
    warnings: list[str] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    problems: tuple[Problem, ...] = ()
    seconds: float = 0.0

    def summary(self) -> str:
        if self.number is None:
            return "geen nieuwe berichten sinds de vorige nieuwsbrief; er is geen nummer gemaakt"
        return (
            f"nieuwsbrief {self.number} gemaakt: {self.items} berichten, {self.agenda} in de agenda, "
            f"HTML {self.size / 1000:.1f} kB — {self.subject}"
        )


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


def write_issue(config: Config, outbox: Outbox, record: IssueRecord) -> RenderedIssue:
    """Render an issue from the store and stage all its files (the manifest last)."""
    env = templates.environment(templates.template_dirs(config.templates_dir), config.site.tz)
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
    folder = issue_dir(record.number)
    files = {
        "message.mjml": rendered.mjml.encode(),
        "message.html": rendered.html.encode(),
        "message.txt": rendered.text.encode(),
        "message.eml": eml,
    }
    for name, data in files.items():
        outbox.stage(folder + name, data)
    outbox.stage(f"site/{web_path(record.number)}index.html", list_html.encode())
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
    outbox.stage(
        folder + "manifest.json",
        (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode(),
    )
    return rendered


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


def _candidates(
    config: Config,
    state: StateStore,
    issues: IssueStore,
    content: ContentSet,
    now: datetime,
    report: CompileReport,
) -> tuple[list[Entry], list[Entry]]:
    """(entries as online, entries for the next issue)."""
    records = state.items()
    publication = decide(config, content, state, now)
    online, skipped = _on_site(config, state, records, publication)
    report.warnings.extend(skipped)
    # An item's feed entry id survives a move of its file (publish.py): an item issued
    # under its old id is not taken again under the new one, nor a copy of an issued text.
    issued, texts = issues.issued_entry_ids(), issues.issued_content_hashes()
    candidates = [
        e
        for e in online
        if e.item.newsletter and e.entry_id not in issued and e.item.content_hash not in texts
    ]
    return online, candidates


def compile_issue(root: Path, now: datetime) -> CompileReport:
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
            StateStore(state_path) as state,
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

            online, candidates = _candidates(config, state, issues, content, now, report)
            if candidates:
                agenda = sorted(
                    (e for e in online if e.item.event is not None and e.item.event.start > now),
                    key=lambda e: (e.item.event.start, e.id),  # type: ignore[union-attr]
                )
                number = issues.create(
                    [(e.id, entry_to_json(e)) for e in candidates],
                    lambda n: subject_for(config, n, now),
                    now,
                    _intro(config),
                    json.dumps([entry_to_json(e) for e in agenda]),
                    lambda ids: json.dumps(
                        sorted({e.item.track for e in candidates if e.id in ids})
                    ),
                    {e.id: e.entry_id for e in candidates},
                )
                if number is not None:
                    record = issues.get(number)
                    assert record is not None
                    rendered = write_issue(config, outbox, record)
                    refresh_archive(config, state, outbox, now)  # commits the issue with it
                    report.number = number
                    report.subject = record.subject
                    report.items = len(record.items)
                    report.agenda = len(agenda)
                    report.size = len(rendered.html.encode())
                    report.warnings.extend(rendered.warnings)
    report.seconds = time.perf_counter() - started
    return report
