"""Issue 15: bounded issues, approval before sending, discard, agenda per track, migration 7."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import VALID, Project, build_at
from pipeline.cli import cli
from pipeline.commands.approval import approve_issue, discard_issue
from pipeline.commands.newsletter import compile_issue
from pipeline.config import load_config
from pipeline.errors import KrimppostError
from pipeline.render.newsletter import view_of
from pipeline.state import SQLITE_SCRIPTS, IssueStore, StateStore

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend), but
# the upgrades of a legacy SQLite store.
pytestmark = pytest.mark.usefixtures("state_backend")
sqlite_only = pytest.mark.parametrize("state_backend", ["sqlite"], indirect=True)

NOW = "2026-11-27T12:00"


def item(n: int, day: int, track: str = "wrb", extra: str = "") -> str:
    return (
        VALID.replace("title: Een geldig item", f"title: Bericht {n}")
        .replace("track: wrb", f"track: {track}{extra}")
        .replace("2026-11-01", f"2026-11-{day:02d}")
    )


def event(n: int, track: str, start: str, day: int = 2) -> str:
    return f"""\
---
title: Bijeenkomst {n}
date: 2026-11-{day:02d}
kind: event
track: {track}
summary: Een middag over krimp.
event: {{start: {start}, location: "Heerlen"}}
---
Programma volgt.
"""


def set_options(project: Project, **values: object) -> None:
    """Replace or add [newsletter] options in the project's config.toml."""
    path = project.root / "config.toml"
    lines = path.read_text(encoding="utf-8").split("\n")
    start = lines.index("[newsletter]")
    for key, value in values.items():
        text = f"{key} = {json.dumps(value)}"
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("["):
                lines.insert(start + 1, text)
                break
            if lines[i].split("=")[0].strip() == key:
                lines[i] = text
                break
    path.write_text("\n".join(lines), encoding="utf-8")


def compile_at(project: Project, now: str = NOW):  # type: ignore[no-untyped-def]
    build_at(project, now)
    return compile_issue(project.root, datetime.fromisoformat(now))


def store_of(project: Project) -> StateStore:
    return StateStore.of(load_config(project.root))


def issue_ids(project: Project, number: int) -> list[str]:
    with store_of(project) as state:
        record = IssueStore(state).get(number)
        assert record is not None
        return [item_id for item_id, _ in record.items]


def test_max_items_takes_the_oldest_and_the_rest_waits(project: Project) -> None:
    for n in range(1, 6):
        project.write(f"wrb/b{n}.md", item(n, n))
    set_options(project, max_items=3)
    report = compile_at(project)
    assert (report.items, report.waiting) == (3, 2)
    assert "2 berichten wachten op een volgend nummer" in report.summary()
    assert sorted(issue_ids(project, 1)) == ["wrb-b1", "wrb-b2", "wrb-b3"]
    # Newest first in the mail.
    html = (project.root / "outbox/newsletters/0001/message.html").read_text()
    assert html.index("Bericht 3") < html.index("Bericht 2") < html.index("Bericht 1")
    report = compile_at(project, "2026-11-28T12:00")
    assert (report.number, report.items, report.waiting) == (2, 2, 0)
    assert sorted(issue_ids(project, 2)) == ["wrb-b4", "wrb-b5"]


def test_ended_events_are_left_out(project: Project) -> None:
    project.write("wrb/voorbij.md", event(1, "wrb", "2026-11-20T10:00"))
    project.write("wrb/komt.md", event(2, "wrb", "2027-01-20T10:00"))
    compile_at(project)
    assert issue_ids(project, 1) == ["wrb-komt"]


