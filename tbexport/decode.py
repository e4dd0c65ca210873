"""Turn the records of one event file into per-tag scalar series.

Scalars come in two encodings: ``Summary.Value.simple_value`` (float32; PyTorch's
``SummaryWriter``, tensorboardX, Lightning) and rank-0 tensors of the ``scalars``
plugin (TF2 ``tf.summary.scalar``, ``SummaryWriter(new_style=True)``), in
``tensor_content`` or the typed ``*_val`` fields. Everything else is skipped.

Two readers give identical results: the C extension ``_fastscan`` decodes the
common simple_value and tensor events itself and hands every other record to
:mod:`tbexport.protobuf_events`; without the extension, every record goes there.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from .discover import natural_key
from .records import (
    SHRANK,
    Corruption,
    FileBuffer,
    FileBytes,
    FileShrank,
    RecordScan,
    is_truncated_tail,
)

if TYPE_CHECKING:
    from .protobuf_events import Event

_fastscan: ModuleType | None
try:
    from . import _fastscan  # type: ignore[attr-defined,no-redef]
except ImportError:  # built without a C compiler: the protobuf path does everything
    _fastscan = None

__all__ = [
    "FileScalars",
    "GlobFilter",
    "Series",
    "TagFilter",
    "max_points",
    "read_event_file",
    "tag_filter",
]

_CHUNK_BYTES = 1 << 20  # how often the C scanner reports progress

HParam = float | str | bool

TagFilter = Callable[[str], bool]


@dataclass
class Series:
    """The points of one tag in file order: int64 steps, float64 wall times and values."""

    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    # (points before it, step) of each purge_step restart that applies to this tag
    purges: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class FileScalars:
    """Everything read from one event file."""

    path: str
    series: dict[str, Series]
    corruptions: list[Corruption]
    truncated_tail: int
    valid_records: int
    # SessionLog START events (``purge_step``): (step, points each tag had before it)
    purges: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    hparams: dict[str, HParam] = field(default_factory=dict)
    size: int = 0  # bytes read


@dataclass(frozen=True)
class GlobFilter:
    """Matches tags against glob patterns; no patterns match everything. Picklable.

    ``ignore_case``: ``val_*`` also matches ``Val_Loss``.
    """

    patterns: tuple[str, ...] = ()
    ignore_case: bool = False

    def __call__(self, tag: str) -> bool:
        if not self.patterns:
            return True
        if self.ignore_case:
            tag = tag.casefold()
            return any(fnmatchcase(tag, p.casefold()) for p in self.patterns)
        return any(fnmatchcase(tag, p) for p in self.patterns)

    def unmatched(self, tags: Iterable[str]) -> list[str]:
        """The patterns that match none of ``tags``."""
        tags = list(tags)
        return [
            p for p in self.patterns if not any(GlobFilter((p,), self.ignore_case)(t) for t in tags)
        ]


def tag_filter(patterns: list[str] | None, ignore_case: bool = False) -> GlobFilter:
    """A predicate matching tags against glob patterns (all tags when ``patterns`` is empty)."""
    return GlobFilter(tuple(patterns or ()), ignore_case)


@dataclass
class _Points:
    """The points decoded by protobuf, in record order, and what else those records said.

    With the C scanner these are the points of the records it handed over; each
    carries ``before``, how many of the scanner's points precede its record, which
    places it among them.
    """

    tag_ids: dict[str, int] = field(default_factory=dict)
    tags: array[int] = field(default_factory=lambda: array("i"))
    steps: array[int] = field(default_factory=lambda: array("q"))
    wall_times: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    flags: array[int] = field(default_factory=lambda: array("b"))  # as the C scanner's
    before: array[int] = field(default_factory=lambda: array("q"))
    # purge_step restarts: (points of the whole file before the restart, step)
    purges: list[tuple[int, int]] = field(default_factory=list)
    hparams: dict[str, HParam] = field(default_factory=dict)

    def add(
        self, tag: str, step: int, wall_time: float, number: float, before: int, flags: int
    ) -> None:
        """One point decoded by protobuf, after ``before`` points of the C scanner."""
        self.tags.append(self.tag_ids.setdefault(tag, len(self.tag_ids)))
        self.steps.append(step)
        self.wall_times.append(wall_time)
        self.values.append(number)
        self.flags.append(flags)
        self.before.append(before)

    def restart(self, step: int, before: int) -> None:
        """A purge_step restart, after ``before`` points of the C scanner."""
        self.purges.append((before + len(self.steps), step))


def strictly_increasing(steps: np.ndarray) -> bool:
    """Whether each int64 step is above the one before it (no restart to resolve)."""
    if _fastscan is not None and steps.dtype == np.int64 and steps.flags.c_contiguous:
        return bool(_fastscan.increasing(steps))
    return bool(np.all(steps[1:] > steps[:-1]))


# Set (before tbexport is imported) to read with protobuf alone, as without the extension.
_PURE_PYTHON = bool(os.environ.get("TBEXPORT_PURE_PYTHON"))


def scans_without_gil() -> bool:
    """Whether files are read by the C scanner, which lets other threads run meanwhile."""
    return _fastscan is not None and not _PURE_PYTHON


def max_points(path: str | os.PathLike[str], size: int) -> int:
    """The most scalar points a file of ``size`` bytes can hold (a bound, for reserving)."""
    if os.path.basename(path) == "metrics.csv":
        return size // 2 + 1  # a point is a cell of one character or more, and a separator
    # The smallest point is one value of a Summary of many: field key and length (2 bytes)
    # around a simple_value (key and float32: 5 bytes).
    return size // 7 + 1


def read_event_file(
    path: str | os.PathLike[str],
    accept: TagFilter | None = None,
    *,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
    prefetched: Prefetcher | None = None,
) -> FileScalars:
    """Read every scalar point of one event file, skipping (and reporting) damaged records.

    A Lightning CSVLogger ``metrics.csv`` is read too (see :mod:`tbexport.csvlogger`).
    ``prefetched``: where the file may already have been read and scanned.
    """
    if _is_metrics_csv(path):
        from .csvlogger import read_metrics_csv

        result = read_metrics_csv(path, accept)
        if progress is not None:
            progress(result.size)
        return result
    scan = RecordScan(path, verify=verify)
    points = _Points()
    fetched = prefetched.take(scan.path) if prefetched is not None else None
    small = _read_small(scan.path) if fetched is None else None
    if fetched is not None:
        size, fast = _scan_fetched(fetched, scan, points, progress)
    elif small is not None:
        size, fast = len(small), _scan(small, scan, points, progress)
    else:
        with _file_bytes(scan.path) as buf:
            size, fast = len(buf), _scan(buf, scan, points, progress)
    accept = accept or (lambda tag: True)
    if fast.grouped is not None:  # the scanner grouped the whole file
        series = _series_by_tag(fast.grouped, accept)
        purges: list[tuple[int, dict[str, int]]] = []
    else:
        series, purges = _assemble(points, fast.chunks, accept)
    return FileScalars(
        scan.path,
        series,
        scan.corruptions,
        scan.truncated_tail,
        scan.valid_records,
        purges,
        points.hparams,
        size,
    )


def _is_metrics_csv(path: str | os.PathLike[str]) -> bool:
    return os.path.basename(path) == "metrics.csv"


class Prefetcher:
    """Small event files read and scanned ahead on C threads, for one thread to take in
    the order given (``Prefetch`` in ``_fastscan.c``).

    With many small runs read on Python threads, each file costs a few hand-overs of
    the GIL, and they, not the cores, set the pace. The C threads never take the GIL:
    the thread taking the files does the Python part meanwhile, and reads files too
    rather than wait for one. At most ``_PREFETCH_BUDGET`` bytes of results wait to be
    taken.
    """

    def __init__(self, paths: list[str], *, verify: bool, workers: int) -> None:
        assert _fastscan is not None
        self._paths = paths
        self._next = 0
        self._prefetch = _fastscan.Prefetch(
            paths, verify, workers, _MAP_MIN_BYTES, _PREFETCH_BUDGET
        )

    def take(self, path: str) -> tuple[Any, ...] | None:
        """The scan of ``path``, the next file in order; None: read it as usual."""
        if self._next >= len(self._paths) or self._paths[self._next] != path:
            return None  # not the file expected: this one is read as usual
        self._next += 1
        fetched: tuple[Any, ...] | None = self._prefetch.take()
        return fetched

    def close(self) -> None:
        """Stop the C threads and free the results not taken."""
        self._prefetch.close()


_PREFETCH_BUDGET = 8 << 20  # more was no faster (2 MiB and up alike), and held more memory


def prefetcher(sizes: dict[str, int], *, verify: bool, workers: int) -> Prefetcher | None:
    """A :class:`Prefetcher` for the event files among ``sizes`` (path: bytes, in the
    order they are to be read), when ``workers`` threads would gain from one: several
    files, none of them big (big files are read on Python threads, one each, as they
    release the GIL)."""
    if workers < 2 or not scans_without_gil() or not hasattr(_fastscan, "Prefetch"):
        return None
    files = [f for f in sizes if not _is_metrics_csv(f)]
    if len(files) < 2 or any(sizes[f] >= _MAP_MIN_BYTES for f in files):
        return None
    # The taking thread is one of the readers: a C thread for each of the others. (One
    # C thread per worker, beside the taker, made three threads time-share two cores:
    # 15% more CPU time, and the sweep on 2 cores 0.90 as fast.)
    return Prefetcher(files, verify=verify, workers=min(workers, len(files)) - 1)


def file_sizes(paths: list[str]) -> dict[str, int]:
    """Each file's size in bytes, 0 for a file gone since the walk (its reader reports it)."""
    if _fastscan is not None and hasattr(_fastscan, "file_sizes"):
        sizes: list[int] = _fastscan.file_sizes(paths)  # one release of the GIL
        return {path: max(size, 0) for path, size in zip(paths, sizes, strict=True)}
    return {path: _size(path) for path in paths}


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _scan_fetched(
    fetched: tuple[Any, ...],
    scan: RecordScan,
    points: _Points,
    progress: Callable[[int], None] | None,
) -> tuple[int, _Scanned]:
    """A prefetched file's scan carried on as ``_scan_fast`` would (see ``Prefetch.take``)."""
    contents, size, _, record, steps, walls, values, _, flags, _, bounds, names = fetched
    if contents is not None:  # damaged, or records left to protobuf: the general path goes on
        buf = memoryview(contents)
        if not len(buf):
            return 0, _Scanned()
        table = _TagTable()
        table.names = names
        advance = _Advance(buf, progress, passes=1)
        return len(buf), _scan_in_order(buf, scan, points, table, advance, first=[*fetched[1:-1]])
    steps, walls, values, _, flags = _arrays([steps, walls, values, None, flags])
    assert steps is not None and walls is not None and values is not None
    if progress is not None:
        progress(size)
    scan.valid_records, scan.position = record, size
    decoded = [n.decode("utf-8", errors="replace") for n in names]  # in the order met
    grouped = _Grouped(decoded, np.frombuffer(bounds, np.int64), steps, walls, values, flags)
    return size, _Scanned(grouped=grouped)


