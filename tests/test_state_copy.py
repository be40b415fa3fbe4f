"""`krimppost state copy`: a project's whole state store from SQLite to PostgreSQL and back,
checked by row counts and digests; one transaction, so a failed copy leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pgcluster
import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from click.testing import CliRunner, Result
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from conftest import STATE_URL_ENV, Project, build_at
from pipeline import schedule
from pipeline.cli import cli
from pipeline.config import load_config
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.state import StateStore, StoreAddress, schema
from pipeline.state.copy import JOBS_TABLE, TableCopy, copy_store, store_digests

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def item(n: int, track: str) -> str:
    return f"""\
---
title: Bericht {n}
date: 2026-11-0{n}
kind: news
track: {track}
summary: Samenvatting {n}.
---
Tekst van bericht {n}, met é, ß en “aanhalingstekens”.
"""


@pytest.fixture
def sqlite_project(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project on its SQLite store with items, builds, subscribers (one removed), an
    issue and the scheduler's jobs."""
    # The developer's own KRIMPPOST_STATE_URL must not make the source PostgreSQL.
    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    for n, track in enumerate(("wrb", "woningmarkt", "energietransitie"), start=1):
        project.write(f"{track}/bericht-{n}.md", item(n, track))
    assert not build_at(project).problems
    config = load_config(project.root)
    with StateStore.of(config) as state:
        store = SubscriberStore(state, config)
        for name in ("anna", "bert", "carla"):
            store.add(f"{name}@example.nl", None, NOW)
        # The highest id goes: a copy must not hand it out again.
        store.remove("carla@example.nl", NOW)
    result = invoke("newsletter", "compile", "--root", str(project.root), "--now", NOW.isoformat())
    assert result.exit_code == 0, result.output
    project.write("wrb/bericht-4.md", item(4, "wrb"))
    assert not build_at(project, "2026-11-28T12:00").problems
    scheduler = BackgroundScheduler(
        jobstores={
            "default": SQLAlchemyJobStore(
                url=StoreAddress.of(config).url, tablename=schedule.JOBS_TABLE
            )
        }
    )
    scheduler.start(paused=True)
    # Far ahead: the scheduler's thread must not run it and rewrite its row meanwhile.
    later = datetime(2099, 1, 1, tzinfo=UTC)
    scheduler.add_job("builtins:print", "interval", hours=1, id="elk-uur", next_run_time=later)
    scheduler.shutdown(wait=False)
    return project


@pytest.fixture
def pg_url(pg_cluster: object) -> Iterator[str]:
    """A PostgreSQL database (a schema of its own) that is empty."""
    with pgcluster.temporary_schema(getattr(pg_cluster, "url", pg_cluster)) as (_, url):
        yield url


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    # Never a traceback: every outcome is an exit code.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def digests_at(address: StoreAddress) -> dict[str, TableCopy]:
    with StateStore(address) as state:
        return {t.name: t for t in store_digests(state)}


def pg(url: str, project: Project) -> StoreAddress:
    return StoreAddress.postgresql(project.root / ".krimppost" / "state.sqlite", url)


def local(project: Project) -> StoreAddress:
    return StoreAddress.sqlite(project.root / ".krimppost" / "state.sqlite")


def test_copy_to_postgresql_and_back_keeps_every_row(
    sqlite_project: Project, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = sqlite_project
    before = digests_at(local(project))
    tables = {t.name for t in schema.metadata.tables.values()} - {"krimppost_schema"}
    assert set(before) == tables | {JOBS_TABLE}
    for name in ("items", "builds", "issues", "issue_items", "subscribers", JOBS_TABLE):
        assert before[name].rows > 0, name

    result = invoke("state", "copy", "--to", pg_url, "--root", str(project.root))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name, copied in before.items():
        assert any(
            line.split()[:2] == [name, str(copied.rows)] and copied.digest[:12] in line
            for line in lines
        ), (name, result.output)
    shown = str(make_url(pg_url).set(drivername="postgresql"))
    assert lines[-1].endswith(
        f'[state] url = "{shown}" (of de URL in KRIMPPOST_STATE_URL); het wachtwoord in '
        "PGPASSWORD of ~/.pgpass"
    ), lines[-1]
    assert digests_at(pg(pg_url, project)) == before

    # The schedule survives: APScheduler reads its job from the copy.
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=pg(pg_url, project).url, tablename=JOBS_TABLE)}
    )
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("elk-uur")
        assert job is not None and job.trigger.interval == timedelta(hours=1)
    finally:
        scheduler.shutdown(wait=False)

    again = invoke("state", "copy", "--to", pg_url, "--root", str(project.root))
    assert again.exit_code == 1
    display = pg(pg_url, project).display
    assert f"{display}: bevat al gegevens (tabel " in again.output, again.output
    assert digests_at(pg(pg_url, project)) == before

    # The way back: the project on PostgreSQL (KRIMPPOST_STATE_URL) to a new SQLite file.
    monkeypatch.setenv(STATE_URL_ENV, pg_url)
    back = tmp_path / "terug" / "state.sqlite"
    result = invoke("state", "copy", "--to", f"sqlite:///{back}", "--root", str(project.root))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        f'volgende stap: zet in config.toml onder [state] path = "{back}" en haal url daar '
        "weg (en KRIMPPOST_STATE_URL uit de omgeving)"
    )
    assert digests_at(StoreAddress.sqlite(back)) == before


