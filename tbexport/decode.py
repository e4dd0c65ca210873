"""Turn the records of one event file into per-tag scalar series.

Scalars come in two encodings: ``Summary.Value.simple_value`` (float32; PyTorch's
``SummaryWriter``, tensorboardX, Lightning) and rank-0 tensors of the ``scalars``
plugin (TF2 ``tf.summary.scalar``, ``SummaryWriter(new_style=True)``), in
``tensor_content`` or the typed ``*_val`` fields. Everything else is skipped.

Two readers give identical results: the C extension ``_fastscan`` decodes the
common simple_value events itself and hands every other record back to the
protobuf path here; without the extension, every record takes the protobuf path.
"""

from __future__ import annotations

import mmap
import os
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import ModuleType
from typing import BinaryIO

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from .discover import natural_key
from .records import Corruption, FileBuffer, RecordScan

_fastscan: ModuleType | None
try:
    from . import _fastscan  # type: ignore[attr-defined,no-redef]
except ImportError:  # built without a C compiler: the protobuf path does everything
    _fastscan = None

__all__ = ["FileScalars", "GlobFilter", "Series", "TagFilter", "read_event_file", "tag_filter"]

# TensorFlow DataType enum values of the numeric dtypes a scalar can carry.
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_UINT8, _DT_INT16, _DT_INT8 = 1, 2, 3, 4, 5, 6
_DT_INT64, _DT_BOOL, _DT_BFLOAT16, _DT_HALF = 9, 10, 14, 19
_DT_UINT16, _DT_UINT32, _DT_UINT64 = 17, 22, 23

_CONTENT_DTYPES: dict[int, str] = {
    _DT_FLOAT: "<f4",
    _DT_DOUBLE: "<f8",
    _DT_INT32: "<i4",
    _DT_UINT8: "u1",
    _DT_INT16: "<i2",
    _DT_INT8: "i1",
    _DT_INT64: "<i8",
    _DT_BOOL: "?",
    _DT_HALF: "<f2",
    _DT_UINT16: "<u2",
    _DT_UINT32: "<u4",
    _DT_UINT64: "<u8",
}
_INT_VAL_DTYPES = {_DT_INT32, _DT_UINT8, _DT_INT16, _DT_INT8, _DT_UINT16}
_SCALAR_PLUGINS = {"", "scalars"}
_SESSION_START = 1  # SessionLog.START: a writer restarted with purge_step
_CHUNK_BYTES = 8 << 20  # the C scanner reports progress this often
_HPARAMS_TAG = "_hparams_/session_start_info"  # SummaryWriter.add_hparams, Lightning

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


@dataclass(frozen=True)
class GlobFilter:
    """Matches tags against glob patterns; no patterns match everything. Picklable."""

    patterns: tuple[str, ...] = ()

    def __call__(self, tag: str) -> bool:
        return not self.patterns or any(fnmatchcase(tag, p) for p in self.patterns)


def tag_filter(patterns: list[str] | None) -> GlobFilter:
    """A predicate matching tags against glob patterns (all tags when ``patterns`` is empty)."""
    return GlobFilter(tuple(patterns or ()))


@dataclass
class _Points:
    """Flat columns of every point of a file, in record order, plus restarts."""

    tag_ids: dict[str, int] = field(default_factory=dict)
    tags: array[int] = field(default_factory=lambda: array("i"))
    steps: array[int] = field(default_factory=lambda: array("q"))
    wall_times: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    records: array[int] = field(default_factory=lambda: array("q"))
    purges: list[tuple[int, int]] = field(default_factory=list)  # (record, step)
    plugins: dict[str, str] = field(default_factory=dict)
    hparams: dict[str, HParam] = field(default_factory=dict)

    def add_event(self, payload: bytes, record: int, event: Event) -> None:
        """Decode one record with protobuf; raises DecodeError on a malformed message."""
        event.ParseFromString(payload)
        if not event.HasField("summary"):
            if event.HasField("session_log") and event.session_log.status == _SESSION_START:
                self.purges.append((record, event.step))
            return
        step, wall_time = event.step, event.wall_time
        for value in event.summary.value:
            if value.tag == _HPARAMS_TAG:
                self.hparams.update(_hparams(value))
                continue
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor":
                number = _tensor_scalar(value, self.plugins)
            else:
                continue
            if number is None:
                continue
            tag = value.tag
            tag_id = self.tag_ids.setdefault(tag, len(self.tag_ids))
            self.tags.append(tag_id)
            self.steps.append(step)
            self.wall_times.append(wall_time)
            self.values.append(number)
            self.records.append(record)


