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
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tbexport.results import Metric, ResultsTable

__all__ = ["cells", "latex", "latex_escape", "markdown", "significant", "write"]


def write(
    table: ResultsTable, path: Path, suffix: str, digits: int, csv_safe: bool = False
) -> None:
    """Write ``table`` to ``path`` as ``suffix`` (``.csv``, ``.md`` or ``.tex``) says;
    ``csv_safe``: text a spreadsheet would run as a formula prefixed with ``'``."""
    if suffix == ".csv":
        frame = table.frame
        if csv_safe:
            from tbexport.writing.csv import safe_text

            frame = frame.map(lambda v: safe_text(v) if isinstance(v, str) else v)
            frame.columns = [safe_text(str(c)) for c in frame.columns]
        frame.to_csv(path, index=False, lineterminator="\n")
        return
    text = latex(table, digits) if suffix == ".tex" else markdown(table, digits)
    path.write_text(text, encoding="utf-8")


def significant(value: float, digits: int) -> tuple[str, int]:
    """``value`` with ``digits`` significant digits, and the decimal places it shows
    (negative: rounded to tens, hundreds, ...). Non-finite values are ``nan``/``inf``.

    Beyond ``10**6`` (or ``10**digits``, if more) and below ``10**-4`` the number is
    written as ``1.910e+32``, and the decimal places are those of its mantissa.
    """
    if not math.isfinite(value):
        return _nonfinite(value), 0
    if value == 0:
        return f"{0:.{digits - 1}f}", digits - 1
    rounded = float(f"{value:.{digits - 1}e}")  # (9.9996 -> 10.00: the exponent moves)
    exponent = math.floor(math.log10(abs(rounded)))
    if exponent < -4 or exponent >= max(6, digits):
        return f"{rounded:.{digits - 1}e}", digits - 1 - exponent
    decimals = digits - 1 - exponent
    if decimals >= 0:
        return f"{rounded:.{decimals}f}", decimals
    return f"{round(rounded, decimals):.0f}", decimals


def _nonfinite(value: float) -> str:
    return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"


def _fixed(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` places (negative: to tens, ...), as the mean is;
    in the mean's notation where that is scientific."""
    if not math.isfinite(value):
        return _nonfinite(value)
    if decimals > 17 or decimals < -6:  # (a mean in scientific notation)
        return f"{value:.2e}"
    return f"{value:.{decimals}f}" if decimals >= 0 else f"{round(value, decimals):.0f}"


Cell = tuple[str, bool]  # text, bold
PLUS_MINUS = " ± "


def cells(table: ResultsTable, digits: int) -> tuple[list[str], list[list[Cell]], int]:
    """The header, the rows (text, bold) and how many leading columns are keys (the
    rest are numbers). A run without the metric is an empty cell; a NaN result ``nan``."""
    frame = table.frame
    keys = [*table.keys, *(["n"] if table.grouped else [])]
    headers = list(keys)
    columns: list[list[Cell]] = [[(_key_text(v), False) for v in frame[key]] for key in keys]
    for metric in table.metrics:
        for name, is_step in _shown(metric):
            headers.append(name)
            logged = table.logged.get(name, np.ones(len(frame), dtype=bool))
            if table.grouped:
                texts = [
                    _mean_std(m, s, digits, is_step) if has else ""
                    for m, s, has in zip(
                        frame[f"{name} mean"], frame[f"{name} std"], logged, strict=True
                    )
                ]
                ranking = frame[f"{name} mean"]
            else:
                texts = [
                    _single(v, digits, is_step) if has else ""
                    for v, has in zip(frame[name], logged, strict=True)
                ]
                ranking = frame[name]
            bold = _best(ranking, texts, None if is_step else metric.best)
            columns.append(list(zip(texts, bold, strict=True)))
            if table.grouped and f"{name} n" in frame:
                headers.append(f"{name} n")
                columns.append([(_key_text(v), False) for v in frame[f"{name} n"]])
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    return headers, rows, len(table.keys)  # (a group's n is a number: aligned as one)


def _shown(metric: Metric) -> list[tuple[str, bool]]:
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
    if value is None or value is pd.NA:
        return ""
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        return _nonfinite(number)
    return f"{number:.0f}" if is_step else significant(number, digits)[0]


def _mean_std(mean: float, std: float, digits: int, is_step: bool) -> str:
    if not math.isfinite(mean):
        return _nonfinite(mean)
    if is_step:
        text, decimals = f"{mean:.0f}", 0
    else:
        text, decimals = significant(mean, digits)
    return text if math.isnan(std) else f"{text}{PLUS_MINUS}{_fixed(std, decimals)}"


def _best(values: pd.Series, texts: list[str], goal: str | None) -> list[bool]:
    """Bold where the value shown equals the best one shown (ties all bold)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64).to_numpy()
    known = ~np.isnan(numbers)
    if goal is None or known.sum() < 2:  # (one row has no best to show)
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
    lines += [
        " & ".join(_latex_cell(c, number=i >= keys) for i, c in enumerate(row)) + r" \\"
        for row in rows
    ]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_cell(cell: Cell, number: bool) -> str:
    text, bold = cell
    parts = [_latex_number(p) if number else latex_escape(p) for p in text.split(PLUS_MINUS)]
    escaped = r" $\pm$ ".join(parts)
    if not (bold and text):
        return escaped
    return f"\\textbf{{\\boldmath {escaped}}}" if "$" in escaped else f"\\textbf{{{escaped}}}"


def _latex_number(text: str) -> str:
    """A number as LaTeX sets one: a minus sign, not a hyphen; ``1.9e+32`` as a power."""
    mantissa, e, exponent = text.partition("e")
    if e and exponent.lstrip("+-").isdigit():
        return f"${mantissa}\\times10^{{{int(exponent)}}}$"
    return f"${text}$" if text.startswith("-") else latex_escape(text)


# --- Markdown ----------------------------------------------------------------------


_MARKDOWN_SPECIAL = {c: "\\" + c for c in "\\`*[]|#~"}
_MARKDOWN_SPECIAL |= {"\n": " ", "\r": " ", "<": "&lt;", ">": "&gt;"}


def _markdown_escape(text: str) -> str:
    """``text`` shown as itself in a GitHub table cell: no emphasis, code, HTML or
    column break from the characters of a name, and a line break as a space."""
    escaped = "".join(_MARKDOWN_SPECIAL.get(c, c) for c in text)
    # an underscore between letters or digits starts no emphasis (val_acc stays as typed)
    return _EMPHASIS_UNDERSCORE.sub(r"\\_", escaped)


_EMPHASIS_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


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
