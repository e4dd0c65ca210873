"""Run one function over many items on threads, results in order (reading many runs).

Threads, not processes: the C scan and the C renderers release the GIL, and threads
share the results without copying them between processes. ``concurrent.futures``
does the work; this adds the order of results, a bound on what is in flight, and an
end that does not wait: on an error or Ctrl-C no item not yet started is started.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["default_jobs", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_order(
    function: Callable[[T], R], items: Iterable[T], *, jobs: int | None = None
) -> Iterator[R]:
    """``function(item)`` for each item, in order; on ``jobs`` threads (default: one per
    core) when there is more than one item.

    At most ``4 * jobs`` items are in flight, so that a long ``items`` is taken as the
    threads go. On the first failure (in item order) that exception is raised; the
    items not yet started are dropped.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    source = iter(items)
    if jobs == 1:
        yield from map(function, source)
        return
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
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)
    if failed is not None:
        raise failed