# Larger files are read a window at a time as the scan goes (FileBytes; in C, a
# (fd, size, window) source), so memory stays bounded; smaller ones are read whole.
# Never mapped: a mapped file that shrinks under the reader kills the process (SIGBUS).
# (The name is older than that.)
_MAP_MIN_BYTES = 16 << 20
# What the C scanner reads at a time from a big file (it grows for a longer record).
# One pass over 1M points (55 MB, in the page cache), best of 30: 64 KiB 32.6 ms,
# 256 KiB 31.0, 1 MiB 31.1, 8 MiB 31.4; the mapping this replaced, 31.2.
_WINDOW_BYTES = 1 << 20


def _read_small(path: str) -> memoryview | None:
    """A file below ``_MAP_MIN_BYTES`` read whole by the C reader (with threads, Python's
    open() and read() would hand the GIL over ten times); None for the others."""
    if _fastscan is None or not scans_without_gil() or not hasattr(_fastscan, "read_small"):
        return None
    small = _fastscan.read_small(path, _MAP_MIN_BYTES)
    return None if small is None else memoryview(small)


def open_regular(path: str) -> int:
    """A descriptor of ``path`` open for reading; OSError unless it is a regular file.

    (Opened without blocking: a FIFO named like an event file would block open() until
    a writer came. O_NONBLOCK changes nothing for a regular file.)
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return fd


@contextmanager
def _file_bytes(path: str) -> Iterator[FileBuffer]:
    with open(open_regular(path), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < _MAP_MIN_BYTES or not size or not _reads_in_windows():
            yield handle.read()
            return
        yield FileBytes(handle.fileno())


def _reads_in_windows() -> bool:
    """Whether big files can be read a window at a time here (else they are read whole)."""
    if not hasattr(os, "pread"):
        return False
    return not scans_without_gil() or bool(getattr(_fastscan, "READS_FILES", False))


def _source(buf: FileBuffer, size: int | None = None) -> object:
    """``buf`` as the C scanner takes it, up to ``size``: a buffer, or a file as
    ``(fd, size, window)``."""
    if isinstance(buf, FileBytes):
        return (buf.fd, len(buf) if size is None else size, _WINDOW_BYTES)
    return buf if size is None or size == len(buf) else memoryview(buf)[:size]


def _scan(
    buf: FileBuffer, scan: RecordScan, points: _Points, progress: Callable[[int], None] | None
) -> _Scanned:
    """Scan a file's bytes: in C where built, else with protobuf (into ``points``)."""
    if not len(buf):
        return _Scanned()
    if scans_without_gil():
        return _scan_fast(buf, scan, points, progress)
    _scan_python(buf, scan, points, progress)
    return _Scanned()


