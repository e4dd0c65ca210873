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

from . import rules
from .align import check_align
from .discover import HPARAMS_FILE, as_list
from .exceptions import (
    InvalidOptionError,
    NoScalarsError,
    OutputWarning,
    OutputWriteError,
    option,
)
from .hparams import check_name_by, hparams_frame, run_labels
from .load import Paths, ScalarData, load_scalars
from .options import LAYOUTS, FigureOptions, WriteOptions
from .plot import check_plot_path
from .records import Corruption
from .results import ResultsTable, check_group_by, parse_metrics, results_table
from .transform import (
    check_min_runs,
    check_statistics,
    check_time_mode,
    check_weight,
    reduce_runs,
    relabel_runs,
    smooth,
    statistics_list,
    with_time,
)
from .write import atomic_path, format_for, write_scalars

__all__ = [
    "ExportResult",
    "check_options",
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


def check_options(
    *,
    layout: str | None = None,
    reduce: str | Sequence[str] | None = None,
    smoothing: float | None = None,
    time: str | None = None,
    name_by: str | None = None,
    align: str | None = None,
    min_runs: int | None = None,
    digits: int | None = None,
) -> None:
    """Raise :class:`InvalidOptionError` for a value no step below could use (None: the
    option was not given)."""
    if layout is not None and layout not in LAYOUTS:
        raise InvalidOptionError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if reduce is not None:
        check_statistics(reduce)
    if name_by is not None:
        check_name_by(name_by)
    if smoothing is not None:
        check_weight(smoothing)
    if time is not None:
        check_time_mode(time)
    if align is not None:
        check_align(align)
    if min_runs is not None:
        check_min_runs(min_runs)
    if digits is not None and not 1 <= digits <= 17:
        raise InvalidOptionError(f"{option('digits')} must be 1 to 17, not {digits}")


def shape(
    data: ScalarData,
    *,
    reduce: str | Sequence[str] | None = None,
    align: str = "steps",
    min_runs: int = 1,
    smoothing: float | None = None,
    name_by: str = "dir",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply run labels, statistics (on the steps ``align`` gives) and smoothing; return
    (frame, hparams per run)."""
    frame = data.frame
    runs = [str(r) for r in frame["run"].cat.categories]
    labels = run_labels(runs, data.hparams, name_by)
    frame = relabel_runs(frame, labels)
    hparams = hparams_frame({labels.get(r, r): h for r, h in data.hparams.items()})
    if reduce:
        frame = reduce_runs(frame, reduce, align=align, min_runs=min_runs)
        hparams = hparams_frame({})
    if smoothing is not None:
        frame = smooth(frame, smoothing)
    return frame, hparams


def export(
    paths: Paths,
    output: str | os.PathLike[str] | None = None,
    *,
    format: str | None = None,
    tags: str | Sequence[str] | None = None,
    ignore_case: bool = False,
    wide: bool = False,
    layout: str | None = None,
    reduce: str | Sequence[str] | None = None,
    align: str | None = None,
    min_runs: int | None = None,
    smoothing: float | None = None,
    time: str | None = None,
    name_by: str | None = None,
    charts: bool = False,
    matlab_script: bool = False,
    results: str | Sequence[str] | None = None,
    group_by: str | Sequence[str] | None = None,
    digits: int | None = None,
    plot: str | os.PathLike[str] | None = None,
    plot_dir: str | os.PathLike[str] | None = None,
    plot_x: str | None = None,
    plot_log_y: bool = False,
    figure: FigureOptions | None = None,
    write_table: bool = True,
    force: bool = False,
    csv_safe: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
    figure_progress: Callable[[int], None] | None = None,
    figure_progress_total: Callable[[int], None] | None = None,
) -> ExportResult:
    """Read every scalar under ``paths``, shape it, and write it to ``output``.

    The format follows ``output``'s suffix (``.xlsx``, ``.mat``, ``.csv``, and
    ``.md``/``.tex`` for a results table) or ``format`` (also ``tfevents``: a
    directory of TensorBoard runs); without ``output`` the file is named after the
    input, in the current directory. ``layout`` is ``long`` or ``wide`` (runs side by
    side); ``wide`` (CSV) puts tags side by side instead. ``reduce`` aggregates across
    runs (``mean``, ``std``, ``min``, ``max``, ``median``, ``count``: a list, or one
    string with commas), on the steps ``align`` gives (``steps``, ``bins:N``,
    ``grid:STEP``), keeping the steps at least ``min_runs`` runs cover; ``smoothing``
    adds ``value_smoothed`` (TensorBoard's weight, 0 <= W < 1); ``time`` is ``unix``,
    ``datetime`` or ``relative``; ``name_by`` is ``dir`` or ``hparam:KEY``.
    ``results`` (``"val_acc:max,val_loss:min"``) writes the results table instead of
    the points (``.csv``, ``.md``, ``.tex``), or as the first sheet of a workbook;
    ``group_by`` (``"hparam:lr"``) averages it over the runs of each group, ``digits``
    (``.md``/``.tex``, default 4) sets its significant digits (see
    :func:`tbexport.results`). ``plot``/``plot_dir`` draw figures (see
    :func:`tbexport.plot_scalars`); ``write_table=False`` only plots; ``force``
    replaces read-only outputs (refused otherwise); ``csv_safe`` prefixes ``'`` to CSV
    text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``). Raises
    :class:`NoScalarsError` when there is nothing to write. The reading options are
    those of :func:`tbexport.load_scalars`.
    """
    check_options(
        layout=layout,
        reduce=reduce,
        smoothing=smoothing,
        time=time,
        name_by=name_by,
        align=align,
        min_runs=min_runs,
        digits=digits,
    )
    paths = as_list(paths)  # once: a generator (Path.glob) can be read only once
    if plot is not None:
        check_plot_path(plot)  # before reading, like the table's format
    metrics = parse_metrics(results) if results is not None else None
    keys = check_group_by(group_by) if group_by is not None else None
    target = None
    if write_table:
        target = Path(output) if output is not None else default_output(paths, format)
    suffix = format_for(target, format) if target is not None else None  # (before reading)
    rules.check(
        rules.Asked(
            suffix,
            figures=plot is not None or plot_dir is not None,
            wide=wide,
            layout=layout,
            time=time,
            charts=charts,
            matlab_script=matlab_script,
            keep_duplicates=keep_duplicates,
            reduce=bool(reduce),
            align=align is not None,
            min_runs=min_runs is not None,
            smoothing=smoothing is not None,
            name_by=name_by is not None,
            results=metrics is not None,
            group_by=keys is not None,
            digits=digits is not None,
            csv_safe=csv_safe,
            plot_x=plot_x is not None,
            log_y=plot_log_y,
            figure_options=tuple(figure.given()) if figure is not None else (),
            per_tag=plot_dir is not None,
        )
    )
    layout, time, name_by = layout or "long", time or "unix", name_by or "dir"
    data = load_scalars(
        paths,
        tags=tags,
        ignore_case=ignore_case,
        keep_duplicates=keep_duplicates,
        strict=strict,
        verify=verify,
        progress=progress,
        jobs=jobs,
        progress_total=progress_total,
    )
    if data.frame.empty:
        raise NoScalarsError(f"no scalar data found in {_describe(paths)}")
    outputs = [target] if target is not None else []
    if target is not None and matlab_script:
        outputs.append(target.with_suffix(".m"))
    _check_not_read(outputs + [Path(p) for p in ([plot] if plot is not None else [])], data)
    table = None
    try:
        runs = [str(r) for r in data.frame["run"].cat.categories]
        labels = run_labels(runs, data.hparams, name_by)
        if metrics is not None:
            table = results_table(data.frame, metrics, data.hparams, group_by=keys, labels=labels)
        results_only = table is not None and suffix != ".xlsx"
        if results_only and plot is None and plot_dir is None:
            frame, hparams = data.frame, pd.DataFrame()  # (no points written: none shaped)
        else:
            frame, hparams = shape(
                data,
                reduce=reduce,
                align=align or "steps",
                min_runs=min_runs or 1,
                smoothing=smoothing,
                name_by=name_by,
            )
    except InvalidOptionError as error:
        # a tag filter may be why a metric is missing, a left-out hparams.yaml why a
        # hyperparameter is
        patterns = [tags] if isinstance(tags, str) else list(tags or ())
        read = f"read with {option('tags', ','.join(patterns))}" if patterns else ""
        why = [read] if read and metrics else []
        why += data.notes
        if not why:
            raise
        raise InvalidOptionError(f"{error} ({'; '.join(why)})") from error
    if frame.empty:  # (min_runs above the runs there are)
        raise NoScalarsError(
            f"no tag and step has {min_runs or 1} runs with a value ({data.frame['run'].nunique()} "
            "runs were read): nothing to write"
        )
    with _gathered_notes() as notes:
        if target is not None and suffix is not None:
            if table is not None and suffix != ".xlsx":
                _write_results(table, target, suffix, digits, force, csv_safe)
            else:
                options = WriteOptions(
                    layout="wide" if layout == "wide" else "long",
                    wide_tags=wide,
                    charts=charts,
                    matlab_script=matlab_script,
                    hparams=hparams,
                    results=table.frame if table is not None else None,
                    # (each label's directory, where name_by relabelled runs)
                    directories=None
                    if name_by == "dir"
                    else {label: run for run, label in labels.items()},
                    statistics=tuple(statistics_list(reduce)) if reduce else (),
                    csv_safe=csv_safe,
                )
                write_scalars(
                    with_time(frame, time), target, format=format, options=options, force=force
                )
        drawing = _Drawing(
            plot_x or "step",
            plot_log_y,
            figure or FigureOptions(),
            figure_progress,
            figure_progress_total,
            force,
        )
        plots = _plots(frame, plot, plot_dir, drawing)
    return ExportResult(
        output=target,
        runs=int(data.frame["run"].nunique()),
        tags=int(frame["tag"].nunique()),
        points=len(data.frame),
        files=data.files,
        corruptions=data.corruptions,
        truncated=data.truncated,
        notes=data.notes + (table.notes if table is not None else []) + notes,
        plots=plots,
        results=table.frame if table is not None else None,
        groups=len(table.frame) if table is not None and table.grouped else None,
        statistics=statistics_list(reduce) if reduce else [],
    )


def _write_results(
    table: ResultsTable,
    target: Path,
    suffix: str,
    digits: int | None,
    force: bool,
    csv_safe: bool,
) -> None:
    from .writers.results import write

    with atomic_path(target, force=force) as temporary:
        write(table, temporary, suffix, DEFAULT_DIGITS if digits is None else digits, csv_safe)


@dataclass(frozen=True)
class _Drawing:
    """How the figures of an export are drawn, and who is told of each panel."""

    x: str
    log_y: bool
    options: FigureOptions
    progress: Callable[[int], None] | None
    progress_total: Callable[[int], None] | None
    force: bool = False


def _plots(
    frame: pd.DataFrame,
    plot: str | os.PathLike[str] | None,
    plot_dir: str | os.PathLike[str] | None,
    drawing: _Drawing,
) -> list[Path]:
    if plot is None and plot_dir is None:
        return []
    from .plot import DPI, plot_scalars

    given = drawing.options
    common: dict[str, Any] = {
        "x": drawing.x,
        "log_y": drawing.log_y,
        "band": given.band or "std",
        "figsize": given.figsize,
        "cols": given.cols,
        "dpi": given.dpi or DPI,
        "progress": drawing.progress,
        "progress_total": drawing.progress_total,
        "force": drawing.force,
    }
    written: list[Path] = []
    if plot is not None:
        written += plot_scalars(frame, plot, **common)
    if plot_dir is not None:
        written += plot_scalars(frame, plot_dir, per_tag=True, format=given.format, **common)
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
