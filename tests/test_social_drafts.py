"""Social drafts: generation during the build, and edits that are never lost.

Real components throughout: items are read by the reader from a project on disk, entries come
from `publish.decide` with a real state store, drafts are real files in outbox/social/.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import lxml.html
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NOW, REPO, VALID, Project
from pipeline.config import Config, load_config
from pipeline.content.reader import ContentSet, read_content
from pipeline.outbox import Outbox
from pipeline.publish import Entry, decide
from pipeline.social import review
from pipeline.social.compose import Composer, hashtag, override_problems
from pipeline.social.counting import length
from pipeline.social.draftfile import parse_draft, read_stored, text_hash, write_if_unchanged
from pipeline.social.drafts import sync_drafts
from pipeline.state import StateStore

ENABLED = ("x", "linkedin", "mastodon", "bluesky")  # threads is off in the sample config
GOLDEN = REPO / "tests" / "golden" / "social"

ITEM = """\
---
title: "Masterclass: transformatie van de woningvoorraad"
date: 2026-11-03
kind: event
track: woningmarkt
summary: Een middag over sloop, samenvoeging en transformatie in krimpregio's, met praktijkvoorbeelden uit Parkstad Limburg en Noordoost-Groningen.
tags: [woningmarkt, Parkstad Limburg, "krimp- en anticipeerregio's", transformatie]
image: /afbeeldingen/podcast-omslag.png
image_alt: Omslag van de podcast
event:
  start: 2027-01-21T13:30
  end: 2027-01-21T17:00
  location: Theater Heerlen
