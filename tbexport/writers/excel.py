"""Excel ``.xlsx`` output: an ``index`` sheet, then one sheet per tag.

Each tag sheet has the header ``step, wall_time, value`` (``run`` first when
several runs are written). NaN and ±Inf, which Excel cannot store as numbers, are
written as the text ``nan``/``inf``/``-inf`` and counted in the index
(``nonfinite``). A tag with more rows than a sheet holds continues on sheets named
``<sheet> #2``, …, all listed in the index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..decode import _fastscan
from ..names import sheet_continuation, sheet_names
from ..reshape import tag_stats
from ..xlsx import MAX_ROWS, Sheet, Workbook, column_letter, string_cell, xml_text
from .render import BLOCK_ROWS, render

INDEX_COLUMNS = [
    "run",
    "tag",
    "sheet",
    "points",
    "first_step",
    "last_step",
    "last_value",
    "min",
    "max",
    "nonfinite",
]
ROWS_PER_SHEET = MAX_ROWS - 1  # the header takes one


def write(frame: pd.DataFrame, path: Path, *, wide: bool = False) -> None:
    """Write ``frame`` as an Excel workbook (``wide`` is accepted for symmetry and ignored)."""
    by_tag = {str(t): g for t, g in frame.groupby("tag", observed=True, sort=True)}
    names = sheet_names(by_tag)
    taken = {n.lower() for n in names.values()} | {"index"}
    sheets = {
        tag: [names[tag]]
        + [sheet_continuation(names[tag], part, taken) for part in range(2, _parts(len(group)) + 1)]
        for tag, group in by_tag.items()
    }
    multi_run = frame["run"].nunique() > 1
    with Workbook(path) as book:
        _write_index(book.add_sheet("index", [28, 28, 24] + [12] * 7), tag_stats(frame), sheets)
        for tag, group in by_tag.items():
            _write_tag(book, group, sheets[tag], multi_run)


def _parts(rows: int) -> int:
    return max(1, math.ceil(rows / ROWS_PER_SHEET))


def _write_index(sheet: Sheet, stats: pd.DataFrame, sheets: dict[str, list[str]]) -> None:
    sheet.header(INDEX_COLUMNS)
    rows = []
    for r, row in enumerate(stats.itertuples(index=False), 2):
        run, tag = str(row.run), str(row.tag)
        targets = sheets[tag]
        cells = [
            string_cell(f"A{r}", run),
            string_cell(f"B{r}", tag),
            string_cell(f"C{r}", ", ".join(targets), 2),
        ]
        for c, value in enumerate(row[2:], 3):
            ref = f"{column_letter(c)}{r}"
            if np.isfinite(value):
                cells.append(f'<c r="{ref}"><v>{_number(value)}</v></c>')
            elif c == 6 or not np.isnan(value):  # min/max stay empty when nothing is finite
                cells.append(string_cell(ref, _nonfinite_text(value)))
        rows.append(f'<row r="{r}">{"".join(cells)}</row>')
        sheet.link(f"C{r}", targets[0], ", ".join(targets))
    sheet.raw_rows(rows)
    sheet.close()


def _number(value: float | int) -> str:
    return repr(int(value)) if isinstance(value, int | np.integer) else repr(float(value))


def _nonfinite_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _write_tag(book: Workbook, group: pd.DataFrame, names: list[str], multi_run: bool) -> None:
    header = (["run"] if multi_run else []) + ["step", "wall_time", "value"]
    columns = (
        np.ascontiguousarray(group["step"].to_numpy(dtype=np.int64)),
        np.ascontiguousarray(group["wall_time"].to_numpy(dtype=np.float64)),
        np.ascontiguousarray(group["value"].to_numpy(dtype=np.float64)),
    )
    runs = group["run"].astype(str).to_numpy() if multi_run else None
    for part, name in enumerate(names):
        sheet = book.add_sheet(name, [16] * len(header))
        sheet.header(header)
        start = part * ROWS_PER_SHEET
        stop = min(start + ROWS_PER_SHEET, len(columns[0]))
        blocks = [
            (piece - start + 2, xml_text(str(runs[first])) if runs is not None else "",
             *(c[piece : min(piece + BLOCK_ROWS, last)] for c in columns))
            for first, last in _run_segments(runs, start, stop)
            for piece in range(first, last, BLOCK_ROWS)
        ]  # fmt: skip
        for rows in render(_sheet_rows, blocks, stop - start):
            sheet.raw_bytes(rows)
        sheet.close()


def _run_segments(runs: np.ndarray | None, start: int, stop: int) -> list[tuple[int, int]]:
    """``[first, last)`` ranges within ``start:stop`` where the run stays the same."""
    if runs is None or stop <= start:
        return [(start, stop)]
    changes = np.flatnonzero(runs[start + 1 : stop] != runs[start : stop - 1]) + start + 1
    bounds = [start, *changes.tolist(), stop]
    return list(itertools.pairwise(bounds))


def _sheet_rows(first_row: int, run_xml: str, *columns: np.ndarray) -> bytes:
    if _fastscan is not None:
        return bytes(_fastscan.sheet_rows(first_row, run_xml.encode(), *columns))
    rows = _data_rows(first_row, run_xml, *(c.tolist() for c in columns))
    return "".join(rows).encode()


def _data_rows(
    first_row: int, run_xml: str, steps: list[int], wall_times: list[float], values: list[float]
) -> Iterator[str]:
    """Render rows as sheet XML; numbers in shortest round-trip form (pure-Python path)."""
    s_col, w_col, v_col = ("B", "C", "D") if run_xml else ("A", "B", "C")
    for r, (step, wall_time, value) in enumerate(
        zip(steps, wall_times, values, strict=True), first_row
    ):
        if value - value == 0.0:  # finite (NaN and ±Inf give NaN)
            value_cell = f'<c r="{v_col}{r}"><v>{value!r}</v></c>'
        else:
            value_cell = string_cell(f"{v_col}{r}", _nonfinite_text(value))
        run_cell = f'<c r="A{r}" t="inlineStr"><is><t>{run_xml}</t></is></c>' if run_xml else ""
        yield (
            f'<row r="{r}">{run_cell}<c r="{s_col}{r}"><v>{step}</v></c>'
            f'<c r="{w_col}{r}"><v>{wall_time!r}</v></c>{value_cell}</row>'
        )
