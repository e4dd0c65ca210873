"""Read many runs on all cores; one run is always read by one process."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

__all__ = ["default_jobs", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")

# Below this many bytes in all, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 8 << 20


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_order(
    function: Callable[[T], R],
    items: Sequence[T],
    sizes: Sequence[int],
    *,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[R]:
    """``function(item)`` for each item, in order; on worker processes when it pays.

    ``sizes`` (bytes of input per item) decide whether it pays and feed ``progress``.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if jobs == 1 or len(items) < 2 or sum(sizes) < PARALLEL_MIN_BYTES:
        for item, size in zip(items, sizes, strict=True):
            yield function(item)
            if progress is not None:
                progress(size)
        return
    # fork shares the already imported modules (starting is ~instant); elsewhere spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    workers = min(jobs, len(items))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        chunk = max(1, len(items) // (workers * 8))
        for result, size in zip(pool.map(function, items, chunksize=chunk), sizes, strict=True):
            yield result
            if progress is not None:
                progress(size)