---
De tekst.
"""
ITEM_PATH = "woningmarkt/masterclass.md"
ITEM_ID = "woningmarkt-masterclass"


def live_entries(
    project: Project, now: datetime = NOW
) -> tuple[Config, ContentSet, tuple[Entry, ...]]:
    """Read the project and decide what is online, as the build does (records saved)."""
    config = load_config(project.root)
    content = read_content(config)
    with StateStore(config.path(config.state.path)) as state:
        publication = decide(config, content, state, now)
        with state.transaction():
            for record, last_good in publication.saves:
                state.save_item(record, last_good)
            for item_id in publication.withdrawn:
                state.withdraw(item_id, now)
    return config, content, publication.entries


def sync(project: Project, now: datetime = NOW):  # type: ignore[no-untyped-def]
    config, _content, entries = live_entries(project, now)
    return sync_drafts(config, entries, now)


def draft_file(project: Project, draft_id: str) -> Path:
    return project.root / "outbox" / "social" / f"{draft_id}.md"


def front_matter(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---\n")[1])


def body(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("---\n", 2)[2].strip()


def edit_body(path: Path, new_text: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, _sep, _old = text.partition("\n---\n")
    path.write_text(f"{head}\n---\n{new_text}\n", encoding="utf-8")


@pytest.fixture
def item_project(project: Project) -> Project:
    project.write(ITEM_PATH, ITEM)
    return project


# Generation -------------------------------------------------------------------------------


def test_one_draft_per_enabled_platform_within_its_limit(item_project: Project) -> None:
    report = sync(item_project)
    assert (report.created, report.regenerated, report.stale, report.unchanged) == (4, 0, 0, 0)
    assert report.problems == ()
    config = load_config(item_project.root)
    folder = item_project.root / "outbox" / "social" / ITEM_ID
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{p}.md" for p in ENABLED)
    for name in ENABLED:
        path = folder / f"{name}.md"
        meta = front_matter(path)
        text = body(path)
        for key in (
            "platform",
            "item",
            "status",
            "limit",
            "length",
            "link",
            "generated_hash",
            "approved_hash",
            "created",
            "updated",
            "approved_by",
            "approved_at",
            "rejected_by",
            "rejected_at",
            "reason",
        ):
            assert key in meta, (name, key)
        assert meta["platform"] == name and meta["item"] == ITEM_ID
        assert meta["status"] == "pending"
        assert meta["limit"] == config.social[name].limit
        assert meta["length"] == length(config.social[name], text) <= meta["limit"]
        assert meta["generated_hash"] == text_hash(text)
        assert meta["created"] == "2026-11-27T13:00:00+01:00"  # site time zone
        assert meta["link"] == (
            f"https://www.bevolkingsdaling.nl/berichten/{ITEM_ID}/"
            f"?utm_source={name}&utm_medium=social&utm_campaign=bevolkingsdaling"
        )
        assert meta["link"] in text
        assert text.startswith("Masterclass: transformatie van de woningvoorraad")
        assert "#woningmarkt" in text and "#ParkstadLimburg" in text
    assert "Wanneer: donderdag 21 januari 2027, 13:30 uur" in body(folder / "linkedin.md")
    assert "#bevolkingsdaling #krimp" in body(folder / "linkedin.md")  # config hashtags first
    assert (item_project.root / "outbox" / "social" / "index.html").is_file()


def test_templates_match_the_golden_files(item_project: Project) -> None:
    """The Dutch post texts of one item, per platform (KRIMPPOST_UPDATE_GOLDEN=1 rewrites)."""
    sync(item_project)
    for name in ENABLED:
        text = body(draft_file(item_project, f"{ITEM_ID}/{name}")) + "\n"
        golden = GOLDEN / f"{name}.txt"
        if os.environ.get("KRIMPPOST_UPDATE_GOLDEN"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8"), name


def test_threads_when_enabled_uses_one_topic_tag(item_project: Project) -> None:
    config_file = item_project.root / "config.toml"
    config_file.write_text(
        config_file.read_text().replace(
            "[social.threads]\nenabled = false", "[social.threads]\nenabled = true"
        )
    )
    sync(item_project)
    text = body(draft_file(item_project, f"{ITEM_ID}/threads"))
    assert text.count("#") == 1


def test_a_second_sync_changes_no_file(item_project: Project) -> None:
    sync(item_project)
    outbox = item_project.root / "outbox" / "social"
    before = {p: p.read_bytes() for p in outbox.rglob("*") if p.is_file()}
    report = sync(item_project, NOW + timedelta(hours=1))
    assert (report.created, report.regenerated, report.stale, report.unchanged) == (0, 0, 0, 4)
    after = {p: p.read_bytes() for p in outbox.rglob("*") if p.is_file() and p.name != "index.html"}
    assert after == {p: b for p, b in before.items() if p.name != "index.html"}


def test_no_drafts_for_social_false(project: Project) -> None:
    project.write("wrb/stil.md", VALID.replace("kind: news", "kind: news\nsocial: false"))
    report = sync(project)
    assert report.created == 0
    assert not (project.root / "outbox" / "social" / "wrb-stil").exists()


def test_overrides_are_used_verbatim(project: Project) -> None:
    override = "Eigen tekst voor X 🇳🇱 met   drie spaties en & een ampersand"
    project.write(
        "wrb/eigen.md",
        VALID.replace("kind: news", f'kind: news\nsocial:\n  x: "{override}"'),
    )
    sync(project)
    path = draft_file(project, "wrb-eigen/x")
    assert body(path) == override
    assert front_matter(path)["source"] == "override"
    config = load_config(project.root)
    assert front_matter(path)["length"] == length(config.social["x"], override)
    assert "Eigen tekst" not in body(draft_file(project, "wrb-eigen/linkedin"))


def test_an_override_over_the_limit_is_an_item_problem(project: Project) -> None:
    text = "🇳🇱" * 141  # 282 weighted characters on X, 141 graphemes on Bluesky
    project.write(
        "wrb/lang.md",
        VALID.replace("kind: news", f"kind: news\nsocial:\n  x: {text}\n  bluesky: {text}"),
    )
    config, content, entries = live_entries(project)
    problems = override_problems(config, content.items)
    assert [str(p) for p in problems] == [
        "content/wrb/lang.md:6: 'social.x': de eigen tekst voor X is 282 gewogen tekens lang, "
        "de limiet is 280; kort de tekst in"
    ]
    # Still written verbatim, with a warning on the review page and in `list`.
    sync_drafts(config, entries, NOW)
    assert body(draft_file(project, "wrb-lang/x")) == text
    view = review.show(config, "wrb-lang/x", NOW)
    assert "te lang: 282 van 280 gewogen tekens" in view.warnings


def test_hashtags_from_tags() -> None:
    assert hashtag("woningmarkt") == "#woningmarkt"
    assert hashtag("Parkstad Limburg") == "#ParkstadLimburg"
    assert hashtag("krimp- en anticipeerregio's") == "#KrimpEnAnticipeerregios"
    assert hashtag("2026") is None
    assert hashtag("#krimp") == "#krimp"
    assert hashtag("🇳🇱") is None


# Edits are never lost ----------------------------------------------------------------------


def test_hand_edit_survives_two_syncs_and_an_item_change(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    edited = "Onze eigen tekst voor X, met de hand geschreven 🇳🇱\n\nTweede alinea."
    edit_body(path, edited)
    for hours in (1, 2):
        report = sync(item_project, NOW + timedelta(hours=hours))
        assert body(path) == edited
        assert front_matter(path)["status"] == "pending"
        assert report.regenerated == 0
    item_project.write(
        ITEM_PATH, ITEM.replace("transformatie van de woningvoorraad", "sloop en nieuwbouw")
    )
    report = sync(item_project, NOW + timedelta(hours=3))
    assert (report.regenerated, report.stale) == (3, 1)
    meta = front_matter(path)
    assert body(path) == edited
    assert meta["status"] == "stale"
    assert meta["suggestion"].startswith("Masterclass: sloop en nieuwbouw")
    assert meta["length"] == length(load_config(item_project.root).social["x"], edited)
    # The untouched drafts follow the item.
    assert body(draft_file(item_project, f"{ITEM_ID}/linkedin")).startswith(
        "Masterclass: sloop en nieuwbouw"
    )
    # And still later builds keep it as it is.
    for hours in (4, 5):
        sync(item_project, NOW + timedelta(hours=hours))
        assert body(path) == edited
        assert front_matter(path)["status"] == "stale"


def test_take_suggestion_then_the_draft_follows_the_item_again(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/mastodon")
    edit_body(path, "Handwerk")
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een ochtend"))
    sync(item_project)
    config = load_config(item_project.root)
    view = review.take_suggestion(config, f"{ITEM_ID}/mastodon", NOW)
    assert view.status == "pending"
    assert "Een ochtend" in body(path)
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een avond"))
    sync(item_project)
    assert "Een avond" in body(path) and front_matter(path)["status"] == "pending"


def test_approved_draft_goes_stale_when_its_item_changes(item_project: Project) -> None:
    sync(item_project)
    config = load_config(item_project.root)
    review.approve(config, f"{ITEM_ID}/bluesky", "Fatima", NOW)
    path = draft_file(item_project, f"{ITEM_ID}/bluesky")
    approved_text = body(path)
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een ochtend"))
    report = sync(item_project)
    assert report.stale == 1
    meta = front_matter(path)
    assert body(path) == approved_text
    assert meta["status"] == "stale" and meta["approved_hash"] is None
    assert "Een ochtend" in meta["suggestion"]
    assert meta["approved_by"] == "Fatima"  # history stays


def test_a_body_edit_keeps_drafts_unless_a_template_reads_the_body(
    item_project: Project,
) -> None:
    """The post templates read title, summary, tags and event: a fixed typo in the body
    neither regenerates nor voids an approval. A project template that shows the body does."""
    sync(item_project)
    config = load_config(item_project.root)
    review.approve(config, f"{ITEM_ID}/bluesky", "Fatima", NOW)
    path = draft_file(item_project, f"{ITEM_ID}/bluesky")
    before = path.read_bytes()
    item_project.write(ITEM_PATH, ITEM.replace("De tekst.", "De verbeterde tekst."))
    report = sync(item_project)
    assert (report.regenerated, report.stale) == (0, 0)
    assert path.read_bytes() == before
    template = item_project.root / "templates" / "social" / "bluesky.txt.j2"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text("{{ title }} {{ item.text[:20] }} {{ link }}\n", encoding="utf-8")
    item_project.write(ITEM_PATH, ITEM.replace("De tekst.", "Weer een andere tekst."))
    report = sync(item_project)
    meta = front_matter(path)
    assert meta["status"] == "stale" and "Weer een andere" in meta["suggestion"]


def test_editing_an_approved_draft_returns_it_to_review(item_project: Project) -> None:
    sync(item_project)
    config = load_config(item_project.root)
    draft_id = f"{ITEM_ID}/linkedin"
    review.approve(config, draft_id, "Fatima", NOW)
    path = draft_file(item_project, draft_id)
    edit_body(path, body(path) + "\n\nNog een zin.")
    view = review.show(config, draft_id, NOW)
    assert view.status == "pending"
    assert "na goedkeuring bewerkt: opnieuw beoordelen" in view.warnings
    report = sync(item_project)
    assert report.reopened == 1
    meta = front_matter(path)
    assert meta["status"] == "pending" and meta["approved_hash"] is None
    assert body(path).endswith("Nog een zin.")
    # Approved again: the new text's hash is recorded.
    review.approve(config, draft_id, "Fatima", NOW)
    assert front_matter(path)["approved_hash"] == text_hash(body(path))


def test_withdrawn_item_keeps_its_drafts_and_they_come_back(item_project: Project) -> None:
    sync(item_project)
    config = load_config(item_project.root)
    review.approve(config, f"{ITEM_ID}/x", "Fatima", NOW)
    edited_path = draft_file(item_project, f"{ITEM_ID}/mastodon")
    edit_body(edited_path, "Met de hand")
    source = item_project.root / "content" / ITEM_PATH
    source.unlink()
    report = sync(item_project)
    assert report.withdrawn == 4
    assert body(edited_path) == "Met de hand"
    meta = front_matter(draft_file(item_project, f"{ITEM_ID}/x"))
    assert meta["status"] == "withdrawn" and meta["withdrawn_from"] == "approved"
    view = review.show(config, f"{ITEM_ID}/x", NOW)
    assert any(w.startswith("link niet live") for w in view.warnings)
    # The same item back: the approval stands, the edit too.
    item_project.write(ITEM_PATH, ITEM)
    report = sync(item_project)
    assert report.returned == 4
    assert front_matter(draft_file(item_project, f"{ITEM_ID}/x"))["status"] == "approved"
    assert front_matter(edited_path)["status"] == "pending"
    assert body(edited_path) == "Met de hand"


def test_social_false_later_withdraws_the_drafts(item_project: Project) -> None:
    sync(item_project)
    item_project.write(ITEM_PATH, ITEM.replace("kind: event", "kind: event\nsocial: false"))
    sync(item_project)
    meta = front_matter(draft_file(item_project, f"{ITEM_ID}/x"))
    assert meta["status"] == "withdrawn"
    assert meta["withdrawn_reason"] == "het item heeft 'social: false'"


def test_a_broken_draft_file_is_reported_and_left_alone(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    broken = path.read_text().replace("status: pending", "status: [pending")
    path.write_text(broken)
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een ochtend"))
    report = sync(item_project)
    assert path.read_text() == broken
    assert len(report.problems) == 1
    problem = report.problems[0]
    assert problem.path == f"outbox/social/{ITEM_ID}/x.md"
    assert problem.line is not None and problem.line >= 4
    assert "ongeldige YAML" in problem.message
    assert report.regenerated == 3


def test_a_wrong_status_is_reported_with_its_line(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    path.write_text(path.read_text().replace("status: pending", "status: klaar"))
    report = sync(item_project)
    assert [str(p) for p in report.problems] == [
        f"outbox/social/{ITEM_ID}/x.md:4: 'status' moet een van pending, approved, rejected, "
        "stale, withdrawn zijn, niet 'klaar'"
    ]


def test_a_broken_template_costs_only_its_platform(item_project: Project) -> None:
    templates = item_project.root / "templates" / "social"
    templates.mkdir(parents=True)
    (templates / "x.txt.j2").write_text("{{ title }\n")
    report = sync(item_project)
    assert report.created == 3
    assert [p.path for p in report.problems] == ["templates/social/x.txt.j2"]
    assert "fout in sjabloon" in report.problems[0].message


def test_a_file_saved_during_the_run_is_not_replaced(item_project: Project) -> None:
    sync(item_project)
    config = load_config(item_project.root)
    outbox = Outbox(config.outbox_dir)
    stored = read_stored(outbox, f"{ITEM_ID}/x")
    assert stored is not None and stored.draft is not None
    edit_body(draft_file(item_project, f"{ITEM_ID}/x"), "Net opgeslagen")
    changed = replace(stored.draft, text="Van de pijplijn")
    assert not write_if_unchanged(outbox, changed, stored.digest)
    assert body(draft_file(item_project, f"{ITEM_ID}/x")) == "Net opgeslagen"


def test_a_file_saved_between_staging_and_commit_is_not_replaced(item_project: Project) -> None:
    """The rename at commit time checks the bytes again: a save in that gap wins too."""
    sync(item_project)
    config = load_config(item_project.root)
    outbox = Outbox(config.outbox_dir)
    stored = read_stored(outbox, f"{ITEM_ID}/x")
    assert stored is not None and stored.draft is not None
    changed = replace(stored.draft, text="Van de pijplijn")
    assert write_if_unchanged(outbox, changed, stored.digest)  # staged, not yet in place
    edit_body(draft_file(item_project, f"{ITEM_ID}/x"), "Net opgeslagen")
    outbox.commit()
    assert body(draft_file(item_project, f"{ITEM_ID}/x")) == "Net opgeslagen"
    assert not list(draft_file(item_project, f"{ITEM_ID}/x").parent.glob(".krimppost-tmp-*"))


def test_crlf_bom_and_trailing_newlines_are_not_an_edit(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    data = path.read_bytes()
    path.write_bytes(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n") + b"\r\n\r\n")
    draft = parse_draft(path.read_bytes(), f"{ITEM_ID}/x")
    assert not draft.edited
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een ochtend"))
    report = sync(item_project)
    assert report.regenerated == 4 and report.stale == 0


def test_hand_added_front_matter_keys_are_kept(item_project: Project) -> None:
    sync(item_project)
    path = draft_file(item_project, f"{ITEM_ID}/x")
    path.write_text(
        path.read_text().replace("status: pending", "status: pending\nnotitie: bel Joost")
    )
    item_project.write(ITEM_PATH, ITEM.replace("Een middag", "Een ochtend"))
    sync(item_project)
    assert front_matter(path)["notitie"] == "bel Joost"


# The review page ------------------------------------------------------------------------------


def _page(path: Path) -> tuple[lxml.html.HtmlElement, str]:
    doc = lxml.html.fromstring(path.read_text(encoding="utf-8"))
    assert doc.get("lang") == "nl"
    assert len(doc.findall(".//h1")) == 1
    assert not doc.findall(".//script")
    assert not [
        (el.tag, attr) for el in doc.iter() for attr in el.attrib if attr.lower().startswith("on")
    ]
    return doc, " ".join(doc.text_content().split())


def test_review_pages_are_static_dutch_and_list_every_draft(item_project: Project) -> None:
    item_project.write("wrb/a.md", VALID)
    sync(item_project)
    config = load_config(item_project.root)
    review.approve(config, f"{ITEM_ID}/x", "Fatima", NOW)
    social_dir = item_project.root / "outbox" / "social"
    index, index_text = _page(social_dir / "index.html")
    # The overview counts every draft and links each month of publication.
    total = 2 * len(ENABLED)
    assert f"Overzicht van {total} concepten" in index_text
    links = [a.get("href") for a in index.iter("a")]
    months = sorted(p.name for p in (social_dir / "maanden").iterdir())
    assert [f"maanden/{m}" for m in months] == [h for h in links if h.startswith("maanden/")]
    texts = {}
    for month in months:
        doc, text = _page(social_dir / "maanden" / month)
        assert "../index.html" in [a.get("href") for a in doc.iter("a")]
        texts[month] = (doc, text)
    text = " ".join(t for _d, t in texts.values())
    for name in ENABLED:
        assert text.count(f"{ITEM_ID}/{name}") >= 1
        assert f"wrb-a/{name}" in text
    assert "goedgekeurd" in text and "te beoordelen" in text
    assert "van 280 gewogen tekens" in text
    headings = [h.text_content() for d, _t in texts.values() for h in d.findall(".//h2")]
    assert "Masterclass: transformatie van de woningvoorraad" in headings
    assert "Een geldig item" in headings


def test_a_changed_draft_rerenders_only_its_month_page(item_project: Project) -> None:
    item_project.write("wrb/a.md", VALID.replace("date: 2026-11-01", "date: 2026-09-15"))
    sync(item_project)
    months = item_project.root / "outbox" / "social" / "maanden"
    before = {p.name: p.stat().st_mtime_ns for p in months.iterdir()}
    assert len(before) == 2, before
    config = load_config(item_project.root)
    review.approve(config, "wrb-a/x", "Fatima", NOW)
    after = {p.name: p.stat().st_mtime_ns for p in months.iterdir()}
    changed = [name for name in before if before[name] != after[name]]
    assert changed == ["2026-09.html"]
    assert "goedgekeurd" in (months / "2026-09.html").read_text(encoding="utf-8")
    # A build with nothing new leaves every page alone.
    sync(item_project)
    assert {p.name: p.stat().st_mtime_ns for p in months.iterdir()} == after


def test_a_month_left_alone_still_follows_the_clock_its_templates_and_its_file(
    item_project: Project,
) -> None:
    """Months where nothing changed are skipped without reading their page; these are the
    changes that must still reach it."""
    config, _content, entries = live_entries(item_project)
    page = item_project.root / "outbox" / "social" / "maanden" / "2026-11.html"
    sync_drafts(config, entries, datetime(2026, 11, 2, tzinfo=NOW.tzinfo))
    assert "link nog niet live" in page.read_text(encoding="utf-8")
    sync_drafts(config, entries, NOW)  # the item went live in between
    assert "link nog niet live" not in page.read_text(encoding="utf-8")
    stamp = page.stat().st_mtime_ns
    sync_drafts(config, entries, NOW + timedelta(days=1))
    assert page.stat().st_mtime_ns == stamp
    sync_drafts(config, entries, datetime(2026, 11, 2, tzinfo=NOW.tzinfo))  # back in time
    assert "link nog niet live" in page.read_text(encoding="utf-8")
    page.unlink()
    sync_drafts(config, entries, NOW)
    assert "link nog niet live" not in page.read_text(encoding="utf-8")
    own = item_project.root / "templates" / "social"
    own.mkdir(parents=True)
    template = (REPO / "templates" / "social" / "maand.html").read_text(encoding="utf-8")
    own_template = template.replace("<p><a href", "<p>Eigen sjabloon.</p>\n<p><a href", 1)
    (own / "maand.html").write_text(own_template, encoding="utf-8")
    sync_drafts(config, entries, NOW)
    assert "<p>Eigen sjabloon.</p>" in page.read_text(encoding="utf-8")


def test_review_page_warns_about_an_embargoed_link(item_project: Project) -> None:
    """A draft viewed at a moment before its item went live (e.g. `--now` in the past)."""
    sync(item_project)
    config = load_config(item_project.root)
    view = review.show(config, f"{ITEM_ID}/x", datetime(2026, 10, 1, tzinfo=NOW.tzinfo))
    assert any(
        w.startswith("link nog niet live: embargo tot 3 november 2026") for w in view.warnings
    )


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=1),
    title=st.text(),
    suggestion=st.none() | st.text(min_size=1),
    reason=st.none() | st.text(),
)
def test_draft_files_round_trip(
    text: str, title: str, suggestion: str | None, reason: str | None
) -> None:
    """Whatever comms or an item puts in a draft, it reads back as written."""
    from pipeline.social.draftfile import Draft, dump_draft, normalize_text

    draft = Draft(
        platform="x",
        item="wrb-a",
        status="stale",
        text=normalize_text(text),
        generated_hash=text_hash(text),
        title=title,
        suggestion=suggestion,
        reason=reason,
    )
    assert parse_draft(dump_draft(draft), "wrb-a/x") == draft


# Property: every generated draft fits ------------------------------------------------------

PIECES = [
    "krimp",
    "woningmarkt",
    "👨‍👩‍👧‍👦",
    "🇳🇱",
    "🇧🇪",
    "👍🏽",
    "e\u0301",
    "क्षि",
    "日本語",
    "https://example.com/pad?x=1",
    "bevolkingsdaling.nl",
    "#krimp",
    "—",
    ",",
]
texts = st.lists(
    st.one_of(st.sampled_from(PIECES), st.just(" "), st.text(min_size=1, max_size=5)),
    min_size=1,
    max_size=120,
).map("".join)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, tuple[Entry, ...]]:
    project = Project(tmp_path_factory.mktemp("social") / "project")
    project.write(ITEM_PATH, ITEM)
    project.write("wrb/a.md", VALID)
    config, _content, entries = live_entries(project)
    social = {name: replace(p, enabled=True) for name, p in config.social.items()}
    return replace(config, social=MappingProxyType(social)), entries


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    title=texts.filter(lambda t: t.strip() != ""),
    summary=texts,
    tags=st.lists(texts, max_size=8),
    which=st.integers(min_value=0, max_value=1),
)
def test_generated_drafts_never_exceed_any_limit(
    base: tuple[Config, tuple[Entry, ...]], title: str, summary: str, tags: list[str], which: int
) -> None:
    config, entries = base
    entry = entries[which]
    entry = replace(entry, item=replace(entry.item, title=title, summary=summary, tags=tuple(tags)))
    composer = Composer(config)
    for platform in config.social.values():
        generated = composer.generate(entry, platform)
        assert generated.length == length(platform, generated.text)
        assert generated.fits, (platform.id, generated.length, generated.text)
        assert generated.link in generated.text


_SCALARS = (
    st.none()
    | st.integers(-(10**12), 10**12)
    | st.text()
    | st.sampled_from(
        ["pending", "yes", "No", "null", "~", "2026-11-27", "1e5", "0x1F", "-0", "a: b", "#x", " x"]
    )
)


@settings(max_examples=300, deadline=None)
@given(
    meta=st.dictionaries(
        # Keys as the pipeline names them (never a YAML word such as `no`).
        st.from_regex(r"[a-z_][a-z0-9_]{2,12}", fullmatch=True).filter(
            lambda k: k not in ("yes", "off", "null", "true", "false")
        ),
        _SCALARS,
    )
)
def test_front_matter_the_pipeline_writes_reads_back_through_yaml(meta: dict) -> None:
    """The pipeline writes its own front-matter lines without YAML's dumper; the C loader
    that reads every draft gets back what was written, whatever the values hold (quotes,
    escapes, line separators, emoji)."""
    import yaml

    from pipeline.social.draftfile import _Loader, dump_meta

    text = dump_meta(meta, {})
    assert yaml.load(text or "{}", Loader=_Loader) == meta
    assert yaml.safe_load(text or "{}") == meta
