"""TFRecord framing of event files: find each record, verify it, survive damage.

An event file is a sequence of records::

    uint64 length | uint32 masked_crc32c(length) | data[length] | uint32 masked_crc32c(data)

TensorBoard's own readers stop at the first bad record and drop the rest of the
file. Here a bad record is reported (offset and bytes skipped) and reading resumes
at the next position where a complete, CRC-valid record starts.

The bytes come from :mod:`tbexport.reading.source` (a file that shrinks while it is read is
reported like damage).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from tbexport.model import Corruption
from tbexport.native import codec, in_use
from tbexport.reading.source import FileShrank, RandomAccessFile, open_file
from tbexport.tuning import current

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Corruption",
    "FileBuffer",
    "FileBytes",
    "FileShrank",
    "RecordScan",
    "is_truncated_tail",
    "masked_crc32c",
]

_HEADER: Final = 12  # length (8) + length crc (4)
_FOOTER: Final = 4  # data crc
_MASK_DELTA: Final = 0xA282EAD8
SHRANK: Final = "file shrank while being read"


def _python_masked_crc32c(data: bytes | memoryview) -> int:
    # the crc32c package is imported only without the C extension (it pulls in
    # argparse, email and importlib.metadata: ~2 MiB of memory for nothing)
    import crc32c

    return _mask(crc32c.crc32c(data))


def masked_crc32c(data: bytes | memoryview) -> int:
    """CRC32C of ``data``, masked the way TFRecord files store it."""
    if in_use():
        return codec.masked_crc32c(data)
    return _python_masked_crc32c(data)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# Bytes FileBytes reads at a time for small slices (the pure-Python reader's records).
_BLOCK_BYTES: Final = 1 << 20


class FileBytes:
    """A file's bytes, read on demand from a :class:`~tbexport.reading.source.RandomAccessFile`.

    ``len()`` is the size when it was opened; slices are ``bytes``, small ones served
    from a cached block. A slice the file no longer holds raises :class:`FileShrank`.
    """

    def __init__(self, file: RandomAccessFile) -> None:
        self.file = file
        self.size = file.size
        self._start = 0
        self._cached = b""

    def shrank(self) -> bool:
        """Whether the file is now shorter than when it was opened."""
        return self.file.shrank()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice) -> bytes:
        start, stop = key.start, min(key.stop, self.size)  # (only [start:stop] slices)
        if stop <= start:
            return b""
        offset = start - self._start
        if offset >= 0 and stop - self._start <= len(self._cached):
            return self._cached[offset : stop - self._start]
        if stop - start >= _BLOCK_BYTES:
            return self.file.read(start, stop - start)
        self._start, self._cached = start, b""
        try:
            block = self.file.read(start, min(_BLOCK_BYTES, self.size - start))
        except FileShrank as error:  # what is left may still hold the slice
            block = error.data
            if len(block) < stop - start:
                raise
        self._cached = block
        return block[: stop - start]


FileBuffer = bytes | memoryview | FileBytes  # an event file, read whole or read as needed


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
        with open_file(self.path) as file:
            buf = FileBytes(file)
            if len(buf):
                yield from self.records(buf, len(buf))

    def records(self, buf: FileBuffer, size: int, pos: int = 0) -> Iterator[bytes | memoryview]:
        """Verified payloads from ``pos`` to the end, recovering from damage on the way."""
        verify = self.verify
        while pos < size:
            try:
                payload = self._record_at(buf, pos, size, verify)
            except FileShrank:
                self.position = pos = self.shrank(pos, size)
                continue
            if payload is not None:
                self.valid_records += 1
                self.position = pos = pos + _HEADER + len(payload) + _FOOTER
                yield payload
                continue
            self.position = pos = self.recover(buf, pos, size)

    @staticmethod
    def _record_at(buf: FileBuffer, pos: int, size: int, verify: bool) -> bytes | memoryview | None:
        """The payload of the valid record at ``pos``, else None."""
        if size - pos < _HEADER + _FOOTER:
            return None
        header = buf[pos : pos + _HEADER]
        length, header_crc = _header_fields(header)
        if pos + _HEADER + length + _FOOTER > size:
            return None
        if verify and masked_crc32c(header[:8]) != header_crc:
            return None  # (checked before the payload is read: the length may be garbage)
        body = memoryview(buf[pos + _HEADER : pos + _HEADER + length + _FOOTER])
        payload = body[:length]
        if verify and masked_crc32c(payload) != _u32_at(body, length)[0]:
            return None
        return payload

    def recover(self, buf: FileBuffer, pos: int, size: int) -> int:
        """Classify the bad bytes at ``pos``; return where reading resumes.

        A record cut off by the end of the file is a truncated tail (a file still being
        written) only when no valid record follows it; with one after it, it is damage
        like any other (a corrupted length).
        """
        try:
            if isinstance(buf, FileBytes) and buf.shrank():
                raise FileShrank
            if size - pos < _HEADER:
                # Too short to hold a header: only a writer interrupted mid-header does this.
                self.truncated_tail = size - pos
                return size
            header_ok = _header_ok(buf, pos, size)
            cut_off = header_ok and _runs_past_end(buf, pos, size)
            resume = _next_valid_record(buf, pos + 1, size)
        except FileShrank:
            return self.shrank(pos, size)
        if resume == size and cut_off:
            self.truncated_tail = size - pos
            return size
        reason = "corrupt record" if header_ok else "invalid record header"
        self.corruptions.append(Corruption(self.path, pos, resume - pos, reason))
        return resume

    def shrank(self, pos: int, size: int) -> int:
        """Report that the file ended at or before ``pos`` while being read; return ``size``."""
        self.corruptions.append(Corruption(self.path, pos, size - pos, SHRANK))
        return size


_header_fields = struct.Struct("<QI").unpack  # length, masked CRC of the length
_u32_at = struct.Struct("<I").unpack_from


def _u32(buf: FileBuffer, pos: int) -> int:
    return int.from_bytes(buf[pos : pos + 4], "little")


def _header_ok(buf: FileBuffer, pos: int, size: int) -> bool:
    if size - pos < _HEADER:
        return False
    header = buf[pos : pos + _HEADER]
    return masked_crc32c(header[:8]) == int.from_bytes(header[8:], "little")


def _runs_past_end(buf: FileBuffer, pos: int, size: int) -> bool:
    """Whether the record whose header is at ``pos`` would end past ``size``."""
    length = int.from_bytes(buf[pos : pos + 8], "little")
    return pos + _HEADER + length + _FOOTER > size


def is_truncated_tail(buf: FileBuffer, pos: int, size: int) -> bool:
    """True when the bytes at ``pos`` are the start of a record cut off by EOF: too few
    for a header, or a valid header whose record runs past the end with no valid
    record after it. FileShrank when ``buf`` is a file that shrank."""
    if size - pos < _HEADER:
        return True
    return (
        _header_ok(buf, pos, size)
        and _runs_past_end(buf, pos, size)
        and _next_valid_record(buf, pos + 1, size) == size
    )


def _next_valid_record(buf: FileBuffer, start: int, size: int) -> int:
    """First position >= ``start`` where a complete CRC-valid record begins, else ``size``.

    FileShrank when ``buf`` is a file that ended before ``size``.
    """
    if not in_use():
        return _python_next_valid_record(buf, start, size)
    if not isinstance(buf, FileBytes):
        view = buf if size == len(buf) else memoryview(buf)[:size]
        found = codec.resync(view, start, size)  # the buffer holds every position
        return found.position if found.state == codec.RESYNC_VERIFIED else size
    window, pos = current().window_bytes, start
    while size - pos >= _HEADER + _FOOTER:
        found = codec.resync(buf.file.read(pos, window), 0, size - pos)
        at = pos + found.position
        if found.state == codec.RESYNC_VERIFIED:
            return at
        if found.state == codec.RESYNC_UNCHECKED:  # a valid header; its data past the window
            if _data_crc_matches(buf.file, at):
                return at
            at += 1
        pos = at
    return size


def _data_crc_matches(file: RandomAccessFile, at: int) -> bool:
    """Whether the data of the record at ``at`` (its header known valid, the record
    within the file) have the CRC stored after them, read a window at a time."""
    length = int.from_bytes(file.read(at, 8), "little")
    assert codec is not None
    crc, done, window = 0, 0, current().window_bytes
    while done < length:
        piece = file.read(at + _HEADER + done, min(window, length - done))
        crc = codec.crc32c(piece, crc)
        done += len(piece)
    return _mask(crc) == int.from_bytes(file.read(at + _HEADER + length, 4), "little")


# Positions the vectorised search looks at in one go.
_SEARCH_BLOCK: Final = 1 << 20


def _python_next_valid_record(buf: FileBuffer, start: int, size: int) -> int:
    """``_next_valid_record`` without the C extension: numpy finds the candidates, a
    block of positions at a time (a length that fits, then a valid header CRC); only
    those are checked whole."""
    import numpy as np

    last = size - _HEADER - _FOOTER
    pos = start
    while pos <= last:
        stop = min(pos + _SEARCH_BLOCK, last + 1)  # positions pos..stop-1
        data = np.frombuffer(buf[pos : stop + _HEADER - 1], np.uint8)
        if not data.any():  # zeros (a hole): no record starts with 12 zero bytes
            pos = stop
            continue
        count = stop - pos
        low, high, stored = (_words(data, at, count) for at in (0, 4, 8))
        room = np.arange(size - _HEADER - _FOOTER - pos, size - _HEADER - _FOOTER - stop, -1)
        length = (high.astype(np.uint64) << np.uint64(32)) | low.astype(np.uint64)
        fits = np.flatnonzero(length <= room.astype(np.uint64))
        if len(fits):
            good = fits[_header_crcs(data, fits) == stored[fits]]
            for index in map(int, good):
                candidate = pos + index
                end = candidate + _HEADER + int(length[index])
                if masked_crc32c(buf[candidate + _HEADER : end]) == _u32(buf, end):
                    return candidate
        pos = stop
    return size


def _words(data: np.ndarray, at: int, count: int) -> np.ndarray:
    """The little-endian uint32 starting at each of ``count`` positions, from ``at`` on."""
    import numpy as np

    word = np.zeros(count, np.uint32)
    for byte in range(4):
        word |= data[at + byte : at + byte + count].astype(np.uint32) << np.uint32(8 * byte)
    return word


_crc_tables: np.ndarray | None = None


def _header_crcs(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The masked CRC32C of the 8 bytes at each of ``positions`` (slicing by 8)."""
    import numpy as np

    global _crc_tables
    if _crc_tables is None:
        tables = np.zeros((8, 256), np.uint32)
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            tables[0, i] = c
        for t in range(1, 8):
            tables[t] = (tables[t - 1] >> 8) ^ tables[0][tables[t - 1] & 0xFF]
        _crc_tables = tables
    crc = np.zeros(len(positions), np.uint32)
    for byte in range(8):
        values = data[positions + byte]
        if byte < 4:
            values = values ^ np.uint8(0xFF)  # the CRC's initial 0xFFFFFFFF
        crc ^= _crc_tables[7 - byte][values]
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + np.uint32(_MASK_DELTA)