def test_ids_continue_above_the_copied_ones(
    sqlite_project: Project, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Explicit ids leave PostgreSQL's sequences at 1: after the copy they are set past
    every id handed out, also the removed subscriber's (ids are never reused)."""
    project = sqlite_project
    config = load_config(project.root)
    with StateStore(local(project)) as source, StateStore(pg(pg_url, project)) as target:
        copy_store(source, target)
        subscribers = target.conn.execute(select(schema.subscribers.c.id)).scalars().all()
        assert sorted(subscribers) == [1, 2]  # carla (3) was removed before the copy
        builds = target.conn.execute(select(func.max(schema.builds.c.id))).scalar_one()

    monkeypatch.setenv(STATE_URL_ENV, pg_url)
    with StateStore.of(config) as state:
        SubscriberStore(state, config).add("daan@example.nl", None, NOW)
        c = schema.subscribers.c
        ids = {email: id_ for email, id_ in state.conn.execute(select(c.email, c.id))}
    assert ids["daan@example.nl"] == 4
    project.write("wrb/bericht-5.md", item(5, "wrb"))
    assert not build_at(project, "2026-11-29T12:00").problems
    with StateStore.of(config) as state:
        newest = state.conn.execute(select(func.max(schema.builds.c.id))).scalar_one()
    assert newest == builds + 1

    # And back to SQLite: its AUTOINCREMENT carries on past PostgreSQL's last id too.
    back = StoreAddress.sqlite(tmp_path / "terug.sqlite")
    with StateStore(pg(pg_url, project)) as source, StateStore(back) as target:
        copy_store(source, target)
        subscribers_back = SubscriberStore(target, config)
        subscribers_back.remove("daan@example.nl", NOW)
        subscribers_back.add("eva@example.nl", None, NOW)
        eva = target.conn.execute(
            select(schema.subscribers.c.id).where(schema.subscribers.c.email == "eva@example.nl")
        ).scalar_one()
    assert eva == 5


def test_a_failed_copy_leaves_the_target_empty(sqlite_project: Project, pg_url: str) -> None:
    """A row PostgreSQL refuses (text with a NUL character, which SQLite keeps) stops the
    copy halfway: the tables copied before it are rolled back with it."""
    project = sqlite_project
    with StateStore(local(project)) as source, source.transaction():
        source.conn.execute(schema.rate_hits.insert().values(key="a\x00b", at=1.0))
    result = invoke("state", "copy", "--to", pg_url, "--root", str(project.root))
    assert result.exit_code == 1
    display = pg(pg_url, project).display
    assert f"{display}: kopiëren mislukt (tabel rate_hits): " in result.output, result.output
    assert "er is niets gekopieerd" in result.output
    after = digests_at(pg(pg_url, project))
    assert {t.rows for t in after.values()} == {0}
    assert JOBS_TABLE not in after  # made in the same transaction, and gone with it

    with StateStore(local(project)) as source, source.transaction():
        source.conn.execute(schema.rate_hits.delete())
    assert invoke("state", "copy", "--to", pg_url, "--root", str(project.root)).exit_code == 0


def test_a_value_the_target_changes_is_a_mismatch(sqlite_project: Project, pg_url: str) -> None:
    """SQLite keeps 1.5 in an INTEGER column; PostgreSQL rounds it to 2 without complaint.
    The digests see it and nothing is copied."""
    project = sqlite_project
    with StateStore(local(project)) as source, source.transaction():
        source.conn.execute(text("UPDATE builds SET written = 1.5 WHERE id = 1"))
    result = invoke("state", "copy", "--to", pg_url, "--root", str(project.root))
    assert result.exit_code == 1, result.output
    assert "tabel builds wijkt na het kopiëren af van de bron" in result.output, result.output
    assert {t.rows for t in digests_at(pg(pg_url, project)).values()} == {0}


def test_the_target_is_named_in_its_refusal_without_its_password(
    sqlite_project: Project, pg_url: str
) -> None:
    """A password given on the command line appears in no message."""
    project = sqlite_project
    with StateStore(local(project)) as source, StateStore(pg(pg_url, project)) as target:
        copy_store(source, target)
    secret = str(make_url(pg_url).set(password="geheim-wachtwoord"))
    result = invoke("state", "copy", "--to", secret, "--root", str(project.root))
    assert result.exit_code == 1
    assert "bevat al gegevens" in result.output
    assert "geheim-wachtwoord" not in result.output


def test_copy_into_itself_is_refused(sqlite_project: Project) -> None:
    project = sqlite_project
    before = digests_at(local(project))
    path = local(project).path
    result = invoke("state", "copy", "--to", str(path), "--root", str(project.root))
    assert result.exit_code == 1
    assert f"{path}: is dezelfde state store als de bron" in result.output
    assert digests_at(local(project)) == before


def test_a_bad_target_is_a_usage_error(sqlite_project: Project) -> None:
    root = str(sqlite_project.root)
    for bad in ("mysql://krimppost@db/krimppost", "sqlite://", "sqlite:///:memory:"):
        result = invoke("state", "copy", "--to", bad, "--root", root)
        assert result.exit_code == 2, (bad, result.output)


def test_digests_are_of_the_values_not_their_spelling() -> None:
    from pipeline.state.copy import _digest

    table = schema.rate_hits  # key text, at real
    assert _digest(table, [("a", 1)]) == _digest(table, [("a", 1.0)])
    assert _digest(table, [("ab", 1.0)]) != _digest(table, [("a", 1.0)])
    t = schema.outputs  # three text columns: where one ends matters
    assert _digest(t, [("a", "bc", "")]) != _digest(t, [("ab", "c", "")])
    assert _digest(t, [("a", "", "")]) != _digest(t, [("a", None, "")])
    assert _digest(t, [("a", "", "")]) != _digest(t, [])


def test_the_jobs_table_is_the_schedulers() -> None:
    assert JOBS_TABLE == schedule.JOBS_TABLE
