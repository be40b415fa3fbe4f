"""The search index (issue 18): Pagefind over the published items only, in parts that are
indexed again only when one of their items changed; read back from the files Pagefind
wrote (the browser layer searches them: tests/browser/test_search.py)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from conftest import Project, build_at
from pipeline.commands.check import check
from pipeline.render import search


def item(title: str, body: str, extra: str = "") -> str:
    return (
        f"---\ntitle: {title}\ndate: 2026-11-01\nkind: news\ntrack: wrb\n"
        f"summary: Een bericht.\n{extra}---\n{body}\n"
    )


def indexed(root: Path) -> dict[str, str]:
    """url -> text of every record in the search index of the outbox."""
    out = {}
    for fragment in (root / "outbox" / "site" / "zoeken" / "index").rglob("*.pf_fragment"):
        data = gzip.decompress(fragment.read_bytes())
        assert data.startswith(b"pagefind_dcd")
        record = json.loads(data[len(b"pagefind_dcd") :])
        out[record["url"]] = record["content"]
    return out


def parts(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "outbox" / "site" / "zoeken" / "index").iterdir())


def test_only_published_items_are_indexed(project: Project) -> None:
    project.write("wrb/open.md", item("Open", "Over het woord zichtbaarheidsregel."))
    project.write("wrb/concept.md", item("Concept", "Over conceptwoord.", "draft: true\n"))
    project.write(
        "wrb/later.md", item("Later", "Over embargowoord.", "publish_at: 2027-01-01T09:00\n")
    )
    report = build_at(project)
    assert report.problems == ()
    records = indexed(project.root)
    assert list(records) == ["/berichten/wrb-open/"]
    assert "zichtbaarheidsregel" in records["/berichten/wrb-open/"]
    text = " ".join(records.values())
    assert "conceptwoord" not in text and "embargowoord" not in text
    # The embargo ends: the item is indexed from the first build after it.
    build_at(project, "2027-01-01T09:30")
    assert "embargowoord" in indexed(project.root)["/berichten/wrb-later/"]
    # Withdrawn (its file removed): out of the index, its fragment removed from the outbox.
    (project.root / "content" / "wrb" / "later.md").unlink()
    build_at(project, "2027-01-01T10:00")
    assert list(indexed(project.root)) == ["/berichten/wrb-open/"]


def test_the_search_page_and_the_header_field(project: Project) -> None:
    project.write("wrb/open.md", item("Open", "Tekst."))
    build_at(project)
    site = project.root / "outbox" / "site"
    page = (site / "zoeken" / "index.html").read_text()
    assert '<html lang="nl">' in page
    assert 'data-bundels="/zoeken/index/0/"' in page
    assert "Zoeken werkt met JavaScript" in page  # in <noscript>
    for part in ("pagefind.js", "pagefind-worker.js", "wasm.nl.pagefind", "pagefind-entry.json"):
        assert (site / "zoeken" / "index" / "0" / part).is_file(), part
    home = (site / "index.html").read_text()
    assert 'action="/zoeken/"' in home and 'name="q"' in home


def test_a_one_item_change_indexes_only_its_part(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text() + "\n[search]\npart_size = 2\n")
    for n in range(12):
        project.write(f"wrb/b{n}.md", item(f"Bericht {n}", f"Tekst nummer{n}."))
    build_at(project)
    # 12 items in parts of 2: 8 parts (a power of 2); a part without items has no files.
    used = sorted({search.part_of(f"berichten/wrb-b{n}/", 8) for n in range(12)})
    assert parts(project.root) == [str(k) for k in used]
    index = project.root / "outbox/site/zoeken/index"
    assert [k for k in used if (index / str(k) / "pagefind.js").exists()] == used[:1]
    page = (project.root / "outbox/site/zoeken/index.html").read_text()
    assert 'data-bundels="' + " ".join(f"/zoeken/index/{k}/" for k in used) + '"' in page
    project.write("wrb/b3.md", item("Bericht 3", "Tekst gewijzigdwoord."))
    report = build_at(project, "2026-11-27T13:00")
    entries = [p for p in report.written if p.endswith("pagefind-entry.json")]
    k = search.part_of("berichten/wrb-b3/", 8)
    assert entries == [f"site/zoeken/index/{k}/pagefind-entry.json"]
    assert all(
        p.startswith(f"site/zoeken/index/{k}/") for p in report.written if "zoeken/index" in p
    )
    assert any("zoeken/index" in p and p.endswith(".pf_fragment") for p in report.removed)
    assert "gewijzigdwoord" in indexed(project.root)["/berichten/wrb-b3/"]
    assert len(indexed(project.root)) == 12
    # Nothing changed: Pagefind does not run, nothing of the index is written.
    build_at(project, "2026-11-27T14:00")
    again = build_at(project, "2026-11-28T14:00")
    assert not [p for p in again.written if "zoeken/" in p]


def test_search_switched_off(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text() + "\n[search]\nenabled = false\n")
    project.write("wrb/open.md", item("Open", "Tekst."))
    build_at(project)
    site = project.root / "outbox" / "site"
    assert not (site / "zoeken").exists()
    assert 'role="search"' not in (site / "index.html").read_text()


def test_a_failing_pagefind_keeps_the_previous_index_and_is_reported(
    project: Project, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    project.write("wrb/open.md", item("Open", "Eerste versie."))
    build_at(project)
    before = indexed(project.root)
    # A binary that fails as Pagefind would on a broken install (no real way to make the
    # real one fail on valid pages).
    monkeypatch.setattr(search, "_pagefind", lambda: "/bin/false")
    project.write("wrb/open.md", item("Open", "Tweede versie."))
    report = build_at(project, "2026-11-27T13:00")
    assert [p.message for p in report.problems if "zoekindex" in p.message], report.problems
    assert (
        "Tweede versie." in (project.root / "outbox/site/berichten/wrb-open/index.html").read_text()
    )  # the rest of the site is built
    assert indexed(project.root) == before
    monkeypatch.undo()
    report = build_at(project, "2026-11-27T14:00")
    assert report.problems == ()
    assert "Tweede versie." in indexed(project.root)["/berichten/wrb-open/"]


def test_check_does_not_run_pagefind(project: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    project.write("wrb/open.md", item("Open", "Tekst."))

    def ran() -> str:
        raise AssertionError("check ran Pagefind")

    monkeypatch.setattr(search, "_pagefind", ran)
    report = check(project.root, datetime(2026, 11, 27, 12))
    assert not report.problems


@given(st.integers(0, 100_000), st.integers(1, 1_000))
def test_parts_are_a_power_of_two_holding_at_most_twice_the_part_size(
    items: int, size: int
) -> None:
    n = search.part_count(items, size)
    assert n >= 1 and n & (n - 1) == 0
    assert items <= n * size
    assert n == 1 or items > (n // 2) * size


@given(st.text(min_size=1), st.sampled_from([1, 2, 4, 8, 32]))
def test_an_item_keeps_its_part(path: str, parts_: int) -> None:
    k = search.part_of(path, parts_)
    assert 0 <= k < parts_ and k == search.part_of(path, parts_)
    # Doubling the parts splits a part in two: an item goes to k or k + parts.
    assert search.part_of(path, parts_ * 2) in (k, k + parts_)


def test_an_index_file_cut_short_is_made_again(project: Project) -> None:
    """The index's files are not flushed one by one: a power cut may leave one empty. Its
    size no longer matches its key, and the next build indexes that part again."""
    project.write("wrb/open.md", item("Open", "Over het woord herstelwoord."))
    build_at(project)
    (fragment,) = (project.root / "outbox/site/zoeken/index").rglob("*.pf_fragment")
    fragment.write_bytes(b"")
    report = build_at(project, "2026-11-28T12:00")
    assert (
        f"site/{fragment.relative_to(project.root / 'outbox').as_posix().removeprefix('site/')}"
        in report.written
    )
    assert "herstelwoord" in indexed(project.root)["/berichten/wrb-open/"]


def test_without_the_pagefind_binary_the_build_says_so_and_builds_the_rest(
    project: Project, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search, "_pagefind", lambda: "/bestaat/niet/pagefind")
    project.write("wrb/open.md", item("Open", "Tekst."))
    report = build_at(project)
    (problem,) = [p for p in report.problems if "zoekindex" in p.message]
    assert "Pagefind start niet" in problem.message, problem
    assert (project.root / "outbox/site/berichten/wrb-open/index.html").is_file()
