"""A new state store opened by several processes at once: each opens it, none fails.

The `run` service plans its next job from the state store while its first build, in a
process of its own, creates that store: both open a store that does not exist yet.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from pipeline.errors import KrimppostError
from pipeline.state import StateStore

PROCESSES = 3
ROUNDS = 20


def open_each(paths: list[Path], barrier: Any, answers: Any) -> None:
    for path in paths:
        barrier.wait()  # all processes open the same new store at the same moment
        try:
            with StateStore(path) as state:
                state.items()
            answers.put("ok")
        except KrimppostError as exc:
            answers.put(str(exc.problems[0]))


def test_a_new_store_opened_by_several_processes_at_once(tmp_path: Path) -> None:
    paths = [tmp_path / f"project-{n}" / ".krimppost" / "state.sqlite" for n in range(ROUNDS)]
    context = multiprocessing.get_context("spawn")  # never a fork of the test process
    barrier = context.Barrier(PROCESSES, timeout=120)
    answers = context.Queue()
    workers = [
        context.Process(target=open_each, args=(paths, barrier, answers)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    got = [answers.get(timeout=120) for _ in range(PROCESSES * ROUNDS)]
    for worker in workers:
        worker.join(timeout=60)
    problems = sorted({answer for answer in got if answer != "ok"})
    assert not problems, f"{len([a for a in got if a != 'ok'])} failed opens: {problems[:3]}"
    assert all(worker.exitcode == 0 for worker in workers)
