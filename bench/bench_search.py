"""Benchmark the cost of search and image variants (issue 18) on the seeded corpus.

    python bench/bench_search.py CORPUS [--runs 3]

CORPUS is a project from bench/corpus.py. Two copies are made: one as it is (search and
image variants on, the defaults) and one with `[search] enabled = false` and
`[images] variants = false`. Cold builds of the two alternate, `--runs` times each, so both
see the same machine; then, on the copy with search, one item's body is changed and
rebuilt (best of `--runs`), which re-indexes that item's part of the index. Prints the
figures and the ratio against the budgets: cold with ≤ 1.20 × without, one item ≤ 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
NOW = "2026-11-27T12:00"
BUDGET_RATIO = 1.20
BUDGET_ONE_ITEM_S = 2.0


def build(root: Path, now: str = NOW) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "--root", str(root), "--now", now],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"build failed in {root}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return wall


def cold(root: Path) -> float:
    shutil.rmtree(root / ".krimppost", ignore_errors=True)
    shutil.rmtree(root / "outbox", ignore_errors=True)
    subprocess.run(["sync"], check=False)
    time.sleep(3)
    return build(root)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        on, off = work / "met", work / "zonder"
        for copy in (on, off):
            shutil.copytree(
                args.corpus, copy, ignore=shutil.ignore_patterns("outbox", ".krimppost")
            )
        with open(off / "config.toml", "a", encoding="utf-8") as config:
            config.write("\n[search]\nenabled = false\n\n[images]\nvariants = false\n")
        times: dict[str, list[float]] = {"met": [], "zonder": []}
        for run in range(args.runs):
            for name, root in (("zonder", off), ("met", on)):
                times[name].append(cold(root))
                print(f"cold {name} run {run + 1}: {times[name][-1]:.2f} s", flush=True)
        ratios = [a / b for a, b in zip(times["met"], times["zonder"], strict=True)]
        one: dict[str, list[float]] = {"met": [], "zonder": []}
        for run in range(args.runs):
            for name, root in (("zonder", off), ("met", on)):
                items = sorted((root / "content").rglob("*.md"))
                with open(items[len(items) // 2], "a", encoding="utf-8") as f:
                    f.write(f"\nEen zin erbij, nummer {run}.\n")
                one[name].append(build(root, f"2026-11-27T12:{run + 1:02d}"))
                print(f"one item changed, {name}, run {run + 1}: {one[name][-1]:.2f} s", flush=True)
        print()
        print(f"cold with search and images: {', '.join(f'{t:.2f}' for t in times['met'])} s")
        print(f"cold without:                {', '.join(f'{t:.2f}' for t in times['zonder'])} s")
        print(
            f"ratio per pair: {', '.join(f'{r:.2f}' for r in ratios)}; median "
            f"{statistics.median(ratios):.2f} (budget ≤ {BUDGET_RATIO:.2f})"
        )
        print(
            f"one item changed (whole command): best {min(one['met']):.2f} s with search "
            f"(budget ≤ {BUDGET_ONE_ITEM_S:.1f} s), {min(one['zonder']):.2f} s without"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
