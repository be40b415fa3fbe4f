"""The parse cache: one SQLite table, one row per file, checked against the file on every run."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from conftest import VALID, Project
from pipeline.config import load_config
from pipeline.content.cache import RenderCache
from pipeline.content.reader import ContentSet, read_content


def _item(n: int) -> str:
    return VALID.replace("Een geldig item", f"Item {n}").replace("Tekst van", f"Tekst {n} van")


def _cache_file(project: Project) -> Path:
    config = load_config(project.root)
    return config.path(config.build.cache)


def _rows(project: Project) -> dict[str, tuple[str, str, str]]:
    with sqlite3.connect(_cache_file(project)) as db:
        rows = db.execute("SELECT path, signature, fingerprint, digest FROM parsed").fetchall()
    return {path: rest for path, *rest in rows}  # type: ignore[misc]


def _read(project: Project) -> ContentSet:
    return read_content(load_config(project.root))


def _uncached(project: Project) -> ContentSet:
    return read_content(load_config(project.root), use_cache=False)


def test_only_changed_files_are_parsed_and_written(project: Project) -> None:
    for n in range(3):
        project.write(f"i{n}.md", _item(n))
    assert _read(project).parsed == 3
    before = _rows(project)
    assert set(before) == {f"content/i{n}.md" for n in range(3)}

    project.write("i1.md", _item(1).replace("Tekst 1 van", "Andere tekst 1 van"))
    second = _read(project)
    assert second.parsed == 1
    after = _rows(project)
    assert after["content/i1.md"] != before["content/i1.md"]
    assert {p: r for p, r in after.items() if p != "content/i1.md"} == {
        p: r for p, r in before.items() if p != "content/i1.md"
    }
    assert second.items == _uncached(project).items


def test_unchanged_run_reads_one_query_and_writes_nothing(project: Project) -> None:
    project.write("a.md", _item(1))
    _read(project)
    cache = _cache_file(project)
    stamp = cache.stat().st_mtime_ns
    again = _read(project)
    assert again.parsed == 0
    assert cache.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in cache.parent.iterdir() if p.name.startswith("cache")) == [
        cache.name
    ]  # one file: no snapshot, no journal left behind


def test_a_touched_file_is_hashed_not_parsed(project: Project) -> None:
    path = project.write("a.md", _item(1))
    _read(project)
    signature = _rows(project)["content/a.md"][0]
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    content = _read(project)
    assert content.parsed == 0
    assert _rows(project)["content/a.md"][0] != signature  # the new signature is recorded
    assert _read(project).parsed == 0


def test_a_deleted_file_loses_its_row(project: Project) -> None:
    project.write("a.md", _item(1))
    project.write("b.md", _item(2))
    _read(project)
    (project.root / "content" / "b.md").unlink()
    assert [i.title for i in _read(project).items] == ["Item 1"]
    assert set(_rows(project)) == {"content/a.md"}


def test_a_change_of_settings_parses_everything_again(project: Project) -> None:
    for n in range(3):
        project.write(f"i{n}.md", _item(n))
    _read(project)
    old = {fingerprint for _, fingerprint, _ in _rows(project).values()}
    config = project.root / "config.toml"
    config.write_text(config.read_text() + "\n# een opmerking\n")
    assert _read(project).parsed == 3
    new = {fingerprint for _, fingerprint, _ in _rows(project).values()}
    assert len(new) == 1 and new != old
    assert _read(project).parsed == 0


@pytest.mark.parametrize(
    "damage", [b"", b"geen database" * 500, b"SQLite format 3\x00" + b"\xff" * 5000]
)
def test_a_damaged_file_is_a_miss_not_an_error(project: Project, damage: bytes) -> None:
    project.write("a.md", _item(1))
    expected = _read(project).items
    _cache_file(project).write_bytes(damage)
    assert _read(project).items == expected
    assert _read(project).parsed == 0  # rebuilt by the run after the damage


def test_a_damaged_row_is_a_miss(project: Project) -> None:
    project.write("a.md", _item(1))
    project.write("b.md", _item(2))
    expected = _read(project).items
    with sqlite3.connect(_cache_file(project)) as db:
        db.execute("UPDATE parsed SET result = ? WHERE path = 'content/a.md'", (b"\x80\x05K",))
    content = _read(project)
    assert content.items == expected
    assert content.parsed == 1


def test_a_row_whose_signature_lies_is_not_trusted_when_the_bytes_differ(
    project: Project,
) -> None:
    """A row is used unread only while its signature holds; past that the hash decides."""
    project.write("a.md", _item(1))
    _read(project)
    with sqlite3.connect(_cache_file(project)) as db:
        stale = db.execute("SELECT * FROM parsed").fetchall()
    project.write("a.md", _item(2))
    _read(project)
    with sqlite3.connect(_cache_file(project)) as db:  # item 1's row back, old signature
        db.executemany("INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?)", stale)
    (item,) = _read(project).items
    assert item.title == "Item 2"


def test_the_old_snapshot_and_overlay_are_removed(project: Project) -> None:
    project.write("a.md", _item(1))
    cache = _cache_file(project)
    cache.parent.mkdir()
    with sqlite3.connect(cache) as db:
        db.execute("PRAGMA user_version = 3")
        db.execute("CREATE TABLE parsed (path TEXT PRIMARY KEY, result BLOB)")
    snapshot = cache.with_name(cache.name + ".pickle")
    snapshot.write_bytes(pickle.dumps((3, {})))
    assert _read(project).parsed == 1
    assert not snapshot.exists()
    assert set(_rows(project)) == {"content/a.md"}


def test_a_locked_cache_is_waited_for_then_used(project: Project) -> None:
    """A `check` while a build writes its rows waits; a lock is not damage (the file stays)."""
    project.write("a.md", _item(1))
    _read(project)
    writer = sqlite3.connect(_cache_file(project), isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, writer.execute, ("COMMIT",)).start()
    content = _read(project)
    writer.close()
    assert content.parsed == 0 and [i.title for i in content.items] == ["Item 1"]


def test_a_cache_locked_for_too_long_is_gone_without(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write("a.md", _item(1))
    expected = _read(project).items
    inode = _cache_file(project).stat().st_ino
    monkeypatch.setattr(RenderCache, "timeout", 0.1)
    with sqlite3.connect(_cache_file(project), isolation_level=None) as writer:
        writer.execute("BEGIN EXCLUSIVE")
        content = _read(project)
        writer.execute("COMMIT")
    assert content.items == expected and content.parsed == 1
    assert _cache_file(project).stat().st_ino == inode  # not taken for damage and deleted
    assert _read(project).parsed == 0