def test_an_issue_over_the_budget_is_refused_and_not_made(project: Project) -> None:
    long = "summary: " + "Lange samenvatting over krimp en wonen. " * 8
    for n in range(1, 21):
        project.write(
            f"wrb/lang-{n}.md",
            item(n, n % 25 + 1).replace("summary: Een korte samenvatting.", long),
        )
    set_options(project, size_budget=10_000)
    with pytest.raises(KrimppostError) as caught:
        compile_at(project)
    message = str(caught.value)
    assert message.startswith("config.toml:") and "niet gemaakt" in message
    with store_of(project) as state:
        assert IssueStore(state).numbers() == []
    assert not (project.root / "outbox/newsletters/0001").exists()
    # Within the budget with fewer items: the same items are still free.
    set_options(project, size_budget=102_000, max_items=5)
    assert compile_at(project).number == 1


def test_the_agenda_shows_only_the_events_of_a_subscribers_tracks(project: Project) -> None:
    project.write("wrb/nieuws.md", item(1, 3))
    project.write("woningmarkt/nieuws.md", item(2, 4, "woningmarkt"))
    project.write("wrb/dag.md", event(3, "wrb", "2027-01-20T10:00"))
    project.write("woningmarkt/dag.md", event(4, "woningmarkt", "2027-01-21T10:00"))
    compile_at(project)
    config = load_config(project.root)
    with store_of(project) as state:
        record = IssueStore(state).get(1)
    assert record is not None
    view = view_of(config, record)
    assert {e.item.id for e in view.agenda} == {"wrb-dag", "woningmarkt-dag"}
    only_wrb = view.for_tracks({"wrb"})
    assert [e.item.id for e in only_wrb.agenda] == ["wrb-dag"]


@pytest.fixture
def approving(project: Project) -> Project:
    set_options(project, approval=True)
    project.write("wrb/een.md", item(1, 3))
    project.write("wrb/twee.md", item(2, 4))
    return project


def test_a_concept_is_not_public_until_approved(approving: Project) -> None:
    project = approving
    report = compile_at(project)
    assert report.number == 1 and "wacht op goedkeuring" in report.summary()
    site = project.root / "outbox/site"
    assert (project.root / "outbox/newsletters/0001/message.html").exists()
    assert not (site / "nieuwsbrief/1/index.html").exists()
    assert "nieuwsbrief/1/" not in (site / "nieuwsbrief/index.html").read_text()
    # A build in between keeps it off the site too.
    build_at(project, "2026-11-27T13:00")
    assert "nieuwsbrief/1/" not in (site / "nieuwsbrief/index.html").read_text()

    approved = approve_issue(project.root, 1, "  Anna   de Vries ", datetime(2026, 11, 27, 14))
    assert approved.by == "Anna de Vries" and not approved.already
    assert (site / "nieuwsbrief/1/index.html").exists()
    assert "nieuwsbrief/1/" in (site / "nieuwsbrief/index.html").read_text()
    # A build after approval agrees with what approve wrote.
    build_at(project, "2026-11-27T15:00")
    assert "nieuwsbrief/1/" in (site / "nieuwsbrief/index.html").read_text()
    again = approve_issue(project.root, 1, "Piet", datetime(2026, 11, 27, 16))
    assert again.already and again.by == "Anna de Vries"


def test_compile_waits_while_a_concept_waits(approving: Project) -> None:
    project = approving
    compile_at(project)
    project.write("wrb/drie.md", item(3, 5))
    with pytest.raises(KrimppostError, match="nieuwsbrief 1 wacht nog op goedkeuring"):
        compile_at(project, "2026-11-28T12:00")
    approve_issue(project.root, 1, "Anna", datetime(2026, 11, 28, 13))
    report = compile_at(project, "2026-11-28T14:00")
    assert report.number == 2 and issue_ids(project, 2) == ["wrb-drie"]


