"""A new state store opened by several processes at once: each opens it, none fails.

The `run` service plans its next job from the state store while its first build, in a
process of its own, creates that store: both open a store that does not exist yet. On
SQLite that is a new file (krimppost's open lock), on PostgreSQL an empty schema (the
store's advisory migration lock).
"""

from __future__ import annotations

import multiprocessing
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pgcluster
import pytest

from pipeline.errors import KrimppostError
from pipeline.state import StateStore, StoreAddress

PROCESSES = 3
ROUNDS = 20

# (the local anchor of a store, its PostgreSQL URL or None for the SQLite file there)
Store = tuple[Path, str | None]


def open_each(stores: list[Store], barrier: Any, answers: Any) -> None:
    for path, url in stores:
        address = StoreAddress.sqlite(path) if url is None else StoreAddress.postgresql(path, url)
        barrier.wait()  # all processes open the same new store at the same moment
        try:
            with StateStore(address) as state:
                state.items()
            answers.put("ok")
        except KrimppostError as exc:
            answers.put(str(exc.problems[0]))


def test_a_new_store_opened_by_several_processes_at_once(
    tmp_path: Path, state_backend: str, request: pytest.FixtureRequest
) -> None:
    paths = [tmp_path / f"project-{n}" / ".krimppost" / "state.sqlite" for n in range(ROUNDS)]
    with ExitStack() as schemas:
        if state_backend == "sqlite":
            stores: list[Store] = [(path, None) for path in paths]
        else:  # an empty schema per round, as the one of the fixture is for the whole test
            server = request.getfixturevalue("pg_cluster")
            stores = [
                (path, schemas.enter_context(pgcluster.temporary_schema(server))[1])
                for path in paths
            ]
        context = multiprocessing.get_context("spawn")  # never a fork of the test process
        barrier = context.Barrier(PROCESSES, timeout=120)
        answers = context.Queue()
        workers = [
            context.Process(target=open_each, args=(stores, barrier, answers))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        got = [answers.get(timeout=120) for _ in range(PROCESSES * ROUNDS)]
        for worker in workers:
            worker.join(timeout=60)
    problems = sorted({answer for answer in got if answer != "ok"})
    assert not problems, f"{len([a for a in got if a != 'ok'])} failed opens: {problems[:3]}"
    assert all(worker.exitcode == 0 for worker in workers)
