"""Excel ``.xlsx`` output: ``index``, ``summary`` and ``hparams`` sheets, then one sheet per tag.

Long layout: each tag sheet has the header ``step, wall_time, value`` (``run``
first when several runs are written; ``value_smoothed`` last with smoothing).
Wide layout: ``step`` then one column per run. NaN and ±Inf, which Excel cannot
store as numbers, are written as the text ``nan``/``inf``/``-inf`` in the long
layout and counted in the index (``nonfinite``); in the wide layout an empty cell
is a step that run did not log. A tag with more rows than a sheet holds continues
on sheets named ``<sheet> #2``, …, all listed in the index. Date-time cells
(``--time datetime``) hold the serial date nearest to the logged time and show it
to the millisecond. Where ``--name-by`` relabelled the runs (``directories``), the
index and hparams sheets have a ``dir`` column after ``run``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tbexport.exceptions import OutputError, OutputWarning
from tbexport.names import sheet_continuation, sheet_names
from tbexport.native import codec, in_use
from tbexport.options import WriteOptions
from tbexport.shaping import (
    SMOOTHED,
    runs_side_by_side,
    summarize,
    time_column,
    value_columns,
    wide_column,
)
from tbexport.writing.charts import ChartSeries, line_chart
from tbexport.writing.render import BLOCK_ROWS, render
from tbexport.writing.xlsx import (
    DATE_STYLE,
    MAX_COLUMNS,
    MAX_ROWS,
    Sheet,
    Workbook,
    bool_cell,
    column_letter,
    number_cell,
    string_cell,
    xml_text,
)

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
_OWN_SHEETS = ("index", "summary", "hparams")
_EXCEL_EPOCH_DAYS = 25569  # 1970-01-01 as an Excel serial date
_DAY = 86400


def write(frame: pd.DataFrame, path: Path, options: WriteOptions | None = None) -> None:
    """Write ``frame`` as an Excel workbook."""
    options = options or WriteOptions()
    by_tag = {str(t): g for t, g in frame.groupby("tag", observed=True, sort=True)}
    tables = {tag: _tag_table(group, options) for tag, group in by_tag.items()}
    own = (*_OWN_SHEETS, *(["results"] if options.results is not None else []))
    names = sheet_names(by_tag, reserved=own)
    taken = {n.lower() for n in names.values()} | set(own)
    sheets = {
        tag: [names[tag]]
        + [
            sheet_continuation(names[tag], part, taken)
            for part in range(2, _parts(len(table.steps)) + 1)
        ]
        for tag, table in tables.items()
    }
    summary = summarize(frame)
    directories = _directories(frame, options.directories)
    # the count of --reduce on an axis of its own, beside the other statistics
    statistics = "count" in options.statistics and len(options.statistics) > 1
    with Workbook(path) as book:
        if options.results is not None:
            _write_frame(book.add_sheet("results", [28, 28] + [14] * 60), options.results)
        widths = [28] + ([40] if directories else []) + [28, 24] + [12] * 7
        _write_index(book.add_sheet("index", widths), summary, sheets, directories)
        _write_frame(book.add_sheet("summary", [28, 28] + [12] * 10), summary)
        if options.hparams is not None and len(options.hparams.columns) > 1:
            hparams = _fitted(_with_directories(options.hparams, directories))
            widths = [28] + ([40] if directories else []) + [14] * 20
            _write_frame(book.add_sheet("hparams", widths), hparams)
        for tag, table in tables.items():
            for part, name in enumerate(sheets[tag]):
                sheet = book.add_sheet(name, table.widths())
                if options.charts:
                    lines = _chart_series(table, part, statistics)
                    book.add_chart(line_chart(name, tag, lines), column=len(table.headers) + 1)
                _write_table(sheet, table, part)


def _directories(frame: pd.DataFrame, directories: Mapping[str, str] | None) -> dict[str, str]:
    """The directories of the frame's runs (none where no run has one: statistics)."""
    if not directories:
        return {}
    runs = [str(r) for r in frame["run"].unique()]
    return {run: str(directories[run]) for run in runs if run in directories}