def test_send_refuses_a_concept_with_how_to_approve(approving: Project) -> None:
    project = approving
    compile_at(project)
    result = CliRunner().invoke(
        cli, ["newsletter", "send", "1", "--root", str(project.root)], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "nog niet goedgekeurd" in result.output
    assert "krimppost newsletter approve 1 --by NAAM" in result.output


def test_discard_gives_the_items_back(approving: Project) -> None:
    project = approving
    compile_at(project)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["newsletter", "discard", "1", "--root", str(project.root)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "2 bericht(en) komen in het volgende nummer" in result.output
    assert not (project.root / "outbox/newsletters/0001").exists()
    report = compile_at(project, "2026-11-28T12:00")
    assert report.number == 1 and sorted(issue_ids(project, 1)) == ["wrb-een", "wrb-twee"]
    # An approved issue is no concept any more.
    approve_issue(project.root, 1, "Anna", datetime(2026, 11, 28, 13))
    with pytest.raises(KrimppostError, match="goedgekeurd door Anna"):
        discard_issue(project.root, 1, datetime(2026, 11, 28, 14))


def test_approve_via_the_cli_needs_a_name_and_an_existing_issue(approving: Project) -> None:
    project = approving
    compile_at(project)
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["newsletter", "approve", "7", "--by", "Anna", "--root", str(project.root)]
    )
    assert missing.exit_code == 2 and "nieuwsbrief 7 bestaat niet (wel: 1)" in missing.output
    blank = runner.invoke(
        cli, ["newsletter", "approve", "1", "--by", " ", "--root", str(project.root)]
    )
    assert blank.exit_code == 2 and "--by" in blank.output
    ok = runner.invoke(
        cli, ["newsletter", "approve", "1", "--by", "Anna", "--root", str(project.root)]
    )
    assert ok.exit_code == 0 and "goedgekeurd door Anna" in ok.output


def _store_at_version_6(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(SQLITE_SCRIPTS[:6]):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number + 1};\nCOMMIT;")
    return db


@sqlite_only
def test_migration_7_dates_the_first_build_from_the_earliest_issue(tmp_path: Path) -> None:
    path = tmp_path / ".krimppost" / "state.sqlite"
    db = _store_at_version_6(path)
    db.execute(
        "INSERT INTO builds (started, finished, now, written, removed, errors)"
        " VALUES ('2026-01-05T10:00:00+00:00', '2026-01-05T10:01:00+00:00',"
        " '2026-01-05T10:00:00+00:00', 1, 0, 0)"
    )
    for number, created in ((1, "2026-03-01T09:00:00+00:00"), (2, "2026-04-01T09:00:00+00:00")):
        db.execute(
            "INSERT INTO issues (number, subject, created_at, agenda, tracks)"
            " VALUES (?, 'Nieuwsbrief', ?, '[]', '[]')",
            (number, created),
        )
    db.execute("INSERT INTO send_runs (issue, started) VALUES (1, '2026-03-02T08:00:00+00:00')")
    db.close()
    with StateStore(path) as state:
        assert state.first_build() == datetime.fromisoformat("2026-03-01T09:00:00+00:00")
        issues = IssueStore(state)
        sent, concept = issues.get(1), issues.get(2)
        assert sent is not None and sent.approved
        assert sent.approved_at == datetime.fromisoformat("2026-03-02T08:00:00+00:00")
        assert concept is not None and not concept.approved
        assert [r.number for r in issues.unsent()] == [2]


@sqlite_only
def test_migration_7_without_issues_takes_the_first_build(tmp_path: Path) -> None:
    path = tmp_path / ".krimppost" / "state.sqlite"
    db = _store_at_version_6(path)
    for day in ("07", "05"):
        db.execute(
            "INSERT INTO builds (started, finished, now, written, removed, errors)"
            f" VALUES ('2026-01-{day}T10:00:00+00:00', '2026-01-{day}T10:01:00+00:00',"
            f" '2026-01-{day}T11:00:00+00:00', 1, 0, 0)"
        )
    db.close()
    with StateStore(path) as state:
        assert state.first_build() == datetime.fromisoformat("2026-01-05T11:00:00+00:00")


def test_a_fresh_store_has_no_first_build_until_a_build(project: Project) -> None:
    with store_of(project) as state:
        assert state.first_build() is None
    project.write("wrb/een.md", item(1, 3))
    build_at(project, "2026-11-20T08:00")
    build_at(project, "2026-11-27T08:00")
    with store_of(project) as state:
        assert state.first_build() == datetime.fromisoformat("2026-11-20T08:00+01:00")


def test_compiled_templates_follow_their_source_and_can_be_deleted(project: Project) -> None:
    project.write("wrb/een.md", item(1, 3))
    compile_at(project)
    compiled = project.root / ".krimppost" / "sjablonen"
    assert any(compiled.iterdir()) and (compiled.stat().st_mode & 0o777) == 0o700
    own = project.root / "templates" / "newsletter"
    own.mkdir(parents=True)
    from conftest import REPO

    source = (REPO / "templates/newsletter/issue.txt.j2").read_text(encoding="utf-8")
    (own / "issue.txt.j2").write_text(source + "Eigen slotregel.\n", encoding="utf-8")
    project.write("wrb/twee.md", item(2, 4))
    compile_at(project, "2026-11-28T12:00")
    assert "Eigen slotregel." in (project.root / "outbox/newsletters/0002/message.txt").read_text()
    for path in compiled.iterdir():
        path.unlink()
    compiled.rmdir()
    project.write("wrb/drie.md", item(3, 5))
    compile_at(project, "2026-11-29T12:00")
    assert "Eigen slotregel." in (project.root / "outbox/newsletters/0003/message.txt").read_text()


def test_approve_refuses_an_issue_whose_item_left_the_site(approving: Project) -> None:
    project = approving
    compile_at(project)
    project.write("wrb/twee.md", item(2, 4, extra="\ndraft: true"))
    build_at(project, "2026-11-27T13:00")
    with pytest.raises(KrimppostError) as caught:
        approve_issue(project.root, 1, "Anna", datetime(2026, 11, 27, 14))
    assert "berichten/wrb-twee/" in str(caught.value)
    assert "krimppost newsletter discard 1" in str(caught.value)
    with store_of(project) as state:
        record = IssueStore(state).get(1)
    assert record is not None and not record.approved
    assert not (project.root / "outbox/site/nieuwsbrief/1/index.html").exists()


def test_switching_approval_off_leaves_a_waiting_concept_unlisted(approving: Project) -> None:
    project = approving
    compile_at(project)
    set_options(project, approval=False)
    build_at(project, "2026-11-27T13:00")
    site = project.root / "outbox/site"
    assert "nieuwsbrief/1/" not in (site / "nieuwsbrief/index.html").read_text()
    # Made with approval off, an issue is approved as it is made: public, and sendable.
    project.write("wrb/drie.md", item(3, 5))
    report = compile_at(project, "2026-11-28T12:00")
    assert report.number == 2 and "wacht op goedkeuring" not in report.summary()
    assert (site / "nieuwsbrief/2/index.html").exists()
    assert "nieuwsbrief/2/" in (site / "nieuwsbrief/index.html").read_text()
    assert "nieuwsbrief/1/" not in (site / "nieuwsbrief/index.html").read_text()


def test_a_running_event_stays_in_the_agenda(project: Project) -> None:
    project.write("wrb/nieuws.md", item(1, 3))
    project.write(
        "wrb/expositie.md",
        event(2, "wrb", "2026-11-20T10:00").replace(
            "start: 2026-11-20T10:00", "start: 2026-11-20T10:00, end: 2027-04-30T17:00"
        ),
    )
    report = compile_at(project)
    assert report.agenda == 1


def test_since_with_a_time_is_a_dutch_problem(project: Project) -> None:
    set_options(project, lookback_days=30)
    path = project.root / "config.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "[newsletter]\n", "[newsletter]\nsince = 2027-01-01T12:00:00\n", 1
        ),
        encoding="utf-8",
    )
    from pipeline.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_config(project.root)
    assert "'since' in [newsletter] moet een datum zijn zoals 2026-11-01" in str(caught.value)
