"""Read many runs on all cores; one run is always read by one worker.

With the C scanner, workers are threads: the scan releases the GIL, and threads
share the results without copying them between processes. The pure-Python reader
holds the GIL, so without the extension workers are processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["default_jobs", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")

# Below this many bytes in all, starting workers costs more than it saves.
PARALLEL_MIN_BYTES = {"threads": 1 << 20, "processes": 8 << 20}


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
    threads: bool = False,
) -> Iterator[R]:
    """``function(item)`` for each item, in order; on worker threads or processes when it pays.

    ``sizes`` (bytes of input per item) decide whether it pays and feed ``progress``.
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    kind = "threads" if threads else "processes"
    if jobs == 1 or len(items) < 2 or sum(sizes) < PARALLEL_MIN_BYTES[kind]:
        for item, size in zip(items, sizes, strict=True):
            yield function(item)
            if progress is not None:
                progress(size)
        return
    workers = min(jobs, len(items))
    with _executor(workers, threads) as pool:
        chunk = 1 if threads else max(1, len(items) // (workers * 8))
        for result, size in zip(pool.map(function, items, chunksize=chunk), sizes, strict=True):
            yield result
            if progress is not None:
                progress(size)


def _executor(workers: int, threads: bool) -> Executor:
    if threads:
        return ThreadPoolExecutor(max_workers=workers)
    import multiprocessing  # only here: importing it costs ~1 MiB that threads never need
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the already imported modules (starting is ~instant); elsewhere spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
