"""What tbexport reads, as data: the types every stage of the pipeline passes on.

At the bottom of the import graph: this module imports nothing of tbexport's, so that
no module imports a reader, a shaper or a writer for a type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "SMOOTHED",
    "Corruption",
    "FileScalars",
    "GlobFilter",
    "HParam",
    "Run",
    "ScalarData",
    "Series",
    "TagFilter",
    "value_columns",
]

COLUMNS = ("run", "tag", "step", "wall_time", "value")  # of the long frame, in order
SMOOTHED = "value_smoothed"  # the column tbexport.smooth adds


def value_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's value columns: ``value``, and ``value_smoothed`` when smoothed."""
    return [c for c in ("value", SMOOTHED) if c in frame]


HParam = float | str | bool

TagFilter = Callable[[str], bool]


@dataclass
class Series:
    """The points of one tag in file order: int64 steps, float64 wall times and values."""

    steps: np.ndarray
    wall_times: np.ndarray
    values: np.ndarray
    # (points before it, step) of each purge_step restart that applies to this tag
    purges: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class FileScalars:
    """Everything read from one event file."""

    path: str
    series: dict[str, Series]
    corruptions: list[Corruption]
    truncated_tail: int
    valid_records: int
    # SessionLog START events (``purge_step``): (step, points each tag had before it)
    purges: list[tuple[int, dict[str, int]]] = field(default_factory=list)
    hparams: dict[str, HParam] = field(default_factory=dict)
    size: int = 0  # bytes read


@dataclass(frozen=True)
class GlobFilter:
    """Matches tags against glob patterns; no patterns match everything. Picklable.

    ``ignore_case``: ``val_*`` also matches ``Val_Loss``.
    """

    patterns: tuple[str, ...] = ()
    ignore_case: bool = False

    def __call__(self, tag: str) -> bool:
        if not self.patterns:
            return True
        if self.ignore_case:
            tag = tag.casefold()
            return any(fnmatchcase(tag, p.casefold()) for p in self.patterns)
        return any(fnmatchcase(tag, p) for p in self.patterns)

    def unmatched(self, tags: Iterable[str]) -> list[str]:
        """The patterns that match none of ``tags``."""
        tags = list(tags)
        return [
            p for p in self.patterns if not any(GlobFilter((p,), self.ignore_case)(t) for t in tags)
        ]


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


@dataclass(frozen=True)
class Run:
    """One run: its display name and its event files in file-name order."""

    name: str
    files: tuple[Path, ...]
    # whether the walk saw a Lightning hparams.yaml beside the files (None: not looked)
    hparams_yaml: bool | None = None


@dataclass
class ScalarData:
    """The result of a read: the long frame plus what was noticed on the way."""

    frame: pd.DataFrame
    runs: list[Run]
    corruptions: list[Corruption] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    tags_seen: set[str] = field(default_factory=set)
    # run name -> hyperparameters (hparams.yaml, then the event files' hparams records)
    hparams: dict[str, dict[str, HParam]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # other inputs left out (hparams.yaml)

    @property
    def files(self) -> int:
        return sum(len(run.files) for run in self.runs)
