"""Adopting krimppost on an archive of years: the horizons and bounded issues (issue 15).

A 3,000-item archive (bench/corpus.py's generator) is built once with the repository's own
config (default horizons, approval on). Its items are on the site and in the feeds, but no
newsletter issue takes them and they get no social drafts; items written after the first
build do, and an issue takes at most `max_items` of them, the rest waiting for the next.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import REPO, VALID, Project, build_at
from pipeline.commands.approval import approve_issue, discard_issue
from pipeline.commands.newsletter import compile_issue
from pipeline.errors import KrimppostError
from pipeline.state import StateStore

ARCHIVE_SIZE = 3000
# The corpus dates its items 2024-01-01 … 2026-12-31 (embargoes up to a month later, events
# up to two months later): all of it lies before both horizons of a first build at this
# moment (newsletter: 30 days back, social: 14 days back).
FIRST_BUILD = "2027-03-15T12:00"
LATER = "2027-03-21T12:00"  # the second build and the first compile
PLATFORMS = {"x.md", "linkedin.md", "mastodon.md", "bluesky.md"}  # enabled in config.toml


def _corpus():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("corpus", REPO / "bench" / "corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Archive:
    root: Path
    online: frozenset[str]  # ids of the archive items the first build put online
    build_summary: str


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    project = Project(tmp_path_factory.mktemp("archief") / "project")
    project.use_defaults()
    corpus, rng = _corpus(), random.Random(1)
    for index in range(ARCHIVE_SIZE):
        relative, text = corpus.item(index, rng)
        project.write_bytes(relative, text.encode())
    report = build_at(project, FIRST_BUILD)
    assert not report.problems, report.problems
    online = frozenset(e.item.id for e in report.publication.entries)
    return Archive(project.root, online, report.summary())


@pytest.fixture
def adopted(archive: Archive, tmp_path: Path) -> Project:
    """A copy of the archive as its first build left it, for a test to go on with."""
    project = Project.__new__(Project)
    project.root = tmp_path / "project"
    # outbox/ as hard links, which saves a second per copy: the outbox never writes into a
    # file, it renames a new one over it, so the archive's files stay as they were.
    shutil.copytree(
        archive.root,
        project.root,
        ignore=lambda folder, _: ["outbox"] if Path(folder) == archive.root else [],
    )
    shutil.copytree(archive.root / "outbox", project.root / "outbox", copy_function=os.link)
    return project


def draft_folders(root: Path) -> set[str]:
    """The items that have social drafts (a folder of platform files under outbox/social/)."""
    return {p.parent.name for p in (root / "outbox" / "social").glob("*/*.md")}


def new_item(n: int, moment: datetime, track: str = "wrb") -> str:
    return (
        VALID.replace("title: Een geldig item", f"title: Nieuw bericht {n:02d}")
        .replace("track: wrb", f"track: {track}")
        .replace("date: 2026-11-01", f"date: {moment.isoformat(timespec='minutes')}")
    )


def write_new(project: Project, count: int, track: str = "wrb") -> list[str]:
    """`count` items dated after the first build, every four hours from 16 March on, oldest
    first; returns their ids in that order."""
    start = datetime(2027, 3, 16, 8, 0)
    for n in range(1, count + 1):
        moment = start + timedelta(hours=4 * (n - 1))
        project.write(f"{track}/nieuw-{n:02d}.md", new_item(n, moment, track))
    return [f"{track}-nieuw-{n:02d}" for n in range(1, count + 1)]


def compile_at(project: Project, now: str = LATER):  # type: ignore[no-untyped-def]
    return compile_issue(project.root, datetime.fromisoformat(now))


def manifest(project: Project, number: int) -> dict:
    folder = project.root / "outbox" / "newsletters" / f"{number:04d}"
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def mail_text(project: Project, number: int) -> str:
    folder = project.root / "outbox" / "newsletters" / f"{number:04d}"
    return (folder / "message.txt").read_text(encoding="utf-8")


def test_the_first_build_of_an_archive_puts_it_online_without_drafts(archive: Archive) -> None:
    root = archive.root
    # The corpus has drafts and embargoes; what is left is the archive that went online.
    assert 2800 < len(archive.online) < ARCHIVE_SIZE
    with StateStore(root / ".krimppost" / "state.sqlite") as state:
        first_build = state.first_build()
        records = state.items()
    # The clock of the first build, as given with --now, in UTC.
    assert first_build == datetime(2027, 3, 15, 11, 0, tzinfo=UTC)
    social_horizon = first_build - timedelta(days=14)
    assert max(records[i].first_published for i in archive.online) < social_horizon
    # On the site and in the feeds ...
    site = root / "outbox" / "site"
    for item_id in archive.online:
        assert (site / "berichten" / item_id / "index.html").is_file(), item_id
    newest = max(archive.online, key=lambda i: (records[i].first_published, i))
    assert f"/berichten/{newest}/" in (site / "feeds" / "atom.xml").read_text(encoding="utf-8")
    # ... but not one social draft (the issue saw 12,060 of them).
    assert draft_folders(root) == set()
    assert "social: 0 nieuw" in archive.build_summary


def test_an_adopted_archive_then_five_new_items(adopted: Project) -> None:
    project = adopted
    # Straight after the first build, the archive makes no issue at all.
    report = compile_at(project, FIRST_BUILD)
    assert report.number is None
    assert report.waiting == 0
    archive_size = report.before_horizon
    assert archive_size > 2800
    assert not (project.root / "outbox" / "newsletters").exists()

    new = write_new(project, 5)
    build = build_at(project, LATER)
    assert not build.problems, build.problems
    assert sorted(build.publication.new) == sorted(new)
    # Drafts only for the five, on every enabled platform.
    assert draft_folders(project.root) == set(new)
    for item_id in new:
        folder = project.root / "outbox" / "social" / item_id
        assert {p.name for p in folder.glob("*.md")} == PLATFORMS

    report = compile_at(project)
    assert report.number == 1
    assert report.items == 5
    assert report.waiting == 0
    assert report.before_horizon == archive_size
    assert report.approval  # a concept, for a person to approve
    assert sorted(manifest(project, 1)["items"]) == sorted(new)
    assert manifest(project, 1)["agenda"] == []  # every archive event has ended


def test_max_items_carries_the_rest_over_oldest_first(adopted: Project) -> None:
    project = adopted
    # 22 new items against the default max_items of 20. (Not a smaller cap set here: a
    # changed config.toml parses the whole archive again, ~10 s.)
    new = write_new(project, 22)
    build_at(project, LATER)

    first = compile_at(project)
    assert (first.number, first.items, first.waiting) == (1, 20, 2)
    assert "2 berichten wachten op een volgend nummer" in first.summary()
    # The oldest twenty waiting items, and in the mail the newest of them first.
    assert manifest(project, 1)["items"] == new[:20]
    text1 = mail_text(project, 1)
    positions = [text1.index(f"Nieuw bericht {n:02d}") for n in range(20, 0, -1)]
    assert positions == sorted(positions)
    assert "Nieuw bericht 21" not in text1

    # While issue 1 waits for approval there is no issue 2: it would hide the first.
    with pytest.raises(KrimppostError, match="wacht nog op goedkeuring"):
        compile_at(project)
    approve_issue(project.root, 1, "Anna de Vries", datetime.fromisoformat(LATER))

    second = compile_at(project)
    assert (second.number, second.items, second.waiting) == (2, 2, 0)
    assert manifest(project, 2)["items"] == new[20:]
    text2 = mail_text(project, 2)
    assert text2.index("Nieuw bericht 22") < text2.index("Nieuw bericht 21")
    # Discarded, issue 2's items wait again, for an issue 2 with the same two.
    discard_issue(project.root, 2, datetime.fromisoformat(LATER))
    again = compile_at(project)
    assert (again.number, again.items) == (2, 2)
    assert manifest(project, 2)["items"] == new[20:]
    approve_issue(project.root, 2, "Anna de Vries", datetime.fromisoformat(LATER))
    assert compile_at(project).number is None


def test_a_later_edit_of_an_archive_item_does_not_pull_it_in(
    adopted: Project, archive: Archive
) -> None:
    project = adopted
    # The newest archive items, the likeliest to be touched again.
    with StateStore(project.root / ".krimppost" / "state.sqlite") as state:
        records = state.items()
    edited, moved = sorted(archive.online, key=lambda i: records[i].first_published)[-2:]
    path = project.root / records[edited].source
    text = path.read_text(encoding="utf-8")
    text = text.replace("\nsummary: ", "\nsummary: Bijgewerkt. ", 1)
    path.write_text(text + "\nEen alinea erbij, na de eerste build.\n", encoding="utf-8")
    source = project.root / records[moved].source
    target = project.root / "content" / "verhuisd" / source.name
    target.parent.mkdir()
    source.rename(target)
    new = write_new(project, 1, track="energietransitie")

    build = build_at(project, LATER)
    assert not build.problems, build.problems
    assert build.publication.changed == [edited]
    assert [old for old, _ in build.publication.moved] == [moved]
    assert build.publication.new == new
    assert draft_folders(project.root) == set(new)

    report = compile_at(project)
    assert (report.number, report.items) == (1, 1)
    assert manifest(project, 1)["items"] == new
    assert "Bijgewerkt" not in mail_text(project, 1)


# The windows themselves, on a small project: what an editor prepared before the first build.


def _at(days_before: int, title: str, extra: str = "") -> str:
    day = datetime(2026, 11, 27) - timedelta(days=days_before)
    return (
        VALID.replace("title: Een geldig item", f"title: {title}")
        .replace("date: 2026-11-01", f"date: {day.date().isoformat()}")
        .replace("summary:", f"{extra}summary:")
    )


@pytest.fixture
def prepared(project: Project) -> Project:
    """Items dated before a first build at 2026-11-27 12:00 (conftest's clock)."""
    project.use_defaults()
    project.write("wrb/oud.md", _at(40, "Veertig dagen oud"))
    project.write("wrb/vorige-maand.md", _at(20, "Twintig dagen oud"))
    project.write("wrb/vorige-week.md", _at(7, "Een week oud"))
    ended = "event: {start: 2026-11-25T13:30, location: Heerlen}\n"
    project.write(
        "wrb/afgelopen.md",
        _at(20, "Afgelopen bijeenkomst", ended).replace("kind: news", "kind: event"),
    )
    return project


def test_the_horizons_keep_what_editors_prepared_recently(prepared: Project) -> None:
    project = prepared
    build = build_at(project)
    assert not build.problems, build.problems
    # Social: 14 days back; the newsletter: 30 days back; an event that ended: in no issue.
    assert draft_folders(project.root) == {"wrb-vorige-week"}
    report = compile_issue(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    assert (report.number, report.before_horizon) == (1, 1)
    assert sorted(manifest(project, 1)["items"]) == ["wrb-vorige-maand", "wrb-vorige-week"]


def test_since_sets_the_horizons_to_a_date(prepared: Project) -> None:
    project = prepared
    config = project.root / "config.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("[newsletter]\n", "[newsletter]\nsince = 2026-10-01\n", 1)
    text = text.replace("[social.x]\n", "[social]\nsince = 2026-11-25\n\n[social.x]\n", 1)
    config.write_text(text, encoding="utf-8")
    build_at(project)
    assert draft_folders(project.root) == set()
    report = compile_issue(project.root, datetime.fromisoformat("2026-11-27T12:00"))
    assert report.before_horizon == 0
    assert sorted(manifest(project, 1)["items"]) == [
        "wrb-oud",
        "wrb-vorige-maand",
        "wrb-vorige-week",
    ]
