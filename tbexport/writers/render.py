"""Render blocks of number rows to text on all cores, in order.

Formatting doubles in their shortest round-trip form is the slowest part of
writing CSV and .xlsx (about 0.5 µs a number, in C or Python alike), so large
exports spread it over worker processes; small ones stay in this process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ..parallel import default_jobs

PARALLEL_MIN_ROWS = 300_000
BLOCK_ROWS = 100_000


def render(
    function: Callable[..., bytes], blocks: Iterable[tuple[Any, ...]], rows: int
) -> Iterator[bytes]:
    """``function(*block)`` for each block, in order; in parallel when ``rows`` is large."""
    jobs = default_jobs()
    if (
        jobs == 1
        or rows < PARALLEL_MIN_ROWS
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        for block in blocks:
            yield function(*block)
        return
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        pending = []
        for block in blocks:
            pending.append(pool.submit(function, *block))
            if len(pending) > 2 * jobs:  # bound the memory held by finished blocks
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
