"""Read many runs on all cores; one run is always read by one worker.

With the C scanner, workers are threads: the scan releases the GIL, and threads
share the results without copying them between processes. The pure-Python reader
holds the GIL, so without the extension workers are processes. (Many small files
are read otherwise: C threads read and scan them ahead, and one Python thread takes
them; see ``Prefetcher`` in ``decode.py``.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from typing import TypeVar

__all__ = ["default_jobs", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")

# Below this many bytes in all, starting worker processes costs more than it saves.
# (Threads start in microseconds: they pay off from two runs on.)
PROCESSES_MIN_BYTES = 8 << 20


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def map_in_order(
    function: Callable[[T], R],
    items: Iterable[T],
    *,
    jobs: int | None = None,
    threads: bool = False,
    sizes: Callable[[Sequence[T]], Sequence[int]] | None = None,
    done: Callable[[R], None] | None = None,
) -> Iterator[R]:
    """``function(item)`` for each item, in order; on worker threads or processes when it pays.

    Threads take the items as ``items`` produces them (it may be a generator still
    finding them). Processes are started only for ``PROCESSES_MIN_BYTES`` of input
    or more, as ``sizes`` (bytes per item) says. ``done`` is called with each result
    as soon as it is ready, one call at a time (progress).
    """
    jobs = default_jobs() if jobs is None else max(1, jobs)
    if jobs > 1 and threads:
        yield from _on_threads(function, items, jobs, done)
        return
    if jobs > 1:
        listed = list(items)
        if len(listed) > 1 and (sizes is None or sum(sizes(listed)) >= PROCESSES_MIN_BYTES):
            yield from _on_processes(function, listed, jobs, done)
            return
        items = listed
    for item in items:
        result = function(item)
        if done is not None:
            done(result)
        yield result


def _on_processes(
    function: Callable[[T], R], items: list[T], jobs: int, done: Callable[[R], None] | None
) -> Iterator[R]:
    workers = min(jobs, len(items))
    with _process_pool(workers) as pool:
        chunk = max(1, len(items) // (workers * 8))
        for result in pool.map(function, items, chunksize=chunk):
            if done is not None:
                done(result)
            yield result


def _on_threads(
    function: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    done: Callable[[R], None] | None,
) -> list[R]:
    """Each thread takes the next item until none is left; results in item order.

    Cheaper than an executor's future per item: with items of ~1 ms, waking the
    waiting thread for every result costs a GIL hand-over per item, which the
    worker threads pay for too. On failure, the first failing item's exception is
    raised (as reading in order would) once the items already taken are done; an
    error of ``items`` itself counts as the item it failed to produce.
    """
    results: dict[int, R] = {}
    failures: dict[int, BaseException] = {}
    source = iter(items)
    taken = 0
    taking = threading.Lock()  # a generator cannot run on two threads at once
    reporting = threading.Lock()

    stop = threading.Event()  # the calling thread was interrupted (Ctrl-C)

    def take() -> tuple[int, T] | None:
        nonlocal taken
        with taking:
            if failures or stop.is_set():
                return None
            index = taken
            try:
                item = next(source)
            except StopIteration:
                return None
            except BaseException as error:  # re-raised on the calling thread
                failures[index] = error
                return None
            taken += 1
            return index, item

    def work() -> None:
        while (next_item := take()) is not None:
            index, item = next_item
            try:
                result = results[index] = function(item)
                if done is not None:
                    with reporting:
                        done(result)
            except BaseException as error:  # re-raised on the calling thread
                failures[index] = error
                return

    # daemon: Ctrl-C ends the process without waiting for the files in progress
    pool = [
        threading.Thread(target=work, name=f"tbexport-{n}", daemon=True) for n in range(workers)
    ]
    for thread in pool:
        thread.start()
    try:
        _wait_for(pool)
    except BaseException:  # Ctrl-C: the threads finish the item they hold, take no more
        stop.set()
        raise
    if failures:
        raise failures[min(failures)]
    return [results[index] for index in range(taken)]


def _wait_for(pool: list[threading.Thread]) -> None:
    for thread in pool:
        thread.join()


def _process_pool(workers: int) -> Executor:
    import multiprocessing  # only here: importing it costs ~1 MiB that threads never need
    from concurrent.futures import ProcessPoolExecutor

    # fork shares the already imported modules (starting is ~instant); elsewhere spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))
