"""`krimppost social …` as comms staff use it: list, show, approve, reject, take, export."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from conftest import NOW, VALID, Project
from pipeline.commands.social import social
from pipeline.config import load_config
from pipeline.content.reader import read_content
from pipeline.publish import decide
from pipeline.social.drafts import sync_drafts
from pipeline.social.export import BUFFER_COLUMNS, CSV_COLUMNS, export, suggested_time
from pipeline.state import StateStore

NOW_TEXT = "2026-11-27T12:00"
A = "wrb-a"
B = "wrb-b"


def build_drafts(project: Project, now_offset_hours: int = 0) -> None:
    config = load_config(project.root)
    now = NOW + timedelta(hours=now_offset_hours)
    content = read_content(config)
    with StateStore(config.path(config.state.path)) as state:
        publication = decide(config, content, state, now)
        with state.transaction():
            for record, last_good in publication.saves:
                state.save_item(record, last_good)
            for item_id in publication.withdrawn:
                state.withdraw(item_id, now)
    report = sync_drafts(config, publication.entries, now)
    assert not report.problems


def run(project: Project, *args: str) -> Result:
    command, *rest = args
    return CliRunner().invoke(
        social, [command, "--root", str(project.root), "--now", NOW_TEXT, *rest]
    )


def meta(project: Project, draft_id: str) -> dict:
    path = project.root / "outbox" / "social" / f"{draft_id}.md"
    return yaml.safe_load(path.read_text(encoding="utf-8").split("---\n")[1])


def draft_path(project: Project, draft_id: str) -> Path:
    return project.root / "outbox" / "social" / f"{draft_id}.md"


@pytest.fixture
def drafts(project: Project) -> Project:
    project.write("wrb/a.md", VALID.replace("Een geldig item", "Eerste bericht"))
    project.write(
        "wrb/b.md",
        VALID.replace("Een geldig item", "Tweede bericht").replace(
            "kind: news",
            "kind: news\nimage: /afbeeldingen/podcast-omslag.png\nimage_alt: Omslag met microfoon",
        ),
    )
    build_drafts(project)
    return project


# list and show ------------------------------------------------------------------------------


def test_list_is_a_table_of_every_draft(drafts: Project) -> None:
    result = run(drafts, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "PLATFORM", "ITEM", "LENGTE", "STATUS", "WAARSCHUWINGEN"]
    assert len(lines) == 1 + 8
    first = lines[1].split()
    assert first[0] == f"{A}/bluesky"
    assert "Bluesky" in lines[1] and "Eerste bericht" in lines[1]
    assert "te beoordelen" in lines[1]
    assert any(f"{B}/x" in line and "/280" in line for line in lines)


def test_list_filters_by_status_and_platform(drafts: Project) -> None:
    assert run(drafts, "approve", f"{A}/x", "--by", "Fatima").exit_code == 0
    approved = run(drafts, "list", "--status", "approved")
    assert [line.split()[0] for line in approved.stdout.splitlines()[1:]] == [f"{A}/x"]
    # Dutch status names work too.
    dutch = run(drafts, "list", "--status", "goedgekeurd")
    assert dutch.stdout == approved.stdout
    mastodon = run(drafts, "list", "--platform", "mastodon")
    assert [line.split()[0] for line in mastodon.stdout.splitlines()[1:]] == [
        f"{A}/mastodon",
        f"{B}/mastodon",
    ]
    bad = run(drafts, "list", "--status", "klaar")
    assert bad.exit_code == 2
    assert "onbekende status 'klaar'" in bad.stderr


def test_list_reports_a_broken_file_and_lists_the_rest(drafts: Project) -> None:
    path = draft_path(drafts, f"{A}/x")
    path.write_text(path.read_text().replace("---\nplatform", "platform", 1))
    result = run(drafts, "list")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"outbox/social/{A}/x.md:1: front matter ontbreekt")
    assert len(result.stdout.splitlines()) == 1 + 7


def test_show_prints_text_and_facts(drafts: Project) -> None:
    result = run(drafts, "show", f"{A}/linkedin")
    assert result.exit_code == 0, result.output
    assert f"Concept:  {A}/linkedin (outbox/social/{A}/linkedin.md)" in result.stdout
    assert "Status:   te beoordelen" in result.stdout
    assert "van 3000 tekens" in result.stdout
    assert "Eerste bericht\n\nEen korte samenvatting." in result.stdout


def test_unknown_and_malformed_ids_are_usage_errors(drafts: Project) -> None:
    missing = run(drafts, "show", "bestaat-niet/x")
    assert missing.exit_code == 2
    assert missing.stderr == "outbox/social/bestaat-niet/x.md: dit concept bestaat niet\n"
    malformed = run(drafts, "approve", "../../etc/passwd")
    assert malformed.exit_code == 2
    assert "ongeldig concept-id" in malformed.stderr


# approve, reject, take ---------------------------------------------------------------------


def test_approve_records_who_when_and_the_text_hash(drafts: Project) -> None:
    result = run(drafts, "approve", f"{A}/x", "--by", "Fatima de Vries")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"goedgekeurd: {A}/x door Fatima de Vries")
    m = meta(drafts, f"{A}/x")
    assert m["status"] == "approved"
    assert m["approved_by"] == "Fatima de Vries"
    assert m["approved_at"] == "2026-11-27T12:00:00+01:00"
    assert m["approved_hash"] == m["generated_hash"]
    page = (drafts.root / "outbox" / "social" / "maanden" / "2026-11.html").read_text()
    assert "X: goedgekeurd" in page


def test_approve_without_by_uses_the_reviewer_variable(
    drafts: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KRIMPPOST_REVIEWER", "Joost")
    assert run(drafts, "approve", f"{A}/x").exit_code == 0
    assert meta(drafts, f"{A}/x")["approved_by"] == "Joost"


def test_a_draft_over_its_limit_cannot_be_approved(drafts: Project) -> None:
    path = draft_path(drafts, f"{A}/x")
    head = path.read_text().rsplit("---\n", 1)[0]
    path.write_text(head + "---\n" + "woord " * 60 + "\n")
    result = run(drafts, "approve", f"{A}/x")
    assert result.exit_code == 1
    assert "te lang voor X (359 van 280 gewogen tekens)" in result.stderr
    assert meta(drafts, f"{A}/x")["status"] == "pending"
    listed = run(drafts, "list", "--platform", "x")
    assert "te lang: 359 van 280 gewogen tekens" in listed.stdout


def test_reject_needs_a_reason_and_records_it(drafts: Project) -> None:
    missing = run(drafts, "reject", f"{A}/bluesky")
    assert missing.exit_code == 2
    result = run(drafts, "reject", f"{A}/bluesky", "--reason", "Te vroeg", "--by", "Joost")
    assert result.exit_code == 0, result.output
    m = meta(drafts, f"{A}/bluesky")
    assert (m["status"], m["rejected_by"], m["reason"]) == ("rejected", "Joost", "Te vroeg")
    assert m["rejected_at"] == "2026-11-27T12:00:00+01:00"
    # Changing one's mind: approving clears the rejection.
    assert run(drafts, "approve", f"{A}/bluesky", "--by", "Joost").exit_code == 0
    m = meta(drafts, f"{A}/bluesky")
    assert m["status"] == "approved" and m["reason"] is None


def test_take_the_suggestion_of_a_stale_draft(drafts: Project) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    drafts.write("wrb/a.md", VALID.replace("Een geldig item", "Eerste bericht, herzien"))
    build_drafts(drafts, 1)
    shown = run(drafts, "show", f"{A}/x")
    assert "Status:   verouderd" in shown.stdout
    assert "Nieuw voorstel" in shown.stdout and "Eerste bericht, herzien" in shown.stdout
    no_suggestion = run(drafts, "take", f"{A}/mastodon")
    assert no_suggestion.exit_code == 1
    result = run(drafts, "take", f"{A}/x")
    assert result.exit_code == 0, result.output
    m = meta(drafts, f"{A}/x")
    assert m["status"] == "pending" and "suggestion" not in m
    assert "Eerste bericht, herzien" in draft_path(drafts, f"{A}/x").read_text()


# export ------------------------------------------------------------------------------------


def test_export_writes_only_approved_drafts_and_not_twice(drafts: Project, tmp_path: Path) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{B}/linkedin", "--by", "Fatima")
    run(drafts, "reject", f"{A}/linkedin", "--reason", "Niet relevant")
    out = tmp_path / "export.csv"
    result = run(drafts, "export", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"2 concepten geëxporteerd naar {out}\n"
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["Draft ID"], r["Platform"]) for r in rows] == [
        (f"{A}/x", "x"),
        (f"{B}/linkedin", "linkedin"),
    ]
    a_text = draft_path(drafts, f"{A}/x").read_text().rsplit("---\n", 1)[1].strip()
    assert rows[0]["Text"] == a_text
    assert rows[0]["Tags"] == A
    assert rows[0]["Posting Time"] == "2026-11-27 12:00"  # now, quarter-hour, x offset 0
    assert rows[1]["Posting Time"] == "2026-11-27 13:00"  # linkedin: an hour later
    assert (
        rows[1]["Image URL"]
        == "https://www.bevolkingsdaling.nl/bestanden/afbeeldingen/podcast-omslag.png"
    )
    assert rows[1]["Image Alt Text"] == "Omslag met microfoon"
    assert rows[0]["Link"].startswith(
        f"https://www.bevolkingsdaling.nl/berichten/{A}/?utm_source=x"
    )
    assert meta(drafts, f"{A}/x")["exported_at"] == "2026-11-27T12:00:00+01:00"

    again = run(drafts, "export", "--output", str(out))
    assert again.stdout == f"0 concepten geëxporteerd naar {out}\n"
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 0
    everything = run(drafts, "export", "--all", "--format", "json", "--output", "-")
    document = json.loads(everything.stdout)
    assert [d["id"] for d in document["drafts"]] == [f"{A}/x", f"{B}/linkedin"]
    assert document["timezone"] == "Europe/Amsterdam"
    assert document["drafts"][0]["publish_at"] == "2026-11-27T12:00+01:00"
    assert document["drafts"][1]["image_alt"] == "Omslag met microfoon"


def test_an_edit_after_approval_keeps_a_draft_out_of_the_export(drafts: Project) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    path = draft_path(drafts, f"{A}/x")
    path.write_text(path.read_text().rstrip("\n") + " Extra.\n")
    result = run(drafts, "export", "--format", "json", "--output", "-")
    assert json.loads(result.stdout)["drafts"] == []
    listed = run(drafts, "list", "--platform", "x")
    assert "na goedkeuring bewerkt" in listed.stdout
    # Approved again, it is exported again (with its new text).
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    result = run(drafts, "export", "--format", "json", "--output", "-")
    assert json.loads(result.stdout)["drafts"][0]["text"].endswith("Extra.")


def test_export_buffer_format_per_platform_into_the_outbox(drafts: Project) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{A}/mastodon", "--by", "Fatima")
    result = run(drafts, "export", "--format", "buffer", "--platform", "mastodon")
    assert result.exit_code == 0, result.output
    written = drafts.root / "outbox" / "social" / "_export" / "20261127-120000-mastodon.csv"
    assert result.stdout == f"1 concepten geëxporteerd naar outbox/social/_export/{written.name}\n"
    data = written.read_bytes()
    assert data.startswith(b"Text,Image URL,Tags,Posting Time\r\n")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert tuple(rows[0]) == BUFFER_COLUMNS and len(rows) == 2
    assert rows[1][3] == "2026-11-27 12:30"
    # The export folder is not taken for an item's drafts.
    assert "_export" not in run(drafts, "list").stdout
    nothing = run(drafts, "export", "--platform", "mastodon")
    assert nothing.stdout == "geen goedgekeurde concepten om te exporteren\n"


def export_dir(project: Project) -> Path:
    return project.root / "outbox" / "social" / "_export"


def buffer_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"Text,Image URL,Tags,Posting Time\r\n")
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert tuple(rows[0]) == BUFFER_COLUMNS
    return rows[1:]


def test_export_buffer_format_writes_one_file_per_platform(drafts: Project) -> None:
    # Buffer imports a bulk CSV into one channel: X and LinkedIn may not share a file.
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{A}/linkedin", "--by", "Fatima")
    run(drafts, "approve", f"{B}/linkedin", "--by", "Fatima")
    result = run(drafts, "export", "--format", "buffer")
    assert result.exit_code == 0, result.output
    x = "20261127-120000-buffer-x.csv"
    linkedin = "20261127-120000-buffer-linkedin.csv"
    assert result.stdout == (
        f"1 concepten geëxporteerd naar outbox/social/_export/{x}\n"
        f"2 concepten geëxporteerd naar outbox/social/_export/{linkedin}\n"
    )
    assert sorted(p.name for p in export_dir(drafts).iterdir()) == [linkedin, x]
    x_rows = buffer_rows((export_dir(drafts) / x).read_bytes())
    assert [(r[2], r[3]) for r in x_rows] == [(A, "2026-11-27 12:00")]
    linkedin_rows = buffer_rows((export_dir(drafts) / linkedin).read_bytes())
    assert [(r[2], r[3]) for r in linkedin_rows] == [
        (A, "2026-11-27 13:00"),
        (B, "2026-11-27 13:00"),
    ]
    assert x_rows[0][0] == draft_path(drafts, f"{A}/x").read_text().rsplit("---\n", 1)[1].strip()
    assert all(
        meta(drafts, d)["exported_at"] == "2026-11-27T12:00:00+01:00"
        for d in (f"{A}/x", f"{A}/linkedin", f"{B}/linkedin")
    )
    # csv stays one file with every platform.
    mixed = run(drafts, "export", "--all")
    assert (
        mixed.stdout == "3 concepten geëxporteerd naar outbox/social/_export/20261127-120000.csv\n"
    )


def test_export_buffer_format_with_a_platform_writes_one_file(drafts: Project) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{B}/x", "--by", "Fatima")
    run(drafts, "approve", f"{A}/linkedin", "--by", "Fatima")
    result = run(drafts, "export", "--platform", "x", "--format", "buffer")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "2 concepten geëxporteerd naar outbox/social/_export/20261127-120000-x.csv\n"
    )
    assert [p.name for p in export_dir(drafts).iterdir()] == ["20261127-120000-x.csv"]
    rows = buffer_rows((export_dir(drafts) / "20261127-120000-x.csv").read_bytes())
    assert [r[2] for r in rows] == [A, B]
    assert "exported_at" not in meta(drafts, f"{A}/linkedin")


def test_export_result_lists_every_file_for_the_desk(drafts: Project) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{B}/mastodon", "--by", "Fatima")
    now = datetime.fromisoformat(NOW_TEXT)  # read in the site's zone, as `--now`
    result = export(load_config(drafts.root), now, "buffer")
    assert [(f.outbox_path, f.platform, f.count) for f in result.files] == [
        ("social/_export/20261127-120000-buffer-x.csv", "x", 1),
        ("social/_export/20261127-120000-buffer-mastodon.csv", "mastodon", 1),
    ]
    for f in result.files:
        assert f.path == f"outbox/{f.outbox_path}"
        assert f.name == Path(f.outbox_path or "").name
        assert (drafts.root / f.path).read_bytes() == f.data
        assert len(buffer_rows(f.data)) == 1
    assert result.destination == result.files[0].path and result.data == result.files[0].data
    assert [r.id for r in result.rows] == [f"{A}/x", f"{B}/mastodon"]
    again = export(load_config(drafts.root), now, "buffer")
    assert again.files == [] and again.destination is None and again.data == b""


def test_export_buffer_format_beside_output_and_not_to_standard_output(
    drafts: Project, tmp_path: Path
) -> None:
    run(drafts, "approve", f"{A}/x", "--by", "Fatima")
    run(drafts, "approve", f"{A}/linkedin", "--by", "Fatima")
    refused = run(drafts, "export", "--format", "buffer", "--output", "-")
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "--platform" in refused.stderr
    assert "exported_at" not in meta(drafts, f"{A}/x")
    out = tmp_path / "buffer.csv"
    result = run(drafts, "export", "--format", "buffer", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"1 concepten geëxporteerd naar {tmp_path / 'buffer-x.csv'}\n"
        f"1 concepten geëxporteerd naar {tmp_path / 'buffer-linkedin.csv'}\n"
    )
    assert not out.exists()
    assert [r[2] for r in buffer_rows((tmp_path / "buffer-x.csv").read_bytes())] == [A]
    assert [r[2] for r in buffer_rows((tmp_path / "buffer-linkedin.csv").read_bytes())] == [A]
    # One platform to standard output still works.
    single = run(
        drafts, "export", "--all", "--format", "buffer", "--platform", "x", "--output", "-"
    )
    assert single.exit_code == 0 and len(buffer_rows(single.stdout_bytes)) == 1


def test_suggested_time_waits_for_the_posting_day(drafts: Project) -> None:
    config = load_config(drafts.root)
    night = NOW.replace(hour=22)  # 23:00 in Amsterdam
    assert suggested_time(config, None, "x", night).isoformat() == "2026-11-28T09:00:00+01:00"
    assert (
        suggested_time(config, None, "linkedin", night).isoformat() == "2026-11-28T10:00:00+01:00"
    )
    later = NOW + timedelta(days=2, minutes=7)
    assert suggested_time(config, later, "x", NOW).isoformat() == "2026-11-29T13:15:00+01:00"
