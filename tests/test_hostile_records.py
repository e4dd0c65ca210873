"""Hostile event files: whatever the bytes, a report and the readable points, never a
traceback or a signal.

The cases about reading run with every reader (``EVERY_READER``: the C scanner on a
file read whole, the C scanner on a file read a window at a time, and protobuf alone).
"""

from __future__ import annotations

import math
import os
import random
import struct
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

import tbexport
from tbexport import native, tuning
from tbexport.model import ScalarData
from tbexport.reading import event_file, framing, protobuf, source

from .builders import (
    DT,
    file_version,
    frame_payloads,
    record_bytes,
    scalars_metadata,
    simple,
    tensor_event,
)

EVERY_READER = pytest.mark.usefixtures("reader")
NEEDS_C = pytest.mark.skipif(native.codec is None, reason="the C extension is not built")

SHRANK = "file shrank while being read"


def _points(frame) -> list[tuple[str, int, float]]:  # type: ignore[no-untyped-def]
    return [
        (str(t), int(s), float(v))
        for t, s, v in zip(frame["tag"], frame["step"], frame["value"], strict=True)
    ]


def _losses(steps: range) -> list[Event]:
    return [simple("loss", s, s / 4) for s in steps]


def _frames(events: list[Event]) -> list[bytes]:
    return [record_bytes([e]) for e in events]


def _clean_read(path: Path) -> ScalarData:
    """``load_scalars``, with no damage to report."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", tbexport.CorruptRecordWarning)
        return tbexport.load_scalars(path)


def _header(length: int) -> bytes:
    """A record header claiming ``length`` bytes, with a valid CRC."""
    packed = struct.pack("<Q", length)
    return packed + struct.pack("<I", masked_crc32c(packed))


# ---------- 1. half_val that no 16-bit pattern is ----------


def _half_tensor(stored: int, dtype: str) -> TensorProto:
    tensor = TensorProto(dtype=DT[dtype], tensor_shape=TensorShapeProto())
    tensor.half_val.append(stored)
    return tensor


# (half_val as stored, dtype, the number: TensorFlow's static_cast<uint16> of it)
HALF_VALUES = [
    (0x3C00, "half", 1.0),
    (-17408, "half", -1.0),  # 0xBC00 sign-extended, as a writer casting through int16 does
    (0x13C00, "half", 1.0),  # above 0xFFFF: the low 16 bits
    (-(2**31), "half", 0.0),
    (0x7C00 - 0x10000, "half", math.inf),
    (-1, "half", math.nan),  # 0xFFFF
    (2**31 - 1, "half", math.nan),
    (0x3F80, "bfloat16", 1.0),
    (-16512, "bfloat16", -1.0),  # 0xBF80
    (0x14000, "bfloat16", 2.0),
]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@EVERY_READER
@pytest.mark.parametrize("with_metadata_only_value", [False, True])
def test_half_val_outside_16_bits_reads_as_tensorflow_does(
    tmp_path: Path, with_metadata_only_value: bool
) -> None:
    """protobuf stores half_val as int32: a negative value, or one above 0xFFFF, used to
    raise OverflowError and abort the export. A value with plugin metadata alone in the
    same record makes the C scanner hand the record to protobuf as well."""
    events = [file_version()]
    for step, (stored, dtype, _) in enumerate(HALF_VALUES):
        event = tensor_event(dtype, step, _half_tensor(stored, dtype), metadata=scalars_metadata())
        if with_metadata_only_value:
            extra = event.summary.value.add(tag="only_metadata")
            extra.metadata.CopyFrom(scalars_metadata())
        events.append(event)
    events.append(simple("loss", 99, 0.5))
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(record_bytes(events))

    data = _clean_read(path)
    got = sorted(_points(data.frame), key=lambda p: p[1])
    expected = [(dtype, step, number) for step, (_, dtype, number) in enumerate(HALF_VALUES)]
    assert [(t, s) for t, s, _ in got] == [(t, s) for t, s, _ in expected] + [("loss", 99)]
    assert all(_same(g[2], e[2]) for g, e in zip(got, expected, strict=False)), got
    assert got[-1][2] == 0.5
    assert data.corruptions == [] and data.truncated == {}
    assert len(tbexport.read_scalars(path, strict=True)) == len(HALF_VALUES) + 1


def test_tensor_number_masks_half_val_like_tensorflow() -> None:
    from tbexport.reading.protobuf import tensor_number

    for stored, dtype, number in HALF_VALUES:
        value = tensor_number(_half_tensor(stored, dtype))
        assert value is not None and _same(value, number), (stored, dtype, value)


@EVERY_READER
def test_a_record_protobuf_cannot_make_a_number_of_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: a value error while decoding one record skips that record."""

    def refuse(tensor: TensorProto) -> float | None:
        raise OverflowError("no number")

    monkeypatch.setattr(protobuf, "tensor_number", refuse)
    frames = _frames([simple("loss", 0, 1.0), Event(step=1), simple("loss", 2, 3.0)])
    tensor = tensor_event("t", 1, _half_tensor(-1, "half"), metadata=scalars_metadata())
    tensor.summary.value.add(tag="m").metadata.CopyFrom(scalars_metadata())  # to protobuf
    frames[1] = record_bytes([tensor])
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames))
    data = tbexport.load_scalars(path)
    assert _points(data.frame) == [("loss", 0, 1.0), ("loss", 2, 3.0)]
    assert [(c.offset, c.skipped, c.reason) for c in data.corruptions] == [
        (len(frames[0]), len(frames[1]), "undecodable event")
    ]
    with pytest.raises(tbexport.CorruptEventFileError, match="undecodable event"):
        tbexport.load_scalars(path, strict=True)


