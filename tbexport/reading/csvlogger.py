"""Lightning ``CSVLogger`` runs: ``version_N/metrics.csv`` read as a run's scalars.

The file has a ``step`` column and one column per metric (``epoch`` included);
each row fills the metrics logged at that step. Wall times are not recorded by
CSVLogger, so they are NaN. Values are parsed with Python's ``float``, exactly.
"""

from __future__ import annotations

import csv
import io
import math
import os
from array import array
from typing import Any

import numpy as np

from tbexport.model import Corruption, FileScalars, Series, TagFilter
from tbexport.reading.discover import readable_name
from tbexport.reading.source import open_file, stream

__all__ = ["METRICS_FILE", "read_metrics_csv"]

METRICS_FILE = "metrics.csv"


_INT64 = range(-(2**63), 2**63)


def read_metrics_csv(path: str | os.PathLike[str], accept: TagFilter | None = None) -> FileScalars:
    """Every metric of a CSVLogger ``metrics.csv``; rows that cannot be parsed are reported.

    A row is reported (file and line) and left out when its step is no number or
    beyond int64 (``inf``, ``1e30``), a value of it is no number, it holds bytes that
    are not UTF-8, or a field of it is longer than Python's csv module reads (131,072
    characters); the rows around it are kept. A column name that is not UTF-8 names
    its tag with backslash escapes (:func:`~tbexport.reading.discover.readable_name`). A file
    whose header cannot be read is reported whole.
    """
    accept = accept or (lambda tag: True)
    name = os.fspath(path)
    steps: dict[str, array[int]] = {}
    values: dict[str, array[float]] = {}
    corruptions: list[Corruption] = []
    # (opened as event files are: a FIFO named metrics.csv must not block the read;
    # bytes that are not UTF-8 kept as surrogates, to report the row they are in)
    with (
        open_file(name) as file,
        io.TextIOWrapper(stream(file), "utf-8", "surrogateescape", newline="") as handle,
    ):
        reader = csv.DictReader(handle)
        try:
            fieldnames = reader.fieldnames or []
        except csv.Error as error:
            corruptions.append(Corruption(name, 0, 0, _header_problem(error), "file"))
            fieldnames = []
        # tag -> its column (a column name that is not UTF-8 shown with escapes)
        columns = {readable_name(c): c for c in fieldnames if c != "step"}
        tags = [t for t in columns if accept(t)]
        for tag in tags:
            steps[tag], values[tag] = array("q"), array("d")
        while fieldnames:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:  # (the reader goes on at the next line)
                corruptions.append(
                    Corruption(name, reader.reader.line_num, 1, _problem(error), "line")
                )
                continue
            try:
                step = _step(row["step"])
                numbers = {}
                for tag in tags:
                    text = row.get(columns[tag])
                    if text not in (None, ""):
                        numbers[tag] = float(text)
            except (TypeError, ValueError, KeyError) as error:
                reason = _problem(error, row)
                corruptions.append(Corruption(name, reader.line_num, 1, reason, "line"))
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
    return FileScalars(name, series, corruptions, 0, len(series), size=size)


class _StepOutOfRange(ValueError):
    pass


def _step(text: str | None) -> int:
    """A step as written: an integer exactly, a float (``1.0``, ``1e3``) cut to one;
    ValueError where it is none, or none that int64 holds."""
    if text is None:
        raise ValueError("no step")
    try:
        step = int(text)  # (exact beyond 2**53, where a float is not)
    except ValueError:
        number = float(text)
        if math.isnan(number):
            raise ValueError("step NaN") from None
        if not -(2.0**63) <= number < 2.0**63:  # (inf too)
            raise _StepOutOfRange(text) from None
        step = int(number)
    if step not in _INT64:
        raise _StepOutOfRange(text)
    return step


def _problem(error: Exception, row: dict[str | Any, Any] | None = None) -> str:
    """Why a row was left out, as reported."""
    if isinstance(error, csv.Error) and "field limit" in str(error):
        return f"unreadable row (a field over {csv.field_size_limit()} characters)"
    if isinstance(error, csv.Error):
        return f"unreadable row ({error})"
    if row is not None and any(_undecoded(v) for v in row.values()):
        return "unreadable row (not UTF-8)"
    if isinstance(error, _StepOutOfRange):
        return "unreadable row (step beyond int64)"
    return "unreadable row"


def _header_problem(error: csv.Error) -> str:
    if "field limit" in str(error):
        return f"header unreadable (a field over {csv.field_size_limit()} characters)"
    return f"header unreadable ({error})"


def _undecoded(value: object) -> bool:
    texts = value if isinstance(value, list) else [value]  # (extra fields: a list)
    return any(isinstance(t, str) and readable_name(t) != t for t in texts)
