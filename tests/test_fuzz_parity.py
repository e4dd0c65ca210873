"""The C scanner follows protobuf's rules: a short fuzz run, and the records fuzzing found.

Each regression is a minimal record on which the C scanner once disagreed with
``Event.FromString`` and tbexport's protobuf path (the reference). The longer run:
``python -m tests.fuzz_events --cases 100000 --seed N`` (see its docstring for a
sanitizer build).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from tensorboard.compat.proto.event_pb2 import Event

from tbexport import native, tuning
from tbexport.model import FileScalars
from tbexport.reading import event_file

from . import fuzz_events
from .builders import file_version, frame_payloads, record_bytes, simple

pytestmark = pytest.mark.skipif(native.codec is None, reason="C extension not built")


def _varint(value: int) -> bytes:
    return fuzz_events._varint(value)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value(*parts: bytes) -> bytes:
    """An Event (step 7, wall time 9.0) with one Summary.Value made of ``parts``."""
    return _event(_field(1, b"".join(parts)))


def _event(summary: bytes, *after: bytes) -> bytes:
    head = b"\x09" + struct.pack("<d", 9.0) + b"\x10\x07"
    return head + _field(5, summary) + b"".join(after)


_SIMPLE = b"\x15" + struct.pack("<f", 1.5)  # simple_value = 1.5
_TAG = _field(1, b"loss")
_SCALARS = _field(9, _field(1, _field(1, b"scalars")))  # metadata.plugin_data.plugin_name


def _tensor(*parts: bytes) -> bytes:
    return _field(8, b"".join(parts))


_FLOAT = b"\x08\x01" + _field(2, b"")  # dtype DT_FLOAT, a rank-0 shape

REGRESSIONS = {
    # keys protobuf refuses: the record is undecodable
    "overlong key (6 bytes)": _event(_field(1, _TAG + b"\x95\x80\x80\x80\x80\x00" + _SIMPLE[1:])),
    "field number 0": _event(_field(1, _TAG + _SIMPLE), b"\x00\x05"),
    "field number 2**29": _event(_field(1, _TAG + _SIMPLE), _varint(2**29 << 3) + b"\x05"),
    "field number 2**29 in a value": _value(_TAG, _SIMPLE, _varint(2**29 << 3) + b"\x05"),
    "wire type 7": _value(_TAG, _SIMPLE, b"\x5f"),
    # strings protobuf refuses
    "plugin_name not UTF-8": _value(
        _TAG,
        _tensor(_FLOAT, _field(4, struct.pack("<f", 2.0))),
        _field(9, _field(1, _field(1, b"sca\xffrs"))),
    ),
    "display_name not UTF-8": _value(
        _TAG,
        _tensor(_FLOAT, _field(4, struct.pack("<f", 2.0))),
        _field(9, _field(1, _field(1, b"scalars")) + _field(2, b"\xc3")),
    ),
    "node_name not UTF-8": _value(_TAG, _field(7, b"\xed\xa0\x80"), _SIMPLE),
    "file_version not UTF-8": b"\x1a\x02\xc0\xaf",
    "tag not UTF-8, no value": _value(_field(1, b"\xff")),
    "an earlier tag not UTF-8": _value(_field(1, b"\xff"), _TAG, _SIMPLE),
    "dim name not UTF-8": _value(
        _TAG,
        _tensor(
            b"\x08\x01", _field(2, _field(2, _field(2, b"\xff"))), _field(4, struct.pack("<f", 2.0))
        ),
        _SCALARS,
    ),
    # protobuf reads another way
    "dtype 2**32+1 (DT_FLOAT, truncated)": _value(
        _TAG,
        _tensor(b"\x08" + _varint(2**32 + 1), _field(2, b""), _field(4, struct.pack("<f", 2.0))),
        _SCALARS,
    ),
    "simple_value then an image": _value(_TAG, _SIMPLE, _field(4, b"")),
    "simple_value then old-style histogram bytes": _value(_TAG, _SIMPLE, _field(3, b"x")),
    "summary then file_version": _event(_field(1, _TAG + _SIMPLE), _field(3, b"brain.Event:2")),
    "summary then graph_def": _event(_field(1, _TAG + _SIMPLE), _field(4, b"")),
    "two tensors (merged)": _value(
        _TAG, _tensor(_FLOAT), _tensor(_field(4, struct.pack("<f", 2.0))), _SCALARS
    ),
    "tensor_content then an empty one": _value(
        _TAG,
        _tensor(
            _FLOAT,
            _field(4, struct.pack("<f", 9.5)),
            _field(4, b""),
            b"\x2d" + struct.pack("<f", -1.0),
        ),
        _SCALARS,
    ),
    "hparams tag with a simple_value, no plugin": _value(
        _field(1, b"_hparams_/session_start_info"), _SIMPLE
    ),
    "two metadata fields (merged)": _value(
        _TAG,
        _tensor(_FLOAT, _field(4, struct.pack("<f", 2.0))),
        _field(9, _field(1, _field(1, b"text"))),
        _field(9, _field(2, b"shown")),
    ),
    "two plugin_data fields (merged)": _value(
        _TAG,
        _tensor(_FLOAT, _field(4, struct.pack("<f", 2.0))),
        _field(9, _field(1, _field(1, b"text")) + _field(1, _field(2, b"c"))),
    ),
    "packed float_val of a partial item": _value(
        _TAG, _tensor(_FLOAT, _field(5, struct.pack("<f", 3.0) + b"\x00")), _SCALARS
    ),
    "packed int_val with a cut varint": _value(
        _TAG, _tensor(b"\x08\x03", _field(2, b""), _field(7, b"\x05\x80")), _SCALARS
    ),
    "a Dim with wire type 0 is no dim": _value(
        _TAG,
        _tensor(b"\x08\x01", _field(2, b"\x10\x01"), _field(4, struct.pack("<f", 2.0))),
        _SCALARS,
    ),
    "source_metadata writer not UTF-8": _event(
        _field(1, _TAG + _SIMPLE), _field(10, _field(1, b"\xff"))
    ),
}


def _read(path: Path, fast: bool) -> FileScalars:
    with tuning.tuned(native=fast):
        return event_file.read_event_file(path)


@pytest.mark.parametrize("windows", [False, True], ids=["whole", "windows"])
@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_c_reads_the_minimal_record_as_protobuf_does(
    tmp_path: Path, name: str, windows: bool
) -> None:
    # plain points before and after: the record must not disturb them either way
    before = [file_version(), simple("loss", 1, 0.25), simple("acc", 1, 0.5)]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(
        record_bytes(before)
        + frame_payloads([REGRESSIONS[name]])
        + record_bytes([simple("loss", 9, 0.75)])
    )
    assert fuzz_events.compare(path, windows=windows) == []
    fast, slow = _read(path, True), _read(path, False)
    assert fast.corruptions == slow.corruptions
    assert fast.series.keys() == slow.series.keys()


def test_the_regressions_are_what_protobuf_says() -> None:
    """A few of the minimal records, read by protobuf itself."""

    def parses(payload: bytes) -> bool:
        try:
            Event.FromString(payload)
        except Exception:
            return False
        return True

    for name in (
        "overlong key (6 bytes)",
        "field number 0",
        "field number 2**29",
        "plugin_name not UTF-8",
        "node_name not UTF-8",
    ):
        assert not parses(REGRESSIONS[name]), name
    event = Event.FromString(REGRESSIONS["summary then file_version"])
    assert not event.HasField("summary")
    value = Event.FromString(REGRESSIONS["tensor_content then an empty one"]).summary.value[0]
    assert value.tensor.tensor_content == b"" and value.tensor.float_val[0] == -1.0
    value = Event.FromString(REGRESSIONS["dtype 2**32+1 (DT_FLOAT, truncated)"]).summary.value[0]
    assert value.tensor.dtype == 1
    assert (
        Event.FromString(REGRESSIONS["simple_value then an image"])
        .summary.value[0]
        .WhichOneof("value")
        == "image"
    )


def test_the_c_scanner_reads_the_new_fields_of_a_clean_file_itself(tmp_path: Path) -> None:
    """Display names, node names and source metadata are checked, not handed over."""
    value = _value(
        _TAG,
        _field(7, b"node"),
        _tensor(_FLOAT, _field(4, struct.pack("<f", 2.0))),
        _field(9, _field(1, _field(1, b"scalars")) + _field(2, b"shown")),
    )
    head = _field(10, _field(1, b"tensorboard.summary.writer.event_file_writer"))
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(record_bytes([file_version()]) + frame_payloads([head, value]))
    assert native.codec is not None
    data = path.read_bytes()
    assert native.codec.scan(data, 0, len(data), True, [], 0).fallbacks == []
    assert fuzz_events.compare(path) == []


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_a_short_fuzz_run_finds_no_difference(seed: int, tmp_path: Path) -> None:
    differences = fuzz_events.run(1500, seed, directory=tmp_path)
    assert not differences, "\n\n".join(map(str, differences[:5]))
