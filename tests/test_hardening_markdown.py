"""Pathological Markdown (issue 13 item 6): no single file stalls `check` or `build`; past
`[build] item_timeout` the item is a problem `path:1: …` and the others are built."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, VALID, Project
from pipeline.content.reader import _may_be_slow
from pipeline.workers import CRASHED, TIMED_OUT, map_with_deadline

SHAPES = {
    "brackets": "[" * 20000 + "]" * 20000,  # 93 s before
    "link-openers": "[a](" * 20000,  # over 60 s before
    "images": "![" * 20000,
    "spread-openers": ("[" + "a" * 31) * 2000,
}


def _krimppost(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--root", str(root), "--now", "2026-11-27T12:00"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,  # a stall fails here instead of hanging the suite
    )


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_pathological_body_is_stopped_and_reported(project: Project, shape: str) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("[build]\n", "[build]\nitem_timeout = 1\n", 1))
    project.write("good.md", VALID)
    project.write("bad.md", VALID + SHAPES[shape])
    expected = "content/bad.md:1: het omzetten van de tekst duurde langer dan 1 s en is gestopt"
    started = time.monotonic()
    check = _krimppost(project.root, "check")
    build = _krimppost(project.root, "build")
    assert time.monotonic() - started < 30
    assert check.returncode == build.returncode == 1, check.stdout + check.stderr
    assert check.stdout.startswith(expected) and build.stdout.startswith(expected)
    assert (project.root / "outbox/site/berichten/good/index.html").is_file()
    assert not (project.root / "outbox/site/berichten/bad/index.html").exists()


def test_real_items_are_converted_in_process() -> None:
    """Spawning a process costs ~0.2 s: a one-item rebuild of a real item must not pay it."""
    items = sorted((REPO / "content").rglob("*.md"))
    assert items and not any(_may_be_slow(p.read_bytes()) for p in items)
    assert _may_be_slow((VALID + "[" * 2000).encode())


def _task(value: float) -> float:
    if value < 0:
        os._exit(3)
    time.sleep(value)
    return value


def test_map_with_deadline_kills_only_the_slow_task() -> None:
    started = time.monotonic()
    answers = map_with_deadline(_task, [0.0, 30.0, 0.1, -1.0, 0.2], workers=2, timeout=1.0)
    assert answers == [0.0, TIMED_OUT, 0.1, CRASHED, 0.2]
    assert time.monotonic() - started < 10


def test_lists_nested_past_the_recursion_limit_are_a_dutch_problem(project: Project) -> None:
    """Nested lists use no syntax character the guard counts (digits, dots, blanks)."""
    project.write("good.md", VALID)
    project.write("bad.md", VALID + "\n" + "".join("    " * i + "1. x\n" for i in range(300)))
    check = _krimppost(project.root, "check")
    build = _krimppost(project.root, "build")
    expected = "content/bad.md: de tekst is te diep genest"
    assert check.returncode == build.returncode == 1, check.stdout + check.stderr
    assert [line for line in check.stdout.splitlines() if line.startswith(expected)], check.stdout
    assert expected in build.stdout + build.stderr
    assert "interne fout" not in build.stdout + build.stderr + check.stdout
    assert (project.root / "outbox" / "site" / "berichten" / "good" / "index.html").exists()
