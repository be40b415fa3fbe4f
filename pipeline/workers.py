"""Process pools for the CPU-bound stages (Markdown, page rendering) that die with their parent.

Workers are forked, so they share the parent's loaded modules and data without pickling.
A worker blocked on its queue would outlive a parent killed with SIGKILL (it holds the
queue's pipe itself); on Linux each worker asks the kernel to kill it when the parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from multiprocessing.connection import wait
from typing import Any

_PR_SET_PDEATHSIG = 1


def cpu_count(configured: int = 0) -> int:
    if configured:
        return configured
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start(parent: int, initializer: Callable[..., None] | None, args: tuple[Any, ...]) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    if initializer is not None:
        initializer(*args)


def _trim() -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).malloc_trim(0)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """While many long-lived objects are made (a cache or an index loading): otherwise each
    collection they trigger walks the whole growing heap (0.18 s of a 0.28 s load)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """For loading data that lives as long as the run (5,000 cached items): made with the
    collector paused, and never visited by it afterwards."""
    try:
        with collector_paused():
            yield
    finally:
        gc.freeze()


class Forked:
    """`function(*args)` run by a forked process while the caller goes on; `result()` is its
    return value, or None when it failed or died. A bare process and a pipe, no executor
    thread: the caller may fork again (a pool) while it runs."""

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        self._done = False
        self._value: Any = None
        context = get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_run_forked, args=(os.getpid(), send, function, args), daemon=True
        )
        self._process.start()
        send.close()

    def result(self) -> Any:
        if not self._done:
            self._done = True
            try:
                self._value = self._receive.recv()
            except (EOFError, OSError):
                pass
            finally:
                self._receive.close()
                self._process.join()
        return self._value


def _run_forked(
    parent: int, send: Any, function: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    _start(parent, None, ())
    try:
        result = function(*args)
    except Exception:
        result = None
    send.send(result)
    send.close()


class _Pool(ProcessPoolExecutor):
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        gc.unfreeze()


def pool(
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> ProcessPoolExecutor:
    # Garbage is collected and freed memory handed back first, so that workers share less
    # (it costs 0.1 s on a big heap). Frozen objects are never visited by the collector, so
    # a worker's garbage collection does not write to (and so copy) every page it shares
    # with the parent.
    gc.collect()
    _trim()
    gc.freeze()
    return _Pool(
        max_workers=workers,
        mp_context=get_context("fork"),
        initializer=_start,
        initargs=(os.getpid(), initializer, initargs),
    )


TIMED_OUT = "timed out"  # in place of a result: the task ran past its deadline
CRASHED = "crashed"  # in place of a result: the process died under the task
_START_UP = 120.0  # seconds a spawned process may take to import what it needs


def map_with_deadline(
    function: Callable[[Any], Any], tasks: Sequence[Any], workers: int, timeout: float
) -> list[Any]:
    """`function(task)` for every task, each in a spawned process (never a fork: the caller
    may have threads) that is killed once its task has run `timeout` seconds; that task's
    answer is TIMED_OUT and the others go on in a new process. For work whose time no cheap
    test can bound (Markdown of hostile text). `function` must not raise."""
    context = get_context("spawn")
    results: list[Any] = [TIMED_OUT] * len(tasks)
    todo = deque(range(len(tasks)))
    # connection -> (process, task index or None while starting, deadline)
    running: dict[Any, tuple[Any, int | None, float]] = {}
    idle: list[tuple[Any, Any]] = []
    everyone: list[tuple[Any, Any]] = []

    def give(process: Any, conn: Any) -> None:
        if not todo:
            idle.append((process, conn))
            return
        index = todo.popleft()
        conn.send(tasks[index])
        running[conn] = (process, index, time.monotonic() + timeout)

    try:
        while todo or running:
            while todo and idle:
                give(*idle.pop())
            while len(todo) > sum(1 for _, i, _ in running.values() if i is None) and (
                len(running) < workers
            ):
                conn, child = context.Pipe()
                process = context.Process(
                    target=_serve, args=(os.getpid(), child, function), daemon=True
                )
                process.start()
                child.close()
                everyone.append((process, conn))
                # Start-up (the imports) is not a task's time: the deadline starts once the
                # process says it is ready.
                running[conn] = (process, None, time.monotonic() + _START_UP)
            if not running:
                break
            soonest = min(deadline for _, _, deadline in running.values())
            for conn in wait(list(running), max(0.0, soonest - time.monotonic())):
                process, index, _ = running.pop(conn)
                try:
                    answer = conn.recv()
                except (EOFError, OSError):
                    if index is None:
                        raise RuntimeError("a worker process did not start") from None
                    results[index] = CRASHED
                    continue
                if index is not None:
                    results[index] = answer
                give(process, conn)
            now = time.monotonic()
            for conn, (process, index, deadline) in list(running.items()):
                if deadline <= now:
                    del running[conn]
                    process.kill()
                    if index is None:
                        raise RuntimeError("a worker process did not start in time")
    finally:
        for process, conn in everyone:
            conn.close()
            process.kill()
            process.join()
    return results


def _serve(parent: int, conn: Any, function: Callable[[Any], Any]) -> None:
    _start(parent, None, ())
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        conn.send(function(task))