def _fitted(hparams: pd.DataFrame) -> pd.DataFrame:
    """The hparams table as a sheet holds it: past Excel's 16,384 columns (XFD), one row
    per hyperparameter and a column per run; past that too, the first runs' columns."""
    if len(hparams.columns) <= MAX_COLUMNS:
        return hparams
    turned = hparams.set_index("run").T.reset_index(names="hyperparameter")
    turned.columns = [str(c) for c in turned.columns]
    shown = turned.iloc[:, :MAX_COLUMNS]
    runs = len(turned.columns) - 1
    more = "" if runs < MAX_COLUMNS else f", the first {MAX_COLUMNS - 1:,} of {runs:,} runs"
    warnings.warn(
        f"sheet 'hparams': {len(hparams.columns) - 1:,} hyperparameters are more columns than "
        f"a sheet has ({MAX_COLUMNS:,}): written one row per hyperparameter{more}",
        OutputWarning,
        stacklevel=3,
    )
    return shown.iloc[: MAX_ROWS - 1]


def _with_directories(hparams: pd.DataFrame, directories: dict[str, str]) -> pd.DataFrame:
    """``hparams`` with a ``dir`` column after ``run`` (a hyperparameter ``dir`` renamed)."""
    if not directories:
        return hparams
    table = hparams.rename(columns={"dir": "dir (hparam)"})
    table.insert(1, "dir", [directories.get(str(run)) for run in table["run"]])
    return table


class _Table:
    """A tag sheet's columns: steps, float columns with styles, an optional run column."""

    def __init__(
        self,
        headers: list[str],
        steps: np.ndarray,
        columns: list[np.ndarray],
        styles: list[int],
        words: list[bool],
        runs: np.ndarray | None,
        wide: bool = False,
    ) -> None:
        self.wide = wide
        self.headers = headers
        self.steps = np.ascontiguousarray(steps, dtype=np.int64)
        self.columns = [np.ascontiguousarray(c, dtype=np.float64) for c in columns]
        self.styles = tuple(styles)
        self.words = tuple(words)
        self.runs = runs
        self.run_column = runs is not None

    def widths(self) -> list[float]:
        """Column widths: the run, the step, then 16 (24 for a date to the millisecond)."""
        offset = 1 if self.run_column else 0
        widths: list[float] = [28.0] * offset + [16.0]
        widths += [24.0 if style == DATE_STYLE else 16.0 for style in self.styles]
        return (widths + [16.0] * 31)[:31]


def _tag_table(group: pd.DataFrame, options: WriteOptions) -> _Table:
    values = value_columns(group)
    if options.layout == "wide":
        tables = [runs_side_by_side(group, c) for c in values]
        steps = tables[0].index.to_numpy()
        headers, columns = ["step"], []
        for column, table in zip(values, tables, strict=True):
            headers += [wide_column(run, column) for run in table.columns]
            columns += [table[run].to_numpy() for run in table.columns]
        if len(headers) > MAX_COLUMNS:
            raise OutputError(
                f"{group['tag'].iloc[0]}: {len(headers) - 1} run columns do not fit in an "
                f"Excel sheet ({MAX_COLUMNS:,} columns at most); use the long layout or .csv"
            )
        no_words = [False] * len(columns)
        return _Table(headers, steps, columns, [0] * len(columns), no_words, None, wide=True)
    time = time_column(group)
    times = group[time].to_numpy(dtype=np.float64)
    style = 0
    if time == "datetime":  # Excel dates are days since 1899-12-30, shown with a date style
        times, style = excel_serial(times), DATE_STYLE
    multi_run = group["run"].nunique() > 1
    headers = (["run"] if multi_run else []) + ["step", time, *values]
    columns = [times, *(group[c].to_numpy() for c in values)]
    runs = group["run"].astype(str).to_numpy() if multi_run else None
    styles = [style] + [0] * len(values)
    words = [False] + [True] * len(values)
    return _Table(headers, group["step"].to_numpy(), columns, styles, words, runs)


