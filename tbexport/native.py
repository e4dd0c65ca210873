"""The C extension :mod:`tbexport._codec`, imported once for every module that uses it.

``codec`` is the extension, or None where it was not built (no C compiler at install
time): then protobuf decodes every record and Python renders every number, with the
same results, more slowly. :func:`in_use` says whether it is used now.
"""

from __future__ import annotations

from tbexport.tuning import current

__all__ = ["codec", "in_use"]

try:
    from tbexport import _codec as codec
except ImportError:  # built without a C compiler
    codec = None  # type: ignore[assignment]


def in_use() -> bool:
    """Whether the extension decodes and renders now: built, and ``tuning.native`` on."""
    return codec is not None and current().native
