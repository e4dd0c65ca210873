"""The results table as a paper holds it: LaTeX (booktabs), Markdown, or plain CSV.

LaTeX is a ``tabular`` needing only ``\\usepackage{booktabs}``, to ``\\input`` in a
document: the keys (run, hyperparameters or group keys) left-aligned, the results
right-aligned, the best value of each result in bold, numbers with ``digits``
significant digits, ``mean ± std`` for groups (the std to the mean's last decimal
place), and the characters LaTeX treats specially escaped in every name. Markdown
is a GitHub table with the same cells. CSV holds the numbers in full (shortest
round-trip form), one column for each mean, std and count, empty where missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import Metric, ResultsTable

__all__ = ["TABLE_FORMATS", "cells", "latex", "markdown", "significant", "write"]

TABLE_FORMATS = (".csv", ".md", ".tex")


def write(table: ResultsTable, path: Path, suffix: str, digits: int) -> None:
    """Write ``table`` to ``path`` as ``suffix`` (``.csv``, ``.md`` or ``.tex``) says."""
    if suffix == ".csv":
        table.frame.to_csv(path, index=False, lineterminator="\n")
        return
    text = latex(table, digits) if suffix == ".tex" else markdown(table, digits)
    path.write_text(text, encoding="utf-8")


def significant(value: float, digits: int) -> tuple[str, int]:
    """``value`` with ``digits`` significant digits, and the decimal places it shows
    (negative: rounded to tens, hundreds, ...). Non-finite values are ``nan``/``inf``."""
    if not math.isfinite(value):
        return ("nan" if math.isnan(value) else "inf" if value > 0 else "-inf"), 0
    if value == 0:
        return f"{0:.{digits - 1}f}", digits - 1
    rounded = float(f"{value:.{digits - 1}e}")  # (9.9996 -> 10.00: the exponent moves)
    decimals = digits - 1 - math.floor(math.log10(abs(rounded)))
    if decimals >= 0:
        return f"{rounded:.{decimals}f}", decimals
    return f"{round(rounded, decimals):.0f}", decimals


def _fixed(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` places (negative: to tens, ...), as the mean is."""
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    return f"{value:.{max(decimals, 0)}f}" if decimals >= 0 else f"{round(value, decimals):.0f}"


Cell = tuple[str, bool]  # text, bold
PLUS_MINUS = " ± "


def cells(table: ResultsTable, digits: int) -> tuple[list[str], list[list[Cell]], int]:
    """The header, the rows (text, bold) and how many leading columns are keys."""
    frame = table.frame
    keys = [*table.keys, *(["n"] if table.grouped else [])]
    headers = list(keys)
    columns: list[list[Cell]] = [[(_key_text(v), False) for v in frame[key]] for key in keys]
    for metric in table.metrics:
        for name, is_step in _shown(table, metric):
            headers.append(name)
            if table.grouped:
                texts = [
                    _mean_std(m, s, digits, is_step)
                    for m, s in zip(frame[f"{name} mean"], frame[f"{name} std"], strict=True)
                ]
                ranking = frame[f"{name} mean"]
            else:
                texts = [_single(v, digits, is_step) for v in frame[name]]
                ranking = frame[name]
            bold = _best(ranking, texts, None if is_step else metric.best)
            columns.append(list(zip(texts, bold, strict=True)))
            if table.grouped and f"{name} n" in frame:
                headers.append(f"{name} n")
                columns.append([(_key_text(v), False) for v in frame[f"{name} n"]])
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return headers, rows, len(table.keys)  # (a group's n is a number: aligned as one)


def _shown(table: ResultsTable, metric: Metric) -> list[tuple[str, bool]]:
    steps = [(metric.step_column, True)] if metric.step_column else []
    return [(metric.column, False), *steps]


def _key_text(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)  # (1.0 stays 1.0: the hyperparameter as logged)
    return str(value)


def _single(value: object, digits: int, is_step: bool) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    number = float(value)  # type: ignore[arg-type]
    return f"{number:.0f}" if is_step else significant(number, digits)[0]


def _mean_std(mean: float, std: float, digits: int, is_step: bool) -> str:
    if math.isnan(mean):
        return ""
    if is_step:
        text, decimals = f"{mean:.0f}", 0
    else:
        text, decimals = significant(mean, digits)
    return text if math.isnan(std) else f"{text}{PLUS_MINUS}{_fixed(std, decimals)}"


def _best(values: pd.Series, texts: list[str], goal: str | None) -> list[bool]:
    """Bold where the value shown equals the best one shown (ties all bold)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
    known = ~np.isnan(numbers)
    if goal is None or not known.any():
        return [False] * len(texts)
    best = int(np.nanargmax(numbers) if goal == "max" else np.nanargmin(numbers))
    shown = texts[best].split(PLUS_MINUS)[0]
    return [bool(k) and t.split(PLUS_MINUS)[0] == shown for k, t in zip(known, texts, strict=True)]


# --- LaTeX -----------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def latex_escape(text: str) -> str:
    """``text`` with every character LaTeX treats specially written as itself."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def latex(table: ResultsTable, digits: int) -> str:
    """A booktabs ``tabular`` of the table."""
    headers, rows, keys = cells(table, digits)
    spec = "l" * keys + "r" * (len(headers) - keys)
    lines = [
        f"\\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_cell(cell: Cell) -> str:
    text, bold = cell
    escaped = r" $\pm$ ".join(latex_escape(part) for part in text.split(PLUS_MINUS))
    return f"\\textbf{{{escaped}}}" if bold and text else escaped


# --- Markdown ----------------------------------------------------------------------


def _markdown_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")


def markdown(table: ResultsTable, digits: int) -> str:
    """A GitHub table: keys left-aligned, results right-aligned, the best in bold."""
    headers, rows, keys = cells(table, digits)
    cell: Callable[[Cell], str] = lambda c: (  # noqa: E731
        f"**{_markdown_escape(c[0])}**" if c[1] and c[0] else _markdown_escape(c[0])
    )
    lines = [
        "| " + " | ".join(_markdown_escape(h) for h in headers) + " |",
        "| " + " | ".join([":--"] * keys + ["--:"] * (len(headers) - keys)) + " |",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
