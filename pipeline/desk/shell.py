"""What the desk's page modules use of the desk (pipeline/desk/app.py, which imports them):
the config, the clock, the accounts, the page shell, the gate and the audit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from pipeline.config import Config
from pipeline.desk.accounts import Accounts, Session

if TYPE_CHECKING:
    import jinja2

T = TypeVar("T")


class Desk(Protocol):
    root: Path
    config: Config
    clock: Callable[[], datetime]
    accounts: Accounts

    def reload(self) -> Config: ...
    def render(self, name: str, **context: Any) -> str: ...
    def with_env(self, work: Callable[[jinja2.Environment], T]) -> T: ...
    def page(
        self,
        session: Session | None,
        name: str,
        title: str,
        status: int = 200,
        current: str = "",
        **context: Any,
    ) -> Response: ...
    def notice(
        self, session: Session | None, title: str, status: int, *paragraphs: str
    ) -> Response: ...
    def audit(self, session: Session, action: str, subject: str, **detail: Any) -> None: ...
    def guarded(self, right: str | None, handler: Any) -> Callable[[Request], Any]: ...
