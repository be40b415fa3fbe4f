"""`check` and `status` say how many published items lie before each horizon, and
`status` shows the issues waiting for approval and the approved ones not yet sent."""

from __future__ import annotations

from datetime import datetime

from click.testing import CliRunner

from conftest import VALID, Project, build_at
from pipeline.cli import cli
from pipeline.commands.approval import approve_issue
from pipeline.commands.newsletter import compile_issue

NOW = "2026-11-27T12:00"  # site time: 11:00 UTC
# With the defaults (30 and 14 days back from the first build, at NOW):
NEWSLETTER_HORIZON = "2026-10-28T12:00+01:00"
SOCIAL_HORIZON = "2026-11-13T12:00+01:00"


def item(name: str, date: str, extra: str = "") -> str:
    return VALID.replace("title: Een geldig item", f"title: Bericht {name}").replace(
        "date: 2026-11-01", f"date: {date}{extra}"
    )


def archive(project: Project) -> None:
    """Three items of before both horizons, one between them, one after both; and a draft
    and an embargoed item, which are not published and so not counted."""
    project.use_defaults()
    for n, date in enumerate(["2024-05-01", "2025-03-01", "2026-10-20"]):
        project.write(f"wrb/archief-{n}.md", item(f"archief {n}", date))
    project.write("wrb/tussen.md", item("tussen", "2026-11-05"))
    project.write("wrb/nieuw.md", item("nieuw", "2026-11-20"))
    project.write("wrb/concept.md", item("concept", "2024-01-01", "\ndraft: true"))
    project.write("wrb/later.md", item("later", "2026-12-20"))


def run(project: Project, *args: str, now: str = NOW) -> list[str]:
    result = CliRunner().invoke(cli, [*args, "--root", str(project.root), "--now", now])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output.splitlines()


def horizon_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("horizon ")]


def test_check_before_any_build_counts_from_now(project: Project) -> None:
    archive(project)
    lines = run(project, "check")
    assert lines[-1] == "7 items: 5 gepubliceerd, 1 onder embargo, 1 concept; 0 fouten"
    assert horizon_lines(lines) == [
        f"horizon nieuwsbrief: {NEWSLETTER_HORIZON}; 3 gepubliceerde items van daarvoor in "
        "geen nummer",
        f"horizon social-concepten: {SOCIAL_HORIZON}; 4 gepubliceerde items van daarvoor "
        "zonder concepten",
    ]
    assert not (project.root / ".krimppost/state.sqlite").exists()  # check made no store


def test_check_after_the_first_build_counts_from_that_build(project: Project) -> None:
    archive(project)
    build_at(project, NOW)
    # Months later the horizons stay where the first build put them.
    lines = run(project, "check", now="2027-03-01T09:00")
    assert lines[-1].startswith("7 items: 6 gepubliceerd")  # the embargo is over
    assert horizon_lines(lines) == [
        f"horizon nieuwsbrief: {NEWSLETTER_HORIZON}; 3 gepubliceerde items van daarvoor in "
        "geen nummer",
        f"horizon social-concepten: {SOCIAL_HORIZON}; 4 gepubliceerde items van daarvoor "
        "zonder concepten",
    ]


def test_check_says_nothing_of_horizons_that_leave_nothing_out(project: Project) -> None:
    project.use_defaults()
    project.write("wrb/nieuw.md", item("nieuw", "2026-11-20"))
    assert run(project, "check") == [
        "1 item: 1 gepubliceerd, 0 onder embargo, 0 concepten; 0 fouten"
    ]


def test_a_configured_since_sets_the_horizon_and_singular_wording(project: Project) -> None:
    archive(project)
    path = project.root / "config.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("[newsletter]\n", "[newsletter]\nsince = 2025-01-01\n", 1)
    text = text.replace("[social.x]\n", "[social]\nsince = 2026-11-10\n\n[social.x]\n", 1)
    path.write_text(text, encoding="utf-8")
    assert horizon_lines(run(project, "check")) == [
        "horizon nieuwsbrief: 2025-01-01T00:00+01:00; 1 gepubliceerd item van daarvoor in "
        "geen nummer",
        "horizon social-concepten: 2026-11-10T00:00+01:00; 4 gepubliceerde items van "
        "daarvoor zonder concepten",
    ]


