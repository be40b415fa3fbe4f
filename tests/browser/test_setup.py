"""The layer's setup rule: without a browser it is skipped in a bare `pytest` run, and it
fails where it is required (`bin/test`, CI), so a broken setup cannot pass unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

ONE_BROWSER_TEST = "tests/browser/test_responsive.py::test_overflow_check_finds_overflow"


def run_without_chromium(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "KRIMPPOST_REQUIRE_BROWSER")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", ONE_BROWSER_TEST],
        cwd=REPO,
        env={**clean, "KRIMPPOST_CHROMIUM": str(tmp_path / "geen-chromium"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_browser_is_skipped_in_a_bare_run(tmp_path: Path) -> None:
    result = run_without_chromium(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "browser layer skipped: " in result.stdout
    assert "geen-chromium is not installed" in result.stdout


@pytest.mark.parametrize("env", [{"KRIMPPOST_REQUIRE_BROWSER": "1"}, {"CI": "true"}])
def test_missing_browser_fails_where_required(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_without_chromium(tmp_path, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 error" in result.stdout
    assert "skipped" not in result.stdout
    assert "browser layer required but cannot run" in result.stdout
    assert "geen-chromium is not installed" in result.stdout
