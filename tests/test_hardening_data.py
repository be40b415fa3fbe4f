"""Personal data and the files people open: formula cells neutralised in every CSV written,
the state store, its folder and exports readable by their owner only (issue 13, 9 and 10)."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from storesql import execute, query

from conftest import VALID, Project
from pipeline.commands.social import social
from pipeline.commands.subscribers import subscribers
from pipeline.config import load_config
from pipeline.csvcells import cell, uncell
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.state import StateStore

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOSTILE = [
    "=cmd|'/C_calc'!A0@example.nl",
    "+31-6@example.nl",
    "-2+3@example.nl",
    "'-anna@example.nl",
]

# What goes through the state store runs on SQLite and on PostgreSQL (tests/conftest.py:
# state_backend); the modes of the store's files are SQLite's own.
both_backends = pytest.mark.usefixtures("state_backend")


@pytest.fixture(autouse=True)
def permissive_umask():  # type: ignore[no-untyped-def]
    """The modes must be right whatever umask the process has: test under a loose one."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def state_path(project: Project) -> Path:
    config = load_config(project.root)
    return config.path(config.state.path)


def export_rows(project: Project, out: Path) -> list[list[str]]:
    result = CliRunner().invoke(
        subscribers, ["export", "--output", str(out), "--root", str(project.root)]
    )
    assert result.exit_code == 0, result.output
    return list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_formula_start_gets_a_quote_and_comes_back_unchanged(value: str) -> None:
    assert cell(value) == "'" + value
    assert uncell(cell(value)) == value
    assert cell("gewone tekst") == uncell("gewone tekst") == "gewone tekst"
    assert uncell("'gewoon") == "'gewoon"  # a quote of the author's own stays
    quoted = "'" + value  # `'-a@example.nl` is a valid address: it must come back whole
    assert cell(quoted) == "''" + value
    assert uncell(cell(quoted)) == quoted


@both_backends
def test_subscriber_export_neutralises_addresses_from_the_anonymous_form(
    project: Project, tmp_path: Path
) -> None:
    state, store = store_of(project)
    with state:
        for address in HOSTILE:
            assert store.request(address, "", NOW) is not None  # what the web form does
    rows = export_rows(project, tmp_path / "abonnees.csv")
    emails = [row[0] for row in rows[1:]]
    assert sorted(emails) == sorted("'" + a for a in HOSTILE)
    assert "''-anna@example.nl" in emails
    for row in rows:
        assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in row), row

    # The export can still be imported: the addresses arrive as they were typed. On
    # PostgreSQL the other project shares this test's store: it starts without them too.
    execute(project.root, "DELETE FROM subscribers")
    other = Project(tmp_path / "other")
    text = (tmp_path / "abonnees.csv").read_text(encoding="utf-8").replace("pending", "active")
    (tmp_path / "weer.csv").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(
        subscribers, ["import", str(tmp_path / "weer.csv"), "--root", str(other.root)]
    )
    assert result.exit_code == 0, result.output
    imported = {email for (email,) in query(other.root, "SELECT email FROM subscribers")}
    assert imported == set(HOSTILE)


def store_of(project: Project) -> tuple[StateStore, SubscriberStore]:
    config = load_config(project.root)
    state = StateStore.of(config)
    return state, SubscriberStore(state, config)


@both_backends
def test_social_export_csv_neutralises_text_and_alt_text(project: Project, tmp_path: Path) -> None:
    from test_social_cli import build_drafts

    project.write(
        "wrb/a.md",
        VALID.replace(
            "kind: news",
            "kind: news\nimage: /afbeeldingen/podcast-omslag.png\nimage_alt: '=1+1 omslag'\n"
            "social:\n  x: '=HYPERLINK(\"https://example.nl\") lees verder'",
        ),
    )
    build_drafts(project)
    runner = CliRunner()
    approved = runner.invoke(
        social, ["approve", "wrb-a/x", "--by", "Fatima", "--root", str(project.root)]
    )
    assert approved.exit_code == 0, approved.output
    for fmt in ("csv", "buffer"):
        given = tmp_path / f"export-{fmt}.csv"
        result = runner.invoke(
            social,
            [
                "export",
                "--all",
                "--format",
                fmt,
                "--output",
                str(given),
                "--root",
                str(project.root),
            ],
        )
        assert result.exit_code == 0, result.output
        # Buffer's format is one file per platform, named after the one asked for.
        out = given.with_name(f"export-{fmt}-x.csv") if fmt == "buffer" else given
        rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
        cells = [c for row in rows for c in row]
        assert any(c.startswith("'=HYPERLINK") for c in cells), rows
        assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), rows


def test_a_new_state_store_and_its_folder_are_for_the_owner_only(project: Project) -> None:
    path = state_path(project)
    with StateStore(path) as state:
        state.conn.exec_driver_sql("CREATE TABLE t (x)")  # a write: the -wal and -shm files exist
        assert mode(path.parent) == 0o700
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert mode(file) == 0o600, file


def test_an_existing_readable_store_is_tightened_on_open(project: Project) -> None:
    path = state_path(project)
    path.parent.mkdir(mode=0o755)
    os.chmod(path.parent, 0o755)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (x)")
    side = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
    for file in (path, *side):
        os.chmod(file, 0o644)
    with StateStore(path):
        assert mode(path.parent) == 0o700
        for file in (path, *side):
            assert mode(file) == 0o600, file
    db.close()


def test_a_store_in_the_project_root_leaves_the_root_alone(project: Project) -> None:
    os.chmod(project.root, 0o755)
    with StateStore(project.root / "state.sqlite"):
        assert mode(project.root) == 0o755
        assert mode(project.root / "state.sqlite") == 0o600


@both_backends
def test_subscriber_export_file_is_for_the_owner_only(project: Project, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        subscribers, ["add", "lezer@example.nl", "--root", str(project.root)]
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "abonnees.csv"
    export_rows(project, out)
    assert mode(out) == 0o600
    # A temp file left behind by a killed export does not lend the new file its mode.
    out.unlink()
    leftover = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    leftover.write_text("oud")
    os.chmod(leftover, 0o644)
    export_rows(project, out)
    assert mode(out) == 0o600


def test_the_service_unit_sets_a_private_umask() -> None:
    unit = Path(__file__).resolve().parents[1] / "deploy" / "krimppost.service"
    assert "\nUMask=0077\n" in unit.read_text(encoding="utf-8")
