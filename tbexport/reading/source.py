"""Where the bytes come from: the one seam between the reading path and storage.

The reading path asks two things of storage: the entries of a directory
(:func:`list_directory`) and a file's bytes at given offsets (:func:`open_file`,
an object with ``size``, ``read(offset, length)`` and ``close()``). Here both are
local: ``os.scandir`` and ``os.pread``. Nothing above this module opens, lists or
stats a file by itself.

Files are read with ordinary reads, never mapped: a mapped file that shrinks under
the reader (a run restarted in place, a clean-up) kills the process with SIGBUS,
where a read just ends early, and the reader reports the shrinking like damage.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from types import TracebackType
from typing import Protocol

__all__ = [
    "FileShrank",
    "Listing",
    "LocalFile",
    "RandomAccessFile",
    "list_directory",
    "open_file",
    "stream",
]

_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class FileShrank(Exception):
    """The file being read ended before the size it had when reading began.

    ``data``: the bytes the read did get, up to the file's new end.
    """

    def __init__(self, message: str = "", data: bytes = b"") -> None:
        super().__init__(message)
        self.data = data


class RandomAccessFile(Protocol):
    """A file open for reading at offsets."""

    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int:
        """Its size when it was opened."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``, fewer only past ``size`` (-1: all from
        ``offset`` to the end, a file that grew since it was opened read to its end);
        :class:`FileShrank` when the file now ends before that."""
        ...

    def shrank(self) -> bool:
        """Whether the file is now shorter than ``size``."""
        ...

    def close(self) -> None: ...


class LocalFile:
    """A regular local file, read with ``os.pread``.

    (Opened without blocking: a FIFO named like an event file would block open() until
    a writer came. O_NONBLOCK changes nothing for a regular file.)
    """

    def __init__(self, path: str) -> None:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        self.name = path
        self.fd = os.open(path, flags)
        try:
            status = os.fstat(self.fd)
            if not stat.S_ISREG(status.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
        except BaseException:
            os.close(self.fd)
            raise
        self.size = status.st_size

    def read(self, offset: int, length: int) -> bytes:
        if length < 0:
            return self._read_to_end(offset)
        wanted = max(0, min(length, self.size - offset))
        data = self._pread(offset, wanted)
        if len(data) < wanted:
            raise FileShrank(f"ended at byte {offset + len(data)} of {self.size}", data)
        return data

    def _read_to_end(self, offset: int) -> bytes:
        wanted = max(0, self.size - offset)
        # a byte more than the size: a read that gets fewer has met the end (one call)
        data = self._pread(offset, wanted + 1)
        if len(data) < wanted:
            raise FileShrank(f"ended at byte {offset + len(data)} of {self.size}", data)
        if len(data) > wanted:  # it grew since it was opened: on to its end
            parts, got = [data], len(data)
            while part := os.pread(self.fd, 1 << 20, offset + got):
                parts.append(part)
                got += len(part)
            data = b"".join(parts)
        return data

    def _pread(self, offset: int, wanted: int) -> bytes:
        """Up to ``wanted`` bytes from ``offset``: fewer only where the file ends (a read
        cut short is read on)."""
        data = os.pread(self.fd, wanted, offset) if wanted > 0 else b""
        if 0 < len(data) < wanted:
            parts, got = [data], len(data)
            while got < wanted and (part := os.pread(self.fd, wanted - got, offset + got)):
                parts.append(part)
                got += len(part)
            data = b"".join(parts)
        return data

    def shrank(self) -> bool:
        return os.lseek(self.fd, 0, os.SEEK_END) < self.size

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> LocalFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_file(path: str | os.PathLike[str]) -> LocalFile:
    """``path`` open for reading; OSError unless it is a regular file."""
    return LocalFile(os.fspath(path))


class _Stream(io.RawIOBase):
    """A RandomAccessFile read from start to end, as a raw stream."""

    def __init__(self, file: RandomAccessFile) -> None:
        self.file, self.position = file, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.file.read(self.position, len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def stream(file: RandomAccessFile) -> io.BufferedReader:
    """``file``'s bytes as a buffered stream (for text readers: ``io.TextIOWrapper``)."""
    return io.BufferedReader(_Stream(file), buffer_size=1 << 16)


# files, subdirectories, links to directories, and the directory's identity (device and
# inode; None where the file system has no inode numbers)
Listing = tuple[list[str], list[str], list[str], object]


def list_directory(path: str) -> Listing | None:
    """A directory's (files, subdirectories, links to directories, identity); None if it
    cannot be read."""
    files: list[str] = []
    below: list[str] = []
    linked: list[str] = []
    try:
        # Entries looked at relative to the directory where the system can: an entry
        # whose full path is over PATH_MAX is still told apart.
        by_fd = os.scandir in os.supports_fd and os.open in os.supports_dir_fd
        handle: int | str = os.open(path, os.O_RDONLY | _O_DIRECTORY) if by_fd else path
        try:
            with os.scandir(handle) as entries:
                for entry in entries:
                    try:
                        is_directory = entry.is_dir()  # (a link to a directory is one)
                    except OSError:
                        is_directory = False
                    if not is_directory:
                        files.append(entry.name)
                    else:
                        (linked if entry.is_symlink() else below).append(entry.name)
            status = os.stat(handle)
        finally:
            if isinstance(handle, int):
                os.close(handle)
    except OSError:
        return None
    identity = (status.st_dev, status.st_ino) if status.st_ino else None
    return files, below, linked, identity