def _decode_or_report(
    payload: bytes | memoryview,
    before: int,
    offset: int,
    scan: RecordScan,
    points: _Points,
    event: Event,
) -> None:
    protobuf = _protobuf_events()
    try:
        protobuf.add_event(points, payload, before, event)
    except (protobuf.DecodeError, ValueError, OverflowError):
        # CRC-valid but not an Event (a foreign TFRecord file, or a writer bug); or a
        # field no number can be made of (protobuf_events turns those it knows into
        # numbers as TensorFlow does: this is the safety net).
        scan.corruptions.append(
            Corruption(scan.path, offset, len(payload) + 16, "undecodable event")
        )


@functools.cache
def _protobuf_events() -> ModuleType:
    """:mod:`tbexport.protobuf_events`, imported on first use (an import statement in
    the loop over records would cost as much as a record's decoding)."""
    from . import protobuf_events

    return protobuf_events


def _scan_python(
    buf: FileBuffer,
    scan: RecordScan,
    points: _Points,
    progress: Callable[[int], None] | None,
) -> None:
    from .protobuf_events import Event

    size = len(buf)
    event = Event()
    reported = 0
    for record, payload in enumerate(scan.records(buf, size)):
        _decode_or_report(payload, 0, scan.position - len(payload) - 16, scan, points, event)
        if progress is not None and record % 65536 == 65535:
            progress(scan.position - reported)
            reported = scan.position
    if progress is not None:
        progress(size - reported)


