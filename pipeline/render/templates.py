"""The Jinja2 environment: project templates first, krimppost's defaults behind them."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pipeline.content import confine, taxonomy
from pipeline.errors import KrimppostError, Problem
from pipeline.scaffold import scaffold_source

if TYPE_CHECKING:
    import jinja2

LOCALE = "nl_NL"


def default_templates_dir() -> Path:
    return scaffold_source() / "templates"


def template_dirs(project_templates: Path) -> list[Path]:
    dirs = [project_templates, default_templates_dir()]
    return [
        d
        for i, d in enumerate(dirs)
        if d.is_dir() and d.resolve() not in {x.resolve() for x in dirs[:i]}
    ]


def fingerprint(dirs: list[Path]) -> str:
    """Changes whenever any template or static file changes: part of every page's key.

    It reads every file, so it is also where a link out of templates/ (or a loop), or a
    file that cannot be read, stops the build before anything is rendered."""
    h = hashlib.blake2b(digest_size=12)
    problems: list[Problem] = []
    for directory in dirs:
        real = directory.resolve()

        def unreadable(exc: OSError, directory: Path = directory) -> None:
            rel = Path(exc.filename).relative_to(directory).as_posix()
            problems.append(
                Problem(
                    directory.name if rel == "." else f"{directory.name}/{rel}",
                    None,
                    f"map kan niet gelezen worden: {confine.reason(exc)}",
                )
            )

        paths = []  # os.walk, not rglob: rglob passes over a folder it may not read
        for top, folders, files in os.walk(directory, onerror=unreadable):
            paths.extend(Path(top, name) for name in folders + files)
        for path in sorted(paths):
            rel = path.relative_to(directory).as_posix()
            shown = f"{directory.name}/{rel}"
            if path.is_symlink() and (problem := confine.link_problem(path, real, "templates/")):
                problems.append(Problem(shown, None, f"{problem}; sjabloon niet gebruikt"))
            elif path.is_file():
                h.update(rel.encode())
                try:
                    h.update(confine.read_inside(path, real, "templates/"))
                except confine.Refused as exc:
                    problems.append(Problem(shown, None, str(exc)))
                except OSError as exc:
                    problems.append(Problem(shown, None, f"kan niet lezen: {confine.reason(exc)}"))
    if problems:
        raise KrimppostError(problems)
    return h.hexdigest()


def dutch_date(moment: datetime, tz: ZoneInfo) -> str:
    """27 november 2026"""
    return _formatted_date(moment.astimezone(tz).date(), "d MMMM y")


def dutch_weekday_date(moment: datetime, tz: ZoneInfo) -> str:
    """vrijdag 27 november 2026"""
    return _formatted_date(moment.astimezone(tz).date(), "EEEE d MMMM y")


@functools.lru_cache(maxsize=8192)
def _formatted_date(day: date, pattern: str) -> str:
    # Every listing shows the same few thousand dates: Babel formats each once.
    from babel.dates import format_date

    return format_date(day, format=pattern, locale=LOCALE)


def dutch_time(moment: datetime, tz: ZoneInfo) -> str:
    from babel.dates import format_time

    return format_time(moment.astimezone(tz).time(), format="HH:mm", locale=LOCALE)


def wrap(text: str, width: int = 72) -> str:
    """Plain-text paragraphs at 72 columns; URLs and long words are never broken."""
    import textwrap

    return "\n".join(
        textwrap.fill(line, width=width, break_long_words=False, break_on_hyphens=False)
        if line
        else ""
        for line in str(text).split("\n")
    )


def _confined_loader(dirs: list[Path]) -> jinja2.BaseLoader:
    """Jinja's file loader, reading each template only from inside its own folder."""
    import jinja2

    class Loader(jinja2.FileSystemLoader):
        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            pieces = jinja2.loaders.split_template_path(template)
            for directory in dirs:
                path = directory.joinpath(*pieces)
                if not path.is_file():
                    continue
                shown = f"{directory.name}/{'/'.join(pieces)}"
                try:
                    data = confine.read_inside(path, directory.resolve(), "templates/")
                    return data.decode(self.encoding), str(path), lambda: False
                except confine.Refused as exc:
                    raise KrimppostError([Problem(shown, None, str(exc))]) from None
                except (OSError, UnicodeDecodeError) as exc:
                    why = confine.reason(exc) if isinstance(exc, OSError) else "geen UTF-8"
                    raise KrimppostError([Problem(shown, None, f"kan niet lezen: {why}")]) from None
            raise jinja2.TemplateNotFound(template)

    return Loader([str(d) for d in dirs])


def environment(dirs: list[Path], tz: ZoneInfo, compiled: Path | None = None) -> jinja2.Environment:
    """The Jinja environment of the project's templates. With `compiled` (a folder of the
    project's own state), compiled templates are kept there between runs: Jinja checks each
    against its template's source and Python version, and writes it atomically."""
    import jinja2

    cache = None
    if compiled is not None:
        try:
            compiled.mkdir(mode=0o700, exist_ok=True)
            cache = jinja2.FileSystemBytecodeCache(str(compiled))
        except OSError:
            cache = None  # compiling each run only costs time
    env = jinja2.Environment(
        bytecode_cache=cache,
        loader=_confined_loader(dirs),
        autoescape=jinja2.select_autoescape(["html", "xml", "mjml.j2", "html.j2"], default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # A run is short and its templates do not change under it (their fingerprint is in
        # every key): no stat of every template on every render.
        auto_reload=False,
    )
    env.filters["datum"] = lambda m: dutch_date(m, tz)
    env.filters["dag_datum"] = lambda m: dutch_weekday_date(m, tz)
    env.filters["tijd"] = lambda m: dutch_time(m, tz)
    env.filters["iso"] = lambda m: m.astimezone(tz).isoformat(timespec="minutes")
    env.filters["wrap"] = wrap
    env.filters["slug"] = taxonomy.slug_of
    return env


def render(env: jinja2.Environment, name: str, **context: object) -> str:
    """Render a template; a broken template is a clear error naming the file and line."""
    import jinja2

    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise KrimppostError(
            [Problem(exc.filename or name, exc.lineno, f"fout in sjabloon: {exc.message}")]
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise KrimppostError(
            [Problem(f"templates/{exc.name}", None, "sjabloon niet gevonden")]
        ) from None
    except jinja2.UndefinedError as exc:
        raise KrimppostError(
            [Problem(f"templates/{name}", None, f"fout in sjabloon: {exc.message}")]
        ) from None
