"""A `[podcast] image` that names a missing file: the build warns once, with the line in
config.toml, makes the podcast feed without the image, succeeds, and the next build with
nothing changed still stops early."""

from __future__ import annotations

import os
import subprocess
import sys

from lxml import etree

from conftest import REPO, VALID, Project

NOW = "2026-11-27T12:00"
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


def build(project: Project) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--root", str(project.root), "--now", NOW],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


def missing_cover(project: Project) -> int:
    """Point [podcast] image at a file that is not there; the line it is on."""
    config = project.root / "config.toml"
    lines = config.read_text(encoding="utf-8").splitlines(keepends=True)
    section = lines.index("[podcast]\n")
    number = next(i for i in range(section, len(lines)) if lines[i].startswith("image ="))
    lines[number] = 'image = "afbeeldingen/ontbreekt.png"\n'
    config.write_text("".join(lines), encoding="utf-8")
    return number + 1


def channel_images(project: Project) -> list[etree._Element]:
    feed = etree.parse(str(project.root / "outbox" / "site" / "feeds" / "podcast.xml"))
    channel = feed.getroot().find("channel")
    return [*channel.findall(f"{ITUNES}image"), *channel.findall("image")]


def test_a_missing_cover_is_one_warning_and_the_feed_is_built(project: Project) -> None:
    project.write("wrb/2026-11-01-geldig.md", VALID)
    line = missing_cover(project)

    first = build(project)
    assert first.returncode == 0, first.stdout + first.stderr
    warnings = [w for w in first.stderr.splitlines() if w.startswith("waarschuwing: ")]
    assert warnings == [
        f"waarschuwing: config.toml:{line}: [podcast] image: bestand "
        "'afbeeldingen/ontbreekt.png' niet gevonden in content/"
    ], first.stderr
    assert "config.toml" not in first.stdout  # not among the errors
    assert "; 0 fouten; 1 waarschuwing;" in first.stdout
    assert channel_images(project) == []  # the feed, without an image

    # Nothing changed: the early exit still works, and says the warning again.
    second = build(project)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.startswith("niets veranderd sinds de vorige build"), second.stdout
    assert second.stderr.count("waarschuwing: config.toml:") == 1

    # The cover added: the feed carries it, and the warning is gone.
    cover = REPO / "content" / "afbeeldingen" / "podcast-omslag.png"
    project.write_bytes("afbeeldingen/ontbreekt.png", cover.read_bytes())
    third = build(project)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "waarschuwing" not in third.stderr + third.stdout
    assert len(channel_images(project)) == 2
    assert (
        project.root / "outbox" / "site" / "bestanden" / "afbeeldingen" / "ontbreekt.png"
    ).exists()
