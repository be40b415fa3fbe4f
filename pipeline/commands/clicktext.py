"""click's own words in Dutch: usage errors, the usage line and the headings of `--help`.

click writes its messages through gettext but ships no Dutch catalogue, and installing one
would change gettext for the whole process. So the command classes here say it themselves:
`KrimppostGroup.main` shows a usage error as Dutch lines (exit status 2 as click's), and
`DutchFormatter` writes the usage line and the headings. Every krimppost command uses these
classes: a group made with them hands them on to its subcommands.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

# Both since click 8.2 / 8.4 (the project allows 8.1): absent, nothing is an instance of ().
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
_NO_SUCH_COMMAND: Any = getattr(click.exceptions, "NoSuchCommand", ())

HELP_TEXT = "Toon deze hulp en stop."
VERSION_TEXT = "Toon de versie en stop."
VERSION_MESSAGE = "%(prog)s, versie %(version)s"
_HEADINGS = {
    "Options": "Opties",
    "Commands": "Opdrachten",
    "Positional arguments": "Argumenten",
}
# click's names of a value's type, shown after an option that has no metavar of its own.
_METAVARS = {
    "TEXT": "TEKST",
    "INTEGER": "GETAL",
    "FLOAT": "GETAL",
    "BOOLEAN": "JA/NEE",
    "DIRECTORY": "MAP",
    "FILE": "BESTAND",
    "PATH": "PAD",
}
_METAVAR = re.compile(r"(?<= )(" + "|".join(_METAVARS) + r")(?=\.\.\.|$)")
# The bracketed extras click adds to an option's help: "[default: .; required]".
_EXTRAS = (("default: ", "standaard: "), ("env var: ", "omgevingsvariabele: "))
_PATH_KINDS = {"file": "bestand", "directory": "map", "path": "pad"}
_NUMBER_KINDS = {
    "integer": "geen geheel getal",
    "float": "geen getal",
    "boolean": "geen true/false",
}
_PATH_STATES = {
    "does not exist": "bestaat niet",
    "is a file": "is een bestand",
    "is a directory": "is een map",
    "is not readable": "kan niet gelezen worden",
    "is not writable": "kan niet beschreven worden",
    "is not executable": "kan niet uitgevoerd worden",
}


def _number(m: re.Match[str]) -> str:
    return f"{m['value']} is {_NUMBER_KINDS[m['kind']]}."


def _path(m: re.Match[str]) -> str:
    return f"{_PATH_KINDS[m['kind'].lower()]} {m['name']} {_PATH_STATES[m['state']]}."


# Messages click builds itself (the parser, the parameter types), in English; each one is
# matched whole, so a message of our own (already Dutch) passes unchanged.
_MESSAGES: tuple[tuple[re.Pattern[str], Any], ...] = tuple(
    (re.compile(pattern, re.S), replacement)
    for pattern, replacement in (
        (r"Option (?P<name>'.+') requires an argument\.", r"optie \g<name> heeft een waarde nodig."),
        (
            r"Option (?P<name>'.+') requires (?P<n>\d+) arguments\.",
            r"optie \g<name> heeft \g<n> waarden nodig.",
        ),
        (r"Option (?P<name>'.+') does not take a value\.", r"optie \g<name> neemt geen waarde."),
        (r"Argument (?P<name>'.+') takes (?P<n>\d+) values\.", r"argument \g<name> heeft \g<n> waarden nodig."),
        (r"Got unexpected extra argument \((?P<a>.*)\)", r"onverwacht extra argument (\g<a>)."),
        (r"Got unexpected extra arguments \((?P<a>.*)\)", r"onverwachte extra argumenten (\g<a>)."),
        (r"Missing command\.", "de opdracht ontbreekt."),
        (r"No such command (?P<name>'.+')\.", r"onbekende opdracht \g<name>."),
        (r"(?P<value>.+) is not (?P<c>'[^']*')\.", r"\g<value> kan niet; alleen \g<c>."),
        (r"(?P<value>.+) is not one of (?P<c>.+)\.", r"\g<value> kan niet; kies uit \g<c>."),
        (r"(?P<value>.+) is not a valid (?P<kind>integer|float|boolean)\.", _number),
        (r"(?P<value>.+) is not in the range (?P<r>.+)\.", r"\g<value> ligt niet in het bereik \g<r>."),
        (r"(?P<kind>(?i:file|directory|path)) (?P<name>'.*') (?P<state>" + "|".join(_PATH_STATES) + r")\.", _path),
        (r"Invalid start character for option \((?P<o>.*)\)", r"ongeldig eerste teken van optie (\g<o>)."),
    )
)  # fmt: skip


def translate(message: str) -> str:
    """One of click's own messages in Dutch; any other text (our own) as it is."""
    for pattern, replacement in _MESSAGES:
        if m := pattern.fullmatch(message):
            return replacement(m) if callable(replacement) else m.expand(replacement)
    return message


