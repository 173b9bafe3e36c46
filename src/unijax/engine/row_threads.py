"""Large elementwise work split into row ranges, run on unijax's own threads.

The Numba lowering runs a program that ends in one large fused loop this way (its
machine code releases the GIL). Every element is computed as on one thread, so the
values are the same bit for bit. The pool is made on first use and afresh in a forked
child, whose copy of the parent's pool has no threads.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["available_cpus", "run_rows"]

#: ``(pool, its size)``: the threads that run row ranges besides the caller's.
_pool: tuple[ThreadPoolExecutor, int] | None = None
_pool_lock = threading.Lock()


def available_cpus() -> int:
    """The CPUs this process may run on.

    Example:
        >>> available_cpus() >= 1
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _row_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of at least ``workers`` threads (made on first use, grown when asked for
    more; the smaller one it replaces finishes its work and ends)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[1] < workers:
            if _pool is not None:
                _pool[0].shutdown(wait=False)
            _pool = (ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="unijax-rows"), workers)
        return _pool[0]


def _forget_pool() -> None:
    """In a forked child: the parent's pool has none of its threads there (work queued
    on it would never run), and its lock may have been held at the fork."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_rows(work: Callable[[int, int], Any], rows: int, threads: int) -> None:
    """Call ``work(lo, hi)`` for ``threads`` equal ranges of ``rows`` at once: the
    calling thread takes the first, the pool the others.

    Example:
        >>> done = []
        >>> run_rows(lambda lo, hi: done.append((lo, hi)), 10, 3)
        >>> sorted(done)
        [(0, 3), (3, 6), (6, 10)]
    """
    threads = max(1, min(threads, rows))
    bounds = [rows * k // threads for k in range(threads + 1)]
    pending = [] if threads == 1 else [
        _row_pool(threads - 1).submit(work, lo, hi)
        for lo, hi in itertools.pairwise(bounds[1:])]
    try:
        work(bounds[0], bounds[1])
    finally:
        for future in pending:
            future.result()