# ---------- 2. a file that shrinks while it is read ----------


def _shrink_when_read_past(
    monkeypatch: pytest.MonkeyPatch, path: Path, past: int, to: int
) -> list[int]:
    """Truncate ``path`` to ``to`` bytes when a read from past byte ``past`` begins
    (at the reading path's one seam with storage). Returns a list that gets the offset
    of that read."""
    happened: list[int] = []
    real_read = source.LocalFile.read

    def read(self: source.LocalFile, offset: int, length: int) -> bytes:
        if not happened and offset >= past:
            happened.append(offset)
            os.truncate(path, to)
        return real_read(self, offset, length)

    monkeypatch.setattr(source.LocalFile, "read", read)
    return happened


_LONG_TAG = "loss/" + "l" * 200  # records of about 250 bytes


@pytest.fixture
def shrinking(tmp_path: Path) -> tuple[Path, list[bytes], int, int]:
    """3 MiB of records (more than one of the 1 MiB blocks protobuf's reader reads), a
    read past 1.5 MiB to shrink the file at, and a cut inside a record past 2.5 MiB."""
    frames = _frames([file_version(), *(simple(_LONG_TAG, s, s / 4) for s in range(12_500))])
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames))
    return path, frames, 3 << 19, 5 << 19


@EVERY_READER
@pytest.mark.parametrize("strict", [False, True])
def test_a_file_that_shrinks_while_read_says_so(
    shrinking: tuple[Path, list[bytes], int, int], monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    path, frames, past, cut = shrinking
    size = len(b"".join(frames))
    happened = _shrink_when_read_past(monkeypatch, path, past, cut)
    with tuning.tuned(whole_file_bytes=0, window_bytes=1024):  # read as big files are
        if strict:
            with pytest.raises(tbexport.CorruptEventFileError, match=f"{SHRANK} at byte"):
                tbexport.load_scalars(path, strict=True)
            return
        data = tbexport.load_scalars(path)
    assert happened and past <= happened[0] < cut
    ends = np.cumsum([len(f) for f in frames])
    [corruption] = data.corruptions
    assert (corruption.path, corruption.skipped, corruption.reason) == (
        str(path),
        size - corruption.offset,
        SHRANK,
    )
    # it happened at a record's start, before the cut: the points of the records before it
    assert corruption.offset in set(ends.tolist()) and corruption.offset <= cut
    kept = int(np.searchsorted(ends, corruption.offset, side="right")) - 1
    assert _points(data.frame) == [(_LONG_TAG, s, s / 4) for s in range(kept)]
    assert data.truncated == {}


@EVERY_READER
def test_a_file_that_shrinks_while_read_keeps_every_record_before_the_cut(
    shrinking: tuple[Path, list[bytes], int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, frames, past, cut = shrinking
    _shrink_when_read_past(monkeypatch, path, past, cut)
    ends = np.cumsum([len(f) for f in frames])
    whole = int(np.searchsorted(ends, cut, side="right"))  # records that end by the cut
    cut_record = int(ends[whole - 1])  # where the record the cut falls in starts
    with tuning.tuned(whole_file_bytes=0, window_bytes=1024):
        data = tbexport.load_scalars(path)
    assert _points(data.frame) == [(_LONG_TAG, s, s / 4) for s in range(whole - 1)]
    assert [c.offset for c in data.corruptions] == [cut_record]


def test_a_record_left_to_protobuf_is_decoded_from_the_bytes_already_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """The C scanner leaves some records for protobuf to decode once the file is
    scanned; by then the file may have shrunk below them: they are decoded from the
    bytes the scan read."""
    if reader == "python":
        pytest.skip("protobuf reads every record as it goes")
    tensor = tensor_event("t", 0, _half_tensor(0x3C00, "half"), metadata=scalars_metadata())
    tensor.summary.value.add(tag="m").metadata.CopyFrom(scalars_metadata())  # to protobuf
    frames = _frames([file_version(), *_losses(range(200)), tensor, *_losses(range(200, 400))])
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames))
    size = path.stat().st_size
    left_end = sum(len(f) for f in frames[:202])
    # the first read after the tensor's record shrinks the file to end with it
    happened = _shrink_when_read_past(monkeypatch, path, left_end + 1, left_end)
    with tuning.tuned(whole_file_bytes=0, window_bytes=1024):
        data = tbexport.load_scalars(path)
    assert happened and size == sum(len(f) for f in frames)
    [corruption] = data.corruptions
    assert (corruption.reason, corruption.offset + corruption.skipped) == (SHRANK, size)
    points = _points(data.frame)
    assert ("t", 0, 1.0) in points
    losses = [p for p in points if p[0] == "loss"]
    assert len(losses) >= 200 and losses == [("loss", s, s / 4) for s in range(len(losses))]


def _big_event_file(path: Path, megabytes: int) -> int:
    """An event file of at least ``megabytes`` MiB (a block of records over and over);
    its size."""
    block = record_bytes([file_version(), *_losses(range(2000))])
    copies = (megabytes << 20) // len(block) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for _ in range(copies):
            out.write(block)
    return len(block) * copies


SHRINK_IN_A_CHILD = """
import os, sys
from tbexport.reading import source
path, past, to = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
done = []
real_read = source.LocalFile.read
def read(self, offset, length):
    if not done and offset >= past:
        done.append(1)
        os.truncate(path, to)
    return real_read(self, offset, length)
source.LocalFile.read = read
from tbexport.cli import main
sys.argv = ["tbexport", path, "-o", sys.argv[4], *sys.argv[5:]]
main()
"""


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("pure_python", [False, True])
@pytest.mark.skipif(not hasattr(os, "truncate"), reason="needs os.truncate")
def test_an_export_of_a_big_file_that_shrinks_ends_in_a_report_not_a_signal(
    tmp_path: Path, pure_python: bool, strict: bool
) -> None:
    """A mapped file that shrank killed the process with SIGBUS (exit 135); a file too
    big to read whole is read a window at a time."""
    if not pure_python and native.codec is None:
        pytest.skip("the C extension is not built")
    path = tmp_path / "run" / "events.out.tfevents.1"
    _big_event_file(path, 17)  # above the size read whole
    past, to = (1 << 19, (1 << 20) + 7) if pure_python else (4 << 20, (8 << 20) + 7)
    env = {k: v for k, v in os.environ.items() if k != "TBEXPORT_PURE_PYTHON"}
    if pure_python:
        env["TBEXPORT_PURE_PYTHON"] = "1"
    child = subprocess.run(
        [sys.executable, "-c", SHRINK_IN_A_CHILD, str(path), str(past), str(to),
         str(tmp_path / "out.csv"), *(["--strict"] if strict else [])],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert child.returncode == (1 if strict else 0), child.stderr
    assert os.path.getsize(path) == to
    assert f"{path}: {SHRANK} at byte" in child.stderr
    if not strict:
        assert "wrote" in child.stderr and (tmp_path / "out.csv").exists()


def test_an_export_while_another_process_truncates_the_file_never_dies_of_a_signal(
    tmp_path: Path,
) -> None:
    """Truncated from outside at an unknown moment: exit 0 or 1, never a signal."""
    path = tmp_path / "run" / "events.out.tfevents.1"
    size = _big_event_file(path, 64)
    script = (
        "import sys\n"
        "from tbexport.cli import main\n"
        "print('reading', flush=True)\n"
        f"sys.argv = ['tbexport', {str(path)!r}, '-o', {str(tmp_path / 'out.csv')!r}]\n"
        "main()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "reading\n"
    time.sleep(0.05)  # (from this thread: a thread left exiting would upset thread counts)
    os.truncate(path, size // 3 + 5)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode in (0, 1), (child.returncode, stderr)
    assert "Traceback" not in stderr


# ---------- 3. a length past the end of the file, in the middle ----------


@EVERY_READER
@pytest.mark.parametrize("inserted", [False, True])
def test_a_length_past_the_end_with_records_after_it_is_damage_not_a_tail(
    tmp_path: Path, inserted: bool
) -> None:
    """A header claiming 4 GiB (with a valid CRC) made the rest of the file an
    "incomplete last record": 10 of 5,000 points kept, a note only, --strict content."""
    frames = _frames(_losses(range(5000)))
    at = sum(len(f) for f in frames[:10])
    if inserted:  # a stray header before record 10
        frames.insert(10, _header(4 << 30))
    else:  # record 10's length overwritten
        frames[10] = _header(4 << 30) + frames[10][12:]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames))
    kept = range(5000) if inserted else [s for s in range(5000) if s != 10]

    with pytest.warns(tbexport.CorruptRecordWarning, match=f"corrupt record at byte {at}"):
        frame = tbexport.read_scalars(path)
    assert _points(frame) == [("loss", s, s / 4) for s in kept]
    data = tbexport.load_scalars(path)
    assert [(c.path, c.offset, c.skipped, c.reason) for c in data.corruptions] == [
        (str(path), at, len(frames[10]), "corrupt record")
    ]
    assert data.truncated == {}
    assert frame.attrs["corruptions"] == [str(data.corruptions[0])]
    with pytest.raises(tbexport.CorruptEventFileError, match=f"corrupt record at byte {at}"):
        tbexport.read_scalars(path, strict=True)


@EVERY_READER
def test_a_length_past_the_end_with_nothing_valid_after_it_is_a_truncated_tail(
    tmp_path: Path,
) -> None:
    frames = _frames(_losses(range(50)))
    tail = _header(4 << 30) + bytes(range(256)) * 3  # a writer stopped mid-record
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames) + tail)
    data = _clean_read(path)
    assert _points(data.frame) == [("loss", s, s / 4) for s in range(50)]
    assert data.corruptions == [] and data.truncated == {str(path): len(tail)}
    assert len(tbexport.read_scalars(path, strict=True)) == 50


