"""TFRecord framing of event files: find each record, verify it, survive damage.

An event file is a sequence of records::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

TensorBoard's own readers stop at the first bad record and drop the rest of the
file. Here a bad record is reported (offset and bytes skipped) and reading resumes
at the next position where a complete, CRC-valid record starts.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

FileBuffer = mmap.mmap | bytes | memoryview  # an event file, mapped or read whole

__all__ = ["Corruption", "FileBuffer", "RecordScan", "is_truncated_tail", "masked_crc32c"]

_HEADER: Final = 12  # length (8) + length crc (4)
_FOOTER: Final = 4  # data crc
_MASK_DELTA: Final = 0xA282EAD8
_u64 = struct.Struct("<Q").unpack_from
_u32 = struct.Struct("<I").unpack_from


def _python_masked_crc32c(data: bytes | memoryview) -> int:
    # the crc32c package is imported only without the C extension (it pulls in
    # argparse, email and importlib.metadata: ~2 MiB of memory for nothing)
    import crc32c

    crc: int = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


_c_masked_crc32c: Callable[[bytes | memoryview], int] | None
try:
    from . import _fastscan  # type: ignore[attr-defined]

    _c_masked_crc32c = _fastscan.masked_crc32c
except ImportError:  # built without a C compiler
    _c_masked_crc32c = None


def masked_crc32c(data: bytes | memoryview) -> int:
    """CRC32C of ``data``, masked the way TFRecord files store it."""
    if _c_masked_crc32c is not None:
        return _c_masked_crc32c(data)
    return _python_masked_crc32c(data)


@dataclass(frozen=True)
class Corruption:
    """A stretch of an event file that was skipped because it held no valid record (or
    the whole file, when it could not be read at all)."""

    path: str
    offset: int
    skipped: int
    reason: str
    unit: str = "byte"  # "line" for text inputs (CSVLogger files); "file": all of it

    def __str__(self) -> str:
        if self.unit == "file":
            return f"{self.path}: {self.reason}, skipped"
        if self.unit == "line":
            return f"{self.path}: {self.reason} at line {self.offset}, skipped"
        return (
            f"{self.path}: {self.reason} at byte {self.offset}, "
            f"skipped {self.skipped} byte{'s' if self.skipped != 1 else ''}"
        )


class RecordScan:
    """Iterates the verified record payloads of one event file.

    After iteration, ``corruptions`` lists every skipped stretch, ``truncated_tail``
    holds the size of an incomplete last record (a file still being written), and
    ``valid_records`` counts the records yielded.
    """

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.path = os.fspath(path)
        self.verify = verify
        self.corruptions: list[Corruption] = []
        self.truncated_tail = 0
        self.valid_records = 0
        self.position = 0  # bytes consumed so far, for progress reporting

    def __iter__(self) -> Iterator[bytes | memoryview]:
        with open(self.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                yield from self.records(buf, size)

    def records(self, buf: FileBuffer, size: int, pos: int = 0) -> Iterator[bytes | memoryview]:
        """Verified payloads from ``pos`` to the end, recovering from damage on the way."""
        verify = self.verify
        while pos < size:
            if size - pos >= _HEADER + _FOOTER:
                (length,) = _u64(buf, pos)
                end = pos + _HEADER + length
                if end + _FOOTER <= size and (
                    not verify
                    or (
                        masked_crc32c(buf[pos : pos + 8]) == _u32(buf, pos + 8)[0]
                        and masked_crc32c(buf[pos + _HEADER : end]) == _u32(buf, end)[0]
                    )
                ):
                    self.valid_records += 1
                    self.position = pos = end + _FOOTER
                    yield buf[pos - length - _FOOTER : pos - _FOOTER]
                    continue
            self.position = pos = self.recover(buf, pos, size)

    def recover(self, buf: FileBuffer, pos: int, size: int) -> int:
        """Classify the bad bytes at ``pos``; return where reading resumes."""
        if is_truncated_tail(buf, pos, size):
            self.truncated_tail = size - pos
            return size
        resume = _next_valid_record(buf, pos + 1, size)
        reason = "corrupt record" if _header_ok(buf, pos, size) else "invalid record header"
        self.corruptions.append(Corruption(self.path, pos, resume - pos, reason))
        return resume


def _header_ok(buf: FileBuffer, pos: int, size: int) -> bool:
    return size - pos >= _HEADER and masked_crc32c(buf[pos : pos + 8]) == _u32(buf, pos + 8)[0]


def is_truncated_tail(buf: FileBuffer, pos: int, size: int) -> bool:
    """True when the bytes at ``pos`` are the start of a record cut off by EOF."""
    remaining = size - pos
    if remaining < _HEADER:
        # Too short to hold a header: only a writer interrupted mid-header does this.
        return True
    (length,) = _u64(buf, pos)
    return _header_ok(buf, pos, size) and pos + _HEADER + length + _FOOTER > size


def _next_valid_record(buf: FileBuffer, start: int, size: int) -> int:
    """First position >= ``start`` where a complete CRC-valid record begins, else ``size``."""
    last = size - _HEADER - _FOOTER
    for pos in range(start, last + 1):
        (length,) = _u64(buf, pos)
        end = pos + _HEADER + length
        if end + _FOOTER > size:
            continue  # cheap filter: most garbage decodes to an impossible length
        if (
            masked_crc32c(buf[pos : pos + 8]) == _u32(buf, pos + 8)[0]
            and masked_crc32c(buf[pos + _HEADER : end]) == _u32(buf, end)[0]
        ):
            return pos
    return size
