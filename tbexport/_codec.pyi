"""Types of the C extension ``tbexport._codec`` (sources in ``csrc/``)."""

from typing import Any, Final, final

import numpy as np
from typing_extensions import Buffer

# What the functions read: any buffer (numpy arrays are buffers; typeshed says so from 3.12)
_In = Buffer | np.ndarray[Any, Any]

@final
class Block:
    """Memory the scanner filled: a buffer, freed with the last view of it."""

    def __buffer__(self, flags: int, /) -> memoryview: ...

RESYNC_NONE: Final[int]
RESYNC_VERIFIED: Final[int]
RESYNC_UNCHECKED: Final[int]
HAS_VALUE: Final[int]
PLUGIN_SCALARS: Final[int]
PLUGIN_OTHER: Final[int]
SIMPLE: Final[int]
EXCEL_COLUMNS: Final[int]

@final
class Scan:
    """What one :func:`scan` call read (see ``csrc/records.c``)."""

    @property
    def position(self) -> int: ...
    @property
    def damaged(self) -> bool: ...
    @property
    def records(self) -> int: ...
    @property
    def steps(self) -> Block: ...
    @property
    def wall_times(self) -> Block: ...
    @property
    def values(self) -> Block: ...
    @property
    def tags(self) -> Block | None: ...
    @property
    def flags(self) -> Block | None: ...
    @property
    def fallbacks(self) -> list[tuple[int, int, int, int]]: ...
    @property
    def bounds(self) -> Block | None: ...
    @property
    def needed(self) -> int: ...

@final
class Resync:
    """Where a record may begin after damage (see :func:`resync`)."""

    @property
    def position(self) -> int: ...
    @property
    def state(self) -> int: ...

def scan(
    buffer: _In,
    start: int,
    size: int,
    verify: bool,
    tags: list[bytes],
    record: int,
    rank: _In | None = None,
    /,
) -> Scan: ...
def resync(buffer: _In, start: int, size: int, /) -> Resync: ...
def group(
    tags: _In,
    rank: _In,
    sources: tuple[_In, ...],
    destinations: tuple[_In, ...],
    bounds: _In,
    /,
) -> None: ...
def increasing(values: _In, /) -> bool: ...
def masked_crc32c(data: _In, /) -> int: ...
def crc32c(data: _In, value: int = 0, /) -> int: ...
def csv_rows(prefix: _In, steps: _In, columns: tuple[_In, ...], /) -> bytes: ...
def sheet_rows(
    first_row: int,
    run_text: _In,
    steps: _In,
    columns: tuple[_In, ...],
    styles: tuple[int, ...],
    nan_words: tuple[bool, ...],
    /,
) -> bytes: ...
