"""Turn the records of one event file into per-tag scalar series.

Scalars come in two encodings: ``Summary.Value.simple_value`` (float32; PyTorch's
``SummaryWriter``, tensorboardX, Lightning) and rank-0 tensors of the ``scalars``
plugin (TF2 ``tf.summary.scalar``, ``SummaryWriter(new_style=True)``), in
``tensor_content`` or the typed ``*_val`` fields. Everything else is skipped.

Two readers give identical results: the C extension :mod:`tbexport._codec` decodes the
common simple_value and tensor events itself and hands every other record to
:mod:`tbexport.reading.protobuf`; without the extension, every record goes there.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from tbexport.model import Corruption, FileScalars, GlobFilter, Series, TagFilter
from tbexport.native import codec, in_use
from tbexport.reading.discover import natural_key
from tbexport.reading.framing import FileBuffer, FileBytes, RecordScan
from tbexport.reading.points import HAS_VALUE, PLAIN, PLUGIN_OTHER, PLUGIN_SCALARS, SIMPLE, Points
from tbexport.reading.source import FileShrank, RandomAccessFile, open_file
from tbexport.tuning import current

if TYPE_CHECKING:
    from tbexport._codec import Scan
    from tbexport.reading.protobuf import Event

__all__ = ["read_event_file", "strictly_increasing", "tag_filter"]


def tag_filter(patterns: list[str] | None, ignore_case: bool = False) -> GlobFilter:
    """A predicate matching tags against glob patterns (all tags when ``patterns`` is empty)."""
    return GlobFilter(tuple(patterns or ()), ignore_case)


def strictly_increasing(steps: np.ndarray) -> bool:
    """Whether each int64 step is above the one before it (no restart to resolve)."""
    if codec is not None and steps.dtype == np.int64 and steps.flags.c_contiguous:
        return codec.increasing(steps)
    return bool(np.all(steps[1:] > steps[:-1]))


def read_event_file(
    path: str | os.PathLike[str],
    accept: TagFilter | None = None,
    *,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> FileScalars:
    """Read every scalar point of one event file, skipping (and reporting) damaged records.

    A Lightning CSVLogger ``metrics.csv`` is read too (see :mod:`tbexport.reading.csvlogger`).
    ``progress`` is called with the bytes read since its last call, as the file is read.
    """
    if _is_metrics_csv(path):
        from tbexport.reading.csvlogger import read_metrics_csv

        result = read_metrics_csv(path, accept)
        if progress is not None:
            progress(result.size)
        return result
    scan = RecordScan(path, verify=verify)
    points = Points()
    with open_file(scan.path) as file:
        if in_use():
            size, fast = _scan_native(file, scan, points, progress)
        else:
            size, fast = _scan_python(file, scan, points, progress), _Scanned()
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


def _decode_or_report(
    payload: bytes | memoryview,
    before: int,
    offset: int,
    scan: RecordScan,
    points: Points,
    event: Event,
) -> None:
    protobuf = _protobuf()
    try:
        protobuf.add_event(points, payload, before, event)
    except (protobuf.DecodeError, ValueError, OverflowError):
        # CRC-valid but not an Event (a foreign TFRecord file, or a writer bug); or a
        # field no number can be made of (tbexport.reading.protobuf turns those it knows into
        # numbers as TensorFlow does: this is the safety net).
        scan.corruptions.append(
            Corruption(scan.path, offset, len(payload) + 16, "undecodable event")
        )


@functools.cache
def _protobuf() -> ModuleType:
    """:mod:`tbexport.reading.protobuf`, imported on first use (an import statement in
    the loop over records would cost as much as a record's decoding)."""
    from tbexport.reading import protobuf

    return protobuf


def _scan_python(
    file: RandomAccessFile,
    scan: RecordScan,
    points: Points,
    progress: Callable[[int], None] | None,
) -> int:
    """Every record decoded by protobuf (no C extension, or ``tuning.native`` off); the
    bytes read."""
    from tbexport.reading.protobuf import Event

    size = file.size
    buf: FileBuffer = FileBytes(file)
    event = Event()
    reported = 0
    if size < current().whole_file_bytes:
        try:
            buf = file.read(0, -1)
            size = len(buf)
        except FileShrank:  # read as it goes: the records before the cut are kept
            pass
    try:
        for record, payload in enumerate(scan.records(buf, size)):
            _decode_or_report(payload, 0, scan.position - len(payload) - 16, scan, points, event)
            if progress is not None and record % 65536 == 65535:
                progress(scan.position - reported)
                reported = scan.position
    except FileShrank:  # (records() reports it where it can)
        scan.shrank(scan.position, size)
    if progress is not None:
        progress(size - reported)
    return size


class _TagTable:
    """The tags the C scanner met on one thread, kept from file to file.

    Knowing every tag of a file and its natural order before the scan starts, the
    scanner groups the file's points by tag in the same call (see ``scan`` in
    ``csrc/records.c``): in a sweep of many small runs, only the first file a thread
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


def _scan_native(
    file: RandomAccessFile,
    scan: RecordScan,
    points: Points,
    progress: Callable[[int], None] | None,
) -> tuple[int, _Scanned]:
    """Scan in C, a call per window of the file (the whole of a small one) and per
    undamaged stretch; hand the records the scanner leaves to protobuf as each window
    is held; return the bytes read and what the scanner returned.

    A small file read whole, undamaged and with nothing left to protobuf, comes back
    grouped by tag from its one call; otherwise the chunks are grouped afterwards.
    """
    assert codec is not None
    tuning = current()
    table = _tag_table()
    table.update()  # names an interrupted scan appended
    size = end = file.size  # end: where the file ends now, when it shrank while read
    held = b""
    try:
        if size < tuning.whole_file_bytes:
            held = file.read(0, -1)
            size = end = len(held)  # a file being written may have grown since it was opened
    except FileShrank as error:  # scan what is left
        held, end = error.data, len(error.data)
    base = 0  # the file offset of held[0]
    whole = len(held) == size
    buf: FileBuffer = held if whole else FileBytes(file)
    scanned = _Scanned()
    pos = record = emitted = reported = 0
    needed = 0
    left: list[tuple[bytes | memoryview, int, int]] = []  # records for protobuf
    while pos < end:
        if not pos - base < len(held) or len(held) - (pos - base) < needed:
            try:
                held, base = file.read(pos, max(tuning.window_bytes, needed)), pos
            except FileShrank as error:  # scan what is left
                held, base, end = error.data, pos, pos + len(error.data)
        rank = table.rank if pos == 0 and whole else None
        got = codec.scan(held, pos - base, end - base, scan.verify, table.names, record, rank)
        steps, *others = _arrays(got)
        assert steps is not None
        for _, offset, length, before in got.fallbacks:  # (a window's bytes are copied)
            record_bytes = memoryview(held)[offset : offset + length]
            left.append(
                (record_bytes if whole else bytes(record_bytes), emitted + before, base + offset)
            )
        emitted += len(steps)
        if got.bounds is not None:  # one call read it all, grouped: tags column None
            walls, values, _, flags = others
            assert walls is not None and values is not None
            table.update()
            bounds = np.frombuffer(memoryview(got.bounds), np.int64)
            scanned.grouped = _Grouped(table.ordered, bounds, steps, walls, values, flags)
        elif len(steps):
            scanned.chunks.append((steps, *others))
        pos, record, needed = base + got.position, got.records, got.needed
        if got.damaged:
            pos = scan.recover(buf, pos, size)
            needed = 0
        if progress is not None and pos > reported:
            progress(min(pos, size) - reported)
            reported = min(pos, size)
    if pos < size:  # the file shrank: the records from pos on are gone
        scan.shrank(pos, size)
    if progress is not None and size > reported:
        progress(size - reported)
    scan.valid_records = record
    scan.position = size
    table.update()
    if scanned.grouped is None:
        # The C side names tags by their UTF-8 bytes; fallback points join the same ids.
        points.tag_ids.update((name, index) for index, name in enumerate(table.decoded))
        for payload, before, offset in left:  # (protobuf imported only for these)
            _decode_or_report(payload, before, offset - 12, scan, points, _event())
        # in file order, as the protobuf reader reports them (--strict names the first)
        scan.corruptions.sort(key=lambda corruption: corruption.offset)
    return size, scanned


_events = threading.local()


def _event() -> Event:
    """An Event message to parse into, one per thread (made once: ~60 ms of imports)."""
    event: Event | None = getattr(_events, "event", None)
    if event is None:
        event = _events.event = _protobuf().Event()
    return event


_FAST_DTYPES = (np.int64, np.float64, np.float64, np.int32, np.int8)


def _arrays(got: Scan) -> list[np.ndarray | None]:
    """The scanner's column buffers (steps, wall times, values, tag indices, flags) as
    arrays, without copies; None stays None (tags when grouped, flags when all plain)."""
    columns = (got.steps, got.wall_times, got.values, got.tags, got.flags)
    return [
        None if c is None else np.frombuffer(memoryview(c), dtype=t)
        for c, t in zip(columns, _FAST_DTYPES, strict=True)
    ]


def _assemble(
    points: Points, fast: list[tuple[np.ndarray | None, ...]], accept: TagFilter
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
    points: Points, fast: list[tuple[np.ndarray | None, ...]]
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


def _python_points(points: Points) -> tuple[np.ndarray, ...]:
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
    if codec is not None:  # without the GIL
        bounds = np.empty(len(rank) + 1, dtype=np.int64)
        tags = np.ascontiguousarray(tags, dtype=np.int32)
        if len(tags) < _GROUP_ALL_AT_ONCE:  # one call: the common small file
            grouped = [np.empty_like(c) for c in columns]
            codec.group(tags, rank, tuple(columns), tuple(grouped), bounds)
            columns.clear()
            return bounds[: groups + 1], grouped
        grouped = []
        # a column at a time, each source freed once grouped: memory peaks at one extra column
        while columns:
            source = columns.pop(0)
            grouped.append(np.empty_like(source))
            codec.group(tags, rank, (source,), (grouped[-1],), bounds)
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
