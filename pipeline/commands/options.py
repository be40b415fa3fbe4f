"""Shared click options and the error boundary of every command: one line per problem."""

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
        except BrokenPipeError:  # the reader went away (`| head`): pipeline.cli.main ends it
            raise
        except Exception as exc:
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"krimppost: interne fout: {exc!r} (meer details met --debug)", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