class _TagTable:
    """The tags the C scanner met on one thread, kept from file to file.

    Knowing every tag of a file and its natural order before the scan starts, the
    scanner groups the file's points by tag in the same call (see ``scan`` in
    ``_fastscan.c``): in a sweep of many small runs, only the first file a thread
    reads needs a separate grouping step.
    """

    def __init__(self) -> None:
        self.names: list[bytes] = []  # position = the C scanner's tag index; it appends
        self.decoded: list[str] = []
        self.ordered: list[str] = []  # natural order
        self.rank = np.zeros(0, dtype=np.int32)  # rank[index] = position in ordered

    def update(self) -> None:
        """Decode and rank the names the scanner appended."""
        if len(self.decoded) == len(self.names):
            return
        self.decoded += [
            n.decode("utf-8", errors="replace") for n in self.names[len(self.decoded) :]
        ]
        order = sorted(range(len(self.decoded)), key=lambda i: natural_key(self.decoded[i]))
        self.ordered = [self.decoded[i] for i in order]
        self.rank = np.empty(len(order), dtype=np.int32)
        self.rank[order] = np.arange(len(order), dtype=np.int32)


# Past this many tags on one thread (runs that each log different tags), start afresh:
# every file pays for every name the table holds.
_TABLE_MAX_TAGS = 256
_tables = threading.local()


