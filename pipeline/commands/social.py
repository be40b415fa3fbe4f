"""`krimppost social …`: list, show, approve, reject drafts, take a suggestion, export.

Thin: every subcommand calls pipeline.social and prints. Problems are `path:line: message`
lines; exit 1 for content problems (the rest still done), 2 for usage errors.

Import this module after pipeline.cli has defined its helpers (it reuses them).
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostGroup
from pipeline.commands.options import _now_option, _reports_errors, _root_option
from pipeline.config import load_config
from pipeline.content.model import SOCIAL_PLATFORMS
from pipeline.errors import Problem, UsageError
from pipeline.social import export as export_module
from pipeline.social import review
from pipeline.social.counting import graphemes
from pipeline.social.reviewpage import STATUS_LABELS, DraftView
from pipeline.social.shortening import ELLIPSIS

_TITLE_WIDTH = 40


@click.group(cls=KrimppostGroup)
def social() -> None:
    """Beoordeel en exporteer social-mediaconcepten (outbox/social/)."""


def _report(problems: list[Problem]) -> None:
    for problem in sorted(problems, key=Problem.sort_key):
        click.echo(str(problem), err=True)


def _status(value: str) -> str:
    """A status as typed: Dutch, one word on the command line (te-beoordelen), or English."""
    try:
        return review.parse_status(value.replace("-", " "))
    except UsageError:
        dutch = ", ".join(label.replace(" ", "-") for label in STATUS_LABELS.values())
        raise UsageError(
            f"onbekende status {value!r}; kies uit: {dutch} (of {', '.join(STATUS_LABELS)})"
        ) from None


def _short(text: str, width: int) -> str:
    clusters = graphemes(text)
    return text if len(clusters) <= width else "".join(clusters[: width - 1]) + ELLIPSIS


def _table(views: list[DraftView]) -> list[str]:
    header = ("ID", "PLATFORM", "ITEM", "LENGTE", "STATUS", "WAARSCHUWINGEN")
    rows = [
        (
            v.id,
            v.platform_label,
            _short(v.draft.title or v.draft.item, _TITLE_WIDTH),
            f"{v.length}/{v.limit}",
            v.status_label,
            "; ".join(v.warnings) or "-",
        )
        for v in views
    ]
    widths = [max(len(graphemes(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: tuple[str, ...]) -> str:
        cells = [c + " " * (w - len(graphemes(c))) for c, w in zip(row[:-1], widths, strict=True)]
        return "  ".join([*cells, row[-1]]).rstrip()

    return [line(header), *(line(r) for r in rows)]


@social.command("list")
@_root_option
@_now_option
@click.option(
    "--status",
    default=None,
    metavar="STATUS",
    help=(
        "Alleen deze status: te-beoordelen, goedgekeurd, afgewezen, verouderd of "
        "ingetrokken (ook in het Engels: pending, approved, rejected, stale, withdrawn)."
    ),
)
@click.option(
    "--platform",
    type=click.Choice(SOCIAL_PLATFORMS, case_sensitive=False),
    default=None,
    help="Alleen dit platform.",
)
@_reports_errors
def list_command(root: Path, now: datetime, status: str | None, platform: str | None) -> None:
    """Toon de concepten als tabel: id, platform, item, lengte, status, waarschuwingen."""
    config = load_config(root)
    wanted = _status(status) if status else None
    views, problems = review.list_views(config, now, wanted, platform.lower() if platform else None)
    if views:
        for text in _table(views):
            click.echo(text)
    else:
        click.echo("geen concepten")
    _report(problems)
    sys.exit(1 if problems else 0)


@social.command("show")
@_root_option
@_now_option
@click.argument("draft_id", metavar="ID")
@_reports_errors
def show_command(root: Path, now: datetime, draft_id: str) -> None:
    """Toon één concept (ID is <item-id>/<platform>) met tekst, voorstel en waarschuwingen."""
    config = load_config(root)
    v = review.show(config, draft_id, now)
    d = v.draft
    click.echo(f"Concept:  {v.id} ({v.file})")
    click.echo(f"Platform: {v.platform_label}")
    click.echo(f"Item:     {d.title} ({d.item})")
    click.echo(f"Status:   {v.status_label}")
    click.echo(f"Lengte:   {v.length} van {v.limit} {v.unit}")
    click.echo(f"Link:     {d.link}")
    if d.source == "override":
        click.echo("Bron:     eigen tekst uit het item")
    if v.status == "approved":
        click.echo(f"Goedgekeurd door {d.approved_by} op {d.approved_at}")
    if v.status == "rejected":
        click.echo(f"Afgewezen door {d.rejected_by} op {d.rejected_at}: {d.reason}")
    if d.exported_at:
        click.echo(f"Geëxporteerd op {d.exported_at}")
    if v.warnings:
        click.echo("Waarschuwingen:")
        for warning in v.warnings:
            click.echo(f"  - {warning}")
    click.echo("")
    click.echo(d.text)
    if d.suggestion:
        click.echo("")
        click.echo(f"Nieuw voorstel (overnemen: krimppost social take {v.id}):")
        click.echo(d.suggestion)


@social.command("approve")
@_root_option
@_now_option
@click.argument("draft_id", metavar="ID")
@click.option(
    "--by",
    default=None,
    help="Naam van wie goedkeurt (standaard: $KRIMPPOST_REVIEWER of de gebruikersnaam).",
)
@_reports_errors
def approve_command(root: Path, now: datetime, draft_id: str, by: str | None) -> None:
    """Keur een concept goed zoals de tekst nu is."""
    config = load_config(root)
    v = review.approve(config, draft_id, by, now)
    click.echo(f"goedgekeurd: {v.id} door {v.draft.approved_by} ({v.length}/{v.limit})")


@social.command("reject")
@_root_option
@_now_option
@click.argument("draft_id", metavar="ID")
@click.option("--reason", required=True, help="Waarom het concept niet geplaatst wordt.")
@click.option("--by", default=None, help="Naam van wie afwijst.")
@_reports_errors
def reject_command(root: Path, now: datetime, draft_id: str, reason: str, by: str | None) -> None:
    """Wijs een concept af, met een reden."""
    config = load_config(root)
    v = review.reject(config, draft_id, by, reason, now)
    click.echo(f"afgewezen: {v.id} door {v.draft.rejected_by}")


@social.command("take")
@_root_option
@_now_option
@click.argument("draft_id", metavar="ID")
@_reports_errors
def take_command(root: Path, now: datetime, draft_id: str) -> None:
    """Neem het nieuwe voorstel van een verouderd concept over (daarna: te beoordelen)."""
    config = load_config(root)
    v = review.take_suggestion(config, draft_id, now)
    click.echo(f"voorstel overgenomen: {v.id} ({v.status_label})")


@social.command("export")
@_root_option
@_now_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export_module.FORMATS),
    default="csv",
    show_default=True,
    help="csv (Buffer-kolommen plus extra), buffer (alleen Buffer-kolommen, een bestand per "
    "platform) of json.",
)
@click.option(
    "--platform",
    type=click.Choice(SOCIAL_PLATFORMS, case_sensitive=False),
    default=None,
    help="Alleen dit platform (Buffer importeert per kanaal).",
)
@click.option(
    "--output",
    default=None,
    metavar="FILE",
    help="Doelbestand, of - voor de standaarduitvoer (standaard: outbox/social/_export/).",
)
@click.option("--all", "include_all", is_flag=True, help="Ook eerder geëxporteerde concepten.")
@_reports_errors
def export_command(
    root: Path,
    now: datetime,
    fmt: str,
    platform: str | None,
    output: str | None,
    include_all: bool,
) -> None:
    """Exporteer goedgekeurde concepten voor een planningstool en markeer ze als geëxporteerd."""
    config = load_config(root)
    result = export_module.export(
        config, now, fmt, platform.lower() if platform else None, output, include_all
    )
    if not result.files:
        click.echo("geen goedgekeurde concepten om te exporteren")
    for written in result.files:
        if written.path == "-":
            click.echo(written.data.decode(), nl=False)
            click.echo(f"{written.count} concepten geëxporteerd", err=True)
        else:
            # One line per file: `--format buffer` writes a file per platform.
            click.echo(f"{written.count} concepten geëxporteerd naar {written.path}")
    _report(result.problems)
    sys.exit(1 if result.problems else 0)
