"""The sync index of the social drafts: typed tables in the state store that may lose their
rows at any moment at the cost of time only, and that never let an edit be overwritten.

Real components throughout: a project on disk, the real state store, real draft files.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from storesql import execute, scalar
from test_social_drafts import (
    ITEM,
    ITEM_ID,
    ITEM_PATH,
    body,
    draft_file,
    edit_body,
    front_matter,
    sync,
)

from conftest import NOW, VALID, Project
from pipeline.config import load_config
from pipeline.social.syncindex import OLD_INDEX_NAME
from pipeline.state import StateStore

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

INDEX_TABLES = ("social_folders", "social_drafts")


def with_two_items(project: Project) -> Project:
    """Two items in two months of publication."""
    project.write(ITEM_PATH, ITEM)
    project.write("wrb/a.md", VALID.replace("date: 2026-11-01", "date: 2026-09-15"))
    return project


@pytest.fixture
def item_project(project: Project) -> Project:
    return with_two_items(project)


def state_path(project: Project) -> Path:
    config = load_config(project.root)
    return config.path(config.state.path)


def social_files(project: Project) -> dict[str, bytes]:
    root = project.root / "outbox" / "social"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def store_of(project: Project) -> StateStore:
    return StateStore.of(load_config(project.root))


def delete_rows(project: Project, tables: tuple[str, ...]) -> None:
    for table in tables:
        execute(project.root, f"DELETE FROM {table}")


def edit_unseen(path: Path, new: bytes) -> None:
    """Overwrite the start of the body in place keeping the file's size, inode and mtime: an
    edit the index cannot see, so that only a sync that reads the file notices it."""
    st = path.stat()
    data = path.read_bytes()
    start = data.index(b"\n---\n") + 5
    assert data[start : start + len(new)].isascii(), data[start:]
    with open(path, "r+b") as fh:
        fh.seek(start)
        fh.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (
        st.st_size,
        st.st_ino,
        st.st_mtime_ns,
    )


def test_the_index_is_typed_rows_in_the_state_store(item_project: Project) -> None:
    old = state_path(item_project).with_name(OLD_INDEX_NAME)
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(b"an index of an earlier version")
    sync(item_project)
    assert not old.exists()
    with store_of(item_project) as state:
        fingerprint, folders = state.social_index()
        # The types of the stored values: SQLite's per value, PostgreSQL's per column.
        typeof = "typeof" if state.dialect == "sqlite" else "pg_typeof"
        columns = ("mtime_ns", "size", "inode", "shown_digest", "status")
        types = state.conn.execute(
            text(
                "SELECT DISTINCT "
                + ", ".join(f"CAST({typeof}({c}) AS TEXT)" for c in columns)
                + " FROM social_drafts"
            )
        ).all()
        integer = "integer" if state.dialect == "sqlite" else "bigint"
    assert fingerprint
    assert [tuple(row) for row in types] == [(integer, integer, integer, "text", "text")]
    assert sorted(folders) == sorted(["wrb-a", ITEM_ID])
    record = folders[ITEM_ID]
    folder = item_project.root / "outbox" / "social" / ITEM_ID
    assert record.mtime_ns == folder.stat().st_mtime_ns
    assert record.published == front_matter(folder / "x.md")["published"]
    assert sorted(record.drafts) == sorted(p.stem for p in folder.iterdir())
    for platform, draft in record.drafts.items():
        st = (folder / f"{platform}.md").stat()
        assert (draft.mtime_ns, draft.size, draft.inode) == (st.st_mtime_ns, st.st_size, st.st_ino)
        assert draft.status == "pending"


@pytest.mark.parametrize("tables", [INDEX_TABLES, ("social_folders",), ("social_drafts",)])
def test_deleted_index_rows_cost_only_time(item_project: Project, tables: tuple[str, ...]) -> None:
    """With its rows gone the next sync reads every draft (an edit the signatures cannot see
    shows on the review page) and leaves the outbox as a sync with the index would."""
    sync(item_project)
    before = social_files(item_project)
    sync(item_project)
    assert social_files(item_project) == before

    delete_rows(item_project, tables)
    report = sync(item_project)
    assert (report.created, report.regenerated, report.stale) == (0, 0, 0)
    assert report.unchanged == 8  # two items, four platforms
    assert social_files(item_project) == before
    with store_of(item_project) as state:
        assert sorted(state.social_index()[1]) == sorted(["wrb-a", ITEM_ID])

    # Every draft gets a body edit of the same size and mtime: the index vouches for the old
    # bytes, so a sync with its rows in place does not read them...
    drafts = sorted((item_project.root / "outbox" / "social").glob("*/*.md"))
    assert len(drafts) == 8
    for n, path in enumerate(drafts):
        edit_unseen(path, f"EDIT{n:02d}".encode())
    sync(item_project)
    pages = b"".join(
        data for name, data in social_files(item_project).items() if name.endswith(".html")
    )
    assert b"EDIT" not in pages
    # ...and once they are deleted, the next sync reads every one.
    delete_rows(item_project, tables)
    sync(item_project)
    pages = b"".join(
        data for name, data in social_files(item_project).items() if name.endswith(".html")
    )
    for n in range(len(drafts)):
        assert f"EDIT{n:02d}".encode() in pages


def _count_writes(project: Project) -> None:
    """A trigger per index table and kind of write counts the rows written (each database
    in its own words)."""
    with store_of(project) as state, state.transaction():
        run = state.conn.exec_driver_sql
        run("CREATE TABLE writes (n INTEGER)")
        run("INSERT INTO writes VALUES (0)")
        if state.dialect == "postgresql":
            run(
                "CREATE FUNCTION count_write() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN UPDATE writes SET n = n + 1; RETURN NULL; END $$"
            )
        for table in INDEX_TABLES:
            for event in ("INSERT", "DELETE", "UPDATE"):
                name = f"count_{table}_{event}"
                if state.dialect == "sqlite":
                    run(
                        f"CREATE TRIGGER {name} AFTER {event} ON {table}"
                        " BEGIN UPDATE writes SET n = n + 1; END"
                    )
                else:
                    run(
                        f"CREATE TRIGGER {name} AFTER {event} ON {table}"
                        " FOR EACH ROW EXECUTE FUNCTION count_write()"
                    )


def _writes(project: Project) -> int:
    return int(scalar(project.root, "SELECT n FROM writes"))


def test_only_the_rows_of_changed_folders_are_written(item_project: Project) -> None:
    sync(item_project)
    _count_writes(item_project)
    sync(item_project)
    assert _writes(item_project) == 0
    item_project.write(
        ITEM_PATH, ITEM.replace('title: "Masterclass:', 'title: "Nieuwe masterclass:')
    )
    sync(item_project)
    # One folder: its row replaced, its four draft rows deleted and written again.
    assert _writes(item_project) == 1 + 4 + 4


def test_a_hand_edit_is_never_overwritten_with_the_index_in_place(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    edit_body(path, "Met de hand geschreven post.")
    report = sync(item_project)  # the index's record of the folder no longer holds
    assert body(path) == "Met de hand geschreven post."
    assert front_matter(path)["length"] == len("Met de hand geschreven post.")
    assert report.unchanged == 8
    sync(item_project)  # now recorded with the edit
    assert body(path) == "Met de hand geschreven post."

    item_project.write(
        ITEM_PATH, ITEM.replace('title: "Masterclass:', 'title: "Nieuwe masterclass:')
    )
    report = sync(item_project)
    assert body(path) == "Met de hand geschreven post."
    meta = front_matter(path)
    assert meta["status"] == "stale"
    assert "Nieuwe masterclass" in meta["suggestion"]
    # The other platforms' untouched drafts follow the item.
    assert "Nieuwe masterclass" in body(draft_file(item_project, f"{ITEM_ID}/mastodon"))

    edit_body(path, "Nog eens met de hand.")
    delete_rows(item_project, INDEX_TABLES)
    sync(item_project, NOW)
    assert body(path) == "Nog eens met de hand."
    assert front_matter(path)["status"] == "stale"


def test_worker_processes_make_what_one_process_makes(
    item_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The months of a big sync go to forked workers (`parallel_map`); two items in two
    months stand in for 5,000 here."""
    import subprocess
    import sys

    from conftest import REPO

    copy = with_two_items(Project(tmp_path / "copy"))
    sync(item_project)
    # On PostgreSQL both projects are in this test's one store: the copy starts without
    # an index too.
    delete_rows(item_project, INDEX_TABLES)
    # In a fresh process: this one may run threads left by other tests, and then
    # parallel_map rightly does the work itself instead of forking.
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]);"
        "from pathlib import Path; from conftest import Project;"
        "from pipeline.social import drafts; from pipeline.workers import can_fork;"
        "from test_social_drafts import sync;"
        "drafts._PARALLEL_THRESHOLD = 1;"
        "assert can_fork(), 'this would test the serial path twice';"
        "project = Project.__new__(Project); project.root = Path(sys.argv[1]);"
        "sync(project)"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(copy.root), str(REPO / "tests")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert social_files(copy) == social_files(item_project)
    with store_of(copy) as state:
        assert sorted(state.social_index()[1]) == sorted(["wrb-a", ITEM_ID])
