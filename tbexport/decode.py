"""Turn the records of one event file into per-tag scalar series.

Scalars come in two encodings: ``Summary.Value.simple_value`` (float32; PyTorch's
``SummaryWriter``, tensorboardX, Lightning) and rank-0 tensors of the ``scalars``
plugin (TF2 ``tf.summary.scalar``, ``SummaryWriter(new_style=True)``), in
``tensor_content`` or the typed ``*_val`` fields. Everything else is skipped.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto

from .records import Corruption, RecordScan

__all__ = ["FileScalars", "Series", "TagFilter", "read_event_file"]

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
_PROGRESS_EVERY = 1 << 16  # records between progress callbacks

TagFilter = Callable[[str], bool]


@dataclass
class Series:
    """The points of one tag in file order: int64 steps, float64 wall times and values."""

    steps: array[int] = field(default_factory=lambda: array("q"))
    wall_times: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
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


def tag_filter(patterns: list[str] | None) -> TagFilter:
    """A predicate matching tags against glob patterns (all tags when ``patterns`` is empty)."""
    if not patterns:
        return lambda tag: True
    return lambda tag: any(fnmatchcase(tag, p) for p in patterns)


def read_event_file(
    path: str | os.PathLike[str],
    accept: TagFilter | None = None,
    *,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> FileScalars:
    """Read every scalar point of one event file, skipping (and reporting) damaged records."""
    scan = RecordScan(path, verify=verify)
    series: dict[str, Series] = {}
    # tag -> Series, or None when the tag is filtered out or not a scalar
    wanted: dict[str, Series | None] = {}
    plugins: dict[str, str] = {}
    accept = accept or (lambda tag: True)
    event = Event()
    parse = event.ParseFromString
    reported = 0
    purges: list[tuple[int, dict[str, int]]] = []
    for count, payload in enumerate(scan, 1):
        parse(payload)
        if count % _PROGRESS_EVERY == 0 and progress is not None:
            progress(scan.position - reported)
            reported = scan.position
        if not event.HasField("summary"):
            if event.HasField("session_log") and event.session_log.status == _SESSION_START:
                purges.append((event.step, {t: len(v.steps) for t, v in series.items()}))
            continue
        step = event.step
        wall_time = event.wall_time
        for value in event.summary.value:
            tag = value.tag
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number: float | None = value.simple_value
            elif kind == "tensor":
                number = _tensor_scalar(value, plugins)
            else:
                continue
            if number is None:
                continue
            target = wanted.get(tag, False)
            if target is False:
                target = wanted[tag] = series.setdefault(tag, Series()) if accept(tag) else None
            if target is None:
                continue
            target.steps.append(step)
            target.wall_times.append(wall_time)
            target.values.append(number)
    if progress is not None:
        progress(scan.position - reported)
    return FileScalars(
        os.fspath(path), series, scan.corruptions, scan.truncated_tail, scan.valid_records, purges
    )


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
            bits = np.frombuffer(tensor.tensor_content[:2], "<u2").astype("<u4") << 16
            return float(bits.view("<f4")[0])
        code = _CONTENT_DTYPES.get(dtype)
        if code is None:
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
