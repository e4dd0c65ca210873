"""Tuning parameters of the reading path: documented, and the seam tests use.

Nothing here changes what is read, only how: every setting gives the same points.
Change them for one block of code with :func:`tuned`::

    with tbexport.tuning.tuned(native=False):  # protobuf decodes every record
        frame = tbexport.read_scalars("lightning_logs")

``native``: use the C extension where it is built (False, or the environment variable
``TBEXPORT_PURE_PYTHON`` set when tbexport is imported: TensorBoard's protobuf classes
decode every record, and Python checks the CRCs, finds records after damage and
renders every number, as without the extension). ``whole_file_bytes``:
files smaller than this are read with one read; larger ones ``window_bytes`` at a time,
so that memory holds a window of the file and its decoded points, not the whole file.
``join_threads_points``: a column of the frame this long or longer is joined on
threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

__all__ = ["Tuning", "current", "tuned"]


@dataclass(frozen=True)
class Tuning:
    """How the reading path goes about its work (see the module's documentation)."""

    native: bool = not os.environ.get("TBEXPORT_PURE_PYTHON")
    # A read of a whole small file costs one call; above 16 MiB a window at a time
    # bounds memory. One pass over 1M points (55 MB, in the page cache), best of 30:
    # 64 KiB windows 32.6 ms, 256 KiB 31.0, 1 MiB 31.1, 8 MiB 31.4.
    whole_file_bytes: int = 16 << 20
    window_bytes: int = 1 << 20
    # The frame's columns are joined on threads from this many points: 8M points joined
    # in 10.8 ms on one thread, 7.7 on two; 1M in 0.6 and 1.1 (1,000 pieces, best of 5).
    join_threads_points: int = 1 << 22

    def __post_init__(self) -> None:
        if self.whole_file_bytes < 0:
            raise ValueError(f"whole_file_bytes must be 0 or more, not {self.whole_file_bytes}")
        if self.window_bytes < 16:
            raise ValueError(f"window_bytes must be 16 or more, not {self.window_bytes}")


_current = Tuning()


def current() -> Tuning:
    """The settings in force."""
    return _current


@contextmanager
def tuned(**changes: object) -> Iterator[Tuning]:
    """Settings changed for the ``with`` block (for every thread), restored after it."""
    global _current
    before = _current
    _current = replace(before, **changes)  # type: ignore[arg-type]
    try:
        yield _current
    finally:
        _current = before
