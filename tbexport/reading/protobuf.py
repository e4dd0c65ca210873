"""Decode event records with TensorBoard's own protobuf classes.

The reference decoder: the pure-Python reader sends every record here, the C
scanner only those it does not decode itself (tensors it cannot read, hparams,
SessionLogs, anything unusual). Imported on first use: the classes take a
twentieth of a second to load, which files of plain scalars never need.
"""

from __future__ import annotations

import math

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from tbexport.model import HParam
from tbexport.reading.points import HAS_VALUE, PLAIN, PLUGIN_OTHER, PLUGIN_SCALARS, Points

__all__ = ["DecodeError", "Event", "add_event", "tensor_number"]

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
_HPARAMS_TAG = "_hparams_/session_start_info"  # SummaryWriter.add_hparams, Lightning


def add_event(points: Points, payload: bytes | memoryview, before: int, event: Event) -> None:
    """Decode one record (``before``: points the C scanner read before it) into ``points``.

    Raises DecodeError on a malformed message.
    """
    event.ParseFromString(payload)
    if not event.HasField("summary"):
        if event.HasField("session_log") and event.session_log.status == _SESSION_START:
            points.restart(event.step, before)
        return
    step, wall_time = event.step, event.wall_time
    for value in event.summary.value:
        if value.tag == _HPARAMS_TAG:
            points.hparams.update(_hparams(value))
            continue
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            points.add(value.tag, step, wall_time, value.simple_value, before, PLAIN)
        elif kind == "tensor":
            # Whether a tensor is a scalar depends on the tag's plugin, which TF2 writers
            # send with a tag's first point only: flag the point like the C scanner does,
            # and let event_file._scalar_points decide over all of the tag's points.
            number = _rank0_number(value.tensor)
            flags = _plugin_flag(value) | (HAS_VALUE if number is not None else 0)
            if flags:
                points.add(
                    value.tag,
                    step,
                    wall_time,
                    math.nan if number is None else number,
                    before,
                    flags,
                )


def _hparams(value: Summary.Value) -> dict[str, HParam]:
    """The hyperparameters of an hparams-plugin ``session_start_info`` summary."""
    try:
        data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
    except DecodeError:
        return {}
    found: dict[str, HParam] = {}
    # a protobuf map has no order (it changes from process to process): sorted, so
    # that the hparams columns come out the same every time
    for name, item in sorted(data.session_start_info.hparams.items()):
        kind = item.WhichOneof("kind")
        if kind in ("number_value", "string_value", "bool_value"):
            found[name] = getattr(item, kind)
    return found


def _plugin_flag(value: Summary.Value) -> int:
    """PLUGIN_SCALARS or PLUGIN_OTHER when the value names its plugin, else 0."""
    if value.HasField("metadata") and value.metadata.HasField("plugin_data"):
        name = value.metadata.plugin_data.plugin_name
        return PLUGIN_SCALARS if name in _SCALAR_PLUGINS else PLUGIN_OTHER
    return 0


def _rank0_number(tensor: TensorProto) -> float | None:
    """The number in a rank-0 numeric tensor, else None."""
    return None if len(tensor.tensor_shape.dim) != 0 else tensor_number(tensor)


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
    if dtype in (_DT_HALF, _DT_BFLOAT16) and tensor.half_val:
        return _half_number(tensor.half_val[0], dtype)
    return None


def _half_number(stored: int, dtype: int) -> float:
    """The number a ``half_val`` entry holds: the bit pattern of a half (or bfloat16).

    The field is an int32, so it can hold what no 16-bit pattern is: a negative value
    (a writer that sign-extended the pattern), or one above 0xFFFF. TensorFlow reads
    the low 16 bits (``static_cast<uint16>``), and so does this (and the C scanner);
    TensorBoard's ``make_ndarray`` raises OverflowError instead.
    """
    bits = stored & 0xFFFF
    if dtype == _DT_HALF:
        return float(np.array([bits], "<u2").view("<f2")[0])
    return float((np.array([bits], "<u4") << 16).view("<f4")[0])
