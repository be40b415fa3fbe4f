"""`krimppost state …`: the state store itself; `copy` moves it to PostgreSQL and back."""

from __future__ import annotations

import os
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from pipeline.commands.clicktext import KrimppostGroup
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.config import load_config
from pipeline.errors import UsageError
from pipeline.state import BuildLock, StateStore, StoreAddress
from pipeline.state.address import ENV
from pipeline.state.copy import copy_store

# A build waits this long for the lock: a copy must not run beside one.
LOCK_TIMEOUT = 60


@click.group(cls=KrimppostGroup)
def state() -> None:
    """De state store zelf: van SQLite naar PostgreSQL verhuizen en terug."""


@state.command("copy")
@click.option(
    "--to",
    "to",
    metavar="URL",
    required=True,
    help="Waarheen: postgresql://GEBRUIKER@HOST/DATABASE, of sqlite:///PAD of een pad "
    "voor de weg terug. Een wachtwoord kan in de URL, maar staat dan in de "
    "proceslijst en de shellgeschiedenis: beter PGPASSWORD of ~/.pgpass.",
)
@_root_option
@_reports_errors
def copy(to: str, root: Path) -> None:
    """Kopieer de hele state store van het project naar een lege andere.

    Alles gaat in één transactie, en die wordt pas vastgelegd als per tabel het aantal
    rijen en een digest van de inhoud gelijk zijn aan die van de bron: bij een fout of
    verschil blijft het doel leeg. Een doel dat al gegevens bevat wordt geweigerd. Het
    project blijft de oude store gebruiken tot [state] in config.toml (of
    KRIMPPOST_STATE_URL) is aangepast.
    """
    config = load_config(root)
    source_address = StoreAddress.of(config)
    target_address = _target(to, source_address.path)
    with (
        BuildLock(source_address.path, LOCK_TIMEOUT),
        StateStore(source_address) as source,
        StateStore(target_address) as target,
    ):
        report = copy_store(source, target)
    for line in report.lines():
        click.echo(line)
    click.echo(report.summary())
    click.echo(_next_step(target_address, config.root))


def _target(to: str, anchor: Path) -> StoreAddress:
    """The store `--to` names; a PostgreSQL one keeps the project's local files (locks,
    caches) where they are, beside `anchor`."""
    to = to.strip()
    if to.startswith("sqlite:"):
        try:
            database = make_url(to).database
        except Exception:
            database = None
        if not database or database == ":memory:" or not to.startswith("sqlite:///"):
            raise UsageError(f"--to: {to!r} is geen SQLite-bestand; schrijf sqlite:///PAD")
        return StoreAddress.sqlite(Path(database).absolute())
    if "://" in to:
        return StoreAddress.postgresql(anchor, to, "--to")
    if not to:
        raise UsageError("--to: geef een PostgreSQL-URL of het pad van een SQLite-bestand")
    return StoreAddress.sqlite(Path(to).absolute())


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _next_step(target: StoreAddress, root: Path) -> str:
    overridden = bool(os.environ.get(ENV, "").strip())
    if target.is_sqlite:
        try:
            path = target.path.relative_to(root.absolute()).as_posix()
        except ValueError:
            path = str(target.path)
        unset = f" (en {ENV} uit de omgeving)" if overridden else ""
        return (
            f"volgende stap: zet in config.toml onder [state] path = {_toml(path)} en haal "
            f"url daar weg{unset}"
        )
    # Without the password: config.toml refuses one.
    url = make_url(target.url).set(drivername="postgresql", password=None)
    shown = url.render_as_string(hide_password=False)
    if overridden:
        return (
            f"volgende stap: zet {ENV} op {shown} (die gaat voor [state] url); het "
            "wachtwoord in PGPASSWORD of ~/.pgpass"
        )
    return (
        f"volgende stap: zet in config.toml onder [state] url = {_toml(shown)} (of de URL "
        f"in {ENV}); het wachtwoord in PGPASSWORD of ~/.pgpass"
    )
