"""`krimppost subscribers …`: add, import, remove, list and export subscribers."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click

from pipeline.commands.clicktext import KrimppostGroup
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.config import Config, load_config
from pipeline.csvcells import SafeWriter
from pipeline.delivery.subscribers import (
    STATUS_LABELS,
    STATUSES,
    AddressError,
    SubscriberStore,
    TrackError,
    parse_tracks,
    tracks_display,
)
from pipeline.errors import UsageError
from pipeline.private import FILE_MODE
from pipeline.state import StateStore, utc_text

T = TypeVar("T")
EXPORT_COLUMNS = (
    "email",
    "tracks",
    "status",
    "source",
    "consented_at",
    "consent_version",
    "confirmed_at",
    "status_changed_at",
    "status_reason",
)


@contextmanager
def _store(root: Path) -> Iterator[tuple[Config, SubscriberStore]]:
    config = load_config(root)
    with StateStore.of(config) as state:
        yield config, SubscriberStore(state, config)


def _usage(call: Callable[[], T]) -> T:
    """Run `call`, turning a bad address or track on the command line into a usage error."""
    try:
        return call()
    except (AddressError, TrackError) as exc:
        raise UsageError(str(exc)) from None


@click.group(cls=KrimppostGroup)
def subscribers() -> None:
    """Abonnees beheren: toevoegen, importeren, verwijderen, tonen en exporteren."""


@subscribers.command("add")
@click.argument("email")
@click.option(
    "--tracks",
    metavar="A,B",
    default=None,
    help="Trajecten, gescheiden door komma's (standaard: alle, ook latere).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Ook een afgemeld, onbestelbaar of verwijderd adres (alleen op verzoek van de persoon zelf).",
)
@_root_option
@_reports_errors
def add(email: str, tracks: str | None, force: bool, root: Path) -> None:
    """Voeg EMAIL toe als actieve abonnee (of werk de trajecten bij)."""
    with _store(root) as (config, store):
        stored = _usage(lambda: parse_tracks(tracks, config)) if tracks is not None else None
        click.echo(_usage(lambda: store.add(email, stored, datetime.now(UTC), force)))


@subscribers.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_root_option
@_reports_errors
def import_(file: Path, root: Path) -> None:
    """Importeer abonnees uit een CSV-bestand met de kolommen email,tracks.

    Foute regels worden gemeld als BESTAND:REGEL: melding, de rest wordt geïmporteerd.
    Nogmaals importeren verandert niets; een afgemeld of verwijderd adres wordt nooit
    opnieuw actief.
    """
    with _store(root) as (_config, store):
        report = store.import_csv(file, str(file), datetime.now(UTC))
    for problem in report.problems:
        click.echo(str(problem), err=True)
    click.echo(report.summary())
    sys.exit(1 if report.problems else 0)


@subscribers.command("remove")
@click.argument("email")
@_root_option
@_reports_errors
def remove(email: str, root: Path) -> None:
    """Wis EMAIL en zijn gegevens; een code op de onderdrukkingslijst houdt het adres weg."""
    with _store(root) as (_config, store):
        click.echo(_usage(lambda: store.remove(email, datetime.now(UTC))))


# On the command line a status is one word: Dutch as `list` shows it, or as stored.
_STATUS_WORDS = {label.replace(" ", "-"): status for status, label in STATUS_LABELS.items()}
_status_option = click.option(
    "--status",
    type=click.Choice([*_STATUS_WORDS, *STATUSES]),
    default=None,
    callback=lambda _ctx, _param, value: _STATUS_WORDS.get(value, value),
    help="Alleen deze status: " + ", ".join(_STATUS_WORDS) + f" (of {', '.join(STATUSES)}).",
)


@subscribers.command("list")
@_status_option
@_root_option
@_reports_errors
def list_(status: str | None, root: Path) -> None:
    """Toon de abonnees met hun status en trajecten."""
    with _store(root) as (config, store):
        width = 0
        rows = []
        for sub in store.iterate(status):
            rows.append(sub)
            width = max(width, len(sub.email))
            if len(rows) >= 1000:  # print as we go: memory stays flat
                _print_rows(rows, width, config)
                rows = []
        _print_rows(rows, width, config)
        counts = store.counts()
        total = sum(counts.values())
        parts = ", ".join(f"{counts[s]} {STATUS_LABELS[s]}" for s in STATUSES)
        click.echo(
            f"{total} abonnees: {parts}; {store.suppressed_count()} op de onderdrukkingslijst"
        )


def _print_rows(rows: list, width: int, config: Config) -> None:
    for sub in rows:
        tracks = tracks_display(sub.tracks, ",") or "alle"
        since = sub.status_changed_at.astimezone(config.site.tz).date().isoformat()
        click.echo(
            f"{sub.email:<{width}}  {STATUS_LABELS[sub.status]:<20}  {tracks:<30}  sinds {since}"
        )


@subscribers.command("export")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Schrijf naar dit bestand in plaats van naar standaarduitvoer.",
)
@_status_option
@_root_option
@_reports_errors
def export(output: Path | None, status: str | None, root: Path) -> None:
    """Exporteer abonnees met hun toestemmingsgegevens als CSV (UTF-8).

    Het bestand kan weer worden geïmporteerd: alleen regels met status active worden dan
    toegevoegd.
    """
    with _store(root) as (_config, store):
        if output is None:
            _write_csv(store, status, sys.stdout)
            return
        temp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # a temp file left by a killed export kept its mode
            with open(fd, "w", encoding="utf-8", newline="") as handle:
                count = _write_csv(store, status, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, output)
        finally:
            temp.unlink(missing_ok=True)
    click.echo(f"{count} abonnees geëxporteerd naar {output}", err=True)


def _write_csv(store: SubscriberStore, status: str | None, handle: io.TextIOBase) -> int:
    writer = SafeWriter(handle, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for sub in store.iterate(status):
        writer.writerow(
            (
                sub.email,
                tracks_display(sub.tracks, ";"),
                sub.status,
                sub.source,
                utc_text(sub.consented_at),
                sub.consent_version,
                utc_text(sub.confirmed_at) if sub.confirmed_at else "",
                utc_text(sub.status_changed_at),
                sub.status_reason,
            )
        )
        count += 1
    return count
