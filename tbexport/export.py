"""Read scalars, shape them, and write them to a file in one call (what the CLI runs)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tbexport import rules
from tbexport.exceptions import (
    InvalidOptionError,
    NoScalarsError,
    OutputWarning,
    OutputWriteError,
    option,
)
from tbexport.load import Paths, load_scalars
from tbexport.model import Corruption, ScalarData
from tbexport.options import (
    Band,
    FigureOptions,
    Layout,
    OutputOptions,
    ReadOptions,
    ShapeOptions,
    TimeMode,
    WriteOptions,
    XAxis,
    grouped,
    renamed,
)
from tbexport.reading.discover import HPARAMS_FILE, as_list
from tbexport.reading.hparams import hparams_frame, run_labels
from tbexport.results import ResultsTable, results_table
from tbexport.shaping import reduced, relabel_runs, smoothed, with_time
from tbexport.write import write_scalars
from tbexport.writing.atomic import atomic_path
from tbexport.writing.formats import format_for

__all__ = [
    "ExportResult",
    "FigureOptions",
    "OutputOptions",
    "ReadOptions",
    "ShapeOptions",
    "default_output",
    "export",
    "shape",
]

DEFAULT_FORMAT = ".xlsx"
DEFAULT_DIGITS = 4  # significant digits of a results table in .md and .tex


@dataclass
class ExportResult:
    """What an export wrote and what it noticed."""

    output: Path | None
    runs: int
    tags: int
    points: int
    files: int
    corruptions: list[Corruption] = field(default_factory=list)
    truncated: dict[str, int] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # other inputs left out (hparams.yaml)
    results: pd.DataFrame | None = None  # the results table, when one was asked for
    groups: int | None = None  # its rows, when grouped by hyperparameters
    statistics: list[str] = field(default_factory=list)  # what reduce put in the runs' place


def default_output(paths: Paths, format: str | None = None) -> Path:
    """``<input name><suffix>`` in the current directory (``version_0.mat``)."""
    given = as_list(paths)
    suffix = format_for("", format) if format else DEFAULT_FORMAT
    if len(given) != 1:
        return Path("scalars" + suffix)
    source = Path(given[0]).resolve()
    stem = source.name.split(".tfevents")[0] if source.is_file() else source.name
    if source.is_file() and stem.startswith("events.out"):
        stem = source.parent.name
    return Path((stem or "scalars") + suffix)


def shape(
    data: ScalarData,
    options: ShapeOptions | None = None,
    *,
    reduce: str | Sequence[str] | None = None,
    align: str | None = None,
    min_runs: int | None = None,
    smooth: float | None = None,
    name_by: str | None = None,
    **renamed_keywords: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply run labels, statistics (on the steps ``align`` gives) and smoothing; return
    (frame, hparams per run). The options are a :class:`ShapeOptions` or its fields as
    keywords (its ``time`` is the writers': see :func:`tbexport.shaping.with_time`);
    ``smoothing=`` is the deprecated name of ``smooth=``."""
    keywords = {"smooth": smooth}
    renamed("shape", renamed_keywords, _RENAMED_SHAPE, keywords)
    asked = {"reduce": reduce, "align": align, "min_runs": min_runs, "name_by": name_by}
    return _shape(data, grouped(ShapeOptions, options, asked | keywords, "options"))


