"""Benchmark: `newsletter compile` of a 20-item issue, in-process (target < 50 ms).

    PYTHONPATH=. python bench/bench_compile.py [--runs 10]

Each run uses a fresh copy of a small project with 20 new published items (plus an event in
the agenda), so every run really compiles an issue: state store transaction, MJML and
HTML rendering, the text part, the .eml, the pre-flight and the archive page. "first" is a
project's first issue (its templates are compiled too); "next" the issue after it, once the
first is approved and 20 more items are online: a project's usual compile, with the
templates compiled in its `.krimppost/sjablonen/`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
ITEM = """---
title: "Bericht {n}: coöperatie en krimp in de regio"
date: 2026-11-{day:02d}
kind: {kind}
track: {track}
summary: Een samenvatting van twee zinnen over bericht {n}. Gemeenten en corporaties werken samen aan de woningvoorraad.
{extra}---
Tekst van bericht {n}.
"""


def make_project(root: Path, start: int = 0) -> None:
    (root / "content" / "afbeeldingen").mkdir(parents=True, exist_ok=True)
    if start == 0:
        shutil.copy(REPO / "config.toml", root / "config.toml")
        shutil.copy(REPO / "content/afbeeldingen/podcast-omslag.png", root / "content/afbeeldingen")
    tracks = ("wrb", "woningmarkt", "energietransitie")
    for n in range(start, start + 20):
        extra = ""
        kind = "news"
        if n == start:
            kind = "event"
            extra = 'event: {start: 2027-01-21T13:30, location: "Glaspaleis, Heerlen"}\n'
        (root / "content" / f"item-{n:02d}.md").write_text(
            ITEM.format(n=n, day=n % 20 + 1, kind=kind, track=tracks[n % 3], extra=extra),
            encoding="utf-8",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from pipeline.commands.approval import approve_issue
    from pipeline.commands.build import build
    from pipeline.commands.newsletter import compile_issue

    now = datetime(2026, 11, 27, 12, tzinfo=ZoneInfo("Europe/Amsterdam"))
    first, following, sizes = [], [], []
    for _ in range(args.runs + 1):  # the first run warms imports
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_project(root)
            build(root, now)  # an issue takes only items a build put online
            start = time.perf_counter()
            report = compile_issue(root, now)
            first.append(time.perf_counter() - start)
            assert report.number == 1 and report.items == 20, report
            approve_issue(root, 1, "bench", now)
            make_project(root, 20)
            build(root, now)
            start = time.perf_counter()
            report = compile_issue(root, now)
            following.append(time.perf_counter() - start)
            assert report.number == 2 and report.items == 20, report
            sizes.append(report.size)
    first, following = first[1:], following[1:]
    print(
        f"compile of a 20-item issue, {args.runs} runs: next issue median "
        f"{statistics.median(following) * 1000:.1f} ms, best {min(following) * 1000:.1f} ms; "
        f"first issue median {statistics.median(first) * 1000:.1f} ms; HTML part "
        f"{sizes[-1] / 1000:.1f} kB (target < 50 ms, < 102 kB)"
    )


if __name__ == "__main__":
    main()
