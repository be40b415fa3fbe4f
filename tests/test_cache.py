"""The parse cache: a snapshot of every entry plus the entries parsed since, on real files."""

from __future__ import annotations

import os
import sqlite3

import pytest

from pipeline.config import load_config
from pipeline.content import cache as cache_module
from pipeline.content.cache import RenderCache
from pipeline.content.reader import read_content
from tests.conftest import VALID, Project


def _item(n: int) -> str:
    return VALID.replace("Een geldig item", f"Item {n}").replace("Tekst van", f"Tekst {n} van")


def _files(project: Project) -> tuple[RenderCache, sqlite3.Connection]:
    config = load_config(project.root)
    cache = RenderCache(config.path(config.build.cache))
    return cache, sqlite3.connect(cache.path)


def _overlay_paths(db: sqlite3.Connection) -> set[str]:
    return {p for (p,) in db.execute("SELECT path FROM parsed")}


def _read(project: Project):  # type: ignore[no-untyped-def]
    return read_content(load_config(project.root))


def test_first_run_writes_a_snapshot_then_edits_go_to_the_database(project: Project) -> None:
    for n in range(3):
        project.write(f"i{n}.md", _item(n))
    first = _read(project)
    cache, db = _files(project)
    assert cache.snapshot.is_file()
    assert _overlay_paths(db) == set()

    project.write("i1.md", _item(1).replace("Tekst 1 van", "Andere tekst 1 van"))
    second = _read(project)
    assert _overlay_paths(db) == {"content/i1.md"}
    assert [i.html for i in second.items if i.source == "content/i1.md"] != [
        i.html for i in first.items if i.source == "content/i1.md"
    ]
    # Read back from snapshot + database: the same items as without any cache.
    assert _read(project).items == read_content(load_config(project.root), use_cache=False).items


def test_many_edits_fold_into_a_new_snapshot(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "_OVERLAY_LIMIT", 2)
    for n in range(5):
        project.write(f"i{n}.md", _item(n))
    _read(project)
    cache, db = _files(project)
    before = cache.snapshot.stat().st_mtime_ns
    for n in range(3):
        project.write(f"i{n}.md", _item(n) + f"\nExtra {n}.\n")
    content = _read(project)
    assert _overlay_paths(db) == set()
    assert cache.snapshot.stat().st_mtime_ns != before
    assert all(f"Extra {n}." in i.html for n in range(3) for i in content.items if i.source == f"content/i{n}.md")  # fmt: skip


def test_unchanged_run_writes_nothing(project: Project) -> None:
    project.write("a.md", _item(1))
    _read(project)
    cache, _db = _files(project)
    stamps = (cache.snapshot.stat().st_mtime_ns, os.stat(cache.path).st_mtime_ns)
    _read(project)
    assert (cache.snapshot.stat().st_mtime_ns, os.stat(cache.path).st_mtime_ns) == stamps


@pytest.mark.parametrize("damage", [b"", b"geen pickle" * 50, b"\x80\x05K\x01."])
def test_damaged_snapshot_is_a_miss_not_an_error(project: Project, damage: bytes) -> None:
    project.write("a.md", _item(1))
    expected = _read(project).items
    cache, _db = _files(project)
    cache.snapshot.write_bytes(damage)
    assert _read(project).items == expected
    assert _read(project).items == expected


def test_stale_rows_beside_a_newer_snapshot_are_checked_not_trusted(project: Project) -> None:
    """A crash between writing a snapshot and emptying the database leaves old rows."""
    project.write("a.md", _item(1))
    _read(project)
    cache, db = _files(project)
    project.write("a.md", _item(2))
    _read(project)  # the row for a.md now holds item 2
    stale = db.execute("SELECT * FROM parsed").fetchall()
    project.write("a.md", _item(3))
    os.unlink(cache.snapshot)
    _read(project)  # no snapshot: a new one with item 3, the database emptied
    db.executemany("INSERT INTO parsed VALUES (?, ?, ?, ?, ?)", stale)
    db.commit()
    (item,) = _read(project).items
    assert item.title == "Item 3"