def _shape(data: ScalarData, options: ShapeOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = data.frame
    runs = [str(r) for r in frame["run"].cat.categories]
    labels = run_labels(runs, data.hparams, options.name_by or "dir")
    frame = relabel_runs(frame, labels)
    hparams = hparams_frame({labels.get(r, r): h for r, h in data.hparams.items()})
    if options.statistics:
        frame = reduced(frame, options.statistics, options.alignment, options.min_runs or 1)
        hparams = hparams_frame({})
    if options.smooth is not None:
        frame = smoothed(frame, options.smooth)
    return frame, hparams


# The keywords renamed, for one release: (old name, new name).
_RENAMED = {"smoothing": "smooth", "plot_x": "x", "plot_log_y": "log_y"}
_RENAMED_SHAPE = {"smoothing": "smooth"}


def export(
    paths: Paths,
    output: str | os.PathLike[str] | None = None,
    *,
    read: ReadOptions | None = None,
    shape: ShapeOptions | None = None,
    write: OutputOptions | None = None,
    figure: FigureOptions | None = None,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
    figure_progress: Callable[[int], None] | None = None,
    figure_progress_total: Callable[[int], None] | None = None,
    tags: str | Sequence[str] | None = None,
    ignore_case: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    jobs: int | None = None,
    reduce: str | Sequence[str] | None = None,
    align: str | None = None,
    min_runs: int | None = None,
    smooth: float | None = None,
    time: TimeMode | None = None,
    name_by: str | None = None,
    format: str | None = None,
    layout: Layout | None = None,
    wide: bool = False,
    charts: bool = False,
    matlab_script: bool = False,
    results: str | Sequence[str] | None = None,
    group_by: str | Sequence[str] | None = None,
    digits: int | None = None,
    csv_safe: bool = False,
    force: bool = False,
    write_table: bool = True,
    plot: str | os.PathLike[str] | None = None,
    plot_dir: str | os.PathLike[str] | None = None,
    x: XAxis | None = None,
    log_y: bool = False,
    band: Band | None = None,
    figsize: tuple[float, float] | None = None,
    cols: int | None = None,
    dpi: int | None = None,
    plot_format: str | None = None,
    **renamed_keywords: Any,
) -> ExportResult:
    """Read every scalar under ``paths``, shape it, and write it to ``output``.

    The options come in four groups, each a dataclass that checks its values when
    made (see :mod:`tbexport.options`): ``read`` (:class:`ReadOptions`, what
    :func:`tbexport.load_scalars` takes: ``tags``, ``ignore_case``,
    ``keep_duplicates``, ``strict``, ``verify``, ``jobs``), ``shape``
    (:class:`ShapeOptions`), ``write`` (:class:`OutputOptions`) and ``figure``
    (:class:`FigureOptions`). Each field may be given as a keyword instead (the
    figures' ``format`` as ``plot_format=``), not both ways; ``None`` (or False) is
    "not given", and options that do not go together are refused before anything is
    read (:func:`tbexport.rules.check_options`).

    The format follows ``output``'s suffix (``.xlsx``, ``.mat``, ``.csv``, and
    ``.md``/``.tex`` for a results table) or ``format`` (also ``tfevents``: a
    directory of TensorBoard runs); without ``output`` the file is named after the
    input, in the current directory. ``layout`` is ``long`` or ``wide`` (runs side by
    side); ``wide`` (CSV) puts tags side by side instead. ``reduce`` aggregates across
    runs (``mean``, ``std``, ``min``, ``max``, ``median``, ``count``: a list, or one
    string with commas), on the steps ``align`` gives (``steps``, ``bins:N``,
    ``grid:STEP``), keeping the steps at least ``min_runs`` runs cover; ``smooth``
    adds ``value_smoothed`` (TensorBoard's weight, 0 <= W < 1); ``time`` is ``unix``,
    ``datetime`` or ``relative`` (seconds since the run's first point); ``name_by`` is
    ``dir`` or ``hparam:KEY``.
    ``results`` (``"val_acc:max,val_loss:min"``) writes the results table instead of
    the points (``.csv``, ``.md``, ``.tex``), or as the first sheet of a workbook;
    ``group_by`` (``"hparam:lr"``) averages it over the runs of each group, ``digits``
    (``.md``/``.tex``, default 4) sets its significant digits (see
    :func:`tbexport.results`). ``plot``/``plot_dir`` draw figures (see
    :func:`tbexport.plot_scalars`): ``x`` is ``step``, ``wall_time`` or ``relative``
    (time since each run's first point, in seconds, minutes, hours or days as the
    longest run suits; the axis says which), ``log_y`` a logarithmic axis, ``band``,
    ``figsize`` (inches), ``cols``, ``dpi`` and ``plot_format`` (``plot_dir``'s) as
    :class:`FigureOptions` says; ``write_table=False`` only plots; ``force``
    replaces read-only outputs (refused otherwise); ``csv_safe`` prefixes ``'`` to CSV
    text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``). Raises
    :class:`NoScalarsError` when there is nothing to write.

    ``smoothing=``, ``plot_x=`` and ``plot_log_y=`` are the deprecated names of
    ``smooth=``, ``x=`` and ``log_y=`` (a :class:`DeprecationWarning`; they go in the
    next release).
    """
    renaming = {"smooth": smooth, "x": x, "log_y": log_y}
    renamed("export", renamed_keywords, _RENAMED, renaming)
    reading = grouped(
        ReadOptions,
        read,
        {
            "tags": tags,
            "ignore_case": ignore_case,
            "keep_duplicates": keep_duplicates,
            "strict": strict,
            "verify": verify,
            "jobs": jobs,
        },
        "read",
    )
    shaping = grouped(
        ShapeOptions,
        shape,
        {
            "reduce": reduce,
            "align": align,
            "min_runs": min_runs,
            "smooth": renaming["smooth"],
            "time": time,
            "name_by": name_by,
        },
        "shape",
    )
    writing = grouped(
        OutputOptions,
        write,
        {
            "format": format,
            "layout": layout,
            "wide": wide,
            "charts": charts,
            "matlab_script": matlab_script,
            "results": results,
            "group_by": group_by,
            "digits": digits,
            "csv_safe": csv_safe,
            "force": force,
            "write_table": write_table,
        },
        "write",
    )
    drawing = grouped(
        FigureOptions,
        figure,
        {
            "plot": plot,
            "plot_dir": plot_dir,
            "x": renaming["x"],
            "log_y": renaming["log_y"],
            "band": band,
            "figsize": figsize,
            "cols": cols,
            "dpi": dpi,
            "format": plot_format,
        },
        "figure",
    )
    return _export(
        paths,
        output,
        reading,
        shaping,
        writing,
        drawing,
        _Progress(progress, progress_total, figure_progress, figure_progress_total),
    )


@dataclass(frozen=True)
class _Progress:
    """Who is told of the bytes read and of the panels drawn."""

    reading: Callable[[int], None] | None = None
    reading_total: Callable[[int], None] | None = None
    drawing: Callable[[int], None] | None = None
    drawing_total: Callable[[int], None] | None = None


def _export(
    paths: Paths,
    output: str | os.PathLike[str] | None,
    read: ReadOptions,
    shape: ShapeOptions,
    write: OutputOptions,
    figure: FigureOptions,
    progress: _Progress,
) -> ExportResult:
    paths = as_list(paths)  # once: a generator (Path.glob) can be read only once
    target = None
    if write.write_table:
        target = Path(output) if output is not None else default_output(paths, write.format)
    suffix = format_for(target, write.format) if target is not None else None  # (before reading)
    rules.check_options(read, shape, write, figure, suffix)
    name_by = shape.name_by or "dir"
    data = load_scalars(
        paths,
        **read.keywords(),
        progress=progress.reading,
        progress_total=progress.reading_total,
    )
    if data.frame.empty:
        raise NoScalarsError(f"no scalar data found in {_describe(paths)}")
    outputs = [target] if target is not None else []
    if target is not None and write.matlab_script:
        outputs.append(target.with_suffix(".m"))
    plots = [Path(figure.plot)] if figure.plot is not None else []
    _check_not_read(outputs + plots, data)
    table = None
    try:
        runs = [str(r) for r in data.frame["run"].cat.categories]
        labels = run_labels(runs, data.hparams, name_by)
        if write.metrics is not None:
            keys = list(write.group_keys) if write.group_keys is not None else None
            table = results_table(
                data.frame, list(write.metrics), data.hparams, group_by=keys, labels=labels
            )
        results_only = table is not None and suffix != ".xlsx"
        if results_only and not figure.figures:
            frame, hparams = data.frame, pd.DataFrame()  # (no points written: none shaped)
        else:
            frame, hparams = _shape(data, shape)
    except InvalidOptionError as error:
        # a tag filter may be why a metric is missing, a left-out hparams.yaml why a
        # hyperparameter is
        patterns = read.patterns
        reading = f"read with {option('tags', ','.join(patterns))}" if patterns else ""
        why = [reading] if reading and write.metrics else []
        why += data.notes
        if not why:
            raise
        raise InvalidOptionError(f"{error} ({'; '.join(why)})") from error
    if frame.empty:  # (min_runs above the runs there are)
        raise NoScalarsError(
            f"no tag and step has {shape.min_runs or 1} runs with a value "
            f"({data.frame['run'].nunique()} runs were read): nothing to write"
        )
    with _gathered_notes() as notes:
        if target is not None and suffix is not None:
            if table is not None and suffix != ".xlsx":
                _write_results(table, target, suffix, write.digits, write.force, write.csv_safe)
            else:
                options = WriteOptions(
                    layout="wide" if write.layout == "wide" else "long",
                    wide_tags=write.wide,
                    charts=write.charts,
                    matlab_script=write.matlab_script,
                    hparams=hparams,
                    results=table.frame if table is not None else None,
                    # (each label's directory, where name_by relabelled runs)
                    directories=None
                    if name_by == "dir"
                    else {label: run for run, label in labels.items()},
                    statistics=shape.statistics,
                    csv_safe=write.csv_safe,
                )
                write_scalars(
                    with_time(frame, shape.time or "unix"),
                    target,
                    format=write.format,
                    options=options,
                    force=write.force,
                )
        drawn = _plots(frame, figure, progress, write.force)
    return ExportResult(
        output=target,
        runs=int(data.frame["run"].nunique()),
        tags=int(frame["tag"].nunique()),
        points=len(data.frame),
        files=data.files,
        corruptions=data.corruptions,
        truncated=data.truncated,
        notes=data.notes + (table.notes if table is not None else []) + notes,
        plots=drawn,
        results=table.frame if table is not None else None,
        groups=len(table.frame) if table is not None and table.grouped else None,
        statistics=list(shape.statistics),
    )


def _write_results(
    table: ResultsTable,
    target: Path,
    suffix: str,
    digits: int | None,
    force: bool,
    csv_safe: bool,
) -> None:
    from tbexport.writing.results import write

    with atomic_path(target, force=force) as temporary:
        write(table, temporary, suffix, DEFAULT_DIGITS if digits is None else digits, csv_safe)


def _plots(
    frame: pd.DataFrame, figure: FigureOptions, progress: _Progress, force: bool
) -> list[Path]:
    if not figure.figures:
        return []
    from tbexport.plot import DPI, plot_scalars

    common: dict[str, Any] = {
        "x": figure.x or "step",
        "log_y": figure.log_y,
        "band": figure.band or "std",
        "figsize": figure.figsize,
        "cols": figure.cols,
        "dpi": figure.dpi or DPI,
        "progress": progress.drawing,
        "progress_total": progress.drawing_total,
        "force": force,
    }
    written: list[Path] = []
    if figure.plot is not None:
        written += plot_scalars(frame, figure.plot, **common)
    if figure.plot_dir is not None:
        written += plot_scalars(
            frame, figure.plot_dir, per_tag=True, format=figure.format, **common
        )
    return written


@contextlib.contextmanager
def _gathered_notes() -> Iterator[list[str]]:
    """The :class:`OutputWarning` texts the writers and figures emit, as notes."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", OutputWarning)
        try:
            yield notes
        finally:
            for warning in caught:
                if issubclass(warning.category, OutputWarning):
                    notes.append(str(warning.message))
                else:  # (not ours to swallow)
                    warnings.warn_explicit(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )


def _check_not_read(outputs: list[Path], data: ScalarData) -> None:
    """Refuse to write over a file just read (``-o v0/metrics.csv``), as ``cp a a`` does."""
    existing = [path for path in outputs if path.exists()]
    if not existing:
        return
    read = {
        _identity(path)
        for run in data.runs
        for path in [*run.files, run.files[0].parent / HPARAMS_FILE]
        if path.exists()
    }
    for path in existing:
        if _identity(path) in read:
            raise OutputWriteError(f"cannot write {path}: it is one of the files read")


def _identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_dev, status.st_ino


def _describe(paths: Paths) -> str:
    return ", ".join(os.fspath(p) for p in as_list(paths))