def test_the_command_fails_under_strict_on_a_length_past_the_end_mid_file(
    tmp_path: Path,
) -> None:
    frames = _frames(_losses(range(5000)))
    frames[10] = _header(4 << 30) + frames[10][12:]
    path = tmp_path / "run" / "events.out.tfevents.1"
    path.parent.mkdir()
    path.write_bytes(b"".join(frames))
    command = [sys.executable, "-c", "from tbexport.cli import main; main()", str(path.parent)]
    loose = subprocess.run(
        [*command, "-o", str(tmp_path / "a.csv")], capture_output=True, text=True, timeout=120
    )
    assert loose.returncode == 0
    at = sum(len(f) for f in frames[:10])
    warned = f"warning: {path}: corrupt record at byte {at}, skipped {len(frames[10])} bytes"
    assert warned in loose.stderr
    assert "4,999 points" in loose.stderr and "incomplete last record" not in loose.stderr
    strict = subprocess.run(
        [*command, "-o", str(tmp_path / "b.csv"), "--strict"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert strict.returncode == 1 and f"corrupt record at byte {at}" in strict.stderr


# ---------- 4. resynchronising over long stretches of zeros ----------


@pytest.fixture(params=["c", "numpy"])
def resync(request: pytest.FixtureRequest) -> Iterator[str]:
    """Resynchronise in C, or with the vectorised search of builds without it (and of
    ``tuning.native`` off)."""
    if request.param == "c" and native.codec is None:
        pytest.skip("the C extension tbexport._codec is not built")
    with tuning.tuned(native=request.param == "c"):
        yield str(request.param)


def _with_gap(path: Path, before: list[bytes], gap: int, after: list[bytes]) -> None:
    """Records, ``gap`` bytes of a hole (zeros, no disk), framing."""
    with path.open("wb") as out:
        out.write(b"".join(before))
        out.seek(gap, os.SEEK_CUR)
        out.write(b"".join(after))


@EVERY_READER
def test_a_64_mib_stretch_of_zeros_between_records_is_skipped_at_memory_speed(
    tmp_path: Path, resync: str
) -> None:
    """Resynchronising was a Python loop over every byte: 16 MiB of zeros took 8.6 s."""
    before, after = _frames(_losses(range(5))), _frames(_losses(range(5, 10)))
    path = tmp_path / "events.out.tfevents.1"
    gap = 64 << 20
    _with_gap(path, before, gap, after)
    data = tbexport.load_scalars(path)
    assert _points(data.frame) == [("loss", s, s / 4) for s in range(10)]
    assert [(c.path, c.offset, c.skipped, c.reason) for c in data.corruptions] == [
        (str(path), len(b"".join(before)), gap, "invalid record header")
    ]
    with pytest.raises(tbexport.CorruptEventFileError, match="invalid record header"):
        tbexport.load_scalars(path, strict=True)


@EVERY_READER
def test_zeros_up_to_the_end_are_skipped_and_reported(tmp_path: Path, resync: str) -> None:
    before = _frames(_losses(range(5)))
    path = tmp_path / "events.out.tfevents.1"
    _with_gap(path, before, 0, [])
    os.truncate(path, len(b"".join(before)) + (20 << 20))
    data = tbexport.load_scalars(path)
    assert _points(data.frame) == [("loss", s, s / 4) for s in range(5)]
    assert [(c.offset, c.skipped) for c in data.corruptions] == [(len(b"".join(before)), 20 << 20)]


def _garbage_cases() -> Iterator[tuple[str, bytes]]:
    rng = np.random.default_rng(7)
    yield "random", rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    yield "small lengths", np.arange(40_000, dtype="<u8").tobytes()  # every length fits
    yield "ones", b"\x01" * 100_000
    # (not 8: a header claiming 8 bytes, then one more header, is a valid record)
    yield "headers without data", b"".join(_header(n) for n in range(9, 5000))
    zeros_then = bytearray(200_000)
    zeros_then[150_001] = 1
    yield "zeros and a byte", bytes(zeros_then)


@EVERY_READER
@pytest.mark.parametrize("case", [name for name, _ in _garbage_cases()])
def test_resynchronising_finds_the_first_valid_record_after_any_garbage(
    tmp_path: Path, resync: str, case: str
) -> None:
    garbage = dict(_garbage_cases())[case]
    before, after = _frames(_losses(range(3))), _frames(_losses(range(3, 6)))
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(before) + garbage + b"".join(after))
    data = tbexport.load_scalars(path)
    assert _points(data.frame) == [("loss", s, s / 4) for s in range(6)]
    assert [(c.offset, c.skipped) for c in data.corruptions] == [
        (len(b"".join(before)), len(garbage))
    ]


@NEEDS_C
def test_the_c_and_vectorised_searches_agree() -> None:
    assert native.codec is not None
    rng = np.random.default_rng(3)
    frames = _frames(_losses(range(20)))
    blob = bytearray(b"".join(frames))
    for _ in range(30):  # flipped bits and zeroed stretches
        at = int(rng.integers(len(blob)))
        if rng.random() < 0.5:
            blob[at] ^= 1 << int(rng.integers(8))
        else:
            blob[at : at + int(rng.integers(1, 60))] = bytes(60)[: len(blob[at : at + 60])]
    data = bytes(blob)
    found = 0
    for start in range(0, len(data), 7):
        in_c = native.codec.resync(data, start, len(data))
        expected = in_c.position if in_c.state == native.codec.RESYNC_VERIFIED else len(data)
        assert framing._python_next_valid_record(data, start, len(data)) == expected, start
        found += expected < len(data)
    assert found > 10


@EVERY_READER
@pytest.mark.parametrize("window", [16, 100, 1024])
def test_the_search_after_damage_reads_a_file_a_window_at_a_time(
    tmp_path: Path, window: int
) -> None:
    """Records straddle the windows, and a record longer than a window is checked in
    pieces; garbage past the last record is damage up to the end."""
    big = record_bytes([simple("x" * 5000, 1, 1.0)])
    data = bytes(3000) + b"\x05" * 33 + record_bytes(_losses(range(2))) + big + b"\x05" * 40
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(data)
    with tuning.tuned(whole_file_bytes=0, window_bytes=window):
        read = tbexport.load_scalars(path)
    assert _points(read.frame) == [("loss", 0, 0.0), ("loss", 1, 0.25), ("x" * 5000, 1, 1.0)]
    assert [(c.offset, c.skipped) for c in read.corruptions] == [
        (0, 3033),
        (len(data) - 40, 40),
    ]


# ---------- 5. sizes multiplied before they are checked ----------


@NEEDS_C
def test_sheet_rows_refuses_row_numbers_that_would_overflow() -> None:
    fastscan = native.codec
    assert fastscan is not None
    steps, values = np.arange(3, dtype=np.int64), np.ones(3)
    with pytest.raises(ValueError, match="row numbers"):
        fastscan.sheet_rows(2**63 - 2, b"", steps, (values,), (0,), (False,))
    with pytest.raises(ValueError, match="row numbers"):
        fastscan.sheet_rows(-1, b"", steps, (values,), (0,), (False,))
    assert (
        fastscan.sheet_rows(2**63 - 4, b"", steps, (values,), (0,), (False,)).count(b"<row ") == 3
    )


# ---------- all of it at once, every reader alike ----------


def test_every_reader_reads_a_hostile_file_alike(tmp_path: Path, reader: str) -> None:
    frames = _frames([file_version(), *_losses(range(30))])
    half = tensor_event("h", 40, _half_tensor(-17408, "half"), metadata=scalars_metadata())
    frames.insert(5, record_bytes([half]))
    frames.insert(9, _header(1 << 40))  # a length far past the end
    frames.insert(15, bytes(5000))  # zeros
    frames.insert(20, _header(100) + b"\x01" * 30)  # a record cut short, mid-file
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames) + _header(1 << 33)[:10])
    data = tbexport.load_scalars(path)
    got = _points(data.frame)
    assert ("h", 40, -1.0) in got
    assert [p for p in got if p[0] == "loss"] == [("loss", s, s / 4) for s in range(30)]
    offsets = np.cumsum([0, *(len(f) for f in frames)])
    assert [(c.offset, c.skipped, c.reason) for c in data.corruptions] == [
        (int(offsets[9]), len(frames[9]), "corrupt record"),
        (int(offsets[15]), len(frames[15]), "invalid record header"),
        (int(offsets[20]), len(frames[20]), "corrupt record"),
    ]
    assert data.truncated == {str(path): 10}


