"""Benchmark `krimppost build` side by side with Pelican 4.12 and Hugo on the same corpus.

    python bench/bench_build.py [--count 5000] [--seed 1] [--workdir DIR]
                                [--pelican-python /work/bench-venv/bin/python] [--hugo hugo]

Needs, besides the project's virtualenv (run it with that Python): Pelican in a virtualenv of
its own (`python -m venv /work/bench-venv && /work/bench-venv/bin/pip install
"pelican[markdown]==4.12.*" pelican-yaml-metadata`) and Debian's Hugo (`apt-get install hugo`).
Neither is a dependency of krimppost; a missing one is reported and skipped.

Measured, each in a fresh process, in one run:

1. krimppost cold build (state and outbox deleted; the parse cache too);
2. krimppost full re-render with the Markdown cached: a comment appended to the corpus's
   copy of templates/site/base.html, so every page's key changes;
3. krimppost rebuild after appending a sentence to one item's body;
4. krimppost rebuild with nothing changed;
5. Pelican cold build (feeds on, `simple` theme, same Markdown extensions; again with
   `smarty` added) and its rebuild after the same one-file change, content cache on;
6. Hugo cold build (public/ and resources/ deleted).

Before every timed run it waits until the 1-minute load average is below --quiet-load (at
most --max-wait seconds per run and --wait-budget seconds in all) and records the load.
Prints a Markdown table and writes bench/results/build.json.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from corpus import TRACKS, generate

BENCH = Path(__file__).resolve().parent
PROJECT = BENCH.parent
RESULTS = BENCH / "results"
NOW = "2027-01-01T12:00"
MB = 1024 * 1024

# Issue 14's targets: a cold build no slower, as a ratio to Pelican, than at the end of the
# hardening issue (1.24x Pelican); one change <= 1.5 s; no change <= 0.5 s; peak <= 300 MB.
TARGET_COLD_SPEEDUP = 1.24  # Pelican cold / krimppost cold
TARGET_ONE_S = 1.5
TARGET_NOCHANGE_S = 0.5
TARGET_PEAK_MB = 300.0
# Appended to one item (krimppost and Pelican alike) for the one-item rebuilds.
EDIT = "\n\nDeze zin is toegevoegd voor de benchmark (wijziging {n}).\n"
TEMPLATE_EDIT = "\n<!-- benchmark: volledige herbouw {n} -->\n"


# --------------------------------------------------------------------------- measuring


class Loads:
    """Waits for a quiet machine before each timed run, within a total budget."""

    def __init__(self, quiet: float, max_wait: float, budget: float) -> None:
        self.quiet, self.max_wait, self.budget = quiet, max_wait, budget
        self.log: list[dict[str, object]] = []

    def wait(self, label: str) -> dict[str, object]:
        start = time.monotonic()
        first = os.getloadavg()[0]
        limit = min(self.max_wait, max(0.0, self.budget))
        while os.getloadavg()[0] >= self.quiet and time.monotonic() - start < limit:
            time.sleep(5)
        waited = time.monotonic() - start
        self.budget -= waited
        load = os.getloadavg()[0]
        entry = {
            "run": label,
            "load_before_wait": round(first, 2),
            "waited_s": round(waited),
            "load_at_start": round(load, 2),
            "quiet": load < self.quiet,
        }
        self.log.append(entry)
        note = "" if load < self.quiet else f"  (NOT below {self.quiet}; measured anyway)"
        print(f"  [{label}] load {load:.2f} after waiting {waited:.0f} s{note}", flush=True)
        return entry


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return pids


def _pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Run:
    wall_s: float
    peak_tree_mb: float  # sampled every 0.1 s: sum of PSS over the process and its children
    maxrss_mb: float  # ru_maxrss from wait4: the largest single process in the tree
    stdout: str
    rusage: dict[str, float] = field(default_factory=dict)  # bench/rusage.py's figures
    load: dict[str, object] = field(default_factory=dict)


def measure(cmd: list[str], env: dict[str, str], loads: Loads, label: str,
            rusage_json: str | None = None) -> Run:  # fmt: skip
    load = loads.wait(label)
    peak = [0.0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], sum(_pss_mb(p) for p in _tree(proc.pid)))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"exit {proc.returncode}: {shlex.join(cmd)}\n{stdout[-3000:]}{stderr[-3000:]}")
    run = Run(wall, peak[0], usage.ru_maxrss / 1024, stdout, load=load)
    if rusage_json:
        run.rusage = json.loads(Path(rusage_json).read_text(encoding="utf-8"))
    print(
        f"  [{label}] {wall:.2f} s, peak {max(run.peak_tree_mb, run.maxrss_mb):.0f} MB", flush=True
    )
    return run


def peak_mb(run: Run) -> float:
    """Whole tree: the sampled PSS sum, or the largest single process if a sample missed it."""
    return max(run.peak_tree_mb, run.maxrss_mb, *run.rusage.values())


# --------------------------------------------------------------------------- projects


def pelican_project(corpus: Path, root: Path) -> int:
    """Copy the corpus's items with front matter Pelican understands: track -> category,
    draft -> status: draft; title, date, tags and summary as they are; other keys dropped."""
    keep = ("title:", "date:", "tags:", "summary:")
    if (root / "content").exists():
        shutil.rmtree(root / "content")
    n = 0
    for track in TRACKS:
        (root / "content" / track).mkdir(parents=True)
        for source in sorted((corpus / "content" / track).glob("*.md")):
            text = source.read_text(encoding="utf-8")
            _, front, body = text.split("---\n", 2)
            lines = ["---"]
            for line in front.splitlines():
                if line.startswith(keep):
                    lines.append(line)
                elif line.startswith("track:"):
                    lines.append("category:" + line[len("track:") :])
                elif line == "draft: true":
                    lines.append("status: draft")
            lines.append("---")
            (root / "content" / track / source.name).write_text(
                "\n".join(lines) + "\n" + body, encoding="utf-8"
            )
            n += 1
    return n


def hugo_project(corpus: Path, root: Path) -> None:
    """YAML front matter works in Hugo as it is: the items go under content/TRACK/."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copyfile(BENCH / "hugo" / "config.toml", root / "config.toml")
    shutil.copytree(BENCH / "hugo" / "layouts", root / "layouts")
    for track in TRACKS:
        shutil.copytree(corpus / "content" / track, root / "content" / track)


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def summary_line(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if "bestanden geschreven" in line]
    return lines[-1].strip() if lines else ""


