"""Where the state store is: a SQLite file, or a PostgreSQL database.

`[state] url` or KRIMPPOST_STATE_URL (which wins) names PostgreSQL; without either the
store is the SQLite file `[state] path`. The local folder of that path holds what is of
this machine whatever the database: lock files, the render cache, compiled templates.
A password comes only from the environment: in KRIMPPOST_STATE_URL, or libpq's own
PGPASSWORD and ~/.pgpass (config.py refuses one in config.toml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from pipeline.config import Config
from pipeline.errors import ConfigError, Problem

ENV = "KRIMPPOST_STATE_URL"


@dataclass(frozen=True)
class StoreAddress:
    path: Path  # the SQLite file, or where it would be: the anchor of the local files
    url: str  # an SQLAlchemy URL
    display: str  # for messages: the path, or the URL without its password
    engine_args: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @classmethod
    def sqlite(cls, path: Path | str) -> StoreAddress:
        path = Path(path)
        return cls(
            path,
            f"sqlite:///{path}",
            str(path),
            {"connect_args": {"timeout": 30, "check_same_thread": False}},
        )

    @classmethod
    def postgresql(cls, path: Path, url: str, source: str = ENV) -> StoreAddress:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigError([Problem(source, None, "is geen geldige PostgreSQL-URL")]) from None
        if parsed.get_backend_name() not in ("postgresql", "postgres"):
            raise ConfigError(
                [Problem(source, None, f"moet een PostgreSQL-URL zijn, niet {parsed.drivername}")]
            )
        parsed = parsed.set(drivername="postgresql+psycopg")
        return cls(
            path,
            parsed.render_as_string(hide_password=False),
            parsed.render_as_string(hide_password=True),
            {"connect_args": {"connect_timeout": 10}},
        )

    @classmethod
    def of(cls, config: Config, environ: Any = os.environ) -> StoreAddress:
        path = config.path(config.state.path)
        if url := environ.get(ENV, "").strip():
            return cls.postgresql(path, url)
        if config.state.url:
            return cls.postgresql(path, config.state.url, "config.toml [state] url")
        return cls.sqlite(path)

    def exists(self) -> bool:
        """Whether a store may be there already (a PostgreSQL one is assumed to be)."""
        return not self.is_sqlite or self.path.exists()
