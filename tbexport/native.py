"""The C extension :mod:`tbexport._codec`, imported once for every module that uses it.

``codec`` is the extension, or None where it was not built (no C compiler at install
time): then protobuf decodes every record and Python renders every number, with the
same results, more slowly.
"""

from __future__ import annotations

__all__ = ["codec"]

try:
    from tbexport import _codec as codec
except ImportError:  # built without a C compiler
    codec = None  # type: ignore[assignment]
