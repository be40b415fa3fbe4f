"""Split an item file into front matter and body, and load the YAML keeping each key's line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

try:  # the C loader is ~6x faster; fall back where libyaml is missing
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


# An editor's front matter is a small mapping: these bounds keep hostile input cheap.
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_DEPTH = 16  # nested mappings and lists (event.start is depth 2)


class FrontMatterError(ValueError):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe loader that keeps timestamps as text, so we validate dates with our own messages."""


def _timestamp_as_text(loader: yaml.BaseLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


@dataclass(frozen=True)
class Document:
    data: dict[str, Any]
    lines: dict[str, int]  # "event.start" -> 1-based line in the file
    body: str
    body_line: int  # line of the file where the body starts
    end_line: int  # line of the closing '---'


def decode(data: bytes) -> str:
    """Bytes of an item file to text with LF line endings; raises FrontMatterError."""
    if not data.strip():
        raise FrontMatterError(
            1, "leeg bestand: een item begint met front matter tussen '---'-regels"
        )
    if b"\x00" in data:
        raise FrontMatterError(None, "binair bestand, geen tekst: een item moet UTF-8-tekst zijn")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FrontMatterError(
            line, f"geen geldige UTF-8 (byte 0x{data[exc.start]:02x}); sla het bestand op als UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split(text: str) -> tuple[str, str, int, int]:
    """Return (yaml, body, body_line, closing_line)."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        raise FrontMatterError(
            1, "geen front matter: de eerste regel moet '---' zijn, gevolgd door de sleutels"
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            front = "\n".join(lines[1:index])
            body = "\n".join(lines[index + 1 :])
            return front, body, index + 2, index + 1
    raise FrontMatterError(1, "front matter wordt niet afgesloten met een regel '---'")


def _anchor_or_alias(front: str, offset: int) -> FrontMatterError | None:
    """The first anchor or alias, found from the parser's events (linear in the text):
    composing or walking aliased nodes is what makes a few hundred bytes expand to millions
    of values. Merge keys (`<<: *a`) need an alias, so they go with them."""
    if "&" not in front and "*" not in front:
        return None  # neither can be written without one of these characters
    loader = _Loader(front)
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                return FrontMatterError(
                    event.start_mark.line + offset,
                    "ankers en verwijzingen (&naam, *naam) zijn niet toegestaan in front "
                    "matter; schrijf elke waarde voluit",
                )
            if isinstance(event, yaml.StreamEndEvent):
                break
    except yaml.YAMLError:
        pass  # composing reports the syntax error with its line
    finally:
        loader.dispose()
    return None


def _too_deep(node: yaml.Node, offset: int, depth: int = 1) -> FrontMatterError | None:
    """Nesting beyond MAX_DEPTH (`[[[[…]]]]`); a tree here, as aliases were refused."""
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return None
    if depth > MAX_DEPTH:
        return FrontMatterError(
            node.start_mark.line + offset,
            f"front matter is te diep genest (meer dan {MAX_DEPTH} niveaus lijsten of sleutels)",
        )
    children = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else node.value
    for child in children:
        if found := _too_deep(child, offset, depth + 1):
            return found
    return None


def _collect_lines(node: yaml.Node, prefix: str, offset: int, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                out.setdefault(path, key_node.start_mark.line + offset)
                _collect_lines(value_node, path, offset, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, child in enumerate(node.value):
            path = f"{prefix}.{index}"
            out.setdefault(path, child.start_mark.line + offset)
            _collect_lines(child, path, offset, out)


def _duplicate_key(node: yaml.Node, offset: int) -> FrontMatterError | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    return FrontMatterError(
                        key_node.start_mark.line + offset,
                        f"sleutel '{key_node.value}' komt twee keer voor",
                    )
                seen.add(key_node.value)
            if found := _duplicate_key(value_node, offset):
                return found
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            if found := _duplicate_key(child, offset):
                return found
    return None


# PyYAML's problems (libyaml's wording and the pure-Python one), said in Dutch with what an
# editor can do. Each pattern is tried on the problem text; the first that matches explains it.
_QUOTE_HINT = 'zet de waarde tussen aanhalingstekens, bijv. title: "Krimp: een verkenning"'
_INDENT_HINT = "zet sleutels van hetzelfde niveau even ver in, met spaties"
_YAML_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (
            r"found undefined alias",
            "verwijzing (*naam) naar een anker dat niet bestaat; ankers en verwijzingen zijn "
            "niet toegestaan: schrijf de waarde voluit",
        ),
        (
            r"could not find expected ':'",
            "een regel zonder ':' na de sleutel; schrijf sleutel: waarde (met een spatie na de "
            "dubbele punt), of zet een waarde over meer regels tussen aanhalingstekens",
        ),
        (
            r"found unknown escape character",
            "onbekende escape met '\\' tussen dubbele aanhalingstekens; schrijf '\\\\' voor "
            "een backslash of gebruik enkele aanhalingstekens",
        ),
        (
            r"found invalid Unicode character escape code",
            "ongeldige Unicode-escape (\\u…) tussen dubbele aanhalingstekens; typ het teken "
            "zelf of gebruik enkele aanhalingstekens",
        ),
        (
            r"(did not find expected|expected) ',' or '\]'",
            "een lijst tussen [ ] wordt niet gesloten of mist een komma; schrijf bijv. "
            "tags: [wonen, krimp], en zet een element met ':' of ',' tussen aanhalingstekens",
        ),
        (
            r"(did not find expected|expected) ',' or '\}'",
            "een tabel tussen { } wordt niet gesloten of mist een komma; schrijf bijv. "
            "{start: 2026-11-27T10:00, location: Assen}",
        ),
        (
            r"(block )?sequence entries are not allowed",
            "een lijstregel ('- …') op een plek waar een waarde hoort; zet lijstregels onder hun "
            "sleutel, elk op een eigen regel en ingesprongen",
        ),
        (
            r"(did not find expected|expected the) node content",
            f"hier ontbreekt een waarde of staat een los teken als ']' of '}}'; {_QUOTE_HINT}",
        ),
        (
            r"(did not find expected comment or line break|expected a comment or a line break)",
            "na '|' of '>' hoort niets meer op die regel; zet de tekst op de regels eronder, "
            "ingesprongen",
        ),
        (
            r"could not determine a constructor for the tag",
            f"een YAML-tag (!naam of !!type) wordt niet ondersteund; {_QUOTE_HINT}",
        ),
        (r"found unhashable key", "een sleutel moet tekst zijn, geen lijst of tabel"),
        (
            r"found (a )?duplicate",
            "een sleutel komt twee keer voor; haal er één weg",
        ),
    )
)


def _source_line(front: str, mark: Any) -> str:
    lines = front.split("\n")
    return lines[mark.line] if mark is not None and mark.line < len(lines) else ""


def yaml_problem(exc: yaml.YAMLError, front: str) -> str:
    """PyYAML's complaint in Dutch, with a hint; what is not recognised keeps PyYAML's text
    in parentheses, so nothing is lost."""
    problem = getattr(exc, "problem", None) or ""
    context = getattr(exc, "context", None) or ""
    mark = getattr(exc, "problem_mark", None)
    line = _source_line(front, mark)
    column = mark.column if mark is not None else 0
    found = line[column : column + 1]
    if isinstance(exc, yaml.reader.ReaderError):
        return (
            f"onzichtbaar stuurteken (U+{exc.character:04X}) in de front matter; verwijder het"
            if isinstance(exc.character, int)
            else "de front matter bevat een teken dat YAML niet toelaat; verwijder het"
        )
    if "mapping values are not allowed" in problem:
        key = re.match(r"\s*(- )?[^\s:#][^:]*:\s", line)
        if key is not None and key.end() <= column:  # a second ': ' on the line of a key
            return f"een ': ' midden in een waarde; {_QUOTE_HINT}"
        return (
            "deze regel is verder ingesprongen dan de sleutel erboven (of de waarde erboven "
            f"loopt door); {_INDENT_HINT}, of {_QUOTE_HINT}"
        )
    if "tab" in problem or found == "\t":
        return "een tab-teken; YAML kent alleen spaties: vervang de tab door spaties"
    if "cannot start any token" in problem:
        char = found or "?"
        return (
            f"een waarde kan niet met {char!r} beginnen; zet de waarde tussen "
            f'aanhalingstekens, bijv. title: "{char}…"'
        )
    if "quoted scalar" in context and "end of stream" in problem:
        return (
            "een aanhalingsteken wordt niet gesloten; sluit de waarde af met hetzelfde teken "
            "(\" of ') als waarmee ze begint"
        )
    if "did not find expected key" in problem or "expected <block end>" in problem:
        before = line[:column].rstrip()
        if before.endswith(('"', "'")):
            return (
                "na het afsluitende aanhalingsteken staat nog tekst; zet de hele waarde tussen "
                "aanhalingstekens, bijv. title: '\"Krimp\" in de regio'"
            )
        if line.lstrip().startswith("-"):
            return (
                "een lijstregel ('- …') staat hier los; zet hem ingesprongen onder zijn "
                "sleutel (bijv. 'tags:' met daaronder '  - wonen')"
            )
        return f"deze regel is anders ingesprongen dan de sleutels erboven; {_INDENT_HINT}"
    for pattern, message in _YAML_PROBLEMS:
        if pattern.search(problem):
            return message
    original = f"{problem} ({context})" if problem and context else problem or context
    return (
        "de front matter is geen geldige YAML; controleer dubbele punten, inspringing en "
        f"aanhalingstekens ({original or exc})"
    )


def load(text: str) -> Document:
    """Parse a decoded item file. Raises FrontMatterError with the line of the problem."""
    front, body, body_line, end_line = split(text)
    offset = 2  # YAML line 0 is file line 2 (after the opening '---')
    size = len(front.encode())
    if size > MAX_FRONT_MATTER_BYTES:
        raise FrontMatterError(
            1,
            f"front matter is te groot ({size // 1024} KiB, hoogstens "
            f"{MAX_FRONT_MATTER_BYTES // 1024} KiB): lange tekst hoort in de body",
        )
    if found := _anchor_or_alias(front, offset):
        raise found
    loader = _Loader(front)
    try:
        node = loader.get_single_node()
        if node is None:
            raise FrontMatterError(
                1, "front matter is leeg: title, date, kind, track en summary ontbreken"
            )
        if deep := _too_deep(node, offset):
            raise deep
        if dup := _duplicate_key(node, offset):
            raise dup
        data = loader.construct_document(node)
    except FrontMatterError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        last = front.count("\n")
        context = exc.context or ""
        if exc.context_mark is not None and (
            "flow" in context
            or "quoted" in context
            or "simple key" in context  # a key without ':': the problem is found a line later
            or (mark is not None and mark.line > last)
        ):
            mark = exc.context_mark  # an unclosed bracket or quote: point at where it opens
        line = min(mark.line, last) + offset if mark is not None else 1
        raise FrontMatterError(line, f"ongeldige YAML: {yaml_problem(exc, front)}") from None
    except yaml.reader.ReaderError as exc:
        line = front[: exc.position].count("\n") + offset
        raise FrontMatterError(line, f"ongeldige YAML: {yaml_problem(exc, front)}") from None
    except yaml.YAMLError as exc:
        raise FrontMatterError(1, f"ongeldige YAML: {yaml_problem(exc, front)}") from None
    except (RecursionError, TypeError, ValueError) as exc:
        raise FrontMatterError(
            1, f"ongeldige YAML: de front matter kan niet gelezen worden ({exc})"
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise FrontMatterError(
            2,
            "front matter moet uit sleutels bestaan ('title: …'), niet uit losse tekst of een lijst",
        )
    lines: dict[str, int] = {}
    _collect_lines(node, "", offset, lines)
    return Document(data=data, lines=lines, body=body, body_line=body_line, end_line=end_line)