def test_status_counts_by_the_first_published_moment_the_store_keeps(project: Project) -> None:
    archive(project)
    lines = run(project, "status")  # before any build: from now, as check
    assert horizon_lines(lines) == [
        f"horizon nieuwsbrief: {NEWSLETTER_HORIZON}; 3 gepubliceerde items van daarvoor in "
        "geen nummer",
        f"horizon social-concepten: {SOCIAL_HORIZON}; 4 gepubliceerde items van daarvoor "
        "zonder concepten",
    ]
    build_at(project, NOW)
    # An old item dated anew later is still an old item: it was first published then.
    project.write("wrb/archief-0.md", item("archief 0", "2026-11-26"))
    build_at(project, "2026-12-01T09:00")
    lines = run(project, "status", now="2026-12-01T09:00")
    assert horizon_lines(lines) == [
        f"horizon nieuwsbrief: {NEWSLETTER_HORIZON}; 3 gepubliceerde items van daarvoor in "
        "geen nummer",
        f"horizon social-concepten: {SOCIAL_HORIZON}; 4 gepubliceerde items van daarvoor "
        "zonder concepten",
    ]


def test_status_shows_concepts_waiting_for_approval_and_approved_unsent_issues(
    project: Project,
) -> None:
    archive(project)
    build_at(project, NOW)
    report = compile_issue(project.root, datetime.fromisoformat(NOW))
    assert report.number == 1 and report.items == 2  # tussen, nieuw: the archive stays out

    lines = run(project, "status")
    start = lines.index("nieuwsbrieven nog niet verstuurd: 1")
    assert lines[start + 1].startswith("  wachten op goedkeuring: 1 (")
    assert "krimppost newsletter approve N --by NAAM" in lines[start + 1]
    assert lines[start + 2] == f"    #1: {report.subject} (gemaakt 2026-11-27T12:00+01:00)"
    assert not any("goedgekeurd, nog niet verstuurd" in line for line in lines)

    approve_issue(project.root, 1, "Anna de Vries", datetime.fromisoformat("2026-11-27T14:30"))
    lines = run(project, "status", now="2026-11-27T15:00")
    start = lines.index("nieuwsbrieven nog niet verstuurd: 1")
    assert lines[start + 1] == (
        "  goedgekeurd, nog niet verstuurd: 1 (versturen: krimppost newsletter send N)"
    )
    assert lines[start + 2] == (
        f"    #1: {report.subject} (goedgekeurd door Anna de Vries, 2026-11-27T14:30+01:00)"
    )
    assert not any("wachten op goedkeuring" in line for line in lines)


def test_status_with_auto_send_says_the_service_sends_an_approved_issue(
    project: Project,
) -> None:
    archive(project)
    path = project.root / "config.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("auto_send = false", "auto_send = true"),
        encoding="utf-8",
    )
    build_at(project, NOW)
    compile_issue(project.root, datetime.fromisoformat(NOW))
    approve_issue(project.root, 1, "Anna", datetime.fromisoformat("2026-11-27T14:30"))
    assert (
        "  goedgekeurd, nog niet verstuurd: 1 (versturen: krimppost newsletter send N, of de "
        "dienst bij het volgende nieuwsbriefmoment)"
    ) in run(project, "status")


def test_status_without_approval_lists_unsent_issues_as_before(project: Project) -> None:
    project.write("wrb/nieuw.md", item("nieuw", "2026-11-20"))
    build_at(project, NOW)
    report = compile_issue(project.root, datetime.fromisoformat(NOW))
    lines = run(project, "status")
    start = lines.index("nieuwsbrieven nog niet verstuurd: 1")
    assert lines[start + 1] == f"  #1: {report.subject}"
    # The test config reaches back a century: nothing lies before either horizon.
    assert [line.split("; ")[1] for line in horizon_lines(lines)] == [
        "0 gepubliceerde items van daarvoor in geen nummer",
        "0 gepubliceerde items van daarvoor zonder concepten",
    ]
