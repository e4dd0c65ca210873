"""A structure-aware fuzzer: the C scanner and the pure-protobuf reader must agree.

Each case builds a few valid Events with TensorBoard's protobuf classes (simple
values, TF2 tensor scalars of every dtype in ``tensor_content`` or a typed
``*_val`` field, scalars-plugin metadata, hparams records, file_version events),
mutates them at the protobuf wire level (fields dropped, duplicated, reordered;
varint bytes flipped; overlong varints; field number 0 or huge; wrong wire types;
truncated length-delimited fields; invalid UTF-8 in strings; extra members of a
oneof), frames them with valid CRCs (TensorBoard's ``RecordWriter``), writes a
file, and reads it with the C reader and again with the pure-Python one. The two
must give the same points (run/tag/step/wall_time/value, bit for bit, NaN payloads
included) and the same damage reports.

Long runs::

    python -m tests.fuzz_events --cases 100000 --seed 1

Under AddressSanitizer and UndefinedBehaviorSanitizer (rebuild the extension, then
preload the ASan runtime into the interpreter; put the normal build back after)::

    CFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g' \\
        python setup.py build_ext --inplace --force
    ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \\
        LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) \\
        python -m tests.fuzz_events --cases 100000 --seed 1
    python setup.py build_ext --inplace --force
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from tbexport import native, tuning
from tbexport.model import FileScalars
from tbexport.reading import event_file

from .builders import DT, content_tensor, frame_payloads, typed_tensor

# ---------- the wire format, as a tree ----------

# Length-delimited fields known to hold messages, by the message they sit in.
_MESSAGES: dict[str, dict[int, str]] = {
    "Event": {5: "Summary", 6: "Opaque", 7: "Opaque", 8: "Opaque", 10: "Opaque"},
    "Summary": {1: "Value"},
    "Value": {4: "Opaque", 5: "Opaque", 6: "Opaque", 8: "Tensor", 9: "Metadata"},
    "Tensor": {2: "Shape", 14: "Opaque", 15: "Opaque"},
    "Shape": {2: "Dim"},
    "Metadata": {1: "PluginData"},
    "PluginData": {},
    "Dim": {},
    "Opaque": {},
}
# String fields (protobuf checks their UTF-8), by message.
_STRINGS: dict[str, set[int]] = {
    "Event": {3},
    "Value": {1, 7},
    "Metadata": {2, 3},
    "PluginData": {1},
    "Dim": {2},
}
# The oneof members of each message that has one.
_ONEOF: dict[str, list[int]] = {"Event": [3, 4, 5, 6, 7, 8, 9], "Value": [2, 3, 4, 5, 6, 8]}


def _varint(value: int, pad: int = 0) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value or pad:
            out.append(byte | 0x80)
            if not value:
                break
        else:
            out.append(byte)
            return bytes(out)
    for _ in range(pad - 1):
        out.append(0x80)
    out.append(0)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


@dataclass
class Field:
    """One field on the wire: ``raw`` key bytes and payload, or ``children`` for a message."""

    number: int
    wire: int
    payload: bytes  # the value's bytes (for wire 2: without the length)
    message: str | None = None  # the message type of a length-delimited field
    children: list[Field] | None = None
    key: bytes | None = None  # a mutated key, encoded as is
    length: bytes | None = None  # a mutated length prefix, encoded as is

    def encode(self) -> bytes:
        key = self.key if self.key is not None else _varint(self.number << 3 | self.wire)
        body = self.payload if self.children is None else _encode(self.children)
        if self.wire == 2:
            return key + (self.length if self.length is not None else _varint(len(body))) + body
        return key + body


def _encode(fields: list[Field]) -> bytes:
    return b"".join(f.encode() for f in fields)


def _parse(data: bytes, message: str) -> list[Field]:
    """Splits a valid message into fields, recursing into the known message fields."""
    fields, at = [], 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _read_varint(data, at)
        elif wire == 1:
            end = at + 8
        elif wire == 5:
            end = at + 4
        elif wire == 2:
            size, at = _read_varint(data, at)
            end = at + size
        else:
            raise ValueError(wire)
        payload = data[at:end]
        sub = _MESSAGES.get(message, {}).get(number) if wire == 2 else None
        children = _parse(payload, sub) if sub else None
        fields.append(Field(number, wire, payload, sub, children))
        at = end
    return fields


# ---------- valid events ----------

_TAGS = ["loss", "acc", "lr", "grp/x", "ünï", "t", "_hparams_/session_start_info"]
_DTYPES = list(DT)


def _valid_event(rng: random.Random, step: int) -> Event:
    kind = rng.random()
    tag = rng.choice(_TAGS[:-1])
    wall = rng.choice([1000.0 + step, rng.uniform(0, 2e9), float("nan")])
    if kind < 0.35:
        value = rng.choice([rng.uniform(-5, 5), float("inf"), float("nan"), 0.0, -0.0])
        values = [Summary.Value(tag=tag, simple_value=value)]
        if rng.random() < 0.2:
            values.append(Summary.Value(tag=rng.choice(_TAGS[:-1]), simple_value=rng.random()))
        return Event(wall_time=wall, step=step, summary=Summary(value=values))
    if kind < 0.75:
        dtype = rng.choice(_DTYPES)
        number = rng.uniform(-3, 3) if dtype in ("float", "double", "half", "bfloat16") else 1
        tensor = rng.choice([content_tensor, typed_tensor])(number, dtype)
        if rng.random() < 0.1:
            tensor.tensor_shape.dim.add(size=1)
        value = Summary.Value(tag="t_" + tag, tensor=tensor)
        plugin = rng.choice(["scalars", "", "text", None, None])
        if plugin is not None:
            value.metadata.CopyFrom(
                SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin))
            )
            if rng.random() < 0.3:
                value.metadata.display_name = "shown"
        return Event(wall_time=wall, step=step, summary=Summary(value=[value]))
    if kind < 0.85:
        data = HParamsPluginData()
        data.session_start_info.hparams["lr"].number_value = rng.random()
        data.session_start_info.hparams["opt"].string_value = "adam"
        meta = SummaryMetadata(
            plugin_data=SummaryMetadata.PluginData(
                plugin_name="hparams", content=data.SerializeToString()
            )
        )
        value = Summary.Value(tag=_TAGS[-1], metadata=meta)
        return Event(wall_time=wall, step=step, summary=Summary(value=[value]))
    if kind < 0.92:
        return Event(wall_time=wall, file_version="brain.Event:2")
    if kind < 0.96:
        return Event(wall_time=wall, step=step, session_log=SessionLog(status=SessionLog.START))
    return Event(wall_time=wall, step=step)


# ---------- mutations ----------


def _nodes(fields: list[Field]) -> list[tuple[list[Field], str]]:
    """Every field list in the tree, with its message type (the root is an Event)."""
    found: list[tuple[list[Field], str]] = []

    def walk(items: list[Field], message: str) -> None:
        found.append((items, message))
        for item in items:
            if item.children is not None and item.message:
                walk(item.children, item.message)

    walk(fields, "Event")
    return found


_EXTRA = {  # a member for each oneof, or another field, as (number, wire, payload)
    "Event": [(3, 2, b"brain.Event:2"), (4, 2, b"\x0a\x00"), (9, 2, b""), (7, 2, b"\x08\x01")],
    "Value": [
        (2, 5, struct.pack("<f", 2.5)),
        (3, 2, b"x"),
        (5, 2, b"\x09" + bytes(8)),
        (4, 2, b""),
        (8, 2, b"\x08\x01\x12\x00\x2a\x04\x00\x00\x18\x41"),
    ],
    "Tensor": [
        (4, 2, b""),
        (4, 2, b"\x00\x00\xc0\x40"),
        (1, 0, _varint(2**32 + 1)),
        (5, 5, struct.pack("<f", 7.0)),
        (2, 2, b"\x12\x02\x08\x01"),
        (13, 0, b"\x7f"),
    ],
    "Metadata": [(1, 2, b"\x0a\x04text"), (1, 2, b""), (2, 2, b"\xff"), (4, 0, b"\x01")],
}


def _mutate(rng: random.Random, fields: list[Field]) -> str:
    items, message = rng.choice(_nodes(fields))
    choice = rng.randrange(13)
    if not items:
        choice = rng.choice([9, 11])
    if choice == 0:
        del items[rng.randrange(len(items))]
        return f"drop in {message}"
    if choice == 1:
        at = rng.randrange(len(items))
        items.insert(rng.randrange(len(items) + 1), _copy(items[at]))
        return f"duplicate in {message}"
    if choice == 2:
        rng.shuffle(items)
        return f"reorder {message}"
    item = rng.choice(items) if items else Field(0, 0, b"")
    if choice == 3:  # flip a byte of a varint or a payload
        if item.children is None and item.payload:
            data = bytearray(item.payload)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            item.payload = bytes(data)
        return f"flip in {message}.{item.number}"
    if choice == 4:  # an overlong key
        item.key = _varint(item.number << 3 | item.wire, pad=rng.choice([4, 5, 6]))
        return f"overlong key {message}.{item.number}"
    if choice == 5:  # an overlong value or length
        if item.wire == 0:
            try:
                value, _ = _read_varint(item.payload, 0)
            except ValueError:  # flipped into no varint already
                return f"overlong value {message}.{item.number} (none)"
            item.payload = _varint(value, pad=rng.randint(1, 10))
        elif item.wire == 2:
            body = item.payload if item.children is None else _encode(item.children)
            item.children = None
            item.payload = body
            item.length = _varint(len(body), pad=rng.randint(1, 4))
        return f"overlong value {message}.{item.number}"
    if choice == 6:  # field number 0 or huge
        number = rng.choice([0, 2**29 - 1, 2**29, 2**31, 2**32 + 1])
        item.key = _varint(number << 3 | item.wire)
        return f"field number {number} for {message}.{item.number}"
    if choice == 7:  # a wrong wire type
        item.key = _varint(item.number << 3 | rng.choice([w for w in range(8) if w != item.wire]))
        return f"wire type of {message}.{item.number}"
    if choice == 8:  # truncate a length-delimited field (or its message)
        if item.wire == 2:
            body = item.payload if item.children is None else _encode(item.children)
            item.children = None
            cut = rng.randint(0, len(body))
            item.payload = body[:cut]
            if rng.random() < 0.5:
                item.length = _varint(len(body))  # the length still says the whole
        return f"truncate {message}.{item.number}"
    if choice == 9:  # an extra field: another oneof member, a repeated message
        extras = _EXTRA.get(message)
        if extras:
            number, wire, payload = rng.choice(extras)
            sub = _MESSAGES.get(message, {}).get(number) if wire == 2 else None
            new = Field(number, wire, payload, sub, _parse(payload, sub) if sub else None)
            items.insert(rng.randrange(len(items) + 1), new)
            return f"extra {message}.{number}"
        return "none"
    if choice == 10:  # invalid UTF-8 in a string
        strings = [f for f in items if f.wire == 2 and f.number in _STRINGS.get(message, ())]
        if strings:
            target = rng.choice(strings)
            bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"])
            at = rng.randint(0, len(target.payload))
            target.payload = target.payload[:at] + bad + target.payload[at:]
            return f"bad utf-8 in {message}.{target.number}"
        return "none"
    if choice == 11:  # an unknown field
        number = rng.choice([11, 19, 100, 2**28])
        wire = rng.choice([0, 1, 2, 5, 3])
        payload = {0: b"\x05", 1: bytes(8), 2: b"\x01z", 5: bytes(4), 3: b"\x0c"}[wire]
        if wire == 3:  # a group: a start and an end key
            payload = _varint(number << 3 | 4)
        items.insert(rng.randrange(len(items) + 1), Field(number, wire, payload))
        return f"unknown field {number}/{wire} in {message}"
    # random bytes inside a payload
    if item.children is None:
        at = rng.randint(0, len(item.payload))
        item.payload = item.payload[:at] + rng.randbytes(rng.randint(1, 4)) + item.payload[at:]
    return f"garbage in {message}.{item.number}"


def _copy(item: Field) -> Field:
    children = None if item.children is None else [_copy(c) for c in item.children]
    return Field(
        item.number, item.wire, item.payload, item.message, children, item.key, item.length
    )


# ---------- comparison ----------


@dataclass
class Difference:
    """A file on which the readers disagree: how to make it and what differed."""

    seed: int
    case: int
    payloads: list[bytes]
    mutations: list[str]
    what: str
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"seed {self.seed} case {self.case}: {self.what}"]
        lines += [f"  mutation: {m}" for m in self.mutations]
        lines += [f"  payload: {p.hex()}" for p in self.payloads]
        lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)


def _read(path: Path, fast: bool, windows: bool) -> FileScalars:
    changes: dict[str, object] = {"native": fast}
    if windows:  # the file read in small windows, as big files are
        changes |= {"whole_file_bytes": 0, "window_bytes": 64}
    with tuning.tuned(**changes):
        return event_file.read_event_file(path)


def _bits(array: np.ndarray) -> list[int]:
    bits: list[int] = np.ascontiguousarray(array, dtype=np.float64).view(np.uint64).tolist()
    return bits


def compare(path: Path, *, windows: bool = False) -> list[str]:
    """How the C reader and the pure-Python reader differ on a file ([] when they agree);
    ``windows``: the C reader reads the file in small windows."""
    if native.codec is None:
        raise RuntimeError("the C extension tbexport._codec is not built")
    a, b = _read(path, True, windows), _read(path, False, False)
    found = []
    for name in ("corruptions", "truncated_tail", "valid_records", "purges", "hparams"):
        if getattr(a, name) != getattr(b, name):
            found.append(f"{name}: C {getattr(a, name)!r}, Python {getattr(b, name)!r}")
    if a.series.keys() != b.series.keys():
        found.append(f"tags: C {sorted(a.series)!r}, Python {sorted(b.series)!r}")
    for tag in a.series.keys() & b.series.keys():
        x, y = a.series[tag], b.series[tag]
        if x.steps.tolist() != y.steps.tolist():
            found.append(f"{tag!r} steps: C {x.steps.tolist()}, Python {y.steps.tolist()}")
        if _bits(x.wall_times) != _bits(y.wall_times):
            found.append(f"{tag!r} wall times: C {x.wall_times}, Python {y.wall_times}")
        if _bits(x.values) != _bits(y.values):
            found.append(f"{tag!r} values: C {x.values.tolist()}, Python {y.values.tolist()}")
    return found


def make_case(rng: random.Random) -> tuple[list[bytes], list[str]]:
    """A few records, some mutated: their payloads and the mutations made."""
    payloads, mutations = [], []
    for step in range(rng.randint(1, 3)):
        fields = _parse(_valid_event(rng, step).SerializeToString(), "Event")
        for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
            mutations.append(f"record {step}: {_mutate(rng, fields)}")
        payloads.append(_encode(fields))
    return payloads, mutations


def run(cases: int, seed: int, *, directory: Path | None = None) -> list[Difference]:
    """Fuzz ``cases`` files from ``seed``; the files on which the readers disagree."""
    differences = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(directory or scratch) / "events.out.tfevents.1"
        for case in range(cases):
            rng = random.Random(f"{seed}/{case}")
            payloads, mutations = make_case(rng)
            path.write_bytes(frame_payloads(payloads))
            details = compare(path, windows=case % 2 == 1)
            if details:
                differences.append(Difference(seed, case, payloads, mutations, "differ", details))
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=20, help="differences to print")
    args = parser.parse_args(argv)
    found = run(args.cases, args.seed)
    for difference in found[: args.show]:
        print(difference, "\n")
    print(f"{len(found)} differences in {args.cases} cases (seed {args.seed})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
