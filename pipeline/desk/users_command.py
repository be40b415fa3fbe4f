"""`krimppost users …`: the desk's accounts (add, list, remove, passwd).

A password is asked twice on a terminal, or read from standard input (one line) with
`--password-stdin`; it never comes from an argument, a file of the project or config.toml.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from pipeline.commands.clicktext import KrimppostGroup
from pipeline.commands.options import _reports_errors, _root_option
from pipeline.config import load_config
from pipeline.desk.accounts import ROLES, Accounts
from pipeline.errors import UsageError
from pipeline.state import StoreAddress

_password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Lees het wachtwoord (één regel) van standaardinvoer in plaats van het te vragen.",
)


def _accounts(root: Path) -> Accounts:
    return Accounts(StoreAddress.of(load_config(root)))


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise UsageError("geen wachtwoord op standaardinvoer")
        return password
    if not sys.stdin.isatty():
        raise UsageError(
            "geen terminal om het wachtwoord te vragen; geef het op standaardinvoer met "
            "--password-stdin"
        )
    return str(
        click.prompt(
            "Wachtwoord",
            hide_input=True,
            confirmation_prompt="Nogmaals",
            err=True,
        )
    )


def _address(email: str) -> str:
    from pipeline.delivery.subscribers import AddressError, normalise

    try:
        return normalise(email).email
    except AddressError as exc:
        raise UsageError(str(exc)) from None


@click.group(cls=KrimppostGroup)
def users() -> None:
    """Accounts van de desk beheren: toevoegen, tonen, verwijderen, wachtwoord of e-mailadres wijzigen."""


@users.command("add")
@click.argument("name", metavar="NAAM")
@click.option("--role", type=click.Choice(ROLES), required=True, help="Rol van het account.")
@click.option("--email", default=None, help="E-mailadres (voor proefmails van de nieuwsbrief).")
@_password_stdin
@_root_option
@_reports_errors
def add(name: str, role: str, email: str | None, password_stdin: bool, root: Path) -> None:
    """Maak account NAAM met een rol; het wachtwoord wordt gevraagd."""
    accounts = _accounts(root)
    if email is not None:
        email = _address(email)
    user = accounts.add(name, role, _password(password_stdin), email)
    click.echo(f"account {user.name} aangemaakt (rol {user.role})")


@users.command("list")
@_root_option
@_reports_errors
def list_(root: Path) -> None:
    """Toon de accounts met hun rol."""
    rows = _accounts(root).list()
    if not rows:
        click.echo("nog geen accounts; maak er een met: krimppost users add NAAM --role ROL")
        return
    width = max(len(u.name) for u, _ in rows)
    for user, locked in rows:
        extra = f"  {user.email}" if user.email else ""
        if locked:
            until = datetime.fromtimestamp(locked).astimezone().strftime("%H:%M")
            extra += f"  (geblokkeerd tot {until})"
        click.echo(f"{user.name:<{width}}  {user.role}{extra}")


@users.command("remove")
@click.argument("name", metavar="NAAM")
@_root_option
@_reports_errors
def remove(name: str, root: Path) -> None:
    """Verwijder account NAAM; zijn sessies eindigen meteen."""
    _accounts(root).remove(name)
    click.echo(f"account {name} verwijderd")


@users.command("passwd")
@click.argument("name", metavar="NAAM")
@_password_stdin
@_root_option
@_reports_errors
def passwd(name: str, password_stdin: bool, root: Path) -> None:
    """Geef account NAAM een nieuw wachtwoord (heft een blokkade op, beëindigt sessies)."""
    accounts = _accounts(root)
    if accounts.user(name) is None:
        raise UsageError(f"gebruiker {name!r} bestaat niet")
    accounts.set_password(name, _password(password_stdin))
    click.echo(f"wachtwoord van {name} gewijzigd")


@users.command("email")
@click.argument("name", metavar="NAAM")
@click.argument("email", metavar="[ADRES]", required=False)
@_root_option
@_reports_errors
def email_(name: str, email: str | None, root: Path) -> None:
    """Zet het e-mailadres van NAAM (daar gaan proeven van de nieuwsbrief heen); zonder
    ADRES wordt het gewist."""
    _accounts(root).set_email(name, _address(email) if email else None)
    click.echo(f"e-mailadres van {name}: {email or 'geen'}")
