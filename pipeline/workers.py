"""Worker processes for the CPU-bound stages (Markdown, page rendering, social drafts).

`parallel_map` is the one way work is spread over processes. Its workers are forked, so they
share the caller's loaded modules and data without pickling; but a fork copies only the
calling thread, and a lock another thread held stays locked in the child forever. So it
forks only from a process that runs nothing but its main thread (a `krimppost` command, or
the fresh process the `run` service starts for each job); anywhere else it does the work in
the calling process. A worker blocked on its queue would outlive a parent killed with
SIGKILL (it holds the queue's pipe itself); on Linux each asks the kernel to kill it when
the parent dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.connection import wait
from typing import Any

_PR_SET_PDEATHSIG = 1


def cpu_count(configured: int = 0) -> int:
    if configured:
        return configured
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _start(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


def threads_running() -> int:
    """Threads of this process, those of C libraries included (what CPython's own fork
    warning counts), where the system says; else the Python threads."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def can_fork() -> bool:
    return "fork" in get_all_start_methods() and threads_running() == 1


_shared: Any = None  # what the forked workers of the running `parallel_map` read


def parallel_map(
    function: Callable[[Any, Any], Any],
    shared: Any,
    tasks: Sequence[Any],
    workers: int,
) -> list[Any]:
    """`function(shared, task)` for every task, results in task order: in this process and
    up to `workers - 1` forked ones when there is more than one task and forking is safe
    here, else in this process alone. `shared` reaches the workers by the fork itself, never
    pickled; tasks and results are pickled, so keep them small (an index, a range, a
    summary)."""
    global _shared
    if workers <= 1 or len(tasks) <= 1 or not can_fork():
        return [function(shared, task) for task in tasks]
    # The caller works too: a forked worker comes to hold a private copy of every page of
    # the shared data it touches, so one fewer of them is that much less memory.
    results: list[Any] = [None] * len(tasks)
    todo = deque(range(len(tasks)))
    pending: dict[Future[Any], int] = {}
    forks = min(workers, len(tasks)) - 1
    _shared = shared
    # With the fork method the executor forks all its workers before it starts its own
    # threads, so no child is forked from a process with threads.
    executor = ProcessPoolExecutor(
        max_workers=forks,
        mp_context=get_context("fork"),
        initializer=_start,
        initargs=(os.getpid(),),
    )
    try:
        while todo or pending:
            # Two tasks queued per worker keep it busy while the caller runs one of its own.
            while todo and len(pending) < 2 * forks:
                index = todo.popleft()
                pending[executor.submit(_with_shared, function, tasks[index])] = index
            if todo:
                index = todo.pop()  # from the other end: the two meet in the middle
                results[index] = function(shared, tasks[index])
            else:
                futures_wait(pending, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f.done()]:
                results[pending.pop(future)] = future.result()
        return results
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        _shared = None


def _with_shared(function: Callable[[Any, Any], Any], task: Any) -> Any:
    return function(_shared, task)


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
    _start(parent)
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        conn.send(function(task))


class JobFailed(Exception):
    """The job of `in_fresh_process` raised: its message, or its process died."""


def in_fresh_process(function: Callable[..., Any], *args: Any) -> tuple[Any, list[str]]:
    """`function(*args)` in a newly started interpreter (spawned, never forked: the caller
    may be a service with threads), waited for; returns its result and the lines it logged
    on the `krimppost` loggers. What the job loads is freed when it ends, so a service that
    runs jobs for months does not grow. The job ignores SIGINT and SIGTERM (the caller
    decides when to stop, and lets a running job finish) and dies with the caller on
    Linux. Raises JobFailed with the job's error message."""
    context = get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_run_job, args=(os.getpid(), send, function, args))
    process.start()
    send.close()
    try:
        outcome, value, lines = receive.recv()
    except (EOFError, OSError):
        process.join()
        raise JobFailed(f"het taakproces stopte onverwacht (exitcode {process.exitcode})") from None
    finally:
        receive.close()
    process.join()
    if outcome != "ok":
        raise JobFailed(value)
    return value, lines


def _run_job(parent: int, send: Any, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
    import logging

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _start(parent)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("krimppost")
    logger.addHandler(Collect())
    logger.setLevel(logging.INFO)
    try:
        answer: tuple[str, Any, list[str]] = ("ok", function(*args), lines)
    except BaseException as exc:
        answer = ("fout", str(exc) or type(exc).__name__, lines)
    send.send(answer)
    send.close()
