"""The formats tbexport writes: the one table that decides it, and a path's format."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tbexport.exceptions import UnknownFormatError

__all__ = ["FORMATS", "RESULTS_FORMATS", "Writer", "format_for"]

Writer = Callable[..., None]

# suffix -> module in tbexport.writing, or a writer function; the one table that
# decides what tbexport can write. Modules are imported on use (scipy is slow to load).
FORMATS: dict[str, str | Writer] = {
    ".xlsx": "excel",
    ".mat": "matlab",
    ".csv": "csv",
    ".tfevents": "tfevents",  # a directory of TensorBoard runs, not one file
}
# Formats that hold only a results table (tbexport.results), never the points.
RESULTS_FORMATS = (".md", ".tex")


def format_for(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format (a key of ``FORMATS``) for ``path``, or for an explicit ``format``."""
    suffix = ("." + format.lower().lstrip(".")) if format else Path(path).suffix.lower()
    if suffix not in FORMATS and suffix not in RESULTS_FORMATS:
        files = [f for f in FORMATS if f != ".tfevents"]
        known = ", ".join([*files, *RESULTS_FORMATS, ".tfevents (a directory)"])
        what = f"format {format!r}" if format else f"output suffix {suffix or '(none)'!r}"
        raise UnknownFormatError(f"unknown {what}; known formats: {known}")
    return suffix
