"""CSV output.

Long layout: ``run,tag,step,<time>,value[,value_smoothed]``. Wide layout (runs side
by side): ``tag,step,<run>,<run>,…``. ``wide_tags`` (``--wide``): ``run,step,<tag>,…``.
Smoothed, the wide layouts add ``<run> (smoothed)`` / ``<tag> (smoothed)`` columns.
Numbers are written in Python's shortest round-trip form, so reading the file back
gives the same doubles. NaN is an empty field (as pandas writes it), ±Inf
``inf``/``-inf``; ``--time datetime`` writes ISO 8601 (UTC). The long form is
rendered in C where the extension is built, several times faster than
``DataFrame.to_csv`` on millions of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from tbexport.native import codec, in_use
from tbexport.options import WriteOptions
from tbexport.shaping import runs_side_by_side, time_column, to_wide, value_columns, wide_column
from tbexport.writing.render import BLOCK_ROWS, render


def write(frame: pd.DataFrame, path: Path, options: WriteOptions | None = None) -> None:
    """Write ``frame`` as CSV in the layout ``options`` asks for."""
    options = options or WriteOptions()
    if options.csv_safe:
        frame = formula_safe(frame)
    if options.wide_tags:
        to_wide(frame).to_csv(path, index=False, lineterminator="\n")
    elif options.layout == "wide":
        _runs_side_by_side(frame).to_csv(path, index=False, lineterminator="\n")
    elif time_column(frame) == "datetime":
        table = frame.copy()
        table["datetime"] = pd.to_datetime(table["datetime"], unit="s", utc=True)
        table.to_csv(path, index=False, lineterminator="\n", date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        _write_long(frame, path)


# What a spreadsheet opening a CSV reads as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_text(text: str) -> str:
    """``text`` prefixed with ``'`` if a spreadsheet would read it as a formula (and if
    it starts with ``'`` itself, so that no two names become one)."""
    return "'" + text if text.startswith((*FORMULA_STARTS, "'")) else text


def formula_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its run and tag names made safe to open (``--csv-safe``); numbers
    are never changed. (Only the categories are renamed: no copy of the points.)"""
    result = frame.copy(deep=False)
    for column in ("run", "tag"):
        if column in result and isinstance(result[column].dtype, pd.CategoricalDtype):
            names = [safe_text(str(c)) for c in result[column].cat.categories]
            result[column] = result[column].cat.rename_categories(names)
    return result


def _runs_side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """``tag,step,<run>,…`` (then ``<run> (smoothed),…`` when smoothed), runs in the
    frame's order: each tag's table holds only the runs that logged it."""
    values = value_columns(frame)
    parts = []
    for tag, group in frame.groupby("tag", observed=True, sort=True):
        tables = [runs_side_by_side(group, column) for column in values]
        for column, table in zip(values, tables, strict=True):
            table.columns = [wide_column(run, column) for run in table.columns]
        table = pd.concat(tables, axis=1).reset_index()
        table.insert(0, "tag", str(tag))
        parts.append(table)
    runs = [str(run) for run in frame["run"].cat.categories]
    header = ["tag", "step"] + [wide_column(run, column) for column in values for run in runs]
    if not parts:
        return pd.DataFrame(columns=["tag", "step"])
    table = pd.concat(parts, ignore_index=True)
    return table[[name for name in header if name in table.columns]]


def _write_long(frame: pd.DataFrame, path: Path) -> None:
    numbers = [time_column(frame), *value_columns(frame)]
    with path.open("wb") as handle:
        handle.write((",".join(["run", "tag", "step", *numbers]) + "\n").encode())
        for text in render(_csv_rows, _all_blocks(frame, numbers), len(frame)):
            handle.write(text)


def _all_blocks(
    frame: pd.DataFrame, numbers: list[str]
) -> Iterator[tuple[bytes, np.ndarray, tuple[np.ndarray, ...]]]:
    for (run, tag), group in frame.groupby(["run", "tag"], observed=True, sort=False):
        prefix = (_quoted(str(run)) + "," + _quoted(str(tag)) + ",").encode()
        steps = np.ascontiguousarray(group["step"].to_numpy(dtype=np.int64))
        columns = [np.ascontiguousarray(group[c].to_numpy(dtype=np.float64)) for c in numbers]
        for start in range(0, len(steps), BLOCK_ROWS):
            stop = start + BLOCK_ROWS
            yield prefix, steps[start:stop], tuple(c[start:stop] for c in columns)


def _csv_rows(prefix: bytes, steps: np.ndarray, columns: tuple[np.ndarray, ...]) -> bytes:
    if in_use():
        return bytes(codec.csv_rows(prefix, steps, columns))
    texts = [_number_texts(c) for c in columns]
    head = prefix.decode()
    lines = [
        head + ",".join([str(s), *row]) for s, *row in zip(steps.tolist(), *texts, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _number_texts(values: np.ndarray) -> list[str]:
    texts = list(map(repr, values.tolist()))
    for i in np.flatnonzero(np.isnan(values)).tolist():
        texts[i] = ""
    return texts


def _quoted(text: str) -> str:
    """A CSV field, quoted only when it needs to be (commas, quotes, line breaks)."""
    buffer = io.StringIO()
    # (the writer quotes the characters of its line terminator: both kinds of break)
    csv.writer(buffer, lineterminator="\r\n").writerow([text])
    return buffer.getvalue()[:-2]