def excel_serial(seconds: np.ndarray) -> np.ndarray:
    """Unix seconds as Excel serial dates: the double nearest to
    ``seconds / 86400 + 25569`` (computed in double-double arithmetic, not with the
    two roundings of that expression, which can be a bit off)."""
    seconds = np.asarray(seconds, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        offset = float(_EXCEL_EPOCH_DAYS * _DAY)
        high = seconds + offset  # seconds since 1899-12-30 = high + low, exactly
        bits = high - seconds
        low = (seconds - (high - bits)) + (offset - bits)
        days = high / _DAY
        # days * 86400 = product + error, exactly (Dekker: 86400 has 10 significant bits)
        split = days * 134217729.0  # 2**27 + 1
        days_high = split - (split - days)
        product = days * _DAY
        error = (days_high * _DAY - product) + (days - days_high) * _DAY
        remainder = ((high - product) - error) + low  # what days * 86400 misses
        serial: np.ndarray = days + remainder / _DAY
    return serial


def _chart_series(table: _Table, part: int, statistics: bool = False) -> list[ChartSeries]:
    """Lines of a tag sheet's chart: one per run (raw faint, smoothed solid). With
    ``statistics``, the ``count`` lines go on the secondary axis."""
    start = part * ROWS_PER_SHEET
    stop = min(start + ROWS_PER_SHEET, len(table.steps))
    if table.wide:
        # wide layout: step in A, one column per run (smoothed columns after the raw ones)
        smoothed = any(h.endswith(" (smoothed)") for h in table.headers)
        lines = []
        for j, h in enumerate(table.headers[1:], 1):
            run = h.removesuffix(" (smoothed)")
            lines.append(
                ChartSeries(
                    h,
                    "A",
                    column_letter(j),
                    2,
                    stop - start + 1,
                    faint=smoothed and not h.endswith(" (smoothed)"),
                    key=run,
                    points=_numbers(table.columns[j - 1][start:stop]),
                    secondary=statistics and run == "count",
                )
            )
        return lines
    offset = 1 if table.run_column else 0
    step = column_letter(offset)
    smoothed = SMOOTHED in table.headers
    lines = []
    for first, last in _run_segments(table.runs, start, stop):
        run = str(table.runs[first]) if table.runs is not None else "value"
        rows = (first - start + 2, last - start + 1)
        secondary = statistics and run == "count"
        values = table.columns[1][first:last]
        lines.append(
            ChartSeries(
                run,
                step,
                column_letter(offset + 2),
                *rows,
                faint=smoothed,
                key=run,
                points=_numbers(values),
                secondary=secondary,
            )
        )
        if smoothed:
            name = wide_column(run, SMOOTHED) if table.runs is not None else SMOOTHED
            values = table.columns[2][first:last]
            lines.append(
                ChartSeries(
                    name,
                    step,
                    column_letter(offset + 3),
                    *rows,
                    key=run,
                    points=_numbers(values),
                    secondary=secondary,
                )
            )
    return lines


def _numbers(values: np.ndarray) -> int:
    """How many of a chart series' cells hold a number (finite values)."""
    return int(np.isfinite(values).sum())


def _parts(rows: int) -> int:
    return max(1, math.ceil(rows / ROWS_PER_SHEET))


def _write_table(sheet: Sheet, table: _Table, part: int) -> int:
    """Write part ``part`` of a tag's table; return the number of data rows written."""
    sheet.header(table.headers)
    start = part * ROWS_PER_SHEET
    stop = min(start + ROWS_PER_SHEET, len(table.steps))
    blocks = [
        (
            piece - start + 2,
            xml_text(str(table.runs[first])) if table.runs is not None else "",
            table.steps[piece : min(piece + BLOCK_ROWS, last)],
            tuple(c[piece : min(piece + BLOCK_ROWS, last)] for c in table.columns),
            table.styles,
            table.words,
        )
        for first, last in _run_segments(table.runs, start, stop)
        for piece in range(first, last, BLOCK_ROWS)
    ]
    for rows in render(_sheet_rows, blocks, stop - start):
        sheet.raw_bytes(rows)
    sheet.close()
    return stop - start


def _run_segments(runs: np.ndarray | None, start: int, stop: int) -> list[tuple[int, int]]:
    """``[first, last)`` ranges within ``start:stop`` where the run stays the same."""
    if runs is None or stop <= start:
        return [(start, stop)]
    changes = np.flatnonzero(runs[start + 1 : stop] != runs[start : stop - 1]) + start + 1
    return list(itertools.pairwise([start, *changes.tolist(), stop]))


def _sheet_rows(
    first_row: int,
    run_xml: str,
    steps: np.ndarray,
    columns: tuple[np.ndarray, ...],
    styles: tuple[int, ...],
    words: tuple[bool, ...],
) -> bytes:
    if in_use():
        return bytes(codec.sheet_rows(first_row, run_xml.encode(), steps, columns, styles, words))
    lists = [c.tolist() for c in columns]
    rows = _data_rows(first_row, run_xml, steps.tolist(), lists, styles, words)
    return "".join(rows).encode()


def _data_rows(
    first_row: int,
    run_xml: str,
    steps: list[int],
    columns: list[list[float]],
    styles: tuple[int, ...],
    words: tuple[bool, ...],
) -> Iterator[str]:
    """Sheet XML rows, numbers in shortest round-trip form (the pure-Python path)."""
    first = 1 if run_xml else 0
    letters = [column_letter(first + 1 + j) for j in range(len(columns))]
    for i, step in enumerate(steps):
        r = first_row + i
        cells = [f'<c r="A{r}" t="inlineStr"><is><t>{run_xml}</t></is></c>'] if run_xml else []
        cells.append(f'<c r="{column_letter(first)}{r}"><v>{step}</v></c>')
        for j, letter in enumerate(letters):
            value = columns[j][i]
            if value - value == 0.0:  # finite (NaN and ±Inf give NaN)
                cells.append(number_cell(f"{letter}{r}", value, styles[j]))
            elif words[j]:
                cells.append(string_cell(f"{letter}{r}", _nonfinite_text(value)))
        yield f'<row r="{r}">{"".join(cells)}</row>'


def _nonfinite_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _write_index(
    sheet: Sheet,
    summary: pd.DataFrame,
    sheets: dict[str, list[str]],
    directories: dict[str, str],
) -> None:
    """One row per (run, tag); a ``dir`` column after ``run`` with ``directories``."""
    with_dir = bool(directories)
    sheet.header(INDEX_COLUMNS[:1] + (["dir"] if with_dir else []) + INDEX_COLUMNS[1:])
    rows = []
    stats = summary[[c for c in INDEX_COLUMNS if c != "sheet"]]
    numbers = [c for c in stats.columns if c not in ("run", "tag")]
    first = 4 if with_dir else 3  # the column of the first number
    for r, row in enumerate(stats.itertuples(index=False), 2):
        run, tag = str(row.run), str(row.tag)
        targets = sheets[tag]
        texts = [run, *([directories.get(run)] if with_dir else []), tag]
        cells = [
            string_cell(f"{column_letter(c)}{r}", text)
            for c, text in enumerate(texts)
            if text is not None
        ]
        link = f"{column_letter(first - 1)}{r}"
        cells.append(string_cell(link, ", ".join(targets), 2))
        for c, (column, value) in enumerate(zip(numbers, row[2:], strict=True), first):
            ref = f"{column_letter(c)}{r}"
            if np.isfinite(value):
                cells.append(number_cell(ref, value))
            elif column == "last_value" or not np.isnan(value):
                # (min/max stay empty when nothing is finite)
                cells.append(string_cell(ref, _nonfinite_text(value)))
        rows.append(f'<row r="{r}">{"".join(cells)}</row>')
        sheet.link(link, targets[0], ", ".join(targets))
    sheet.raw_rows(rows)
    sheet.close()


def _write_frame(sheet: Sheet, frame: pd.DataFrame) -> None:
    """A small table (summary, hparams): text, numbers, booleans; empty for missing."""
    sheet.header([str(c) for c in frame.columns])
    rows = []
    for r, row in enumerate(frame.itertuples(index=False), 2):
        cells = []
        for c, value in enumerate(row):
            ref = f"{column_letter(c)}{r}"
            if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                continue
            if isinstance(value, bool | np.bool_):
                cells.append(bool_cell(ref, bool(value)))
            elif isinstance(value, int | float | np.integer | np.floating):
                finite = math.isfinite(float(value))
                cells.append(number_cell(ref, value) if finite else string_cell(ref, str(value)))
            else:
                cells.append(string_cell(ref, str(value)))
        rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    sheet.raw_rows(rows)
    sheet.close()
