"""Runs copied into the frame's columns as they are read, instead of joined at the end.

Joining the runs of a sweep after reading them copies every point into fresh memory
on one core while the other cores wait, and fresh memory is slow to fault in. Here
one set of columns is reserved before reading, big enough for as many points as the
files can hold (only the part filled is ever touched). Each run read is copied to its
place by the thread that read it (or, when C threads read ahead, by the one thread
that takes their files), with its rows' run and tag codes, while the others go on
reading, and its own buffers are freed at once for the next scans to reuse.
The frame then views the filled part.

A run's place is known once every run before it has been read. When a file grew past
what was reserved for it, when the runs hold more tags than one-byte codes can name,
or when the reservation is refused, nothing more is placed and the frame is joined
as before.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .decode import Series, _fastscan, max_points
from .discover import Run, natural_key

__all__ = ["Columns", "Placed", "RunPlacer", "code_dtype", "frame_order"]

# Reserve columns only up to this many bytes of address space (only what is filled is
# ever touched, but a reservation beyond the machine's memory may be refused).
_RESERVE_MAX_BYTES = 2 << 30
_BYTES_PER_ROW = 29  # step, wall time, value: 8 bytes each; run code up to 4, tag code 1
_MAX_TAGS = 127  # tag codes in one byte; past that, the frame is joined as before


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


@dataclass
class Columns:
    """Every run's points, placed: the frame's columns, and each row's run and tag codes."""

    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    run_codes: np.ndarray  # positions in the runs, in code_dtype(runs)
    tag_codes: np.ndarray  # int8 positions in tags
    tags: list[str]  # in the order they were first placed


def code_dtype(categories: int) -> type[np.signedinteger[Any]]:
    """The integer type of categorical codes, as pandas makes them."""
    return np.int8 if categories < 2**7 else np.int16 if categories < 2**15 else np.int32


class RunPlacer:
    """Places each run read in columns shared by all runs, in order, as soon as it can.

    ``runs`` are in frame order; columns are reserved for them when there are two or
    more, as big as their files' ``sizes`` (path: bytes) allow. ``place()`` takes each
    run read, on the reader's thread.
    """

    def __init__(self, runs: list[Run], sizes: dict[str, int]) -> None:
        self._sizes = sizes
        self._lock = threading.Lock()
        self._index = {run: i for i, run in enumerate(runs)}
        self._waiting: dict[int, _ReadRun] = {}  # read, not placed yet
        self._next = 0  # index of the next run to place
        self._rows = 0  # rows placed, or being copied
        self._tags: dict[str, int] = {}  # tag codes, given as the tags are first placed
        self._columns: tuple[np.ndarray, ...] | None = None
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

    def joined(self) -> Columns | None:
        """Every run's points in order, once all are placed."""
        self._copy_ready()  # runs queued while the columns were being reserved
        with self._lock:
            if self._columns is None or self._stopped or self._next < len(self._index):
                return None
            steps, walls, values, runs, tags = (c[: self._rows] for c in self._columns)
            return Columns(steps, walls, values, runs, tags, list(self._tags))

    def series_of(self, placed: Placed) -> dict[str, Series]:
        """A placed run's series again, as views of the columns (to join them after all)."""
        assert self._columns is not None
        steps, walls, values, _, _ = self._columns
        series: dict[str, Series] = {}
        row = placed.start
        for tag, length in placed.lengths:
            rows = slice(row, row + length)
            series[tag] = Series(steps[rows], walls[rows], values[rows])
            row = rows.stop
        return series

    def _reserve(self) -> None:
        """Reserve the columns, on the thread of the first run read: the others read on
        meanwhile, and queue their runs."""
        if not self._reserving.acquire(blocking=False):
            return  # another thread reserves
        try:
            runs, self._to_reserve = self._to_reserve, []
            if not runs:
                return
            sizes = self._sizes
            rows = sum(
                max_points(path, sizes[os.fspath(path)]) for run in runs for path in run.files
            )
            columns: tuple[np.ndarray, ...] | None = None
            if rows * _BYTES_PER_ROW <= _RESERVE_MAX_BYTES:
                columns = _reserved(rows, code_dtype(len(runs)))
            with self._lock:
                self._columns, self._stopped = columns, columns is None
        finally:
            self._reserving.release()

    def _copy_ready(self) -> None:
        """Take the runs whose places are known now, and copy them outside the lock, so
        that the threads copy side by side."""
        ready: list[tuple[_ReadRun, list[tuple[str, Series]], Placed, int, list[int]]] = []
        with self._lock:
            if self._columns is None or self._stopped:
                return
            capacity = len(self._columns[0])
            while self._next in self._waiting:
                waiting = self._waiting[self._next]
                ordered = frame_order(waiting.series)
                lengths = [(tag, len(series.steps)) for tag, series in ordered]
                rows = sum(length for _, length in lengths)
                codes = [self._tags.setdefault(tag, len(self._tags)) for tag, _ in lengths]
                # a file grew since its size was taken, or more tags than int8 codes
                if self._rows + rows > capacity or len(self._tags) > _MAX_TAGS:
                    self._stopped = True
                    break
                del self._waiting[self._next]
                placed = Placed(self._rows, lengths)
                ready.append((waiting, ordered, placed, self._next, codes))
                self._rows += rows
                self._next += 1
            columns = self._columns
        for waiting, ordered, placed, run_code, codes in ready:
            _copy(ordered, columns, placed, run_code, codes)
            # its own buffers go now, on this thread, for its next scans to reuse
            waiting.placed, waiting.series = placed, {}


def _copy(
    ordered: list[tuple[str, Series]],
    columns: tuple[np.ndarray, ...],
    placed: Placed,
    run_code: int,
    tag_codes: list[int],
) -> None:
    """A run's series (in frame order) copied to ``columns`` where ``placed`` says, with
    the code of the run and of each tag."""
    if not ordered:
        return
    pieces = tuple(
        tuple(getattr(series, name) for _, series in ordered)
        for name in ("steps", "wall_times", "values")
    )
    lengths = [length for _, length in placed.lengths]
    runs = ((run_code, sum(lengths)),)
    tags = tuple(zip(tag_codes, lengths, strict=True))
    assert _fastscan is not None  # (placing is for threads, which need the C scanner)
    _fastscan.join((*pieces, runs, tags), columns, placed.start)  # one release of the GIL


def _reserved(rows: int, run_codes: type[np.signedinteger[Any]]) -> tuple[np.ndarray, ...] | None:
    """Columns of ``rows`` rows: steps, wall times, values, run codes, tag codes."""
    try:
        steps, walls, values = np.empty(rows, np.int64), np.empty(rows), np.empty(rows)
        return steps, walls, values, np.empty(rows, run_codes), np.empty(rows, np.int8)
    except MemoryError:  # address space refused (a strict overcommit policy, ulimit -v)
        return None