def counts(stdout: str) -> str:
    m = re.search(r"(\d+) bestanden geschreven, (\d+) verwijderd, (\d+) ongewijzigd", stdout)
    return f"{m[1]} files written, {m[3]} unchanged" if m else ""


# --------------------------------------------------------------------------- main


@dataclass
class Row:
    what: str
    wall_s: float | None
    peak_mb: float | None
    items_per_s: float | None
    target: str
    met: bool | None
    note: str = ""
    load: float | None = None


def table(rows: list[Row]) -> str:
    lines = [
        "| what | wall (s) | peak (MB) | items/s | target | met? | load | note |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for r in rows:
        fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
        met = "–" if r.met is None else ("yes" if r.met else "**NO**")
        lines.append(
            f"| {r.what} | {fmt(r.wall_s, '.2f')} | {fmt(r.peak_mb, '.0f')} "
            f"| {fmt(r.items_per_s, ',.0f')} | {r.target} | {met} | {fmt(r.load, '.2f')} | {r.note} |"
        )
    return "\n".join(lines)


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="default: bench/work/build-COUNT-sSEED")
    parser.add_argument("--pelican-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--hugo", default="hugo")
    parser.add_argument("--repeat", type=int, default=1, help="cold and full runs; best kept")
    parser.add_argument("--quiet-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=300.0, help="per run, seconds")
    parser.add_argument("--wait-budget", type=float, default=900.0, help="all runs, seconds")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pelican", "smarty", "hugo"])
    args = parser.parse_args()
    n = args.count
    root = (args.workdir or BENCH / "work" / f"build-{n}-s{args.seed}").resolve()
    pel_root = root.with_name(root.name + "-pelican")
    hugo_root = root.with_name(root.name + "-hugo")
    loads = Loads(args.quiet_load, args.max_wait, args.wait_budget)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    # As installed by pip: byte-compiled once. Without this, a PYTHONDONTWRITEBYTECODE in the
    # caller's environment makes every run compile krimppost's sources again (0.1 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(PROJECT / "pipeline", quiet=1)
    prefix = f"PYTHONPATH={shlex.quote(str(PROJECT))} "

    # Fresh, pristine corpus every time: the one-item runs below edit it.
    print(f"generating {n} items (seed {args.seed}) in {root} ...", flush=True)
    generate(root, n, args.seed)
    if (root / "templates").exists():
        shutil.rmtree(root / "templates")
    shutil.copytree(PROJECT / "templates", root / "templates")
    edited = next(  # a published item: no draft, no embargo
        p
        for p in sorted((root / "content" / TRACKS[0]).glob("*.md"))
        if not re.search(r"^(draft|publish_at):", p.read_text(encoding="utf-8"), re.M)
    )
    base_html = root / "templates" / "site" / "base.html"

    missing: dict[str, str] = {}
    pelican_ok = "pelican" not in args.skip
    if pelican_ok:
        probe = subprocess.run([args.pelican_python, "-c", "import pelican, pelican.plugins.yaml_metadata, markdown; print(pelican.__version__, markdown.__version__)"], capture_output=True, text=True)  # fmt: skip
        if probe.returncode != 0:
            pelican_ok = False
            missing["pelican"] = (probe.stderr.strip().splitlines() or ["not found"])[-1]
        else:
            pelican_version, pelican_md = probe.stdout.split()
            pelican_project(root, pel_root)
    hugo_ok = "hugo" not in args.skip and shutil.which(args.hugo) is not None
    if "hugo" not in args.skip and not hugo_ok:
        missing["hugo"] = f"{args.hugo} not on PATH"
    if hugo_ok:
        hugo_version = subprocess.run([args.hugo, "version"], capture_output=True, text=True).stdout.strip()  # fmt: skip
        hugo_project(root, hugo_root)

    rss = str(root.with_name(root.name + "-rss.json"))
    kp_cmd = [sys.executable, str(BENCH / "rusage.py"), rss, "pipeline", "build",
              "--root", str(root), "--now", NOW]  # fmt: skip
    pel_rss = str(pel_root.with_name(pel_root.name + "-rss.json"))
    pel_cmd = [args.pelican_python, str(BENCH / "rusage.py"), pel_rss, "pelican",
               "-s", str(BENCH / "pelican" / "pelicanconf.py"), "-q"]  # fmt: skip
    pel_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    pel_env["KP_PELICAN_ROOT"] = str(pel_root)
    hugo_cmd = [args.hugo, "--source", str(hugo_root), "--quiet"]
    pel_edited = pel_root / "content" / TRACKS[0] / edited.name

    def kp_clean() -> None:
        shutil.rmtree(root / ".krimppost", ignore_errors=True)
        shutil.rmtree(root / "outbox", ignore_errors=True)

    def pelican_cold(smarty: bool, label: str) -> Run:
        shutil.rmtree(pel_root / "output", ignore_errors=True)
        shutil.rmtree(pel_root / "cache", ignore_errors=True)
        e = {**pel_env, "KP_PELICAN_SMARTY": "1" if smarty else "0"}
        return measure(pel_cmd, e, loads, label, pel_rss)

    def pelican_one(smarty: bool, label: str, k: int) -> Run:
        append(pel_edited, EDIT.format(n=k))
        e = {**pel_env, "KP_PELICAN_SMARTY": "1" if smarty else "0"}
        return measure(pel_cmd, e, loads, label, pel_rss)

    def hugo_cold(label: str) -> Run:
        shutil.rmtree(hugo_root / "public", ignore_errors=True)
        shutil.rmtree(hugo_root / "resources", ignore_errors=True)
        return measure(hugo_cmd, env, loads, label)

    runs: dict[str, list[Run]] = {k: [] for k in (
        "hugo", "kp_cold", "pelican_cold", "pelican_one", "kp_full", "kp_one", "kp_none",
        "pelican_smarty_cold", "pelican_smarty_one")}  # fmt: skip
    load_start = os.getloadavg()[0]
    print("measuring (fresh process each run) ...", flush=True)
    edits = iter(range(1, 1000))
    for rep in range(args.repeat):
        if hugo_ok:
            runs["hugo"].append(hugo_cold(f"hugo cold #{rep + 1}"))
        kp_clean()
        runs["kp_cold"].append(measure(kp_cmd, env, loads, f"krimppost cold #{rep + 1}", rss))
        if pelican_ok:
            runs["pelican_cold"].append(pelican_cold(False, f"pelican cold #{rep + 1}"))
            runs["pelican_one"].append(pelican_one(False, f"pelican one-file #{rep + 1}", next(edits)))  # fmt: skip
        append(base_html, TEMPLATE_EDIT.format(n=next(edits)))
        runs["kp_full"].append(measure(kp_cmd, env, loads, f"krimppost full re-render #{rep + 1}", rss))  # fmt: skip
    if hugo_ok:
        runs["hugo"].append(hugo_cold(f"hugo cold #{args.repeat + 1}"))
    for rep in range(3):
        append(edited, EDIT.format(n=next(edits)))
        runs["kp_one"].append(measure(kp_cmd, env, loads, f"krimppost one item #{rep + 1}", rss))
    for rep in range(3):
        runs["kp_none"].append(measure(kp_cmd, env, loads, f"krimppost no change #{rep + 1}", rss))
    if pelican_ok and "smarty" not in args.skip:
        for rep in range(args.repeat):
            runs["pelican_smarty_cold"].append(pelican_cold(True, f"pelican+smarty cold #{rep + 1}"))  # fmt: skip
            runs["pelican_smarty_one"].append(pelican_one(True, f"pelican+smarty one-file #{rep + 1}", next(edits)))  # fmt: skip

    # ----------------------------------------------------------------------- results
    kp_all = [r for k in ("kp_cold", "kp_full", "kp_one", "kp_none") for r in runs[k]]
    kp_peak = max(peak_mb(r) for r in kp_all)
    cold, full, one, none = (best(runs[k]) for k in ("kp_cold", "kp_full", "kp_one", "kp_none"))
    hugo = best(runs["hugo"]) if runs["hugo"] else None
    pel = best(runs["pelican_cold"]) if runs["pelican_cold"] else None
    pel_s = best(runs["pelican_smarty_cold"]) if runs["pelican_smarty_cold"] else None

    def kp_note(r: Run) -> str:
        u = r.rusage
        return (f"{counts(r.stdout)}; RSS main {u.get('main_mb', 0):.0f} MB, "
                f"largest worker {u.get('children_mb', 0):.0f} MB")  # fmt: skip

    rows: list[Row] = []
    speed = pel.wall_s / cold.wall_s if pel else None
    speed_s = pel_s.wall_s / cold.wall_s if pel_s else None
    cold_target = f"≥ {TARGET_COLD_SPEEDUP:.2f}× Pelican's speed (same extensions)"
    rows.append(Row("krimppost cold build", cold.wall_s, peak_mb(cold), n / cold.wall_s,
                    cold_target, None if speed is None else speed >= TARGET_COLD_SPEEDUP,
                    (f"{speed:.2f}× Pelican" if speed else "no Pelican")
                    + (f", {speed_s:.2f}× Pelican+smarty" if speed_s else "") + "; " + kp_note(cold),
                    cold.load["load_at_start"]))  # fmt: skip
    rows.append(Row("krimppost full re-render, Markdown cached (template changed)", full.wall_s,
                    peak_mb(full), n / full.wall_s, "faster than Hugo's full build",
                    None if hugo is None else full.wall_s < hugo.wall_s,
                    (f"{hugo.wall_s / full.wall_s:.2f}× Hugo; " if hugo else "") + kp_note(full),
                    full.load["load_at_start"]))  # fmt: skip
    rows.append(Row("krimppost rebuild, one item changed (best of 3)", one.wall_s, peak_mb(one),
                    None, f"≤ {TARGET_ONE_S:g} s", one.wall_s <= TARGET_ONE_S, kp_note(one),
                    one.load["load_at_start"]))  # fmt: skip
    rows.append(Row("krimppost rebuild, no change (best of 3)", none.wall_s, peak_mb(none), None,
                    f"≤ {TARGET_NOCHANGE_S:g} s", none.wall_s <= TARGET_NOCHANGE_S, kp_note(none),
                    none.load["load_at_start"]))  # fmt: skip
    rows.append(Row("krimppost peak memory, all runs above", None, kp_peak, None,
                    f"≤ {TARGET_PEAK_MB:.0f} MB", kp_peak <= TARGET_PEAK_MB,
                    "sampled PSS of main + workers, or ru_maxrss of one process if higher"))  # fmt: skip
    for key, what in (("pelican_cold", "Pelican cold build (extra, sane_lists)"),
                      ("pelican_one", "Pelican rebuild, one file changed, content cache on"),
                      ("pelican_smarty_cold", "Pelican cold build (extra, sane_lists, smarty)"),
                      ("pelican_smarty_one", "Pelican+smarty rebuild, one file changed, cache on")):  # fmt: skip
        if runs[key]:
            r = best(runs[key])
            ref = {"pelican_cold": "≈ 51 s", "pelican_smarty_cold": "≈ 51 s"}.get(key, "6.4–8.0 s")
            rows.append(Row(what, r.wall_s, peak_mb(r), n / r.wall_s, "reference",
                            None, f"issue's figure {ref}, 128 MB", r.load["load_at_start"]))  # fmt: skip
    if hugo:
        rows.append(Row(f"Hugo cold build (best of {len(runs['hugo'])})", hugo.wall_s,
                        peak_mb(hugo), n / hugo.wall_s, "reference", None,
                        "issue's figure ≈ 4.9 s, 1.1 GB", hugo.load["load_at_start"]))  # fmt: skip
    for name, why in missing.items():
        rows.append(Row(f"{name}: not measured", None, None, None, "reference", None, why))

    commands = {
        "corpus": f"python bench/corpus.py {root} --count {n} --seed {args.seed} && cp -r templates {root}/templates",
        "krimppost cold": f"rm -rf {root}/.krimppost {root}/outbox && " + prefix + shlex.join(kp_cmd),
        "krimppost full re-render": f"echo '<!-- x -->' >> {base_html} && " + prefix + shlex.join(kp_cmd),
        "krimppost one item": f"echo 'Een zin.' >> {edited} && " + prefix + shlex.join(kp_cmd),
        "krimppost no change": prefix + shlex.join(kp_cmd),
    }  # fmt: skip
    if pelican_ok:
        commands |= {
            "pelican cold": f"rm -rf {pel_root}/output {pel_root}/cache && KP_PELICAN_ROOT={pel_root} KP_PELICAN_SMARTY=0 " + shlex.join(pel_cmd),
            "pelican one file": f"echo 'Een zin.' >> {pel_edited} && KP_PELICAN_ROOT={pel_root} KP_PELICAN_SMARTY=0 " + shlex.join(pel_cmd),
            "pelican+smarty": "the same with KP_PELICAN_SMARTY=1",
        }  # fmt: skip
    if hugo_ok:
        commands["hugo cold"] = f"rm -rf {hugo_root}/public {hugo_root}/resources && " + shlex.join(hugo_cmd)  # fmt: skip

    info = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "pelican": f"{pelican_version} (Markdown {pelican_md})" if pelican_ok else None,
        "hugo": hugo_version if hugo_ok else None,
        "loadavg_1min_start_end": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }
    print(f"\n{n} items, seed {args.seed}, corpus {root}")
    print(
        f"python {info['python']}, {info['cpus']} CPUs; Pelican {info['pelican']}; {info['hugo']}"
    )
    print(f"1-min load average start/end: {info['loadavg_1min_start_end']}; column 'load' = at the start of the kept run\n")  # fmt: skip
    print(table(rows))
    all_runs = {k: [round(r.wall_s, 2) for r in v] for k, v in runs.items() if v}
    print(
        "\nall runs (s): " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in all_runs.items())
    )
    print("load at each run: " + "; ".join(f"{e['run']}: {e['load_at_start']} (waited {e['waited_s']} s)" for e in loads.log))  # fmt: skip
    print("\ncommands:")
    for name, command in commands.items():
        print(f"  {name}: {command}")

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ".gitignore").write_text("*\n", encoding="utf-8")
    result = {
        "count": n,
        "seed": args.seed,
        "now": NOW,
        "corpus": str(root),
        "machine": info,
        "targets": {
            "cold_speedup_vs_pelican_min": TARGET_COLD_SPEEDUP,
            "full_rerender_below_hugo": True,
            "one_item_s_max": TARGET_ONE_S,
            "no_change_s_max": TARGET_NOCHANGE_S,
            "peak_mb_max": TARGET_PEAK_MB,
        },
        "rows": [asdict(r) for r in rows],
        "runs": {
            k: [{**asdict(r), "stdout": summary_line(r.stdout)} for r in v]
            for k, v in runs.items()
            if v
        },
        "load_log": loads.log,
        "commands": commands,
        "not_measured": missing,
    }
    (RESULTS / "build.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")  # fmt: skip
    print(f"\nwritten {RESULTS / 'build.json'}")


if __name__ == "__main__":
    main()
