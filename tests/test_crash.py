"""A build killed with SIGKILL at any moment leaves whole files, and the next build completes it."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

from conftest import REPO, VALID, Project, outbox_files
from pipeline.outbox import TEMP_PREFIX

NOW = "2026-11-27T12:00"


def start_build(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "build", "--root", str(root), "--now", NOW],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def assert_whole(root: Path) -> None:
    for path in (root / "outbox").rglob("*"):
        if not path.is_file() or path.name.startswith(TEMP_PREFIX):
            continue
        data = path.read_bytes()
        if path.suffix == ".html":
            assert data.rstrip().endswith(b"</html>"), path
        elif path.suffix == ".xml":
            etree.fromstring(data)
        elif path.suffix == ".json":
            json.loads(data)
        elif path.suffix == ".ics":
            assert data.rstrip().endswith(b"END:VCALENDAR"), path


def test_kill_during_build_then_complete(project: Project, tmp_path: Path) -> None:
    for n in range(300):
        body = VALID.replace("2026-11-01", f"2026-{n % 11 + 1:02d}-{n % 28 + 1:02d}")
        project.write(f"wrb/item-{n:03d}.md", body + ("Meer tekst over krimp. " * 80))
    reference = tmp_path / "reference"
    shutil.copytree(project.root, reference)
    assert (
        subprocess.run(
            [sys.executable, "-m", "pipeline", "build", "--root", str(reference), "--now", NOW],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
        ).returncode
        == 0
    )

    rng = random.Random(20261127)
    for attempt in range(4):
        process = start_build(project.root)
        time.sleep(rng.uniform(0.3, 2.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_whole(project.root)
        if attempt == 1:
            # A withdrawal between crashes must still be honoured in the end.
            (project.root / "content/wrb/item-000.md").unlink(missing_ok=True)
            (reference / "content/wrb/item-000.md").unlink(missing_ok=True)

    final = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--root", str(project.root), "--now", NOW],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert final.returncode == 0, final.stdout + final.stderr
    subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--root", str(reference), "--now", NOW],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
    )
    # Social drafts of a withdrawn item are kept on purpose (comms may have edited them),
    # so the reference comparison is of the published site.
    site = {k: v for k, v in outbox_files(project.root).items() if k.startswith("site/")}
    assert site == {k: v for k, v in outbox_files(reference).items() if k.startswith("site/")}