def _tag_table() -> _TagTable:
    table: _TagTable | None = getattr(_tables, "table", None)
    if table is None or len(table.names) > _TABLE_MAX_TAGS:
        table = _tables.table = _TagTable()
    return table


@dataclass
class _Grouped:
    """A file's points grouped by tag: ``names[r]``'s rows are ``bounds[r]:bounds[r + 1]``."""

    names: list[str]
    bounds: np.ndarray
    steps: np.ndarray
    walls: np.ndarray
    values: np.ndarray
    flags: np.ndarray | None


@dataclass
class _Scanned:
    """What the C scanner returned for one file: grouped, or chunks in record order."""

    # per scan call: steps, wall times, values, tag indices and flags (None: all plain)
    chunks: list[tuple[np.ndarray | None, ...]] = field(default_factory=list)
    grouped: _Grouped | None = None


def _scan_fast(
    buf: FileBuffer,
    scan: RecordScan,
    points: _Points,
    progress: Callable[[int], None] | None,
) -> _Scanned:
    """Scan in C (one call per undamaged stretch); hand the records it leaves to protobuf."""
    assert _fastscan is not None
    table = _tag_table()
    big = isinstance(buf, FileBytes)  # read as it goes: in two passes
    advance = _Advance(buf, progress, passes=2 if big else 1)
    if big:
        grouped = _scan_in_place(buf, scan, points, table, advance)
        if grouped is not None:
            return _Scanned(grouped=grouped)
        advance.next_pass()  # damaged, or with points only protobuf decodes
    return _scan_in_order(buf, scan, points, table, advance)


