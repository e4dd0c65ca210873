"""Build event files the way real writers do, plus the encodings they don't produce.

Hand-made files use TensorBoard's own protobuf classes and its own ``RecordWriter``
(framing and masked CRCs), never tbexport's code, so a bug in tbexport cannot
hide itself.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.summary.writer.record_writer import RecordWriter

DT = {"float": 1, "double": 2, "int32": 3, "int64": 9, "bool": 10, "bfloat16": 14, "half": 19}


def record_bytes(events: Iterable[Event]) -> bytes:
    """Frame events exactly as TensorBoard's writer does."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def write_events(path: Path, events: Iterable[Event]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record_bytes(events))
    return path


def file_version(wall_time: float = 1.0) -> Event:
    return Event(wall_time=wall_time, file_version="brain.Event:2")


def simple(tag: str, step: int, value: float, wall_time: float | None = None) -> Event:
    return Event(
        wall_time=1000.0 + step if wall_time is None else wall_time,
        step=step,
        summary=Summary(value=[Summary.Value(tag=tag, simple_value=value)]),
    )


def scalars_metadata() -> SummaryMetadata:
    return SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))


def tensor_event(
    tag: str,
    step: int,
    tensor: TensorProto,
    *,
    metadata: SummaryMetadata | None = None,
    wall_time: float | None = None,
) -> Event:
    value = Summary.Value(tag=tag, tensor=tensor)
    if metadata is not None:
        value.metadata.CopyFrom(metadata)
    return Event(
        wall_time=2000.0 + step if wall_time is None else wall_time,
        step=step,
        summary=Summary(value=[value]),
    )


def content_tensor(value: float | int | bool, dtype: str) -> TensorProto:
    """A rank-0 tensor with its value in ``tensor_content`` (as TF2 writes it)."""
    if dtype == "bfloat16":
        bits = np.array([value], "<f4").view("<u4") >> 16
        raw = bits.astype("<u2").tobytes()
    else:
        code = {
            "float": "<f4",
            "double": "<f8",
            "int32": "<i4",
            "int64": "<i8",
            "bool": "?",
            "half": "<f2",
        }[dtype]
        raw = np.array([value], code).tobytes()
    return TensorProto(dtype=DT[dtype], tensor_shape=TensorShapeProto(), tensor_content=raw)


def typed_tensor(value: float | int | bool, dtype: str) -> TensorProto:
    """A rank-0 tensor with its value in the typed ``*_val`` field."""
    tensor = TensorProto(dtype=DT[dtype], tensor_shape=TensorShapeProto())
    if dtype == "float":
        tensor.float_val.append(value)
    elif dtype == "double":
        tensor.double_val.append(value)
    elif dtype == "int32":
        tensor.int_val.append(int(value))
    elif dtype == "int64":
        tensor.int64_val.append(int(value))
    elif dtype == "bool":
        tensor.bool_val.append(bool(value))
    elif dtype == "half":
        tensor.half_val.append(int(np.array([value], "<f2").view("<u2")[0]))
    elif dtype == "bfloat16":
        tensor.half_val.append(int((np.array([value], "<f4").view("<u4") >> 16)[0]))
    return tensor


def session_start(step: int) -> Event:
    return Event(wall_time=3000.0, step=step, session_log=SessionLog(status=SessionLog.START))


def frame_payloads(payloads: Iterable[bytes]) -> bytes:
    """Frame raw (possibly invalid) event payloads with TensorBoard's writer."""
    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for payload in payloads:
        writer.write(payload)
    return buffer.getvalue()


def raw_simple_event(step: int, values: Iterable[tuple[bytes, float]]) -> bytes:
    """An Event with simple values under tags given as raw bytes, encoded by hand.

    protobuf refuses to build a string field that is not UTF-8; writers with bugs
    (or other languages' libraries) can still put such bytes on disk.
    """

    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    summary = b"".join(
        field(1, field(1, tag) + bytes([2 << 3 | 5]) + np.float32(value).tobytes())
        for tag, value in values
    )
    return bytes([2 << 3, step]) + field(5, summary)
