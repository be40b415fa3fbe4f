"""`krimppost newsletter send [N]`: deliver an issue over SMTP, exactly once, resumable."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostCommand
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.errors import UsageError

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
@click.option(
    "--test",
    "test",
    multiple=True,
    metavar="ADRES[,ADRES…]",
    help="Stuur een proef alleen aan deze adressen, met [PROEF] voor het onderwerp: niet "
    "aan abonnees, niet in het verzendlog, ook voor een nummer dat nog niet is goedgekeurd.",
)
@click.option(
    "--tracks",
    metavar="TRAJECT[,TRAJECT…]",
    default=None,
    help="Alleen met --test: de proef zoals een abonnee van deze trajecten die krijgt "
    "(standaard: alle trajecten van het nummer).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    metavar="K",
    help="Verstuur met K processen die de ontvangers delen (elk met [smtp] connections "
    "verbindingen). Meer `send`-processen tegen één PostgreSQL-store, ook op andere "
    "machines, delen de ontvangers op dezelfde manier.",
)
@click.option("--join", "join", type=int, default=None, hidden=True)
@_reports_errors
def send(
    number: int | None,
    root: Path,
    resend_uncertain: bool,
    test: tuple[str, ...],
    tracks: str | None,
    workers: int,
    join: int | None,
) -> None:
    """Verstuur nummer N (standaard: het laatste) aan de actieve abonnees van zijn trajecten.

    Alleen een goedgekeurd nummer gaat weg (krimppost newsletter approve N --by NAAM),
    tenzij [newsletter] approval = false. Een onderbroken verzending gaat bij de volgende
    run verder: niemand krijgt een nummer twee keer. Wie een bericht onderweg had toen de
    vorige run stopte, of wiens bericht de server niet meer bevestigde, staat als onzeker
    in de samenvatting (exit 1) en krijgt het alleen opnieuw met --resend-uncertain.

    Met --test ADRES[,ADRES…] gaat alleen een proef, naar die adressen (zie --tracks).
    """
    if test:
        if resend_uncertain:
            raise UsageError(
                "--resend-uncertain en --test gaan niet samen: een proef gaat nooit naar abonnees"
            )
        proof(root, number, test, tracks)
        return
    if tracks is not None:
        raise UsageError(
            "--tracks hoort bij --test (een proef); een gewone verzending geeft elke "
            "abonnee de trajecten die die abonnee koos"
        )
    if join is not None:  # a process started by `send --workers`: its parent reports
        from pipeline.delivery.sender import send_issue

        report = send_issue(root, number, parent=join)
        sys.exit(0 if report.ok else 1)
    deliver(root, number, resend_uncertain, workers)


def proof(root: Path, number: int | None, addresses: tuple[str, ...], tracks: str | None) -> None:
    """Send a proof of an issue; exits 1 unless every address accepted it."""
    from pipeline.delivery.proof import send_proof

    report = send_proof(root, number, addresses, tracks)
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)


def deliver(root: Path, number: int | None, resend_uncertain: bool, workers: int = 1) -> None:
    """Send an issue as `send` does, with its progress and summary; exits 1 unless all went."""
    from pipeline.delivery.sender import SendReport, send_issue

    def started(report: SendReport) -> None:
        click.echo(
            f"nieuwsbrief {report.issue}: {report.recipients} te versturen, "
            f"{report.already_sent} eerder verstuurd, {report.skipped} overgeslagen "
            f"(niet meer actief); {report.renders} weergave(n) per trajectkeuze",
            err=True,
        )

    if sys.stderr.isatty():
        with click.progressbar(
            length=1, label="versturen", file=sys.stderr, show_pos=True, show_eta=True
        ) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            report = send_issue(root, number, resend_uncertain, progress, started, workers=workers)
    else:
        report = send_issue(root, number, resend_uncertain, on_start=started, workers=workers)

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
