"""The rules between an export's options: which go together, decided before any reading.

Each option's own value is checked by its dataclass (:mod:`tbexport.options`);
whether options go together is decided here only, by :func:`check_options`.

An option is judged by whether it was given, not by its value: ``--layout long``
with ``--wide``, or ``--x step`` without a figure, is refused as ``--layout wide``
or ``--x wall_time`` would be, since the command would not use it. (In the API,
``None`` is "not given".) Each message names options with
:func:`tbexport.exceptions.option`, so that the command line reads its flags and
the API its parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from tbexport.exceptions import InvalidOptionError, option
from tbexport.options import FigureOptions, OutputOptions, ReadOptions, ShapeOptions

__all__ = ["Asked", "check", "check_options"]

RESULTS_ONLY = (".csv", ".md", ".tex")  # what a results table alone is written as
TABLES = (".xlsx", ".mat", ".csv")  # tables of points


@dataclass(frozen=True)
class Asked:
    """What an export was asked for: each option given, or None / False where it was not.

    ``suffix`` is the format of the output (``.xlsx``, ``.md``, ``.tfevents``, ...),
    None when only figures are written; ``figures`` says whether any are.
    """

    suffix: str | None
    figures: bool = False
    wide: bool = False
    layout: str | None = None
    time: str | None = None
    charts: bool = False
    matlab_script: bool = False
    keep_duplicates: bool = False
    reduce: bool = False
    align: bool = False
    min_runs: bool = False
    smooth: bool = False
    name_by: bool = False
    results: bool = False
    group_by: bool = False
    digits: bool = False
    csv_safe: bool = False
    figure_options: tuple[str, ...] = ()  # the FigureOptions given, by API name
    per_tag: bool = False  # plot_dir given


def check_options(
    read: ReadOptions,
    shape: ShapeOptions,
    output: OutputOptions,
    figure: FigureOptions,
    suffix: str | None,
) -> None:
    """Raise :class:`InvalidOptionError` for options that do not go together; ``suffix``
    is the output's format (None when only figures are written)."""
    check(
        Asked(
            suffix,
            figures=figure.figures,
            wide=output.wide,
            layout=output.layout,
            time=shape.time,
            charts=output.charts,
            matlab_script=output.matlab_script,
            keep_duplicates=read.keep_duplicates,
            reduce=shape.reduce is not None,
            align=shape.align is not None,
            min_runs=shape.min_runs is not None,
            smooth=shape.smooth is not None,
            name_by=shape.name_by is not None,
            results=output.results is not None,
            group_by=output.group_by is not None,
            digits=output.digits is not None,
            csv_safe=output.csv_safe,
            figure_options=tuple(figure.given()),
            per_tag=figure.plot_dir is not None,
        )
    )


def check(asked: Asked) -> None:
    """Raise :class:`InvalidOptionError` for options that do not go together."""
    _check_figures(asked)
    _check_statistics(asked)
    _check_results(asked)
    if asked.suffix is None:
        return
    _check_format(asked, asked.suffix)


def _check_figures(asked: Asked) -> None:
    given = [option(n) for n in asked.figure_options]
    if not asked.figures and given:
        raise InvalidOptionError(
            f"{_listed(given, 'shape')} figures: give {option('plot')} or {option('plot_dir')}"
        )
    if "band" in asked.figure_options and not asked.reduce:
        raise InvalidOptionError(f"{option('band')} shades the statistics of {option('reduce')}")
    if "plot_format" in asked.figure_options and not asked.per_tag:
        raise InvalidOptionError(
            f"{option('plot_format')} is the format of {option('plot_dir')}'s figures "
            f"({option('plot')} takes its file's suffix)"
        )
    shaping = [
        (asked.wide, option("wide")),
        (asked.layout is not None, option("layout")),
        (asked.charts, option("charts")),
        (asked.matlab_script, option("matlab_script")),
        (asked.time is not None, option("time")),
    ]
    given = [name for on, name in shaping if on]
    if asked.suffix is None and given:
        raise InvalidOptionError(f"{_listed(given, 'shape')} a table, and only figures are written")


