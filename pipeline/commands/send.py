"""`krimppost newsletter send [N]`: deliver an issue over SMTP, exactly once, resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pipeline.commands.clicktext import KrimppostCommand
from pipeline.commands.options import _reports_errors, _root_option

MAX_LISTED = 50


@click.command("send", cls=KrimppostCommand)
@click.argument("number", metavar="[N]", type=int, required=False)
@_root_option
@click.option(
    "--resend-uncertain",
    is_flag=True,
    help="Verstuur ook aan de onzekere ontvangers: hun bericht ging helemaal weg maar de "
    "server bevestigde het niet (zij kunnen het dan twee keer krijgen).",
)
@_reports_errors
def send(number: int | None, root: Path, resend_uncertain: bool) -> None:
    """Verstuur nummer N (standaard: het laatste) aan de actieve abonnees van zijn trajecten.

    Een onderbroken verzending gaat bij de volgende run verder: niemand krijgt een nummer
    twee keer. Wie een bericht onderweg had toen de vorige run stopte, of wiens bericht
    de server niet meer bevestigde, staat als onzeker in de samenvatting (exit 1) en krijgt
    het alleen opnieuw met --resend-uncertain.
    """
    from pipeline.delivery.sender import SendReport, send_issue

    def started(report: SendReport) -> None:
        click.echo(
            f"nieuwsbrief {report.issue}: {report.recipients} te versturen, "
            f"{report.already_sent} eerder verstuurd, {report.skipped} overgeslagen "
            f"(niet meer actief); {report.renders} weergave(n) per trajectkeuze",
            err=True,
        )

    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Rate(ProgressColumn):
            def render(self, task: Any) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.0f} berichten/s" if speed else "– berichten/s")

        with Progress(
            TextColumn("versturen"),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TextColumn("nog"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("versturen", total=None)
            report = send_issue(
                root,
                number,
                resend_uncertain,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                on_start=started,
            )
    else:
        report = send_issue(root, number, resend_uncertain, on_start=started)

    if report.uncertain:
        click.echo(
            f"onzeker ({len(report.uncertain)}): het bericht was helemaal verstuurd, maar de "
            "server bevestigde het niet (verbinding verbroken of time-out na de laatste punt, "
            "of een eerdere run stopte); niet opnieuw verstuurd:"
        )
        for address in report.uncertain[:MAX_LISTED]:
            click.echo(f"  {address}")
        if len(report.uncertain) > MAX_LISTED:
            click.echo(f"  … en {len(report.uncertain) - MAX_LISTED} meer")
        click.echo(
            "opnieuw versturen aan de onzekere ontvangers (zij kunnen het dan twee keer "
            f"krijgen): krimppost newsletter send {report.issue} --resend-uncertain"
        )
    if report.aborted:
        click.echo(f"verzending afgebroken: {report.aborted}", err=True)
    if report.not_attempted:
        click.echo(
            f"{report.not_attempted} nog niet verstuurd; draai send opnieuw om verder te gaan",
            err=True,
        )
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)