@NEEDS_C
@pytest.mark.parametrize("seed", range(30))
def test_files_read_in_windows_of_any_size_read_as_protobuf_reads_them(
    tmp_path: Path, seed: int
) -> None:
    """Random files with damage, restarts, far lengths, zeros and half_val of 32 bits:
    the C scanner reading windows of any size (records straddling them, records longer
    than them) agrees with the pure-Python reader."""
    from .test_fast_path import _assert_same, _random_file

    rng = random.Random(seed)
    blob = bytearray(_random_file(rng, clean=seed % 5 == 0))
    half = tensor_event("h", 7, _half_tensor(rng.choice([-1, -17408, 0x13C00]), "half"))
    for hostile in random.Random(seed).sample(
        [_header(1 << 40), bytes(rng.randint(1, 3000)), record_bytes([half]), _header(5)], 2
    ):
        at = rng.randrange(len(blob) + 1)
        blob[at:at] = hostile
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(blob))
    with tuning.tuned(native=False):
        expected = event_file.read_event_file(path)
    _assert_same(event_file.read_event_file(path), expected)  # read whole
    for window in (16, 64, 1000, 1 << 20):
        with tuning.tuned(whole_file_bytes=0, window_bytes=window):
            _assert_same(event_file.read_event_file(path), expected)


