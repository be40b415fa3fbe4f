"""One family of user-facing problems, each tied to a file and (where known) a line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """A problem an editor or operator can act on: `path:line: message`."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"

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
