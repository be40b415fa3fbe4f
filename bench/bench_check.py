"""Benchmark `krimppost check` against Python-Markdown alone on one core.

    python bench/bench_check.py [--count 5000] [--seed 1] [--workdir DIR] [--repeat 3]

Generates the corpus (bench/corpus.py) unless DIR already holds it for this count and seed,
then runs each measurement --repeat times in fresh processes and keeps the fastest run.
Prints a Markdown table and writes bench/results/check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import markdown
from corpus import copy_project_files, generate, is_generated

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
RESULTS = BENCH / "results"
CACHE = ".krimppost/cache.sqlite"  # [build] cache in the copied config.toml
NOW = "2027-01-01"
TARGET_RATIO = 0.8  # cold check / reference
TARGET_WARM_S = 1.0


@dataclass
class Row:
    name: str
    wall_s: float
    items_per_s: float
    rss_main_mb: float
    rss_workers_mb: float | None
    note: str = ""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"exit {done.returncode}: {shlex.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return wall, done.stdout


def check_run(root: Path, env: dict[str, str], cold: bool) -> tuple[float, dict[str, float]]:
    """One `krimppost check` under bench/rusage.py: (wall seconds, peak RSS figures)."""
    if cold:
        for suffix in ("", "-wal", "-shm", ".pickle"):
            Path(f"{root / CACHE}{suffix}").unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        wall, stdout = timed(check_command(root, out.name), env)
        rss = json.loads(Path(out.name).read_text(encoding="utf-8"))
    if not stdout.rstrip().endswith(" 0 errors"):
        sys.exit(f"krimppost check did not report 0 errors:\n{stdout[-2000:]}")
    return wall, rss


def check_command(root: Path, rss_out: str) -> list[str]:
    return [sys.executable, str(BENCH / "rusage.py"), rss_out, "pipeline", "check",
            "--root", str(root), "--now", NOW]  # fmt: skip


def table(rows: list[Row]) -> str:
    lines = [
        "| run | wall (s) | items/s | peak RSS main (MB) | peak RSS per worker (MB) | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        workers = "–" if r.rss_workers_mb is None else f"{r.rss_workers_mb:.0f}"
        lines.append(
            f"| {r.name} | {r.wall_s:.2f} | {r.items_per_s:,.0f} | {r.rss_main_mb:.0f} "
            f"| {workers} | {r.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="default: bench/work/check-COUNT-sSEED")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; best kept")
    args = parser.parse_args()
    root = (args.workdir or BENCH / "work" / f"check-{args.count}-s{args.seed}").resolve()
    if not is_generated(root, args.count, args.seed):
        print(f"generating {args.count} items (seed {args.seed}) in {root} ...", flush=True)
        generate(root, args.count, args.seed)
    copy_project_files(root)  # the project's config may have changed since generation
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    n = args.count

    load_before = os.getloadavg()[0]
    # Reference and cold runs alternate, so drift in machine load hits both alike.
    ref_cmd = [sys.executable, str(BENCH / "reference.py"), str(root)]
    refs: list[dict[str, float]] = []
    colds: list[tuple[float, dict[str, float]]] = []
    for _ in range(args.repeat):
        wall, out = timed(ref_cmd, env)
        refs.append({**json.loads(out), "process_s": wall})
        colds.append(check_run(root, env, cold=True))
    warms = [check_run(root, env, cold=False) for _ in range(max(3, args.repeat))]
    assert all(r["items"] == n for r in refs), refs
    ref = min(refs, key=lambda r: r["seconds"])
    cold_wall, cold_rss = min(colds, key=lambda r: r[0])
    warm_wall, warm_rss = min(warms, key=lambda r: r[0])
    ratio = cold_wall / ref["seconds"]
    median_ratio = statistics.median(c[0] for c in colds) / statistics.median(
        r["seconds"] for r in refs
    )

    rows = [
        Row("reference: Python-Markdown, 1 core", ref["seconds"], n / ref["seconds"],
            ref["maxrss_mb"], None, f"conversion loop only; whole process {ref['process_s']:.2f} s"),
        Row("cold `krimppost check`", cold_wall, n / cold_wall, cold_rss["main_mb"],
            cold_rss["children_mb"],
            f"ratio {ratio:.2f} (medians: {median_ratio:.2f}); target <= {TARGET_RATIO}: "
            f"{'met' if ratio <= TARGET_RATIO else 'NOT met'}"),
        Row("warm `krimppost check`", warm_wall, n / warm_wall, warm_rss["main_mb"], None,
            f"target < {TARGET_WARM_S:.0f} s: {'met' if warm_wall < TARGET_WARM_S else 'NOT met'}"),
    ]  # fmt: skip
    prefix = f"PYTHONPATH={shlex.quote(env['PYTHONPATH'])} "
    commands = {
        "reference": prefix + shlex.join(ref_cmd),
        "cold": f"rm -f {root / CACHE}{{,-wal,-shm,.pickle}} && " + prefix + shlex.join(check_command(root, "RSS.json")),
        "warm": prefix + shlex.join(check_command(root, "RSS.json")),
    }  # fmt: skip
    info = {
        "python": platform.python_version(),
        "markdown": markdown.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
    }

    print(
        f"\n{n} items, seed {args.seed}, corpus {root}; best of {args.repeat} (warm: best of {max(3, args.repeat)})"
    )
    print(f"python {info['python']}, Markdown {info['markdown']}, {info['cpus']} CPUs")
    print(
        f"1-min load average before/after: {info['loadavg_1min']} (other load skews the figures)\n"
    )
    print(table(rows))
    runs = {"reference": [r["seconds"] for r in refs], "cold": [c[0] for c in colds], "warm": [w[0] for w in warms]}  # fmt: skip
    print(
        "\nall runs (s): "
        + "; ".join(f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in runs.items())
    )
    print("\ncommands:")
    for name, command in commands.items():
        print(f"  {name}: {command}")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ".gitignore").write_text("*\n", encoding="utf-8")
    result = {
        "count": n,
        "seed": args.seed,
        "repeat": args.repeat,
        "corpus": str(root),
        "machine": info,
        "targets": {"cold_ratio_max": TARGET_RATIO, "warm_seconds_max": TARGET_WARM_S},
        "cold_ratio": ratio,
        "cold_ratio_met": ratio <= TARGET_RATIO,
        "warm_met": warm_wall < TARGET_WARM_S,
        "cold_ratio_of_medians": median_ratio,
        "runs_s": {**runs, "reference_process": [r["process_s"] for r in refs]},
        "rows": [asdict(r) for r in rows],
        "commands": commands,
    }
    (RESULTS / "check.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten {RESULTS / 'check.json'}")


if __name__ == "__main__":
    main()
