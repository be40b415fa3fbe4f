"""Documentation that cannot drift: the README's commands and option table follow the code."""

from __future__ import annotations

import re

from conftest import REPO
from pipeline.cli import cli
from pipeline.config import SECTIONS, TRACK_OPTIONS, social_options

README = (REPO / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_and_ci_runs_the_second() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)
    ci = (REPO / ".ci" / "run").read_text()
    assert commands[1] in ci


def test_every_config_option_is_documented() -> None:
    for section, options in SECTIONS.items():
        assert f"`[{section}]`" in README
        for name in options:
            assert re.search(rf"\| `{name}` \|", README), f"[{section}] {name} undocumented"
    for name in TRACK_OPTIONS:
        assert f"`{name}`" in README
    for name in social_options("x"):
        assert re.search(rf"\| `{name}` \|", README), f"[social] {name} undocumented"


def test_every_command_is_documented() -> None:
    for name in cli.commands:
        assert f"krimppost {name}" in README or f"`{name}`" in README, name
