"""One family of user-facing problems, each tied to a file and (where known) a line."""

from __future__ import annotations

from dataclasses import dataclass

# Every character str.splitlines() breaks at, and ESC (terminal escapes).
_BREAKS = {
    c: repr(chr(c))[1:-1]
    for c in (*range(0x0A, 0x0E), 0x1B, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)
}


def quote_name(name: str) -> str:
    """A file name as it appears in a problem line: as is when plain, otherwise quoted with
    its control characters escaped, so a name holding a newline cannot forge a line."""
    return name if name.isprintable() else repr(name)


def one_line(text: str) -> str:
    """A message kept on its line: line breaks and escapes written as `\\n`."""
    return text.translate(_BREAKS)


@dataclass(frozen=True, order=True)
class Problem:
    """A problem an editor or operator can act on: `path:line: message`."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        path, message = quote_name(self.path), one_line(self.message)
        if self.line is None:
            return f"{path}: {message}"
        return f"{path}:{self.line}: {message}"

    def sort_key(self) -> tuple[str, int, str]:
        return (self.path, self.line or 0, self.message)


class KrimppostError(Exception):
    """Base of the errors the CLI turns into one line and an exit status."""

    exit_code = 1

    def __init__(self, problems: list[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("krimppost", None, problems)]
        self.problems = sorted(problems, key=Problem.sort_key)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type, tuple[list[Problem]]]:
        # Raised in a worker process, it arrives with its problems, not as one message.
        return (type(self), (self.problems,))


class ConfigError(KrimppostError):
    """The configuration is unusable: exit status 2."""

    exit_code = 2


class UsageError(KrimppostError):
    exit_code = 2