def _suggestion(possibilities: Sequence[str] | None) -> str:
    if not possibilities:
        return ""
    names = ", ".join(repr(p) for p in sorted(possibilities))
    return (
        f" Bedoelde je {names}?" if len(possibilities) == 1 else f" Bedoelde je een van: {names}?"
    )


def _hint(exc: click.BadParameter) -> str:
    hint: Any = exc.param_hint
    if hint is None and exc.param is not None:
        hint = exc.param.get_error_hint(exc.ctx)  # type: ignore[arg-type]
    if hint is not None and not isinstance(hint, str):
        hint = " / ".join(repr(h) for h in hint)
    return hint or ""


def message(exc: click.ClickException) -> str:
    """The text after `Fout: ` for one of click's errors."""
    if isinstance(exc, click.NoSuchOption):
        return f"onbekende optie {exc.option_name!r}.{_suggestion(exc.possibilities)}"
    if isinstance(exc, _NO_SUCH_COMMAND):
        return f"onbekende opdracht {exc.command_name!r}.{_suggestion(exc.possibilities)}"
    if isinstance(exc, click.MissingParameter):
        kind = exc.param_type or (exc.param.param_type_name if exc.param else "parameter")
        what = {"option": "optie", "argument": "argument"}.get(kind, "waarde")
        hint = _hint(exc)
        text = f"{what} {hint} ontbreekt." if hint else f"{what} ontbreekt."
        if isinstance(exc.param, click.Parameter) and isinstance(exc.param.type, click.Choice):
            choices = ", ".join(str(c) for c in exc.param.type.choices)
            text += f" Kies uit: {choices}."
        elif exc.message:
            text += f" {translate(exc.message)}"
        return text
    if isinstance(exc, click.BadParameter):
        hint = _hint(exc)
        text = translate(exc.message)
        return f"ongeldige waarde voor {hint}: {text}" if hint else f"ongeldige waarde: {text}"
    if isinstance(exc, click.FileError):
        return f"kan bestand {exc.ui_filename!r} niet openen: {exc.message}"
    return translate(exc.format_message())


def show(exc: click.ClickException) -> None:
    """What click's `exc.show()` writes, in Dutch: usage, where to find help, the error."""
    if isinstance(exc, _NO_ARGS_IS_HELP):  # a group without its subcommand: its help
        click.echo(exc.ctx.get_help(), err=True, color=exc.ctx.color)
        return
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None:
        lines = [ctx.get_usage()]
        names = ctx.command.get_help_option_names(ctx)
        if ctx.command.get_help_option(ctx) is not None and names:
            lines.append(f"Probeer '{ctx.command_path} {max(names, key=len)}' voor hulp.")
        click.echo("\n".join(lines) + "\n", err=True, color=ctx.color)
    click.echo(f"Fout: {message(exc)}", err=True)


class DutchFormatter(click.HelpFormatter):
    """click's help layout with Dutch words."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        super().write_usage(prog, args, "Gebruik: " if prefix is None else prefix)

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        with super().section(_HEADINGS.get(name, name)):
            yield

    def write_dl(self, rows: Sequence[tuple[str, str]], *args: Any, **kwargs: Any) -> None:
        rows = [(_METAVAR.sub(lambda m: _METAVARS[m[1]], t), _dutch_extras(h)) for t, h in rows]
        super().write_dl(rows, *args, **kwargs)


def _dutch_extras(text: str) -> str:
    m = re.search(r"  \[([^\[\]]*)\]$", text)
    if m is None:
        return text
    parts = []
    for part in m.group(1).split("; "):
        for english, dutch in _EXTRAS:
            if part.startswith(english):
                part = dutch + part[len(english) :]
        parts.append("verplicht" if part == "required" else part)
    return f"{text[: m.start()]}  [{'; '.join(parts)}]"


class DutchContext(click.Context):
    formatter_class = DutchFormatter


class KrimppostCommand(click.Command):
    """A command whose usage line, help and help option speak Dutch."""

    context_class = DutchContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[OPTIES]")
        super().__init__(*args, **kwargs)

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = HELP_TEXT
        return option


class KrimppostGroup(KrimppostCommand, click.Group):
    """A group as KrimppostCommand, whose subcommands and subgroups are made the same way.

    As the outermost command, `main` reports click's usage errors in Dutch."""

    command_class = KrimppostCommand
    group_class = type  # a subgroup is of the class of its parent

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subcommand_metavar", "OPDRACHT [ARGUMENTEN]...")
        super().__init__(*args, **kwargs)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            show(exc)
            sys.exit(exc.exit_code)
        except click.Abort as exc:  # Ctrl-C or end of input outside a command's own work
            click.echo("afgebroken", err=True)
            sys.exit(130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1)
        # click returns the status of a `ctx.exit(n)` (as --help and --version use).
        sys.exit(result if isinstance(result, int) else 0)