@EVERY_READER
def test_a_file_that_shrinks_before_its_whole_read_keeps_the_records_before_the_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncated between the open and the read (a run restarted in place)."""
    path = tmp_path / "events.out.tfevents.1"
    events = [simple("loss", s, s / 4) for s in range(10)]
    kept = len(record_bytes(events[:4]))  # four whole records, then 5 bytes of the fifth
    path.write_bytes(record_bytes(events))
    real = event_file.open_file

    def opened_then_cut(name: str) -> source.LocalFile:
        file = real(name)
        os.truncate(name, kept + 5)
        return file

    monkeypatch.setattr(event_file, "open_file", opened_then_cut)
    result = event_file.read_event_file(path)
    assert result.series["loss"].steps.tolist() == [0, 1, 2, 3]
    assert [(c.offset, c.reason) for c in result.corruptions] == [(kept, SHRANK)]


@EVERY_READER
def test_damage_is_reported_in_file_order(tmp_path: Path) -> None:
    """A CRC-valid record that is no Event, then bytes that are no record: both readers
    report the record first, so that --strict names the same one."""
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(frame_payloads([b"\xff"]) + b"\x01" * 20 + record_bytes([simple("x", 1, 0.5)]))
    data = tbexport.load_scalars(path)
    assert [(c.offset, c.reason) for c in data.corruptions] == [
        (0, "undecodable event"),
        (17, "invalid record header"),
    ]
    with pytest.raises(tbexport.CorruptEventFileError, match="undecodable event at byte 0"):
        tbexport.load_scalars(path, strict=True)
