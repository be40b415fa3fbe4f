"""`krimppost desk`: the staff's web app (social review, preview, newsletter)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostCommand
from pipeline.commands.options import _reports_errors, _root_option


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
    import uvicorn

    from pipeline.desk.app import Desk

    app = Desk(root)
    if not app.accounts.list():
        click.echo(
            "waarschuwing: er zijn nog geen accounts; maak er een met "
            "krimppost users add NAAM --role beheerder",
            err=True,
        )
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log = logging.getLogger("krimppost.desk")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"krimppost desk: http://{shown}:{port}/ (stoppen met Ctrl-C)", err=True)
    uvicorn.run(
        app.starlette(),
        host=host,
        port=port,
        # The client address decides whether [desk] trusted_header is believed: never
        # taken from X-Forwarded-For.
        proxy_headers=False,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
