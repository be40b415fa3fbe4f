"""`krimppost bounces fetch`: read the returns mailbox and act on what came back.

Each mail is classified (pipeline/delivery/returns.py); its decision is taken and written
in one transaction, and only then is the mail moved to `verwerkt`. A crash between the two
leaves the mail in place: read again, it is recognised (mail_events keeps its digest) and
counted once. A mail that is no bounce, complaint or unsubscribe stays where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import click

from pipeline.commands.options import _now_option, _reports_errors, _root_option
from pipeline.config import CONFIG_NAME, load_config
from pipeline.delivery import verp
from pipeline.delivery.returns import Decision, Returns, classify
from pipeline.delivery.subscribers import SubscriberStore
from pipeline.errors import KrimppostError, Problem
from pipeline.state import StateStore


@dataclass
class FetchReport:
    decisions: list[Decision] = field(default_factory=list)
    left: int = 0  # read, none of ours: left in the mailbox
    unreadable: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for decision in self.decisions:
            counts[decision.kind] = counts.get(decision.kind, 0) + 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        return (
            f"{len(self.decisions)} verwerkt: {counts.get('hard_bounce', 0)} harde bounces, "
            f"{counts.get('soft_bounce', 0)} zachte bounces, {counts.get('complaint', 0)} "
            f"klachten, {counts.get('unsubscribe', 0)} afmeldingen per e-mail, "
            f"{counts.get('notice', 0)} vertragingsberichten; {self.left} andere berichten "
            f"niet aangeraakt; {len(self.unreadable)} overgeslagen"
        )


def fetch(root: Path, now: datetime) -> FetchReport:
    from pipeline.delivery.mailbox import open_mailbox

    config = load_config(root)
    if not config.bounces.mailbox:
        raise KrimppostError(
            [
                Problem(
                    CONFIG_NAME,
                    config.line("bounces"),
                    "[bounces] mailbox is niet gezet (maildir:PAD of imaps://GEBRUIKER@HOST/MAP)",
                )
            ]
        )
    now = config.moment(now)
    report = FetchReport()
    with StateStore.of(config) as state, open_mailbox(config) as box:
        store = SubscriberStore(state, config)
        with state.transaction():
            key = verp.key_of(store)
        returns = Returns(store, config)
        for message in box.messages():
            try:
                found = classify(message.data, config, key)
            except (RecursionError, LookupError, ValueError, TypeError) as exc:
                # a mail that the parser or flufl.bounce cannot take apart: left, reported
                report.unreadable.append(
                    f"{message.key}: onleesbaar bericht ({type(exc).__name__})"
                )
                continue
            if found is None:
                report.left += 1
                continue
            with state.transaction():
                decision = returns.apply(found, now)
            box.processed(message.key)
            report.decisions.append(decision)
        report.unreadable[:0] = box.skipped
    return report


@click.group()
def bounces() -> None:
    """Bounces, klachten en afmeldingen per e-mail verwerken."""


@bounces.command("fetch")
@_root_option
@_now_option
@_reports_errors
def bounces_fetch(root: Path, now: datetime) -> None:
    """Lees de postbus van [bounces] mailbox en verwerk bounces, klachten en afmeldingen."""
    report = fetch(root, now)
    for decision in report.decisions:
        click.echo(str(decision))
    for line in report.unreadable:
        click.echo(f"waarschuwing: {line}", err=True)
    click.echo(report.summary())
