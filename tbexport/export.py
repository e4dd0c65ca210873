"""Read scalars and write them to a file in one call (what the CLI runs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import NoScalarsError
from .load import Paths, load_scalars
from .records import Corruption
from .write import format_for, write_scalars

__all__ = ["ExportResult", "default_output", "export"]

DEFAULT_FORMAT = ".xlsx"


@dataclass
class ExportResult:
    """What an export wrote and what it noticed."""

    output: Path
    runs: int
    tags: int
    points: int
    files: int
    corruptions: list[Corruption] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)


def default_output(paths: Paths, format: str | None = None) -> Path:
    """``<input name><suffix>`` in the current directory (``version_0.mat``)."""
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    suffix = format_for("", format) if format else DEFAULT_FORMAT
    if len(given) != 1:
        return Path("scalars" + suffix)
    source = Path(given[0]).resolve()
    stem = source.name.split(".tfevents")[0] if source.is_file() else source.name
    if source.is_file() and stem.startswith("events.out"):
        stem = source.parent.name
    return Path((stem or "scalars") + suffix)


def export(
    paths: Paths,
    output: str | os.PathLike[str] | None = None,
    *,
    format: str | None = None,
    tags: Sequence[str] | None = None,
    wide: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Read every scalar under ``paths`` and write them to ``output``.

    The format follows ``output``'s suffix (``.xlsx``, ``.mat``, ``.csv``) or
    ``format``; without ``output`` the file is named after the input, in the
    current directory. Raises :class:`NoScalarsError` when there is nothing to write.
    The other options are those of :func:`tbexport.load_scalars`.
    """
    target = Path(output) if output is not None else default_output(paths, format)
    format_for(target, format)  # fail on an unknown format before reading anything
    data = load_scalars(
        paths,
        tags=tags,
        keep_duplicates=keep_duplicates,
        strict=strict,
        verify=verify,
        progress=progress,
        jobs=jobs,
    )
    if data.frame.empty:
        raise NoScalarsError(f"no scalar data found in {_describe(paths)}")
    write_scalars(data.frame, target, format=format, wide=wide)
    return ExportResult(
        output=target,
        runs=int(data.frame["run"].nunique()),
        tags=int(data.frame["tag"].nunique()),
        points=len(data.frame),
        files=data.files,
        corruptions=data.corruptions,
        truncated=data.truncated,
    )


def _describe(paths: Paths) -> str:
    given = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    return ", ".join(os.fspath(p) for p in given)