def scans_without_gil() -> bool:
    """Whether files are read by the C scanner, which lets other threads run meanwhile."""
    return _fastscan is not None and not os.environ.get("TBEXPORT_PURE_PYTHON")


def read_event_file(
    path: str | os.PathLike[str],
    accept: TagFilter | None = None,
    *,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> FileScalars:
    """Read every scalar point of one event file, skipping (and reporting) damaged records.

    A Lightning CSVLogger ``metrics.csv`` is read too (see :mod:`tbexport.csvlogger`).
    """
    if os.path.basename(path) == "metrics.csv":
        from .csvlogger import read_metrics_csv

        result = read_metrics_csv(path, accept)
        if progress is not None:
            progress(os.path.getsize(path))
        return result
    scan = RecordScan(path, verify=verify)
    points = _Points()
    fast: list[tuple[np.ndarray, ...]] = []
    with open(scan.path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size:
            with _file_bytes(handle, size) as buf:
                if scans_without_gil():
                    fast = _scan_fast(buf, size, scan, points, progress)
                else:
                    _scan_python(buf, size, scan, points, progress)
    series, purges = _assemble(points, fast, accept or (lambda tag: True))
    return FileScalars(
        scan.path,
        series,
        scan.corruptions,
        scan.truncated_tail,
        scan.valid_records,
        purges,
        points.hparams,
    )


# Larger files are mapped, and their scanned pages dropped as the scan goes, so memory
# stays bounded. Smaller ones are read whole: mapping and unmapping costs more than
# reading them, and with threads each unmap interrupts the other cores (TLB shootdown).
_MAP_MIN_BYTES = 16 << 20


@contextmanager
def _file_bytes(handle: BinaryIO, size: int) -> Iterator[FileBuffer]:
    if size < _MAP_MIN_BYTES:
        yield handle.read()
        return
    with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        yield mapped


def _decode_or_report(
    payload: bytes, record: int, offset: int, scan: RecordScan, points: _Points, event: Event
) -> None:
    try:
        points.add_event(payload, record, event)
    except DecodeError:
        # CRC-valid but not an Event (a foreign TFRecord file, or a writer bug).
        scan.corruptions.append(
            Corruption(scan.path, offset, len(payload) + 16, "undecodable event")
        )


def _scan_python(
    buf: FileBuffer,
    size: int,
    scan: RecordScan,
    points: _Points,
    progress: Callable[[int], None] | None,
) -> None:
    event = Event()
    reported = 0
    for record, payload in enumerate(scan.records(buf, size)):
        _decode_or_report(payload, record, scan.position - len(payload) - 16, scan, points, event)
        if progress is not None and record % 65536 == 65535:
            progress(scan.position - reported)
            reported = scan.position
    if progress is not None:
        progress(size - reported)


def _scan_fast(
    buf: FileBuffer,
    size: int,
    scan: RecordScan,
    points: _Points,
    progress: Callable[[int], None] | None,
) -> list[tuple[np.ndarray, ...]]:
    assert _fastscan is not None
    chunks: list[tuple[np.ndarray, ...]] = []
    fallbacks: list[tuple[int, int, int]] = []
    tag_names: list[bytes] = []  # position = the C scanner's tag index
    pos = record = 0
    while pos < size:
        start = pos
        pos, failed, record, *columns, fallback = _fastscan.scan(
            buf, pos, min(size, pos + _CHUNK_BYTES), scan.verify, tag_names, record
        )
        chunks.append(
            tuple(np.frombuffer(c, dtype=t) for c, t in zip(columns, _FAST_DTYPES, strict=True))
        )
        fallbacks.extend(fallback)
        if failed:
            pos = scan.recover(buf, pos, size)
        _release(buf, start, pos)
        if progress is not None:
            progress(pos - start)
    scan.valid_records = record
    scan.position = size
    # The C side names tags by their UTF-8 bytes; fallback points join the same ids.
    for tag_id, name in enumerate(tag_names):
        points.tag_ids[name.decode("utf-8", errors="replace")] = tag_id
    event = Event()
    for fallback_record, offset, length in fallbacks:
        payload = buf[offset : offset + length]
        _decode_or_report(payload, fallback_record, offset - 12, scan, points, event)
    return chunks


def _release(buf: FileBuffer, start: int, stop: int) -> None:
    """Drop scanned pages from this process's memory (they are re-read if needed again)."""
    page = mmap.PAGESIZE
    first = start // page * page
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return  # a file read whole, or no madvise on this platform
    if stop - first >= page:
        buf.madvise(mmap.MADV_DONTNEED, first, (stop - first) // page * page)


_FAST_DTYPES = (np.int64, np.float64, np.float64, np.int32, np.int64, np.int8)
# flags of the C scanner's points (see _fastscan.c)
_HAS_VALUE, _PLUGIN_SCALARS, _PLUGIN_OTHER, _SIMPLE = 1, 2, 4, 8


def _assemble(
    points: _Points, fast: list[tuple[np.ndarray, ...]], accept: TagFilter
) -> tuple[dict[str, Series], list[tuple[int, dict[str, int]]]]:
    """Split the flat columns into per-tag series in record order; place the restarts."""
    parts: list[list[np.ndarray | None]] = [list(p) for p in fast]
    fast.clear()
    if len(points.steps):
        parts.append(list(_python_points(points)))
    if not parts:
        return {}, []
    columns = [_take_column(parts, i) for i in range(6)]  # frees the chunks as it goes
    if len(points.steps) and len(columns[0]) > len(points.steps):
        order = np.argsort(columns[4], kind="stable")  # fallback records back in file order
        columns = [c[order] for c in columns]
    steps, walls, values, tags, records, flags = columns
    del columns
    carried = {"steps": steps, "walls": walls, "values": values}
    if not np.all(flags == _SIMPLE | _HAS_VALUE):  # else nothing for the plugin rules to decide
        carried["flags"] = flags
    if points.purges:  # records only place purge_step restarts
        carried["records"] = records
    del steps, walls, values, records, flags
    # Group rows by tag, tags in natural order, each tag's rows in record order: each
    # series is then a view into the grouped columns (no copies).
    names = sorted(points.tag_ids, key=natural_key)
    rank = np.zeros(max(len(points.tag_ids), int(tags.max(initial=0)) + 1), dtype=np.int32)
    for position, name in enumerate(names):
        rank[points.tag_ids[name]] = position
    bounds, grouped = _group(tags, rank, list(carried.values()), len(names))
    carried = dict(zip(carried, grouped, strict=True))
    del tags, grouped
    steps, walls, values = carried["steps"], carried["walls"], carried["values"]
    point_flags, point_records = carried.get("flags"), carried.get("records")
    series: dict[str, Series] = {}
    tag_records: dict[str, np.ndarray] = {}
    for position, name in enumerate(names):
        rows: slice | np.ndarray = slice(int(bounds[position]), int(bounds[position + 1]))
        if bounds[position] == bounds[position + 1] or not accept(name):
            continue
        if point_flags is not None:
            keep = _scalar_points(point_flags[rows])
            if not keep.any():
                continue
            if not keep.all():
                rows = np.arange(rows.start, rows.stop)[keep]  # type: ignore[union-attr]
        series[name] = Series(steps[rows], walls[rows], values[rows])
        if point_records is not None:
            tag_records[name] = point_records[rows]
    purges = [
        (step, {name: int(np.searchsorted(recs, record)) for name, recs in tag_records.items()})
        for record, step in points.purges
    ]
    return series, purges


def _python_points(points: _Points) -> tuple[np.ndarray, ...]:
    """The points decoded by protobuf, as columns like the C scanner's."""
    return (
        np.frombuffer(points.steps, dtype=np.int64),
        np.frombuffer(points.wall_times, dtype=np.float64),
        np.frombuffer(points.values, dtype=np.float64),
        np.frombuffer(points.tags, dtype=np.int32),
        np.frombuffer(points.records, dtype=np.int64),
        np.full(len(points.steps), _SIMPLE | _HAS_VALUE, dtype=np.int8),  # already final
    )


def _group(
    tags: np.ndarray, rank: np.ndarray, columns: list[np.ndarray], groups: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows of ``columns`` stably sorted by ``rank[tags]``; ``bounds[r]`` starts group r."""
    if _fastscan is not None:  # one pass, without the GIL
        bounds = np.empty(len(rank) + 1, dtype=np.int64)
        grouped = [np.empty_like(c) for c in columns]
        _fastscan.group(
            np.ascontiguousarray(tags, dtype=np.int32), rank, tuple(columns), tuple(grouped), bounds
        )
        return bounds[: groups + 1], grouped
    ranks = rank[tags]
    order = np.argsort(ranks, kind="stable")
    bounds = np.searchsorted(ranks[order], np.arange(groups + 1))
    return bounds, [c[order] for c in columns]


def _take_column(parts: list[list[np.ndarray | None]], i: int) -> np.ndarray:
    """Concatenate column ``i`` of every part, dropping the parts' references to it."""
    pieces = [p[i] for p in parts]
    for p in parts:
        p[i] = None
    if len(pieces) == 1:
        return pieces[0]  # type: ignore[return-value]
    return np.concatenate(pieces)  # type: ignore[arg-type]


def _scalar_points(flags: np.ndarray) -> np.ndarray:
    """Which of a tag's points (in order) are scalars, by the plugin rules of _tensor_scalar.

    A tensor counts when the latest plugin name seen for its tag (its own included)
    is ``scalars`` or empty, or when none was seen; simple values always count.
    """
    if np.all(flags == _SIMPLE | _HAS_VALUE):
        return np.ones(len(flags), dtype=bool)
    update = np.where(flags & _PLUGIN_SCALARS, 1, np.where(flags & _PLUGIN_OTHER, 2, 0))
    update[(flags & _SIMPLE) != 0] = 0
    latest = np.maximum.accumulate(np.where(update > 0, np.arange(len(flags)), -1))
    state = np.where(latest >= 0, update[np.maximum(latest, 0)], 1)
    has_value = (flags & _HAS_VALUE) != 0
    keep: np.ndarray = has_value & (((flags & _SIMPLE) != 0) | (state == 1))
    return keep


def _hparams(value: Summary.Value) -> dict[str, HParam]:
    """The hyperparameters of an hparams-plugin ``session_start_info`` summary."""
    try:
        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
    except DecodeError:
        return {}
    found: dict[str, HParam] = {}
    for name, item in data.session_start_info.hparams.items():
        kind = item.WhichOneof("kind")
        if kind in ("number_value", "string_value", "bool_value"):
            found[name] = getattr(item, kind)
    return found


def _tensor_scalar(value: Summary.Value, plugins: dict[str, str]) -> float | None:
    """The number in a rank-0 numeric tensor of the scalars plugin, else None."""
    if value.HasField("metadata") and value.metadata.HasField("plugin_data"):
        # TF2 writers send the plugin name with the first point of a tag only.
        plugins[value.tag] = value.metadata.plugin_data.plugin_name
    if plugins.get(value.tag, "") not in _SCALAR_PLUGINS:
        return None
    tensor = value.tensor
    if len(tensor.tensor_shape.dim) != 0:
        return None
    return tensor_number(tensor)


def tensor_number(tensor: TensorProto) -> float | None:
    """Decode the single element of a numeric ``TensorProto`` to a Python float."""
    dtype = tensor.dtype
    if tensor.tensor_content:
        if dtype == _DT_BFLOAT16:
            if len(tensor.tensor_content) < 2:
                return None
            bits = np.frombuffer(tensor.tensor_content[:2], "<u2").astype("<u4") << 16
            return float(bits.view("<f4")[0])
        code = _CONTENT_DTYPES.get(dtype)
        if code is None or len(tensor.tensor_content) < np.dtype(code).itemsize:
            return None
        return float(np.frombuffer(tensor.tensor_content, code, count=1)[0])
    return _typed_field_number(tensor, dtype)


def _typed_field_number(tensor: TensorProto, dtype: int) -> float | None:
    if dtype == _DT_FLOAT and tensor.float_val:
        return float(tensor.float_val[0])
    if dtype == _DT_DOUBLE and tensor.double_val:
        return float(tensor.double_val[0])
    if dtype in _INT_VAL_DTYPES and tensor.int_val:
        return float(tensor.int_val[0])
    if dtype == _DT_INT64 and tensor.int64_val:
        return float(tensor.int64_val[0])
    if dtype == _DT_UINT32 and tensor.uint32_val:
        return float(tensor.uint32_val[0])
    if dtype == _DT_UINT64 and tensor.uint64_val:
        return float(tensor.uint64_val[0])
    if dtype == _DT_BOOL and tensor.bool_val:
        return float(tensor.bool_val[0])
    if dtype == _DT_HALF and tensor.half_val:
        # half_val holds the IEEE half bit pattern in an int32
        return float(np.array([tensor.half_val[0]], "<u2").view("<f2")[0])
    if dtype == _DT_BFLOAT16 and tensor.half_val:
        bits = np.array([tensor.half_val[0]], "<u4") << 16
        return float(bits.view("<f4")[0])
    return None
