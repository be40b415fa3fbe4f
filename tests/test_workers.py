"""`parallel_map`: the caller works beside its forked workers; order, errors and cleanup.

Each case runs in a fresh interpreter: other tests leave threads in the pytest process, and
then `parallel_map` rightly refuses to fork.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def _run(code: str) -> str:
    prelude = textwrap.dedent(
        """
        import os, sys
        from pipeline.workers import can_fork, parallel_map
        assert can_fork(), "this would test the in-process path"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_results_in_task_order_and_the_caller_takes_a_share() -> None:
    out = _run(
        """
        import time
        def work(shared, task):
            time.sleep(0.01)
            return task * shared, os.getpid()
        answers = parallel_map(work, 3, list(range(40)), 2)
        assert [a for a, _ in answers] == [t * 3 for t in range(40)]
        pids = {p for _, p in answers}
        print(len(pids), os.getpid() in pids)
        """
    )
    # One forked worker beside the caller, each with part of the tasks.
    assert out.split() == ["2", "True"]


@pytest.mark.parametrize("where", ["caller", "worker"])
def test_an_error_in_a_task_reaches_the_caller_and_no_worker_stays(where: str) -> None:
    out = _run(
        f"""
        import multiprocessing, time
        me = os.getpid()
        def work(shared, task):
            if (os.getpid() == me) == ({where!r} == "caller"):
                raise ValueError("kapot")
            time.sleep(0.01)
            return task
        try:
            parallel_map(work, None, list(range(20)), 2)
        except ValueError as exc:
            print("raised", exc)
        print("children", len(multiprocessing.active_children()))
        """
    )
    assert out.split() == ["raised", "kapot", "children", "0"]


def test_one_worker_or_one_task_stays_in_this_process() -> None:
    out = _run(
        """
        def work(shared, task):
            return os.getpid()
        print(set(parallel_map(work, None, [1, 2, 3], 1)) == {os.getpid()},
              parallel_map(work, None, [1], 4) == [os.getpid()])
        """
    )
    assert out.split() == ["True", "True"]
