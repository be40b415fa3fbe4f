"""Every cache may be deleted at any moment and costs only time; a changed library re-renders.

The caches: the parse cache (`[build] cache`), the sync index of the social drafts (rows in
the state store) and the record that lets an unchanged build stop early (`build_meta`).
There is no compiled-template cache: it saved ~0.03 s of a one-item build (bench/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from storesql import execute, scalar
from test_build import EVENT, PODCAST

from conftest import REPO, STATE_URL_ENV, VALID, Project, build_at, outbox_files
from pipeline.commands.build import BuildReport
from pipeline.config import load_config
from pipeline.content.reader import read_content

# Every test here runs on SQLite and on PostgreSQL (tests/conftest.py: state_backend).
pytestmark = pytest.mark.usefixtures("state_backend")

EMBARGOED = VALID.replace("date: 2026-11-01", "date: 2026-11-01\npublish_at: 2026-12-15T09:00")
FIRST, SECOND = "2026-11-27T12:00", "2026-11-28T09:00"  # nothing is due in between
SCENARIOS = ("edited", "clock")  # edits between the builds; only the clock moved


def _run(project: Project, scenario: str, forget: Callable[[Project], None] | None) -> BuildReport:
    """Two builds; `forget` deletes a cache just before the second."""
    project.write("wrb/a.md", VALID)
    project.write("wrb/later.md", EMBARGOED)
    project.write("woningmarkt/masterclass.md", EVENT)
    project.write("woningmarkt/podcast.md", PODCAST)
    assert build_at(project, FIRST).problems == ()
    if scenario == "edited":
        project.write("wrb/a.md", VALID.replace("Tekst van", "Nieuwe tekst van"))
        project.write(
            "energietransitie/b.md", VALID.replace("track: wrb", "track: energietransitie")
        )
        (project.root / "content/woningmarkt/podcast.md").unlink()
        drafts = sorted((project.root / "outbox/social").rglob("*.md"))
        with drafts[0].open("a", encoding="utf-8") as fh:  # comms edit a draft by hand
            fh.write("Met de hand aangevuld.\n")
    if forget is not None:
        forget(project)
    report = build_at(project, SECOND)
    assert report.problems == ()
    return report


@pytest.fixture(scope="module")
def with_all_caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The outboxes with every cache in place, made once on SQLite: a store of its own per
    scenario, and the same outbox expected of either database."""
    outboxes = {}
    with pytest.MonkeyPatch.context() as env:
        env.delenv(STATE_URL_ENV, raising=False)
        for scenario in SCENARIOS:
            project = Project(tmp_path_factory.mktemp(scenario) / "project")
            assert _run(project, scenario, None).skipped == (scenario == "clock")
            outboxes[scenario] = outbox_files(project.root)
    return outboxes


def forget_parse_cache(project: Project) -> None:
    config = load_config(project.root)
    cache = config.path(config.build.cache)
    assert cache.is_file()
    for path in cache.parent.glob(cache.name + "*"):
        path.unlink()


SOCIAL_INDEX_TABLES = ("social_folders", "social_drafts", "social_index_meta")


def forget_social_index(project: Project) -> None:
    assert scalar(project.root, "SELECT count(*) FROM social_folders") > 0
    for table in SOCIAL_INDEX_TABLES:
        execute(project.root, f"DELETE FROM {table}")


def forget_build_record(project: Project) -> None:
    assert execute(project.root, "DELETE FROM build_meta") > 0


def forget_all(project: Project) -> None:
    forget_parse_cache(project)
    forget_social_index(project)
    forget_build_record(project)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize(
    "forget", [forget_parse_cache, forget_social_index, forget_build_record, forget_all]
)
def test_a_deleted_cache_gives_the_same_outbox(
    tmp_path: Path,
    scenario: str,
    forget: Callable[[Project], None],
    with_all_caches: dict[str, dict[str, bytes]],
) -> None:
    project = Project(tmp_path / "project")
    report = _run(project, scenario, forget)
    if forget in (forget_build_record, forget_all):
        assert not report.skipped  # rendered again, not left as it was
    files = outbox_files(project.root)
    expected = with_all_caches[scenario]
    assert sorted(files) == sorted(expected)
    assert any(path.startswith("site/") for path in files)
    assert any(path.startswith("social/") for path in files)
    differing = [path for path in files if files[path] != expected[path]]
    assert differing == []


# A build in a fresh interpreter, so that the package metadata it reads is that of the
# sys.path it was given: what it parsed and the key of every output it recorded.
_BUILD = """
import importlib.metadata, json, sys
from datetime import datetime
from pathlib import Path
import nh3
from pipeline.commands.build import build
from pipeline.config import load_config
from pipeline.content.reader import read_content
from pipeline.state import StateStore

root = Path(sys.argv[1])
config = load_config(root)
parsed = read_content(config).parsed
build(root, datetime.fromisoformat(sys.argv[2]))
with StateStore.of(config) as state:
    keys = {path: key for path, (key, _) in state.outputs().items()}
print(json.dumps({"nh3": importlib.metadata.version("nh3"), "module": nh3.__file__,
                  "parsed": parsed, "keys": keys}))
"""


def _build_with(project: Project, path: list[Path], now: str) -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*path, REPO])}
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(project.root), now],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_upgrade_of_nh3_parses_and_renders_everything_again(
    project: Project, tmp_path: Path
) -> None:
    """The installed nh3 as its metadata says, with another version on sys.path first: what
    `pip install -U nh3` changes for `importlib.metadata`; the module itself stays the same."""
    import importlib.metadata

    for n in range(3):
        project.write(f"wrb/i{n}.md", VALID.replace("Een geldig item", f"Item {n}"))
    project.write("woningmarkt/masterclass.md", EVENT)
    _build_with(project, [], FIRST)  # in a fresh process too: the same code as the others
    upgraded = tmp_path / "upgraded"
    dist_info = upgraded / "nh3-99.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: nh3\nVersion: 99.0.0\n")

    same = _build_with(project, [], "2026-11-28T09:00")
    assert same["parsed"] == 0  # the control: without the upgrade everything is cached

    new = _build_with(project, [upgraded], "2026-11-28T10:00")
    assert new["nh3"] == "99.0.0" and new["module"] == same["module"]
    assert new["parsed"] == 4  # every item sanitised by the "new" nh3
    pages = [p for p in same["keys"] if p.startswith("site/berichten/")]
    assert len(pages) >= 4
    assert [p for p in pages if new["keys"][p] == same["keys"][p]] == []
    assert all(
        new["keys"][p] != same["keys"][p] for p in ("site/index.html", "site/feeds/atom.xml")
    )

    with_upgrade = _build_with(project, [upgraded], "2026-11-28T11:00")
    assert with_upgrade["parsed"] == 0 and with_upgrade["keys"] == new["keys"]
    # And back: the version installed here differs from 99.0.0 again.
    assert importlib.metadata.version("nh3") != "99.0.0"
    assert read_content(load_config(project.root)).parsed == 4


def test_nothing_is_kept_outside_the_project(project: Project, tmp_path: Path) -> None:
    """A build and a check write under the project folder only: no compiled templates in
    ~/.cache, nothing left in the temp folder."""
    project.write("wrb/a.md", VALID)
    project.write("woningmarkt/masterclass.md", EVENT)
    home, cache, temp = (tmp_path / name for name in ("home", "cache", "tmp"))
    for folder in (home, cache, temp):
        folder.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "TMPDIR": str(temp),
    }
    for command in ("build", "check", "build"):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", command, "--root", str(project.root)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert [p for folder in (home, cache, temp) for p in folder.rglob("*")] == []
