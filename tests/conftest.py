from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pgcluster
import pytest

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

VALID = """\
---
title: Een geldig item
date: 2026-11-01
kind: news
track: wrb
summary: Een korte samenvatting.
---
Tekst van het item.
"""


class Project:
    """A throw-away krimppost project with the repository's config and no content."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "content").mkdir(parents=True)
        shutil.copy(REPO / "config.toml", root / "config.toml")
        self.reach_back()
        cover = REPO / "content" / "afbeeldingen" / "podcast-omslag.png"
        (root / "content" / "afbeeldingen").mkdir()
        shutil.copy(cover, root / "content" / "afbeeldingen" / cover.name)

    # Items in tests are dated weeks before the clock of their first build, and most tests
    # send without a person approving: the horizons reach back far and approval is off,
    # unless a test of those calls `use_defaults()`.
    TEST_SETTINGS = (
        ("[newsletter]\n", "lookback_days = 36500\napproval = false\n"),
        ("[social.x]\n", "lookback_days = 36500\n"),
    )

    def reach_back(self) -> None:
        path = self.root / "config.toml"
        text = path.read_text(encoding="utf-8")
        newsletter, social = self.TEST_SETTINGS
        text = text.replace(newsletter[0], newsletter[0] + newsletter[1], 1)
        # Keys of [social] itself go before its first sub-table.
        text = text.replace(social[0], "[social]\n" + social[1] + "\n" + social[0], 1)
        path.write_text(text, encoding="utf-8")

    def use_defaults(self) -> None:
        """The repository's config as it is: default horizons, approval on."""
        shutil.copy(REPO / "config.toml", self.root / "config.toml")

    def write(self, relative: str, text: str) -> Path:
        path = self.root / "content" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def write_bytes(self, relative: str, data: bytes) -> Path:
        path = self.root / "content" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


def free_port() -> int:
    """A loopback port nothing listens on (bound once and released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_at(project: Project, now: str = "2026-11-27T12:00"):  # type: ignore[no-untyped-def]
    from pipeline.commands.build import build

    return build(project.root, datetime.fromisoformat(now))


def outbox_files(root: Path) -> dict[str, bytes]:
    site = root / "outbox"
    return {
        p.relative_to(site).as_posix(): p.read_bytes()
        for p in sorted(site.rglob("*"))
        if p.is_file()
    }


# PostgreSQL ----------------------------------------------------------------------------
#
# The state store runs on SQLite (a file) or PostgreSQL (KRIMPPOST_STATE_URL). A test that
# takes the `state_backend` fixture runs twice, once on each; a whole module does so with
#
#     pytestmark = pytest.mark.usefixtures("state_backend")
#
# On the PostgreSQL leg KRIMPPOST_STATE_URL names a schema of its own for that test, so every
# StateStore the test opens (StoreAddress.of reads the variable), and every subprocess it
# starts with the inherited environment (`env={**os.environ, ...}` built at call time, not
# at import), shares that one store, as they share the SQLite file on the other leg.
#
# The server: one throw-away cluster per session (tests/pgcluster.py, Debian's
# `postgresql`), or an existing one named by KRIMPPOST_TEST_PG_URL (an SQLAlchemy URL whose
# user may create schemas). Without PostgreSQL the PostgreSQL legs are skipped, and fail
# where it is required: under bin/test (KRIMPPOST_REQUIRE_PG=1) and in CI (`CI` set).

STATE_URL_ENV = "KRIMPPOST_STATE_URL"
TEST_PG_URL_ENV = "KRIMPPOST_TEST_PG_URL"


def pg_required() -> bool:
    """Whether missing PostgreSQL is an error here rather than a reason to skip."""
    return any(
        os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
        for name in ("KRIMPPOST_REQUIRE_PG", "CI")
    )


def pg_unavailable(reason: str) -> NoReturn:
    if pg_required():
        pytest.fail(f"PostgreSQL vereist maar niet bruikbaar: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """The SQLAlchemy URL of a PostgreSQL server for this session."""
    if url := os.environ.get(TEST_PG_URL_ENV, "").strip():
        yield url
        return
    bindir = pgcluster.find_bindir()
    if bindir is None:
        pg_unavailable(
            "PostgreSQL niet geïnstalleerd (apt-get install postgresql) of "
            f"{TEST_PG_URL_ENV} niet gezet: geen {pgcluster.DEBIAN_ROOT}/*/bin/initdb"
        )
    try:
        cluster = pgcluster.start(bindir)
    except pgcluster.ClusterError as exc:
        # Installed but broken is never a reason to skip.
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def state_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The database of this test's state store: "sqlite" or "postgresql" (see above)."""
    if request.param == "sqlite":
        # A URL in the developer's own environment must not turn this leg into PostgreSQL.
        monkeypatch.delenv(STATE_URL_ENV, raising=False)
        yield "sqlite"
        return
    url = request.getfixturevalue("pg_cluster")
    with pgcluster.temporary_schema(url) as (_schema, schema_url):
        monkeypatch.setenv(STATE_URL_ENV, schema_url)
        yield "postgresql"


pytest_plugins = ["mailboxes"]
