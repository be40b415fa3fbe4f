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
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
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
