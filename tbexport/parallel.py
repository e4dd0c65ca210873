"""Run one function over many items on threads, results in order (reading many runs).

Threads, not processes: the C scan and the C renderers release the GIL, and threads
share the results without copying them between processes. ``concurrent.futures``
does the work; this adds the order of results, a bound on what is in flight, and an
end that does not wait: on an error or Ctrl-C no item not yet started is started.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["chunk_for", "default_jobs", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_order(
    function: Callable[[T], R], items: Iterable[T], *, jobs: int | None = None, chunk: int = 1
) -> Iterator[R]:
    """``function(item)`` for each item, in order; on ``jobs`` threads (default: one per
    core).

    A thread takes ``chunk`` items at a time (a future per item costs ~50 us of
    hand-overs: more than listing a directory, a quarter of reading a small run). At
    most ``4 * jobs`` chunks are in flight, so that a long ``items`` is taken as the
    threads go. On the first failure (in item order) that exception is raised; the
    items not yet started are dropped.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if jobs == 1:
        yield from map(function, items)
        return
    stop = threading.Event()  # an item failed: the other chunks take no more
    for results in _on_threads(_apply(function, stop), _chunks(iter(items), chunk), jobs):
        yield from results


def chunk_for(items: int, jobs: int) -> int:
    """A chunk size that gives each of ``jobs`` threads about 8 chunks of ``items``."""
    return max(1, items // (8 * max(1, jobs)))


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class _Stopped(Exception):
    """A chunk cut short because an item of another chunk failed."""


def _apply(function: Callable[[T], R], stop: threading.Event) -> Callable[[list[T]], list[R]]:
    def apply(chunk: list[T]) -> list[R]:
        results = []
        for item in chunk:
            if stop.is_set():
                raise _Stopped
            try:
                results.append(function(item))
            except BaseException:
                stop.set()
                raise
        return results

    return apply


def _on_threads(function: Callable[[T], R], source: Iterator[T], jobs: int) -> Iterator[R]:
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="tbexport")
    pending: deque[Future[R]] = deque()
    failed: BaseException | None = None  # raised by ``items`` itself
    try:
        while True:
            try:
                item = next(source)
            except StopIteration:
                break
            except BaseException as error:  # after the items taken before it
                failed = error
                break
            pending.append(pool.submit(function, item))
            if len(pending) >= 4 * jobs:
                yield from _done(pending.popleft())
        while pending:
            yield from _done(pending.popleft())
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)
    if failed is not None:
        raise failed


def _done(future: Future[R]) -> Iterator[R]:
    """The future's result; nothing for a chunk cut short (the failure that cut it, in a
    later chunk, is raised when its turn comes)."""
    try:
        result = future.result()
    except _Stopped:
        return
    yield result
