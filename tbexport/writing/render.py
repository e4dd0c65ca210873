"""Render blocks of number rows to text on all cores, in order.

Formatting numbers is the slowest part of writing CSV and .xlsx. The C renderers
release the GIL, so blocks are rendered on threads: no worker processes to start
and no text to send back between them. Small exports stay on the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tbexport.parallel import default_jobs

PARALLEL_MIN_ROWS = 200_000
BLOCK_ROWS = 50_000


def render(
    function: Callable[..., bytes], blocks: Iterable[tuple[Any, ...]], rows: int
) -> Iterator[bytes]:
    """``function(*block)`` for each block, in order; on threads when ``rows`` is large."""
    jobs = default_jobs()
    if jobs == 1 or rows < PARALLEL_MIN_ROWS:
        for block in blocks:
            yield function(*block)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: list[Future[bytes]] = []
        for block in blocks:
            pending.append(pool.submit(function, *block))
            if len(pending) > 2 * jobs:  # bound the memory held by finished blocks
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()
