"""Damaged files: everything readable around a bad record is kept and the damage reported."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

import tbexport
from tbexport.reading.framing import RecordScan

from .builders import (
    file_version,
    frame_payloads,
    raw_simple_event,
    record_bytes,
    simple,
    write_events,
)

pytestmark = pytest.mark.usefixtures("reader")


def _values(frame) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    return [(int(s), float(v)) for s, v in zip(frame["step"], frame["value"], strict=True)]


def _events(steps: range) -> list:  # type: ignore[type-arg]
    return [simple("loss", s, s / 4) for s in steps]


def test_truncated_tail_is_not_an_error(tmp_path: Path) -> None:
    whole = record_bytes([file_version(), *_events(range(10))])
    path = tmp_path / "run" / "events.out.tfevents.1"
    path.parent.mkdir()
    path.write_bytes(whole[:-7])  # the last record is cut short, as while a writer is writing
    with pytest.warns() as caught:
        import warnings

        warnings.warn("sentinel", UserWarning, stacklevel=1)
        frame = tbexport.read_scalars(path.parent)
    assert [str(w.message) for w in caught] == ["sentinel"]  # no corruption warning
    assert _values(frame) == [(s, s / 4) for s in range(9)]
    data = tbexport.load_scalars(path.parent)
    assert data.truncated == {str(path): len(record_bytes([simple("loss", 9, 9 / 4)])) - 7}
    assert data.corruptions == []


@pytest.mark.parametrize("cut", [1, 5, 11])
def test_tail_shorter_than_a_header_is_truncation(tmp_path: Path, cut: int) -> None:
    whole = record_bytes(_events(range(3)))
    two = len(record_bytes(_events(range(2))))
    path = tmp_path / "events.out.tfevents.x"
    path.write_bytes(whole[: two + cut])
    data = tbexport.load_scalars(path)
    assert _values(data.frame) == [(0, 0.0), (1, 0.25)]
    assert data.corruptions == [] and data.truncated == {str(path): cut}


def test_flipped_byte_mid_file_skips_one_record_and_keeps_the_rest(tmp_path: Path) -> None:
    records = [record_bytes([e]) for e in _events(range(20))]
    blob = bytearray(b"".join(records))
    bad_offset = sum(len(r) for r in records[:7])
    blob[bad_offset + 14] ^= 0x40  # inside record 7's payload: its data CRC no longer matches
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(blob))

    with pytest.warns(tbexport.CorruptRecordWarning, match=r"corrupt record at byte \d+"):
        frame = tbexport.read_scalars(path)
    assert _values(frame) == [(s, s / 4) for s in range(20) if s != 7]
    data = tbexport.load_scalars(path)
    [corruption] = data.corruptions
    assert corruption.path == str(path)
    assert corruption.offset == bad_offset
    assert corruption.skipped == len(records[7])
    assert frame.attrs["corruptions"] == [str(corruption)]


def test_garbage_between_records_is_skipped_and_reported(tmp_path: Path) -> None:
    garbage = bytes(range(200, 256)) * 3 + b"\x00" * 13
    before = record_bytes(_events(range(5)))
    after = record_bytes(_events(range(5, 10)))
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(before + garbage + after)
    data = tbexport.load_scalars(path)
    assert _values(data.frame) == [(s, s / 4) for s in range(10)]
    assert [(c.offset, c.skipped, c.reason) for c in data.corruptions] == [
        (len(before), len(garbage), "invalid record header")
    ]


def test_strict_turns_corruption_into_an_error(tmp_path: Path) -> None:
    blob = bytearray(record_bytes(_events(range(4))))
    blob[20] ^= 0xFF
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(bytes(blob))
    with pytest.raises(
        tbexport.CorruptEventFileError, match=r"events.out.tfevents.1: corrupt record at byte 0"
    ):
        tbexport.read_scalars(path, strict=True)


def test_strict_accepts_a_truncated_tail(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(record_bytes(_events(range(4)))[:-3])
    assert len(tbexport.read_scalars(path, strict=True)) == 3


def test_empty_event_file_has_no_points(tmp_path: Path) -> None:
    path = tmp_path / "run" / "events.out.tfevents.0"
    path.parent.mkdir()
    path.write_bytes(b"")
    write_events(tmp_path / "run" / "events.out.tfevents.1", _events(range(3)))
    data = tbexport.load_scalars(tmp_path / "run")
    assert _values(data.frame) == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert data.corruptions == [] and data.truncated == {}


def test_a_file_that_is_not_an_event_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes about the experiment, not an event file\n" * 5)
    with pytest.raises(
        tbexport.NotAnEventFileError, match=r"not a TensorBoard event file: .*notes\.txt"
    ):
        tbexport.read_scalars(path)


def test_record_scan_without_verification_yields_bad_payloads(tmp_path: Path) -> None:
    blob = bytearray(record_bytes(_events(range(3))))
    blob[20] ^= 0xFF
    path = tmp_path / "f"
    path.write_bytes(bytes(blob))
    assert len(list(RecordScan(path, verify=False))) == 3
    assert len(list(RecordScan(path, verify=True))) == 2


def test_a_tag_that_is_not_utf8_makes_its_record_undecodable(tmp_path: Path) -> None:
    """protobuf rejects such a record whole; the C scanner must not keep part of it."""
    path = tmp_path / "events.out.tfevents.1"
    payloads = [
        raw_simple_event(0, [(b"\xff", 1.0)]),
        raw_simple_event(1, [(b"ok", 2.0), (b"\xc0\xaf", 9.0)]),  # overlong '/': invalid
        raw_simple_event(2, [(b"ok", 3.0), ("é".encode(), 4.0)]),
        raw_simple_event(3, [(b"\xed\xa0\x80", 5.0)]),  # a UTF-16 surrogate: invalid
    ]
    path.write_bytes(frame_payloads(payloads))
    data = tbexport.load_scalars(path)
    frame = data.frame
    assert frame["tag"].astype(str).tolist() == ["ok", "é"]
    assert frame["step"].tolist() == [2, 2] and frame["value"].tolist() == [3.0, 4.0]
    assert [c.reason for c in data.corruptions] == ["undecodable event"] * 3


def test_a_file_that_grew_since_its_size_was_taken_is_read_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """A training run appends records between fstat() and the read: no negative tail.

    (A file read whole is read to its end; one read in windows, to the size it had
    when it was opened: there the records after it are a truncated tail.)
    """
    from tbexport.reading import event_file

    path = tmp_path / "events.out.tfevents.1"
    write_events(path, [file_version()] + [simple("loss", s, s / 4) for s in range(50)])
    real_fstat = os.fstat

    def fstat_before_the_last_records(fd: int) -> SimpleNamespace:
        status = real_fstat(fd)
        return SimpleNamespace(st_size=status.st_size - 100, st_mode=status.st_mode)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fstat", fstat_before_the_last_records)
        result = event_file.read_event_file(path)
    if reader == "c-windows":
        assert result.truncated_tail == 26 and result.corruptions == []  # cut at the size
        assert result.series["loss"].steps.tolist() == list(range(47))
        return
    assert result.truncated_tail == 0 and result.corruptions == []
    assert result.series["loss"].steps.tolist() == list(range(50))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_fifo_named_like_an_event_file_is_skipped_not_waited_for(
    tmp_path: Path, reader: str, jobs: int
) -> None:
    """Opening a FIFO for reading waits for a writer: it must not hang the read."""
    for run in ("a", "b"):
        write_events(tmp_path / run / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    fifo = tmp_path / "b" / "events.out.tfevents.2"
    os.mkfifo(fifo)
    (tmp_path / "c").mkdir()
    os.mkfifo(tmp_path / "c" / "metrics.csv")
    data = tbexport.load_scalars(tmp_path, jobs=jobs)
    assert [str(c) for c in data.corruptions] == [
        f"{fifo}: cannot be read (not a regular file), skipped",
        f"{tmp_path / 'c' / 'metrics.csv'}: cannot be read (not a regular file), skipped",
    ]
    assert data.frame["value"].tolist() == [1.0, 1.0]
