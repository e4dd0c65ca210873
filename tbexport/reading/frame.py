"""Every run's series in one long DataFrame: runs then tags in natural order, the
columns joined (or, for one file, the very arrays the scan filled)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from tbexport.model import (
    Series,
)
from tbexport.parallel import default_jobs, map_in_order
from tbexport.reading.discover import natural_key
from tbexport.tuning import current

__all__ = ["code_dtype", "frame_order", "join_columns", "long_frame"]


def frame_order(by_tag: dict[str, Series]) -> list[tuple[str, Series]]:
    """A run's series as the frame holds them: tags in natural order, empty ones left out."""
    return [(tag, by_tag[tag]) for tag in sorted(by_tag, key=natural_key) if len(by_tag[tag].steps)]


def code_dtype(categories: int) -> type[np.signedinteger[Any]]:
    """The integer type of categorical codes, as pandas makes them."""
    return np.int8 if categories < 2**7 else np.int16 if categories < 2**15 else np.int32


def long_frame(
    run_names: list[str],
    pieces: list[tuple[int, str, int, Series]],
    tags: set[str],
    jobs: int | None = None,
) -> pd.DataFrame:
    """One frame of every run's series (``tags``: their union), runs then tags in order.

    ``pieces``: (run code, tag, points, series) in frame order.
    """
    tag_names = sorted(tags, key=natural_key)
    tag_codes = {tag: i for i, tag in enumerate(tag_names)}
    lengths = [length for _, _, length, _ in pieces]
    run_codes = np.array([code for code, _, _, _ in pieces], dtype=code_dtype(len(run_names)))
    tag_of = np.array([tag_codes[t] for _, t, _, _ in pieces], dtype=code_dtype(len(tag_names)))
    columns = join_columns(
        {
            "step": [s.steps for _, _, _, s in pieces],
            "wall_time": [s.wall_times for _, _, _, s in pieces],
            "value": [s.values for _, _, _, s in pieces],
        },
        {"step": np.int64, "wall_time": np.float64, "value": np.float64},
        jobs,
    )
    return _frame(
        run_names, np.repeat(run_codes, lengths), tag_names, np.repeat(tag_of, lengths), columns
    )


def _frame(
    run_names: list[str],
    run_codes: np.ndarray,
    tag_names: list[str],
    tag_codes: np.ndarray,
    columns: dict[str, np.ndarray],
) -> pd.DataFrame:
    # (the codes are positions in the names by construction: checking each row's code
    # is a pass over the whole column, on one core)
    return pd.DataFrame(
        copy=False,
        data={
            "run": pd.Categorical.from_codes(
                run_codes, categories=pd.Index(run_names), validate=False
            ),
            "tag": pd.Categorical.from_codes(
                tag_codes, categories=pd.Index(tag_names), validate=False
            ),
            **columns,
        },
    )


def join_columns(
    pieces: dict[str, list[np.ndarray]], dtypes: dict[str, type[np.generic]], jobs: int | None
) -> dict[str, np.ndarray]:
    """Each column's pieces concatenated (or viewed whole, when they are one array in order).

    Large columns are joined on threads, a stretch of pieces each: filling fresh
    memory costs page faults, and both those and the copy go faster on several cores.
    """
    joined: dict[str, np.ndarray] = {}
    tasks: list[tuple[list[np.ndarray], np.ndarray]] = []
    threads = 1
    for name, arrays in pieces.items():
        whole = _whole(arrays)
        if whole is not None:
            joined[name] = whole
            continue
        ends = np.cumsum([len(a) for a in arrays], dtype=np.int64)
        total = int(ends[-1]) if len(arrays) else 0
        out = joined[name] = np.empty(total, dtype=dtypes[name])
        parts = 1
        if total >= current().join_threads_points:
            # (no more stretches than pieces: -j 99999999 made a list of 10**8 cuts)
            parts = min(jobs or default_jobs(), len(arrays))
            threads = max(threads, parts)
        # stretches of about total / parts points: pieces cuts[k]..cuts[k + 1]
        targets = [total * k // parts for k in range(1, parts)]
        cuts = [0, *np.searchsorted(ends, targets, side="right").tolist(), len(arrays)]
        for first, last in itertools.pairwise(cuts):
            if last > first:
                begin = int(ends[first - 1]) if first else 0
                tasks.append((arrays[first:last], out[begin : int(ends[last - 1])]))
    for _ in map_in_order(_concatenate_into, tasks, jobs=threads):
        pass
    return joined


def _concatenate_into(task: tuple[list[np.ndarray], np.ndarray]) -> None:
    arrays, out = task
    np.concatenate(arrays, out=out)


def _whole(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The one array ``arrays`` are consecutive views of, in order (a one-file run), if so."""
    if not arrays:
        return None
    base = arrays[0].base
    if not (isinstance(base, np.ndarray) and base.ndim == 1 and base.flags.c_contiguous):
        return None
    size = arrays[0].itemsize
    start = (arrays[0].ctypes.data - base.ctypes.data) // size
    position = start
    for array in arrays:
        if array.base is not base or array.ctypes.data != base.ctypes.data + position * size:
            return None
        position += len(array)
    return base[start:position]
