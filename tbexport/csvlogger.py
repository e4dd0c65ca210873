"""Lightning ``CSVLogger`` runs: ``version_N/metrics.csv`` read as a run's scalars.

The file has a ``step`` column and one column per metric (``epoch`` included);
each row fills the metrics logged at that step. Wall times are not recorded by
CSVLogger, so they are NaN. Values are parsed with Python's ``float``, exactly.
"""

from __future__ import annotations

import csv
import os
from array import array

import numpy as np

from .decode import FileScalars, Series, TagFilter, open_regular
from .records import Corruption

__all__ = ["METRICS_FILE", "read_metrics_csv"]

METRICS_FILE = "metrics.csv"


def read_metrics_csv(path: str | os.PathLike[str], accept: TagFilter | None = None) -> FileScalars:
    """Every metric of a CSVLogger ``metrics.csv``; rows that cannot be parsed are reported."""
    accept = accept or (lambda tag: True)
    steps: dict[str, array[int]] = {}
    values: dict[str, array[float]] = {}
    corruptions: list[Corruption] = []
    # (opened as event files are: a FIFO named metrics.csv must not block the read)
    with open(open_regular(os.fspath(path)), newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        tags = [t for t in (reader.fieldnames or []) if t != "step" and accept(t)]
        for tag in tags:
            steps[tag], values[tag] = array("q"), array("d")
        for row in reader:
            try:
                step = int(float(row["step"]))
                numbers = {t: float(row[t]) for t in tags if row.get(t) not in (None, "")}
            except (TypeError, ValueError, KeyError):
                line = reader.line_num
                corruptions.append(Corruption(os.fspath(path), line, 1, "unreadable row", "line"))
                continue
            for tag, number in numbers.items():
                steps[tag].append(step)
                values[tag].append(number)
    series = {
        tag: Series(
            np.frombuffer(steps[tag], dtype=np.int64),
            np.full(len(steps[tag]), np.nan),
            np.frombuffer(values[tag], dtype=np.float64),
        )
        for tag in tags
        if len(steps[tag])
    }
    size = os.path.getsize(path)
    return FileScalars(os.fspath(path), series, corruptions, 0, len(series), size=size)
