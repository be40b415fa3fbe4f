"""`krimppost serve`: the local web app (preview, one-click unsubscribe, double opt-in)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostCommand
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.config import load_config


@click.command("serve", cls=KrimppostCommand)
@_root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Adres om op te luisteren.")
@click.option("--port", default=8000, show_default=True, type=int, help="Poort.")
@_reports_errors
def serve(root: Path, host: str, port: int) -> None:
    """Start de web-app: voorbeeld van outbox/site/, afmelden met één klik en aanmelden met bevestiging."""
    import uvicorn

    from pipeline.delivery.smtp import smtp_problems
    from pipeline.delivery.webapp import create_app

    app = create_app(root)
    config = load_config(root)
    for problem in smtp_problems(config):
        click.echo(f"waarschuwing: {problem} (bevestigingsmails lukken dan niet)", err=True)
    name = config.serve.secret_env
    if name and not os.environ.get(name):
        click.echo(
            f"waarschuwing: omgevingsvariabele {name} ([serve] secret_env) is niet gezet; "
            "het geheim uit de state store wordt gebruikt",
            err=True,
        )
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log = logging.getLogger("krimppost.serve")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"krimppost serve: http://{shown}:{port}/ (stoppen met Ctrl-C)", err=True)
    # No access log: URLs carry unsubscribe and confirmation tokens.
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
