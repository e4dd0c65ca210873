"""Generate the benchmark inputs: event files as PyTorch's SummaryWriter and TF2 write them.

Records are framed like TensorBoard's ``RecordWriter`` (length, masked CRC32C of the
length, data, masked CRC32C of the data), with the C ``crc32c`` package for speed.
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto


def _masked(data: bytes) -> bytes:
    crc = crc32c.crc32c(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + _masked(header) + payload + _masked(payload)


def _value(tag: str, number: float, tensor: bool, first: bool) -> Summary.Value:
    if not tensor:
        return Summary.Value(tag=tag, simple_value=number)
    proto = TensorProto(
        dtype=1, tensor_shape=TensorShapeProto(), tensor_content=np.float32(number).tobytes()
    )
    value = Summary.Value(tag=tag, tensor=proto)
    if first:
        value.metadata.CopyFrom(
            SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
        )
    return value


def write_run(
    directory: Path, tags: int, steps: int, *, tensor: bool = False, seed: int = 0
) -> Path:
    """One event file with ``tags`` x ``steps`` scalars, one event per scalar (as PyTorch logs)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"events.out.tfevents.1700000000.bench.{seed}.0"
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((steps, tags)).astype(np.float32)
    names = [f"group{t % 5}/metric_{t}" for t in range(tags)]
    with path.open("wb") as handle:
        handle.write(
            _frame(Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
        )
        chunk: list[bytes] = []
        for step in range(steps):
            wall_time = 1.7e9 + step * 0.01
            for t, name in enumerate(names):
                event = Event(
                    wall_time=wall_time,
                    step=step,
                    summary=Summary(
                        value=[_value(name, float(values[step, t]), tensor, step == 0)]
                    ),
                )
                chunk.append(_frame(event.SerializeToString()))
            if len(chunk) > 50_000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))
    return path


def write_sweep(root: Path, runs: int, tags: int, steps: int) -> Path:
    """``root/version_0..runs-1``, each a small run."""
    for version in range(runs):
        write_run(root / f"version_{version}", tags, steps, seed=version)
    return root
