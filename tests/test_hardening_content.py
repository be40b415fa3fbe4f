"""Hostile and odd editor input in content/ and templates/: bounded, confined, reported.

Issue 13 items 1 (YAML alias bombs), 2 (links out of content/ and templates/), 5 (unreadable
folders and files) and the quoting of odd file names in problem lines.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, VALID, Project

LIMIT = 20  # seconds: a hang is a failure, not a stuck test run


def run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            *args,
            "--root",
            str(project.root),
            "--now",
            "2026-11-27T12:00",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=LIMIT,
    )


def outbox_bytes(root: Path) -> bytes:
    """Every byte of every file in the outbox, names included."""
    out = bytearray()
    for path in sorted((root / "outbox").rglob("*")):
        out += str(path).encode() + b"\n"
        if path.is_file() and not path.is_symlink():
            out += path.read_bytes()
    return bytes(out)


# 1. YAML alias bombs --------------------------------------------------------------------


def alias_bomb(levels: int = 9) -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    names = "abcdefghijklmnop"
    for previous, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_one_problem_in_check_and_build(project: Project) -> None:
    project.write("goed.md", VALID)
    bomb = VALID.replace("summary:", alias_bomb() + "summary:")
    assert len(alias_bomb()) < 500
    project.write("wrb/bom.md", bomb)
    for command in ("check", "build"):
        result = run(project, command)
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            "content/wrb/bom.md:6: ankers en verwijzingen (&naam, *naam) zijn niet toegestaan"
            in result.stdout
        ), result.stdout
        assert "interne fout" not in result.stdout + result.stderr
    assert (project.root / "outbox/site/berichten/goed/index.html").is_file()


def test_other_alias_tricks_deep_nesting_and_size_are_bounded(project: Project) -> None:
    project.write("goed.md", VALID)
    shapes = {
        # a merge key needs an alias; a mapping bomb; an anchor on its own; an alias as a key
        "merge.md": "basis: &b {x: 1}\nkopie:\n  <<: *b\n",
        "mapping.md": "a: &a {k1: x, k2: x, k3: x}\nb: &b {k1: *a, k2: *a, k3: *a}\n",
        "anker.md": "tags: &t [wonen]\n",
        "sleutel.md": "x: &k sleutel\n*k : waarde\n",
        "gelabeld.md": "tags: !!seq &t [wonen]\n",
        "diep.md": "tags: " + "[" * 900 + "]" * 900 + "\n",
        "blokdiep.md": "".join(" " * i + f"n{i}:\n" for i in range(40)) + " " * 40 + "x: 1\n",
    }
    for name, yaml_text in shapes.items():
        project.write(f"vorm/{name}", VALID.replace("summary:", yaml_text + "summary:"))
    project.write("vorm/groot.md", VALID.replace("summary:", "# " + "x" * 70_000 + "\nsummary:"))
    result = run(project, "check")
    assert result.returncode == 1
    out = result.stdout
    assert "interne fout" not in out + result.stderr
    for name in ("merge", "mapping", "anker", "gelabeld"):
        assert f"content/vorm/{name}.md:6: ankers en verwijzingen" in out, out
    assert "content/vorm/sleutel.md:6: ankers en verwijzingen" in out, out
    assert "content/vorm/diep.md:6: ongeldige YAML" in out or (
        "content/vorm/diep.md:6: front matter is te diep genest" in out
    ), out
    assert "content/vorm/blokdiep.md:22: front matter is te diep genest (meer dan 16" in out, out
    assert "content/vorm/groot.md:1: front matter is te groot (68 KiB, hoogstens 64 KiB)" in out
    assert out.count("content/vorm/") == len(shapes) + 1, out  # one line per file
    assert "1 published" in out


def test_ampersand_in_text_is_no_anchor(project: Project) -> None:
    project.write("a.md", VALID.replace("Een geldig item", '"Sloop & transformatie *nu*"'))
    result = run(project, "check")
    assert result.returncode == 0, result.stdout
