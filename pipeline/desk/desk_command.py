"""`krimppost desk`: the staff's web app (social review, preview, newsletter)."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostCommand
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.commands.serve import run_web_app


@click.command("desk", cls=KrimppostCommand)
@_root_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Adres om op te luisteren (standaard alleen deze machine).",
)
@click.option("--port", default=8001, show_default=True, type=int, help="Poort.")
@_reports_errors
def desk(root: Path, host: str, port: int) -> None:
    """Start de desk: sociale media beoordelen, items vooraf bekijken, de nieuwsbrief
    samenstellen, proeven en goedkeuren, en het logboek (met inloggen)."""
    from pipeline.desk.app import Desk

    app = Desk(root)
    if not app.accounts.list():
        click.echo(
            "waarschuwing: er zijn nog geen accounts; maak er een met "
            "krimppost users add NAAM --role beheerder",
            err=True,
        )
    # The client address decides whether [desk] trusted_header is believed: never taken
    # from X-Forwarded-For.
    run_web_app(app.starlette(), "desk", host, port, proxy_headers=False)
