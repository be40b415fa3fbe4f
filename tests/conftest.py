from __future__ import annotations

import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

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
