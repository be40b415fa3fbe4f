"""Thin command line: parse arguments, call a command, turn domain errors into lines and exit codes."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.errors import KrimppostError

F = TypeVar("F", bound=Callable[..., Any])


def _parse_now(
    _ctx: click.Context | None, _param: click.Parameter | None, value: str | None
) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is geen ISO-8601-moment (bijv. 2026-11-27T10:00)"
        ) from None
    # Without an offset the command reads it in the site's time zone, like every other moment.
    return moment


def _root_option(func: F) -> F:
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Projectmap met config.toml.",
    )(func)


def _now_option(func: F) -> F:
    return click.option(
        "--now",
        "now",
        default=None,
        metavar="ISO-8601",
        callback=_parse_now,
        help="Doe alsof het nu dit moment is (zonder offset: tijdzone van de site).",
    )(func)


def _reports_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return func(*args, **kwargs)
        except KrimppostError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("afgebroken", err=True)
            sys.exit(130)
        except Exception as exc:
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"krimppost: interne fout: {exc!r} (meer details met --debug)", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Toon een volledige traceback bij interne fouten.")
@click.version_option(package_name="krimppost")
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

    if sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("bouwen", total=None)
            report = run_build(
                root,
                now,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        report = run_build(root, now)
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(report.summary())
    sys.exit(1 if report.problems else 0)


@cli.group()
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


@cli.command()
@_root_option
@_reports_errors
def run(root: Path) -> None:
    """Start de planner: builds bij wijzigingen en embargo's, de nieuwsbrief op schema."""
    from pipeline.config import load_config
    from pipeline.schedule import Service, configure_logging

    configure_logging(load_config(root))
    Service(root).run_forever()


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
    cli(prog_name="krimppost")


# Command groups defined in their own modules (they import the helpers above).
from pipeline.commands.social import social  # noqa: E402

cli.add_command(social)
from pipeline.commands.send import send as newsletter_send  # noqa: E402
from pipeline.commands.serve import serve  # noqa: E402
from pipeline.commands.subscribers import subscribers  # noqa: E402

newsletter.add_command(newsletter_send)
cli.add_command(subscribers)
cli.add_command(serve)