def _check_statistics(asked: Asked) -> None:
    if not asked.reduce and (asked.align or asked.min_runs):
        raise InvalidOptionError(
            f"{option('align')} and {option('min_runs')} shape the statistics of {option('reduce')}"
        )
    if asked.reduce and asked.name_by:
        raise InvalidOptionError(
            f"{option('name_by')} labels runs, and {option('reduce')} puts statistics in "
            "their place"
        )
    if asked.reduce and asked.keep_duplicates:
        raise InvalidOptionError(
            f"{option('reduce')} takes one point per run and step, and "
            f"{option('keep_duplicates')} keeps the points a resumed run replaced"
        )


def _check_results(asked: Asked) -> None:
    if asked.group_by and not asked.results:
        raise InvalidOptionError(
            f"{option('group_by')} groups the results table: give {option('results')}"
        )
    if asked.group_by and asked.name_by:
        raise InvalidOptionError(
            f"{option('name_by')} labels runs, and {option('group_by')} puts groups in their place"
        )
    if not asked.results:
        return
    if asked.suffix is None:
        raise InvalidOptionError(
            f"{option('results')} is a table, and only figures are written: give an "
            f"{option('output')}"
        )
    if asked.reduce:
        raise InvalidOptionError(
            f"{option('results')} is a table of runs, and {option('reduce')} puts "
            "statistics in their place"
        )


def _check_format(asked: Asked, suffix: str) -> None:
    only_for = [
        (asked.wide, (".csv",), option("wide")),
        (asked.charts, (".xlsx",), option("charts")),
        (asked.matlab_script, (".mat",), option("matlab_script")),
        (asked.digits, (".md", ".tex"), option("digits")),
        (asked.csv_safe, (".csv",), option("csv_safe")),
    ]
    for on, suffixes, name in only_for:
        if on and suffix not in suffixes:
            needed = " and ".join(suffixes)
            raise InvalidOptionError(f"{name} is for {needed} output, not {suffix}")
    if asked.wide and asked.layout is not None:
        raise InvalidOptionError(
            f"choose one wide table: {option('wide')} puts tags side by side, "
            f"{option('layout', 'wide')} runs"
        )
    wide_table = asked.wide or asked.layout == "wide"
    if wide_table and asked.time is not None:
        raise InvalidOptionError(
            f"a wide table has no time column: {option('time')} needs the long layout"
        )
    if wide_table and asked.keep_duplicates:
        raise InvalidOptionError(
            f"a wide table holds one point per step: {option('keep_duplicates')} needs "
            "the long layout"
        )
    if suffix in (".md", ".tex") and not asked.results:
        raise InvalidOptionError(
            f"{suffix} output is a results table: give {option('results', 'METRIC:AGG')} "
            "(e.g. val_acc:max)"
        )
    points = [
        (asked.layout is not None, option("layout")),
        (asked.time is not None, option("time")),
        (asked.smooth and not asked.figures, option("smooth")),
    ]
    given = [name for on, name in points if on]
    if suffix == ".tfevents" and given:
        raise InvalidOptionError(
            f"{_listed(given, 'shape')} a table of points, not TensorBoard runs (which "
            "TensorBoard smooths itself)"
        )
    if asked.results and suffix not in (".xlsx", *RESULTS_ONLY):
        raise InvalidOptionError(
            f"{option('results')} are written as .csv, .md, .tex or .xlsx, not {suffix}"
        )
    if asked.results and suffix in RESULTS_ONLY and (given or asked.wide):
        names = given + ([option("wide")] if asked.wide else [])
        raise InvalidOptionError(
            f"{_listed(names, 'shape')} the points, and a {suffix} with {option('results')} "
            "holds the results table only"
        )


def _listed(names: list[str], verb: str) -> str:
    """``--a shapes``, ``--a, --b shape``."""
    return f"{', '.join(names)} {verb}{'s' if len(names) == 1 else ''}"
