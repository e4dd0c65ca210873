"""Read many event files on all cores; one file is always read by one process."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from .decode import FileScalars, GlobFilter, read_event_file

__all__ = ["default_jobs", "read_files"]

# Below this many bytes in all, starting worker processes costs more than it saves.
PARALLEL_MIN_BYTES = 8 << 20


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_files(
    files: Sequence[Path],
    accept: GlobFilter,
    *,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
    jobs: int | None = None,
) -> list[FileScalars]:
    """Read ``files`` (in parallel when it pays), returning results in the same order."""
    jobs = default_jobs() if jobs is None else max(1, jobs)
    sizes = [os.path.getsize(f) for f in files]
    if jobs == 1 or len(files) < 2 or sum(sizes) < PARALLEL_MIN_BYTES:
        return [read_event_file(f, accept, verify=verify, progress=progress) for f in files]
    read = partial(read_event_file, accept=accept, verify=verify)
    # fork shares the already imported modules (starting is ~instant); elsewhere spawn.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=min(jobs, len(files)), mp_context=context) as pool:
        results = []
        # Largest files first would balance better, but map keeps order and memory simple.
        for result, size in zip(
            pool.map(read, files, chunksize=_chunk(len(files), jobs)), sizes, strict=True
        ):
            results.append(result)
            if progress is not None:
                progress(size)
        return results


def _chunk(files: int, jobs: int) -> int:
    return max(1, files // (jobs * 8))
