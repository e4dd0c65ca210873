"""Runs copied into the frame's columns as they are read, instead of joined at the end.

Joining the runs of a sweep after reading them copies every point into fresh memory
on one core while the other cores wait, and fresh memory is slow to fault in. Here
one set of columns is reserved before reading, big enough for as many points as the
files can hold (only the part filled is ever touched). Each run read is copied to its
place by the thread that read it, while the others go on reading, and its own buffers
are freed at once for the next scans to reuse. The frame then views the filled part.

A run's place is known once every run before it has been read. When a file grew past
what was reserved for it, nothing more is placed and the frame is joined as before.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .decode import Series, _fastscan, max_points
from .discover import Run, natural_key

__all__ = ["Placed", "RunPlacer", "frame_order", "whole_of"]

# Reserve columns only up to this many bytes of address space (only what is filled is
# ever touched, but a reservation beyond the machine's memory may be refused).
_RESERVE_MAX_BYTES = 2 << 30
_BYTES_PER_ROW = 24  # step, wall time and value: 8 bytes each


@dataclass
class Placed:
    """Where a run's points went: from row ``start``, each tag's count in frame order."""

    start: int
    lengths: list[tuple[str, int]]


class _ReadRun(Protocol):
    run: Run
    series: dict[str, Series]  # emptied once placed
    placed: Placed | None


def frame_order(by_tag: dict[str, Series]) -> list[tuple[str, Series]]:
    """A run's series as the frame holds them: tags in natural order, empty ones left out."""
    return [(tag, by_tag[tag]) for tag in sorted(by_tag, key=natural_key) if len(by_tag[tag].steps)]


def whole_of(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The one array ``arrays`` are consecutive views of, in order, if they are."""
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


class RunPlacer:
    """Places each run read in columns shared by all runs, in order, as soon as it can.

    ``runs`` are in frame order; columns are reserved for them when there are two or
    more. ``place()`` takes each run read, on the reader's thread.
    """

    def __init__(self, runs: list[Run]) -> None:
        self._lock = threading.Lock()
        self._index = {run: i for i, run in enumerate(runs)}
        self._waiting: dict[int, _ReadRun] = {}  # read, not placed yet
        self._next = 0  # index of the next run to place
        self._rows = 0  # rows placed, or being copied
        self._columns: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._stopped = len(runs) < 2  # one run's columns are viewed whole anyway
        self._to_reserve = [] if self._stopped else runs
        self._reserving = threading.Lock()

    def place(self, result: _ReadRun) -> None:
        """Queue a run read; copy it, and any queued runs after it, once their places are known."""
        with self._lock:
            if self._stopped:
                return
            self._waiting[self._index[result.run]] = result
        if self._to_reserve:
            self._reserve()
        self._copy_ready()

    def joined(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The steps, wall times and values of every run in order, once all are placed."""
        self._copy_ready()  # runs queued while the columns were being reserved
        with self._lock:
            if self._columns is None or self._stopped or self._next < len(self._index):
                return None
            steps, walls, values = (column[: self._rows] for column in self._columns)
            return steps, walls, values

    def _reserve(self) -> None:
        """Reserve the columns, on the thread of the first run read: the others read on
        meanwhile, and queue their runs (the files' sizes take a system call each)."""
        if not self._reserving.acquire(blocking=False):
            return  # another thread reserves
        try:
            runs, self._to_reserve = self._to_reserve, []
            if not runs:
                return
            rows = sum(max_points(path, _size(path)) for run in runs for path in run.files)
            columns = None
            if rows * _BYTES_PER_ROW <= _RESERVE_MAX_BYTES:
                columns = (np.empty(rows, np.int64), np.empty(rows), np.empty(rows))
            with self._lock:
                self._columns, self._stopped = columns, columns is None
        finally:
            self._reserving.release()

    def _copy_ready(self) -> None:
        """Take the runs whose places are known now, and copy them outside the lock, so
        that the threads copy side by side."""
        ready: list[tuple[_ReadRun, int]] = []
        with self._lock:
            if self._columns is None or self._stopped:
                return
            capacity = len(self._columns[0])
            while self._next in self._waiting:
                waiting = self._waiting.pop(self._next)
                rows = sum(len(series.steps) for series in waiting.series.values())
                if self._rows + rows > capacity:  # a file grew since its size was taken
                    self._stopped = True
                    break
                ready.append((waiting, self._rows))
                self._rows += rows
                self._next += 1
            columns = self._columns
        for waiting, start in ready:
            # its own buffers go now, on this thread, for its next scans to reuse
            waiting.placed = _copied(waiting.series, columns, start)
            waiting.series = {}

    def series_of(self, placed: Placed) -> dict[str, Series]:
        """A placed run's series again, as views of the columns (to join them after all)."""
        assert self._columns is not None
        steps, walls, values = self._columns
        series: dict[str, Series] = {}
        row = placed.start
        for tag, length in placed.lengths:
            rows = slice(row, row + length)
            series[tag] = Series(steps[rows], walls[rows], values[rows])
            row = rows.stop
        return series


def _copied(by_tag: dict[str, Series], columns: tuple[np.ndarray, ...], start: int) -> Placed:
    """The run's series copied to ``columns`` from row ``start``."""
    ordered = frame_order(by_tag)
    lengths = [(tag, len(series.steps)) for tag, series in ordered]
    if not ordered:
        return Placed(start, lengths)
    end = start + sum(length for _, length in lengths)
    pieces = tuple(
        tuple(getattr(series, name) for _, series in ordered)
        for name in ("steps", "wall_times", "values")
    )
    if _fastscan is not None:  # one release of the GIL for all the copies
        _fastscan.join(pieces, columns, start * 8)
    else:
        for column, column_pieces in zip(columns, pieces, strict=True):
            np.concatenate(column_pieces, out=column[start:end])
    return Placed(start, lengths)


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # gone since the walk: its reader reports it
        return 0
