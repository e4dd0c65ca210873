"""CSV output: the long frame (``run,tag,step,wall_time,value``), or the wide view.

Numbers are written in Python's shortest round-trip form, so reading the file back
gives the same doubles. NaN is an empty field (as pandas writes it), ±Inf
``inf``/``-inf``. The long form is rendered directly, which is several times
faster than ``DataFrame.to_csv`` on millions of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..decode import _fastscan
from ..reshape import to_wide
from .render import BLOCK_ROWS, render

HEADER = "run,tag,step,wall_time,value\n"


def write(frame: pd.DataFrame, path: Path, *, wide: bool = False) -> None:
    """Write ``frame`` as CSV; ``wide=True`` writes one column per tag instead."""
    if wide:
        to_wide(frame).to_csv(path, index=False, lineterminator="\n")
        return
    with path.open("wb") as handle:
        handle.write(HEADER.encode())
        for text in render(_csv_rows, _all_blocks(frame), len(frame)):
            handle.write(text)


def _all_blocks(frame: pd.DataFrame) -> Iterator[tuple[bytes, np.ndarray, np.ndarray, np.ndarray]]:
    for (run, tag), group in frame.groupby(["run", "tag"], observed=True, sort=False):
        prefix = (_quoted(str(run)) + "," + _quoted(str(tag)) + ",").encode()
        for block in _blocks(group):
            yield (prefix, *block)


def _csv_rows(prefix: bytes, steps: np.ndarray, walls: np.ndarray, values: np.ndarray) -> bytes:
    if _fastscan is not None:
        return bytes(_fastscan.csv_rows(prefix, steps, walls, values))
    text = prefix.decode()
    return (text + ("\n" + text).join(_lines(steps, walls, values)) + "\n").encode()


def _blocks(group: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    steps = np.ascontiguousarray(group["step"].to_numpy(dtype=np.int64))
    wall_times = np.ascontiguousarray(group["wall_time"].to_numpy(dtype=np.float64))
    values = np.ascontiguousarray(group["value"].to_numpy(dtype=np.float64))
    for start in range(0, len(steps), BLOCK_ROWS):
        stop = start + BLOCK_ROWS
        yield steps[start:stop], wall_times[start:stop], values[start:stop]


def _lines(steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray) -> list[str]:
    """``step,wall_time,value`` texts (pure-Python path of the C ``csv_rows``)."""
    return [
        f"{s},{w!r},{v}"
        for s, w, v in zip(steps.tolist(), wall_times.tolist(), _number_texts(values), strict=True)
    ]


def _number_texts(values: np.ndarray) -> list[str]:
    texts = list(map(repr, values.tolist()))
    for i in np.flatnonzero(np.isnan(values)).tolist():
        texts[i] = ""
    return texts


def _quoted(text: str) -> str:
    """A CSV field, quoted only when it needs to be (commas, quotes, newlines)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()
