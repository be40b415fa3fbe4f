"""Thin command line: parse arguments, call a command, turn domain errors into lines and exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pipeline.commands.clicktext import VERSION_MESSAGE, VERSION_TEXT, KrimppostGroup
from pipeline.commands.options import _now_option, _reports_errors, _root_option


class LazyGroup(KrimppostGroup):
    """Subcommands whose modules load only when used: `social` pulls in twitter-text
    (0.25 s of imports) that a `build` does not need."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy={
        "social": "pipeline.commands.social:social",
        "subscribers": "pipeline.commands.subscribers:subscribers",
        "bounces": "pipeline.commands.bounces:bounces",
        "serve": "pipeline.commands.serve:serve",
        "state": "pipeline.commands.state:state",
        "users": "pipeline.desk.users_command:users",
        "desk": "pipeline.desk.desk_command:desk",
    },
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--debug", is_flag=True, help="Toon een volledige traceback bij interne fouten.")
@click.version_option(package_name="krimppost", help=VERSION_TEXT, message=VERSION_MESSAGE)
def cli(debug: bool) -> None:
    """krimppost: publicatiepijplijn van het programma Bevolkingsdaling."""


@cli.command()
@_root_option
@_now_option
@_reports_errors
def check(root: Path, now: datetime) -> None:
    """Controleer config.toml en alle items in content/."""
    from pipeline.commands.check import check as run_check

    report = run_check(root, now)
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(report.summary())
    sys.exit(1 if report.problems else 0)


@cli.command()
@_root_option
@_now_option
@_reports_errors
def build(root: Path, now: datetime) -> None:
    """Bouw de site, de feeds en de agenda in outbox/ (alleen wat veranderd is)."""
    from pipeline.commands.build import build as run_build

    report = run_build(root, now)
    for problem in report.problems:
        click.echo(str(problem))
    for warning in report.warnings:
        click.echo(f"waarschuwing: {warning}", err=True)
    click.echo(report.summary())
    sys.exit(1 if report.problems else 0)


@cli.group(cls=LazyGroup, lazy={"send": "pipeline.commands.send:send"})
def newsletter() -> None:
    """Nieuwsbrieven samenstellen en versturen."""


@newsletter.command("compile")
@_root_option
@_now_option
@_reports_errors
def newsletter_compile(root: Path, now: datetime) -> None:
    """Stel het volgende nummer samen uit gepubliceerde berichten die nog in geen nummer stonden."""
    from pipeline.commands.newsletter import compile_issue

    report = compile_issue(root, now)
    for problem in report.problems:
        click.echo(str(problem))
    for number in report.repaired:
        click.echo(f"nieuwsbrief {number}: ontbrekende bestanden hersteld")
    for warning in report.warnings:
        click.echo(f"waarschuwing: {warning}", err=True)
    click.echo(report.summary())


@newsletter.command("approve")
@click.argument("number", metavar="N", type=int)
@click.option("--by", "by", metavar="NAAM", required=True, help="Wie het nummer goedkeurt.")
@_root_option
@_now_option
@_reports_errors
def newsletter_approve(number: int, by: str, root: Path, now: datetime) -> None:
    """Keur nummer N goed: pas dan gaat het naar de abonnees en staat het op de site."""
    from pipeline.commands.approval import approve_issue

    report = approve_issue(root, number, by, now)
    click.echo(report.summary())
    if report.send_now:
        from pipeline.commands.send import deliver

        deliver(root, number, resend_uncertain=False)


@newsletter.command("discard")
@click.argument("number", metavar="N", type=int)
@_root_option
@_now_option
@_reports_errors
def newsletter_discard(number: int, root: Path, now: datetime) -> None:
    """Gooi concept N weg (niet goedgekeurd, niet verstuurd): de berichten komen terug."""
    from pipeline.commands.approval import discard_issue

    click.echo(discard_issue(root, number, now))


@cli.command()
@_root_option
@_reports_errors
def run(root: Path) -> None:
    """Start de planner: builds bij wijzigingen en embargo's, de nieuwsbrief op schema.

    Met een PostgreSQL-store mogen meer hosts `krimppost run` draaien: één is actief, de
    andere wachten en nemen het binnen enkele seconden over als die stopt."""
    from pipeline.commands.run import Service
    from pipeline.config import load_config
    from pipeline.schedule import configure_logging

    configure_logging(load_config(root))
    service = Service(root)
    service.run_forever()
    if service.lost_leadership:  # a supervisor restarts it, as a standby
        sys.exit(1)


@cli.command()
@_root_option
@_now_option
@_reports_errors
def status(root: Path, now: datetime) -> None:
    """Toon de planner, de laatste resultaten en wat op een mens wacht."""
    from pipeline.commands.status import status as run_status

    for line in run_status(root, now).lines():
        click.echo(line)


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@_reports_errors
def init(directory: Path) -> None:
    """Maak een nieuw project met config, templates en voorbeeldinhoud in DIRECTORY."""
    from pipeline.commands.init import init as run_init

    created = run_init(directory)
    click.echo(f"project aangemaakt in {directory}: {', '.join(created)}")
    click.echo(f"volgende stap: krimppost check --root {directory}")


def main() -> None:
    try:
        try:
            cli.main(prog_name="krimppost")
        finally:
            sys.stdout.flush()  # a reader gone (`| head -1`) shows here, not at exit
    except BrokenPipeError:
        # As the Python docs advise ("Note on SIGPIPE"): nobody reads any more, so stdout
        # goes to devnull, where the interpreter's last flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
