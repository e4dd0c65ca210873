"""Excel ``.xlsx`` output: an ``index`` sheet, then one sheet per tag.

Each tag sheet has the header ``step, wall_time, value`` (``run`` first when
several runs are written). NaN and ±Inf, which Excel cannot store as numbers, are
written as the text ``nan``/``inf``/``-inf`` and counted in the index. A tag with
more rows than a sheet holds continues on sheets named ``<sheet> #2``, ….
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xlsxwriter

from ..names import sheet_continuation, sheet_names
from ..reshape import tag_stats

MAX_ROWS = 1_048_576  # Excel's row limit, header included
INDEX_COLUMNS = ["run", "tag", "sheet", "points", "first_step", "last_step", "last_value",
                 "min", "max", "nonfinite"]  # fmt: skip


def write(frame: pd.DataFrame, path: Path, *, wide: bool = False) -> None:
    """Write ``frame`` as an Excel workbook (``wide`` is accepted for symmetry and ignored)."""
    tags = [str(t) for t in frame["tag"].cat.categories if (frame["tag"] == t).any()]
    multi_run = frame["run"].nunique() > 1
    names = sheet_names(tags)
    taken = {n.lower() for n in names.values()} | {"index"}
    by_tag = {str(t): g for t, g in frame.groupby("tag", observed=True, sort=True)}
    rows_per_sheet = MAX_ROWS - 1
    sheets = {
        tag: [names[tag]]
        + [sheet_continuation(names[tag], part + 1, taken)
           for part in range(1, _ceil_div(len(by_tag[tag]), rows_per_sheet))]
        for tag in tags
    }  # fmt: skip
    with xlsxwriter.Workbook(path, {"constant_memory": True}) as book:
        bold = book.add_format({"bold": True})
        _write_index(book, tag_stats(frame), sheets, bold)
        for tag in tags:
            _write_tag(book, by_tag[tag], sheets[tag], multi_run, bold, rows_per_sheet)


def _ceil_div(a: int, b: int) -> int:
    return max(1, -(-a // b))


def _write_index(book: Any, stats: pd.DataFrame, sheets: dict[str, list[str]], bold: Any) -> None:
    sheet = book.add_worksheet("index")
    sheet.write_row(0, 0, INDEX_COLUMNS, bold)
    sheet.freeze_panes(1, 0)
    sheet.set_column(0, 1, 28)
    sheet.set_column(2, 2, 24)
    sheet.set_column(3, len(INDEX_COLUMNS) - 1, 12)
    link = book.add_format({"font_color": "blue", "underline": 1})
    for r, row in enumerate(stats.itertuples(index=False), 1):
        names = sheets[row.tag]
        sheet.write_string(r, 0, row.run)
        sheet.write_string(r, 1, row.tag)
        target = names[0].replace("'", "''")
        sheet.write_url(r, 2, f"internal:'{target}'!A1", link, string=", ".join(names))
        for c, value in enumerate(row[3:], 3):
            _write_cell(sheet, r, c, value)


def _write_cell(sheet: Any, row: int, col: int, value: float) -> None:
    if np.isfinite(value):
        sheet.write_number(row, col, value)
    elif col == 6 or not np.isnan(value):  # empty min/max: no finite value
        sheet.write_string(row, col, _nonfinite_text(value))


def _nonfinite_text(value: float) -> str:
    if np.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _write_tag(
    book: Any, group: pd.DataFrame, names: list[str], multi_run: bool, bold: Any, per_sheet: int
) -> None:
    header = (["run"] if multi_run else []) + ["step", "wall_time", "value"]
    runs = group["run"].astype(str).to_numpy() if multi_run else None
    steps = group["step"].to_numpy()
    wall_times = group["wall_time"].to_numpy()
    values = group["value"].to_numpy()
    finite = np.isfinite(values)
    for part, name in enumerate(names):
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, header, bold)
        sheet.freeze_panes(1, 0)
        sheet.set_column(0, len(header) - 1, 16)
        start = part * per_sheet
        stop = min(start + per_sheet, len(steps))
        offset = 1 if multi_run else 0
        number, string = sheet.write_number, sheet.write_string
        for r, i in enumerate(range(start, stop), 1):
            if runs is not None:
                string(r, 0, runs[i])
            number(r, offset, steps[i])
            number(r, offset + 1, wall_times[i])
            if finite[i]:
                number(r, offset + 2, values[i])
            else:
                string(r, offset + 2, _nonfinite_text(values[i]))
