"""Issue 13: an item keeps its identity when its file moves; a newsletter takes only items whose
pages a build committed; no temp files survive a failed build or compile."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from storesql import query

from conftest import REPO, VALID, Project, build_at
from pipeline.commands.newsletter import compile_issue
from pipeline.outbox import TEMP_PREFIX

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend), but
# the upgrade of a legacy SQLite store.
pytestmark = pytest.mark.usefixtures("state_backend")
sqlite_only = pytest.mark.parametrize("state_backend", ["sqlite"], indirect=True)

NOW = "2026-11-27T12:00"
LATER = "2026-11-28T12:00"
LATEST = "2026-11-29T12:00"

OTHER = VALID.replace("title: Een geldig item", "title: Een ander item").replace(
    "Tekst van het item.", "Andere tekst."
)


def compile_at(project: Project, now: str):  # type: ignore[no-untyped-def]
    return compile_issue(project.root, datetime.fromisoformat(now))


def site(project: Project, relative: str) -> Path:
    return project.root / "outbox" / "site" / relative


def feed_ids(project: Project, title: str) -> dict[str, str]:
    """The entry id of the item titled `title` in each of the main feeds."""
    atom = site(project, "feeds/atom.xml").read_text()
    rss = site(project, "feeds/rss.xml").read_text()
    feed = json.loads(site(project, "feeds/feed.json").read_text())
    found = {}
    for entry in re.findall(r"<entry>.*?</entry>", atom, re.S):
        if f">{title}<" in entry:
            found["atom"] = re.search(r"<id>(.*?)</id>", entry).group(1)  # type: ignore[union-attr]
    for entry in re.findall(r"<item>.*?</item>", rss, re.S):
        if f">{title}<" in entry:
            found["rss"] = re.search(r"<guid[^>]*>(.*?)</guid>", entry).group(1)  # type: ignore[union-attr]
    for entry in feed["items"]:
        if entry["title"] == title:
            found["json"] = entry["id"]
    return found


def manifest_items(project: Project, number: int) -> list[str]:
    path = project.root / "outbox" / "newsletters" / f"{number:04d}" / "manifest.json"
    return json.loads(path.read_text())["items"]


def move(project: Project, old: str, new: str, edit=lambda text: text) -> None:  # type: ignore[no-untyped-def]
    source = project.root / "content" / old
    text = source.read_text()
    source.unlink()
    project.write(new, edit(text))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t, id="same-file"),
        pytest.param(lambda t: t.replace("track: wrb", "track: woningmarkt"), id="track-changed"),
    ],
)
def test_moved_item_keeps_its_identity(project: Project, edit) -> None:  # type: ignore[no-untyped-def]
    project.write("wrb/x.md", VALID)
    project.write("wrb/ander.md", OTHER)
    build_at(project, NOW)
    before = feed_ids(project, "Een geldig item")
    assert set(before) == {"atom", "rss", "json"}
    assert compile_at(project, NOW).number == 1
    assert "wrb-x" in manifest_items(project, 1)

    move(project, "wrb/x.md", "woningmarkt/x.md", edit)
    report = build_at(project, LATER)
    assert report.publication.new == []
    assert report.publication.moved == [("wrb-x", "woningmarkt-x")]
    assert "1 verplaatst" in report.summary()
    assert feed_ids(project, "Een geldig item") == before
    # The new page is there; the old URL is a redirect page to it, not in the sitemap.
    assert site(project, "berichten/woningmarkt-x/index.html").is_file()
    redirect = site(project, "berichten/wrb-x/index.html").read_text()
    target = "https://www.bevolkingsdaling.nl/berichten/woningmarkt-x/"
    assert f'<link rel="canonical" href="{target}">' in redirect
    assert f'<meta http-equiv="refresh" content="0; url={target}">' in redirect
    assert f'<a href="{target}">' in redirect and 'lang="nl"' in redirect
    sitemap = site(project, "sitemap.xml").read_text()
    assert "berichten/wrb-x/" not in sitemap and "berichten/woningmarkt-x/" in sitemap

    # Never mailed twice.
    project.write("wrb/nieuw.md", OTHER.replace("Een ander item", "Nieuw item"))
    build_at(project, LATER)
    assert compile_at(project, LATER).number == 2
    assert manifest_items(project, 2) == ["wrb-nieuw"]

    # The redirect stays, through later builds and later moves (straight to the last place).
    move(project, "woningmarkt/x.md", "energietransitie/x.md")
    report = build_at(project, LATEST)
    assert report.publication.moved == [("woningmarkt-x", "energietransitie-x")]
    assert feed_ids(project, "Een geldig item") == before
    target = "https://www.bevolkingsdaling.nl/berichten/energietransitie-x/"
    for old in ("wrb-x", "woningmarkt-x"):
        assert f'href="{target}"' in site(project, f"berichten/{old}/index.html").read_text()
    assert compile_at(project, LATEST).number is None


def test_a_new_file_in_the_old_place_of_a_moved_one_is_a_new_item(project: Project) -> None:
    """Moved, and another file written at once under the old name: the moved item keeps its
    entry and is not mailed again; the new file is new (its own id in the feeds, mailed)."""
    project.write("wrb/x.md", VALID)
    project.write("wrb/ander.md", OTHER)
    build_at(project, NOW)
    before = feed_ids(project, "Een geldig item")
    assert compile_at(project, NOW).number == 1

    move(project, "wrb/x.md", "archief/x.md")
    fresh = (
        VALID.replace("Een geldig item", "Nieuw op de oude plek")
        .replace("Tekst van het item.", "Heel andere tekst.")
        .replace("2026-11-01", "2026-11-27")
    )
    project.write("wrb/x.md", fresh)
    report = build_at(project, LATER)
    assert report.publication.moved == [("wrb-x", "archief-x")]
    assert report.publication.new == ["wrb-x"]
    assert feed_ids(project, "Een geldig item") == before
    new_ids = feed_ids(project, "Nieuw op de oude plek")
    assert set(new_ids) == {"atom", "rss", "json"}
    assert set(new_ids.values()).isdisjoint(before.values())
    # The old URL is the new item's page now, not a redirect.
    assert "Nieuw op de oude plek" in site(project, "berichten/wrb-x/index.html").read_text()
    assert compile_at(project, LATER).number == 2
    assert manifest_items(project, 2) == ["wrb-x"]
    text = (project.root / "outbox/newsletters/0002/message.txt").read_text()
    assert "Nieuw op de oude plek" in text and "Een geldig item" not in text


def test_moved_and_edited_item_is_updated_not_new(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    before = feed_ids(project, "Een geldig item")
    compile_at(project, NOW)
    # A move plus a new track and a rewritten body: recognised by title, kind and date.
    move(
        project,
        "wrb/x.md",
        "woningmarkt/x.md",
        lambda t: t.replace("track: wrb", "track: woningmarkt").replace(
            "Tekst van het item.", "Een heel andere tekst, helemaal herschreven."
        ),
    )
    report = build_at(project, LATER)
    assert report.publication.new == []
    assert report.publication.changed == ["woningmarkt-x"]
    assert feed_ids(project, "Een geldig item") == before
    atom = site(project, "feeds/atom.xml").read_text()
    assert "<updated>2026-11-28T12:00:00+01:00</updated>" in atom
    assert "<published>2026-11-01T00:00:00+01:00</published>" in atom
    assert compile_at(project, LATER).number is None

    # Title changed and body kept: recognised by the body.
    move(project, "woningmarkt/x.md", "wrb/y.md", lambda t: t.replace("Een geldig", "Een nieuw"))
    report = build_at(project, LATEST)
    assert report.publication.new == [] and report.publication.changed == ["wrb-y"]
    assert feed_ids(project, "Een nieuw item") == before
    assert compile_at(project, LATEST).number is None


def test_moved_back_and_ambiguous_moves(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    before = feed_ids(project, "Een geldig item")
    move(project, "wrb/x.md", "woningmarkt/x.md")
    build_at(project, LATER)
    move(project, "woningmarkt/x.md", "wrb/x.md")
    report = build_at(project, LATEST)
    assert report.publication.moved == [("woningmarkt-x", "wrb-x")]
    assert feed_ids(project, "Een geldig item") == before
    assert (
        "<h1>Dit bericht is verhuisd" not in site(project, "berichten/wrb-x/index.html").read_text()
    )
    assert (
        'href="https://www.bevolkingsdaling.nl/berichten/wrb-x/"'
        in site(project, "berichten/woningmarkt-x/index.html").read_text()
    )

    # Two copies of one moved file: no guess, both are new items with ids of their own.
    move(project, "wrb/x.md", "woningmarkt/a.md")
    project.write("energietransitie/b.md", VALID)
    report = build_at(project, "2026-11-30T12:00")
    assert sorted(report.publication.new) == ["energietransitie-b", "woningmarkt-a"]
    assert report.publication.withdrawn == ["wrb-x"]
    atom = site(project, "feeds/atom.xml").read_text()
    ids = set(re.findall(r"<id>(tag:[^<]*)</id>", atom))
    assert len(ids) == 2 and before["atom"] not in ids


def test_explicit_id_survives_a_move(project: Project) -> None:
    text = VALID.replace("kind: news", "kind: news\nid: vaste-naam")
    project.write("wrb/x.md", text)
    build_at(project, NOW)
    before = feed_ids(project, "Een geldig item")
    assert compile_at(project, NOW).number == 1
    move(project, "wrb/x.md", "woningmarkt/x.md", lambda t: t.replace("wrb", "woningmarkt"))
    report = build_at(project, LATER)
    assert report.publication.new == [] and report.publication.withdrawn == []
    assert feed_ids(project, "Een geldig item") == before
    assert site(project, "berichten/vaste-naam/index.html").is_file()
    assert compile_at(project, LATER).number is None
    # Moved unchanged, then broken: the record followed the file, the last good version stays.
    move(project, "woningmarkt/x.md", "energietransitie/x.md")
    report = build_at(project, LATER)
    assert report.publication.new == report.publication.changed == []
    (project.root / "content/energietransitie/x.md").write_text("---\ntitle: [\n---\n")
    report = build_at(project, LATEST)
    assert report.publication.kept == ["vaste-naam"]
    assert site(project, "berichten/vaste-naam/index.html").is_file()


@sqlite_only
def test_migration_from_version_4_backfills_issue_entry_ids(tmp_path: Path) -> None:
    from pipeline.state import SQLITE_SCRIPTS, StateStore

    path = tmp_path / "state.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for script in SQLITE_SCRIPTS[:4]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 4")
    db.execute(
        "INSERT INTO items VALUES ('wrb-x', 'content/wrb/x.md', 'tag:h,2026-11-01:wrb-x',"
        " '2026-11-01T00:00:00+00:00', 'h', '2026-11-01T00:00:00+00:00', 1, NULL, '{}')"
    )
    db.execute(
        "INSERT INTO issues VALUES (1, 's', '2026-11-27T11:00:00+00:00', NULL, NULL, '[]', '[]')"
    )
    db.execute("INSERT INTO issue_items VALUES ('wrb-x', 1, 0, '{}')")
    db.close()
    with StateStore(path) as state:
        assert state.schema_version >= 5
        assert state.aliases() == {}
        from pipeline.state import IssueStore

        assert IssueStore(state).issued_entry_ids() == {"tag:h,2026-11-01:wrb-x"}


def test_copy_back_where_a_moved_item_was_is_a_new_entry(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    compile_at(project, NOW)
    move(project, "wrb/x.md", "woningmarkt/x.md")
    build_at(project, LATER)
    project.write("wrb/x.md", VALID)  # the moved one stays too
    report = build_at(project, LATEST)
    assert report.publication.new == ["wrb-x"]
    atom = site(project, "feeds/atom.xml").read_text()
    assert len(set(re.findall(r"<id>(tag:[^<]*)</id>", atom))) == 2
    assert "Dit bericht is verhuisd" not in site(project, "berichten/wrb-x/index.html").read_text()
    # Neither is mailed again: one is the issued entry, the other a copy of its text.
    assert compile_at(project, LATEST).number is None


def test_state_store_migration_keeps_issue_history(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    compile_at(project, NOW)
    rows = query(project.root, "SELECT item_id, entry_id FROM issue_items")
    assert rows == [("wrb-x", "tag:www.bevolkingsdaling.nl,2026-11-01:wrb-x")]


# Item 4, last sentence: a newsletter takes only items whose pages a build committed.


def test_compile_takes_only_items_the_last_good_build_put_online(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    project.write("wrb/ander.md", OTHER)
    # A file where the new item's page folder must go: the build fails while it writes the
    # outbox, after the item was read and before anything was recorded.
    (project.root / "outbox" / "site" / "berichten" / "wrb-ander").write_text("in de weg")
    with pytest.raises(OSError):
        build_at(project, LATER)
    assert not site(project, "berichten/wrb-ander/index.html").exists()
    report = compile_at(project, LATER)
    assert report.number == 1
    assert manifest_items(project, 1) == ["wrb-x"]
    assert any("wrb-ander" in w and "nog niet online" in w for w in report.warnings)
    (project.root / "outbox" / "site" / "berichten" / "wrb-ander").unlink()
    build_at(project, LATER)
    assert compile_at(project, LATER).number == 2
    assert manifest_items(project, 2) == ["wrb-ander"]


def test_compile_without_a_build_takes_nothing_and_an_edit_since_takes_the_online_version(
    project: Project,
) -> None:
    project.write("wrb/x.md", VALID)
    report = compile_at(project, NOW)
    assert report.number is None
    assert any("nog niet online" in w for w in report.warnings)
    build_at(project, NOW)
    project.write("wrb/x.md", VALID.replace("Een geldig item", "Een nieuwe titel"))
    report = compile_at(project, NOW)
    assert report.number == 1
    html = (project.root / "outbox/newsletters/0001/message.html").read_text()
    assert "Een geldig item" in html and "Een nieuwe titel" not in html
    assert any("gewijzigd sinds de laatste build" in w for w in report.warnings)


def test_compile_skips_an_item_whose_build_reported_it_broken(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    project.write("wrb/kapot.md", VALID.replace("date: 2026-11-01", "date: 2026-02-30"))
    report = build_at(project, NOW)
    assert report.problems
    # Fixed after the build: not online yet, so not in the issue.
    project.write("wrb/kapot.md", OTHER)
    assert compile_at(project, NOW).number == 1
    assert manifest_items(project, 1) == ["wrb-x"]


# Low: temp files of a kill or a failed write do not stay in the outbox.


def temp_files(project: Project) -> list[str]:
    outbox = project.root / "outbox"
    return sorted(
        p.relative_to(outbox).as_posix() for p in outbox.rglob(f"{TEMP_PREFIX}*") if p.is_file()
    )


def test_a_failing_build_leaves_no_temp_files(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    # One left by a killed run of something that does not mark the store (no marker).
    stray = site(project, f"archief/{TEMP_PREFIX}4242-index.html")
    stray.write_text("half")
    # A file where the new item's page folder must go: that write fails, the others are staged.
    project.write("wrb/ander.md", OTHER)
    site(project, "berichten/wrb-ander").write_text("in de weg")
    with pytest.raises(OSError):
        build_at(project, LATER)
    assert temp_files(project) == []
    assert not (project.root / ".krimppost" / "state.sqlite.building").exists()
    # What was online stays online, unchanged.
    assert "wrb-ander" not in site(project, "archief/index.html").read_text()
    site(project, "berichten/wrb-ander").unlink()
    build_at(project, LATER)
    assert site(project, "berichten/wrb-ander/index.html").is_file()


def test_a_failing_compile_leaves_no_temp_files_and_the_next_repairs(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    # The web version's folder is taken by a file: the issue's other files are staged first.
    site(project, "nieuwsbrief/1").write_text("in de weg")
    with pytest.raises(OSError):
        compile_at(project, NOW)
    assert temp_files(project) == []
    site(project, "nieuwsbrief/1").unlink()
    report = compile_at(project, NOW)
    assert report.repaired == [1]
    assert manifest_items(project, 1) == ["wrb-x"]
    assert temp_files(project) == []


def test_temp_files_of_a_killed_compile_are_swept_by_the_next_build(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    # The archive page renders for ever: the compile is killed with the issue's files staged.
    slow = project.root / "templates" / "site" / "newsletters.html"
    slow.parent.mkdir(parents=True)
    slow.write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    )
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "newsletter",
            "compile",
            "--root",
            str(project.root),
            "--now",
            NOW,
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not temp_files(project) and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.01)
    finally:
        job.kill()
        job.wait(10)
    assert temp_files(project), "the compile did not get as far as staging"
    slow.unlink()
    build_at(project, LATER)
    assert temp_files(project) == []


def test_a_broken_file_is_not_gone_so_a_copy_elsewhere_is_not_a_move(project: Project) -> None:
    project.write("wrb/x.md", VALID)
    build_at(project, NOW)
    project.write("wrb/x.md", VALID.replace("date: 2026-11-01", "date: 2026-02-30"))
    project.write("woningmarkt/x.md", VALID)
    report = build_at(project, LATER)
    assert report.publication.kept == ["wrb-x"]
    assert report.publication.new == ["woningmarkt-x"] and report.publication.moved == []
    assert "Dit bericht is verhuisd" not in site(project, "berichten/wrb-x/index.html").read_text()
