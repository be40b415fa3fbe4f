"""`krimppost serve`: the local web app (preview, one-click unsubscribe, double opt-in)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

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
    # No access log: URLs carry unsubscribe and confirmation tokens.
    run_web_app(app, "serve", host, port, proxy_headers=True)


def run_web_app(app: Any, name: str, host: str, port: int, *, proxy_headers: bool) -> None:
    """Serve `app` with uvicorn as `krimppost <name>`: its log lines on standard error, no
    access log (URLs carry tokens), no server header."""
    import uvicorn

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log = logging.getLogger(f"krimppost.{name}")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"krimppost {name}: http://{shown}:{port}/ (stoppen met Ctrl-C)", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=proxy_headers,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