class _Advance:
    """The scanners' progress callback: reports bytes read.

    A file read in two passes reports half of its bytes in each.
    """

    def __init__(self, buf: FileBuffer, progress: Callable[[int], None] | None, passes: int):
        self.buf, self.progress, self.passes = buf, progress, passes
        self.finished_passes = 0
        self.reported = 0  # bytes reported, over all passes

    def __call__(self, position: int) -> None:
        if self.progress is not None:
            size = len(self.buf)
            target = min(size, (self.finished_passes * size + position) // self.passes)
            self.progress(target - self.reported)
            self.reported = target

    def next_pass(self) -> None:
        self(len(self.buf))
        self.finished_passes += 1


def _scan_in_place(
    buf: FileBuffer, scan: RecordScan, points: _Points, table: _TagTable, advance: _Advance
) -> _Grouped | None:
    """Read a big file in two passes, holding its points once.

    The first pass counts each tag's points; the second writes every point straight
    to its row, grouped by tag. An incomplete last record (a file being written) is
    left out as the general path leaves it. None when the file needs the general
    path: a damaged record, or records that protobuf decodes to points or restarts.
    """
    assert _fastscan is not None
    pos, failed, records, counts, unusual, fallback = _fastscan.count(
        _source(buf), scan.verify, table.names, _CHUNK_BYTES, advance
    )
    try:
        if failed and not is_truncated_tail(buf, pos, len(buf)):
            return None
    except FileShrank:  # the general path reports it
        return None
    hparams = _only_hparams(buf, scan, fallback)
    if hparams is None:
        return None
    advance.next_pass()
    table.update()
    try:
        _, _, _, *columns, _, bounds = _fastscan.scan(
            _source(buf, pos), 0, scan.verify, table.names, 0, _CHUNK_BYTES, advance,
            table.rank, counts, unusual,
        )  # fmt: skip
    except _fastscan.RecordsChanged:  # the file changed between the passes
        return None
    steps, walls, values, _, flags = _arrays(columns)
    assert steps is not None and walls is not None and values is not None
    advance(len(buf))
    points.hparams.update(hparams)
    scan.valid_records = records
    scan.truncated_tail = len(buf) - pos
    scan.position = len(buf)
    return _Grouped(table.ordered, np.frombuffer(bounds, np.int64), steps, walls, values, flags)


def _only_hparams(
    buf: FileBuffer, scan: RecordScan, fallback: list[tuple[int, ...]]
) -> dict[str, HParam] | None:
    """The hyperparameters in the records the C scanner left; None when those records
    hold anything else: a point, a restart, damage.
    """
    if not fallback:
        return {}
    decoded, trial = _Points(), RecordScan(scan.path, verify=scan.verify)
    left = [(before, offset, length) for _, offset, length, before in fallback]
    _decode_left(buf, left, trial, decoded)
    if len(decoded.steps) or decoded.purges or trial.corruptions:
        return None
    return decoded.hparams


def _scan_in_order(
    buf: FileBuffer,
    scan: RecordScan,
    points: _Points,
    table: _TagTable,
    advance: _Advance,
    first: list[Any] | None = None,
) -> _Scanned:
    """The general path: points in record order, a scan call per undamaged stretch.

    ``first``: the first call's result, when it was made already (a prefetched file).
    """
    assert _fastscan is not None
    table.update()  # names a first pass, or a scan an exception stopped, appended
    size = len(buf)
    scanned = _Scanned()
    chunks = scanned.chunks
    fallbacks: list[tuple[int, int, int]] = []  # (C points before, offset, length) left to us
    # bounds, steps, wall times, values, flags: when the scanner grouped the file
    grouped_columns: (
        tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None
    ) = None
    pos = record = emitted = 0
    while pos < size:
        # a call from the start may cover the whole file: then it can group it too
        rank = table.rank if pos == 0 else None
        if first is not None:
            called, first = first, None
        else:
            called = _fastscan.scan(
                _source(buf), pos, scan.verify, table.names, record, _CHUNK_BYTES, advance, rank
            )
        pos, failed, record, *columns, fallback, bounds = called
        steps, *others = _arrays(columns)
        assert steps is not None
        fallbacks.extend(
            (emitted + before, offset, length) for _, offset, length, before in fallback
        )
        emitted += len(steps)
        if bounds is not None:  # one call read it all, grouped: tags column None
            walls, values, _, flags = others
            assert walls is not None and values is not None
            grouped_columns = (np.frombuffer(bounds, np.int64), steps, walls, values, flags)
        else:
            chunks.append((steps, *others))
        if failed:
            pos = scan.recover(buf, pos, size)
    advance(size)
    scan.valid_records = record
    scan.position = size
    table.update()
    if grouped_columns is not None:
        scanned.grouped = _Grouped(table.ordered, *grouped_columns)
        return scanned
    # The C side names tags by their UTF-8 bytes; fallback points join the same ids.
    points.tag_ids.update((name, index) for index, name in enumerate(table.decoded))
    _decode_left(buf, fallbacks, scan, points)
    return scanned


def _decode_left(
    buf: FileBuffer, records: list[tuple[int, int, int]], scan: RecordScan, points: _Points
) -> None:
    """Decode with protobuf the records the C scanner left: (its points before, offset,
    length) each; undecodable ones are reported in ``scan``."""
    if not records:
        return
    from .protobuf_events import Event  # imported only when a file needs it (~60 ms)

    event = Event()
    for index, (before, offset, length) in enumerate(records):
        try:
            payload = buf[offset : offset + length]
        except FileShrank:  # the C scanner read it; since then the file shrank
            left = sum(n + 16 for _, _, n in records[index:])
            scan.corruptions.append(Corruption(scan.path, offset - 12, left, SHRANK))
            return
        _decode_or_report(payload, before, offset - 12, scan, points, event)


_FAST_DTYPES = (np.int64, np.float64, np.float64, np.int32, np.int8)


def _arrays(columns: list[Any]) -> list[np.ndarray | None]:
    """The scanner's column buffers (steps, wall times, values, tag indices, flags) as
    arrays, without copies; None stays None (tags when grouped, flags when all plain)."""
    return [
        None if c is None else np.frombuffer(c, dtype=t)
        for c, t in zip(columns, _FAST_DTYPES, strict=True)
    ]


# Point flags (as in _fastscan.c): what the scalars-plugin rules need to know of a point.
HAS_VALUE, PLUGIN_SCALARS, PLUGIN_OTHER, SIMPLE = 1, 2, 4, 8
PLAIN = SIMPLE | HAS_VALUE  # a simple_value: always a scalar


def _assemble(
    points: _Points, fast: list[tuple[np.ndarray | None, ...]], accept: TagFilter
) -> tuple[dict[str, Series], list[tuple[int, dict[str, int]]]]:
    """Split the flat columns into per-tag series in record order; place the restarts."""
    merged = _merged_columns(points, fast)
    if merged is None:
        return {}, []
    (steps, walls, values, tags), flags = merged
    del merged
    carried = {"steps": steps, "walls": walls, "values": values}
    if flags is not None and not np.all(flags == PLAIN):  # else no plugin rules to apply
        carried["flags"] = flags
    del steps, walls, values, flags
    # Group rows by tag, tags in natural order, each tag's rows in record order: each
    # series is then a view into the grouped columns (no copies).
    names = sorted(points.tag_ids, key=natural_key)
    rank = np.zeros(max(len(points.tag_ids), int(tags.max(initial=0)) + 1), dtype=np.int32)
    for position, name in enumerate(names):
        rank[points.tag_ids[name]] = position
    # each restart: how many points of each tag (by rank) precede it
    purge_counts = [
        (step, np.bincount(rank[tags[:before]], minlength=len(names)))
        for before, step in points.purges
    ]
    names_of_columns, grouped = list(carried), list(carried.values())
    carried.clear()  # _group frees each column once grouped
    bounds, grouped = _group(tags, rank, grouped, len(names))
    del tags
    carried = dict(zip(names_of_columns, grouped, strict=True))
    del grouped
    grouped_file = _Grouped(
        names, bounds, carried["steps"], carried["walls"], carried["values"], carried.get("flags")
    )
    kept_before: dict[str, Callable[[int], int]] = {}  # kept points among a tag's first n
    series = _series_by_tag(grouped_file, accept, kept_before)
    rank_of = {name: position for position, name in enumerate(names)}
    purges = [
        (step, {name: kept_before[name](int(counts[rank_of[name]])) for name in series})
        for step, counts in purge_counts
    ]
    return series, purges


def _series_by_tag(
    grouped: _Grouped,
    accept: TagFilter,
    kept_before: dict[str, Callable[[int], int]] | None = None,
) -> dict[str, Series]:
    """Each accepted tag's scalar points: views of the grouped columns where it can.

    ``kept_before`` (if given) gets for each tag how many of its first n points the
    plugin rules kept.
    """
    series: dict[str, Series] = {}
    bounds, point_flags = grouped.bounds, grouped.flags
    for position, name in enumerate(grouped.names):
        start, stop = int(bounds[position]), int(bounds[position + 1])
        if start == stop or not accept(name):
            continue
        rows: slice | np.ndarray = slice(start, stop)
        keep = None
        if point_flags is not None:
            keep = _scalar_points(point_flags[rows])
            if not keep.any():
                continue
            if not keep.all():
                rows = np.arange(start, stop)[keep]
        series[name] = Series(grouped.steps[rows], grouped.walls[rows], grouped.values[rows])
        if kept_before is not None:
            kept_before[name] = _counter(keep)
    return series


def _counter(keep: np.ndarray | None) -> Callable[[int], int]:
    """How many of a tag's first ``n`` points the plugin rules kept."""
    if keep is None:
        return lambda n: n
    kept = np.concatenate([[0], np.cumsum(keep)])
    return lambda n: int(kept[n])


def _merged_columns(
    points: _Points, fast: list[tuple[np.ndarray | None, ...]]
) -> tuple[list[np.ndarray], np.ndarray | None] | None:
    """Steps, wall times, values and tag ids of the C scanner's points with the
    protobuf-decoded points put in their places; and the point flags, None when every
    point is a plain simple_value.
    """
    parts = [list(p) for p in fast]
    fast.clear()
    python_part = _python_points(points) if len(points.steps) else None
    python_flags = python_part[4] if python_part is not None else None
    with_flags = any(p[4] is not None for p in parts) or (
        python_flags is not None and not np.all(python_flags == PLAIN)
    )
    for p in parts:
        if with_flags and p[4] is None:
            p[4] = np.full(len(p[0]), PLAIN, dtype=np.int8)  # type: ignore[arg-type]
    taken = [_take_column(parts, i) for i in range(5)] if parts else []  # frees the chunks
    if not taken or taken[0] is None or not len(taken[0]):  # no point from the C scanner
        if python_part is None:
            return None
        return list(python_part[:4]), python_flags if with_flags else None
    columns = [c for c in taken[:4] if c is not None]
    flags = taken[4]
    if python_part is None:
        return columns, flags
    # each protobuf point goes before the C point its record preceded (np.insert keeps
    # the order of points inserted at one position)
    before = np.frombuffer(points.before, dtype=np.int64)
    merged = [np.insert(c, before, p) for c, p in zip(columns, python_part, strict=False)]
    return merged, None if flags is None else np.insert(flags, before, python_part[4])


def _python_points(points: _Points) -> tuple[np.ndarray, ...]:
    """The points decoded by protobuf, as columns like the C scanner's."""
    return (
        np.frombuffer(points.steps, dtype=np.int64),
        np.frombuffer(points.wall_times, dtype=np.float64),
        np.frombuffer(points.values, dtype=np.float64),
        np.frombuffer(points.tags, dtype=np.int32),
        np.frombuffer(points.flags, dtype=np.int8),
    )


_GROUP_ALL_AT_ONCE = 1 << 16  # points; above, columns are grouped one by one (memory)


def _group(
    tags: np.ndarray, rank: np.ndarray, columns: list[np.ndarray], groups: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows of ``columns`` stably sorted by ``rank[tags]``; ``bounds[r]`` starts group r.

    ``columns`` is emptied as it goes, so that each source can be freed once grouped.
    """
    if _fastscan is not None:  # without the GIL
        bounds = np.empty(len(rank) + 1, dtype=np.int64)
        tags = np.ascontiguousarray(tags, dtype=np.int32)
        if len(tags) < _GROUP_ALL_AT_ONCE:  # one call: the common small file
            grouped = [np.empty_like(c) for c in columns]
            _fastscan.group(tags, rank, tuple(columns), tuple(grouped), bounds)
            columns.clear()
            return bounds[: groups + 1], grouped
        grouped = []
        # a column at a time, each source freed once grouped: memory peaks at one extra column
        while columns:
            source = columns.pop(0)
            grouped.append(np.empty_like(source))
            _fastscan.group(tags, rank, (source,), (grouped[-1],), bounds)
            del source
        return bounds[: groups + 1], grouped
    ranks = rank[tags]
    order = np.argsort(ranks, kind="stable")
    bounds = np.searchsorted(ranks[order], np.arange(groups + 1))
    grouped = [c[order] for c in columns]
    columns.clear()
    return bounds, grouped


def _take_column(parts: list[list[np.ndarray | None]], i: int) -> np.ndarray | None:
    """Concatenate column ``i`` of every part, dropping the parts' references to it."""
    pieces = [p[i] for p in parts]
    for p in parts:
        p[i] = None
    if len(pieces) == 1 or pieces[0] is None:  # one part, or a column no part has
        return pieces[0]
    return np.concatenate(pieces)  # type: ignore[arg-type]


def _scalar_points(flags: np.ndarray) -> np.ndarray:
    """Which of a tag's points (in order) are scalars, by the scalars-plugin rules.

    A tensor counts when the latest plugin name seen for its tag (its own included)
    is ``scalars`` or empty, or when none was seen; simple values always count. (TF2
    writers send the plugin name with a tag's first point only.)
    """
    if np.all(flags == PLAIN):
        return np.ones(len(flags), dtype=bool)
    update = np.where(flags & PLUGIN_SCALARS, 1, np.where(flags & PLUGIN_OTHER, 2, 0))
    update[(flags & SIMPLE) != 0] = 0
    latest = np.maximum.accumulate(np.where(update > 0, np.arange(len(flags)), -1))
    state = np.where(latest >= 0, update[np.maximum(latest, 0)], 1)
    has_value = (flags & HAS_VALUE) != 0
    keep: np.ndarray = has_value & (((flags & SIMPLE) != 0) | (state == 1))
    return keep
