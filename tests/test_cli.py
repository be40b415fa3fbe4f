"""The command line as editors and operators use it: real processes, real files, exact output."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, VALID, Project
from pipeline.cli import cli


def run(
    *args: str, cwd: Path | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=120,
    )


def test_check_reports_sorted_problems_and_summary(project: Project) -> None:
    project.write("b.md", VALID.replace("kind: news", "kind: nieuws"))
    project.write("a.md", VALID.replace("track: wrb", "track: x"))
    project.write("c.md", VALID)
    project.write("d.md", VALID.replace("date: 2026-11-01", "date: 2027-01-01"))
    project.write("e.md", VALID.replace("kind: news", "kind: news\ndraft: true"))
    result = CliRunner().invoke(
        cli, ["check", "--root", str(project.root), "--now", "2026-11-27T12:00"]
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("content/a.md:5: 'track' onbekend traject 'x'")
    assert lines[1].startswith("content/b.md:4: 'kind' moet een van")
    assert lines[2] == "3 items: 1 gepubliceerd, 1 onder embargo, 1 concept; 2 fouten"


def test_check_clean_project_exits_zero(project: Project) -> None:
    project.write("a.md", VALID)
    result = CliRunner().invoke(cli, ["check", "--root", str(project.root)])
    assert result.exit_code == 0
    assert result.output == "1 item: 1 gepubliceerd, 0 onder embargo, 0 concepten; 0 fouten\n"


def test_now_changes_the_embargo(project: Project) -> None:
    project.write("a.md", VALID.replace("kind: news", "kind: news\npublish_at: 2026-12-01T09:00"))
    before = CliRunner().invoke(
        cli, ["check", "--root", str(project.root), "--now", "2026-12-01T08:59"]
    )
    after = CliRunner().invoke(
        cli, ["check", "--root", str(project.root), "--now", "2026-12-01T09:00"]
    )
    assert "0 gepubliceerd, 1 onder embargo" in before.output
    assert "1 gepubliceerd, 0 onder embargo" in after.output


def test_bad_now_is_a_usage_error(project: Project) -> None:
    result = CliRunner().invoke(cli, ["check", "--root", str(project.root), "--now", "morgen"])
    assert result.exit_code == 2


def test_config_error_exits_two(project: Project) -> None:
    config = project.root / "config.toml"
    config.write_text(config.read_text().replace("[feeds]", "[feedz]"))
    result = run("check", "--root", str(project.root))
    assert result.returncode == 2
    assert "config.toml:" in result.stderr and "onbekende sectie [feedz]" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_missing_root_exits_two(tmp_path: Path) -> None:
    result = run("check", "--root", str(tmp_path / "nergens"))
    assert result.returncode == 2
    assert "geen config.toml gevonden" in result.stderr


def test_no_traceback_for_hostile_files(project: Project) -> None:
    project.write("goed.md", VALID)
    project.write_bytes("binair.md", bytes(range(256)) * 4)
    project.write_bytes("latin1.md", "---\ntitle: Café\n---\n".encode("latin-1"))
    project.write("diep.md", "---\ntitle: " + "[" * 5000 + "\n---\n")
    project.write("anker.md", "---\na: &a [1]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n---\n")
    project.write("tabs.md", "---\n\ttitle: x\n---\n")
    result = run("check", "--root", str(project.root))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("1 item: 1 gepubliceerd")
    named = {line.split(":")[0] for line in result.stdout.splitlines()[:-1]}
    assert named == {f"content/{n}.md" for n in ("binair", "latin1", "diep", "anker", "tabs")}


def test_warm_check_uses_the_cache(project: Project) -> None:
    project.write("a.md", VALID)
    first = CliRunner().invoke(cli, ["check", "--root", str(project.root)])
    assert (project.root / ".krimppost" / "cache.sqlite").exists()
    second = CliRunner().invoke(cli, ["check", "--root", str(project.root)])
    assert first.output == second.output
    project.write("a.md", VALID.replace("kind: news", "kind: nieuws"))
    third = CliRunner().invoke(cli, ["check", "--root", str(project.root)])
    assert third.exit_code == 1


def test_corrupt_cache_is_rebuilt(project: Project) -> None:
    project.write("a.md", VALID)
    cache = project.root / ".krimppost" / "cache.sqlite"
    cache.parent.mkdir()
    cache.write_bytes(b"geen database" * 100)
    result = CliRunner().invoke(cli, ["check", "--root", str(project.root)])
    assert result.exit_code == 0, result.output


def test_init_then_check(tmp_path: Path) -> None:
    target = tmp_path / "nieuw"
    result = run("init", str(target))
    assert result.returncode == 0, result.stderr
    assert (target / "config.toml").is_file()
    assert len(list((target / "content").rglob("*.md"))) >= 12
    check = run("check", "--root", str(target), "--now", "2026-11-27T12:00")
    assert check.returncode == 0, check.stdout
    assert check.stdout.splitlines()[-1].endswith("1 onder embargo, 1 concept; 0 fouten")


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[site]\n")
    result = run("init", str(tmp_path))
    assert result.returncode == 2
    assert "init overschrijft geen bestaand project" in result.stderr
    assert (tmp_path / "config.toml").read_text() == "[site]\n"


def test_repository_sample_project_is_clean() -> None:
    result = run("check", "--root", str(REPO), "--now", "2026-11-27T12:00")
    assert result.returncode == 0, result.stdout
    summary = result.stdout.splitlines()[-1]
    total = int(summary.split()[0])
    assert total >= 12
    assert summary.endswith("1 onder embargo, 1 concept; 0 fouten")


@pytest.mark.slow
def test_non_editable_wheel_scaffolds_a_working_project(tmp_path: Path) -> None:
    """`pip install .` must carry the scaffold: build the wheel and use it without the checkout."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(REPO)],
        check=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("krimppost-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "pipeline/scaffold/config.toml" in names
        assert any(n.startswith("pipeline/scaffold/content/") and n.endswith(".md") for n in names)
        zf.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    target = tmp_path / "project"
    subprocess.run(
        [sys.executable, "-m", "pipeline", "init", str(target)], check=True, env=env, cwd=tmp_path
    )
    check = subprocess.run(
        [sys.executable, "-m", "pipeline", "check", "--root", str(target)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
