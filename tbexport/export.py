"""Read scalars, shape them, and write them to a file in one call (what the CLI runs)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .align import check_align
from .discover import as_list
from .exceptions import InvalidOptionError, NoScalarsError, OutputWarning
from .hparams import check_name_by, hparams_frame, run_labels
from .load import Paths, ScalarData, load_scalars
from .options import LAYOUTS, WriteOptions
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
from .write import RESULTS_FORMATS, atomic_path, format_for, write_scalars

__all__ = [
    "ExportResult",
    "check_format_options",
    "check_results_options",
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
    layout: str,
    reduce: str | Sequence[str] | None,
    smoothing: float | None,
    time: str,
    name_by: str,
) -> None:
    """Raise :class:`InvalidOptionError` for a value no step below could use."""
    if layout not in LAYOUTS:
        raise InvalidOptionError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    if reduce is not None:
        check_statistics(reduce)
    check_name_by(name_by)
    if smoothing is not None:
        check_weight(smoothing)
    check_time_mode(time)


def check_format_options(
    suffix: str,
    *,
    wide: bool,
    layout: str,
    time: str,
    charts: bool,
    matlab_script: bool,
    keep_duplicates: bool,
) -> None:
    """Raise :class:`InvalidOptionError` for an option the output format would ignore."""
    only_for = [
        (wide, ".csv", "wide (--wide)"),
        (charts, ".xlsx", "charts (--charts)"),
        (matlab_script, ".mat", "matlab_script (--matlab-script)"),
    ]
    for asked, needed, name in only_for:
        if asked and suffix != needed:
            raise InvalidOptionError(f"{name} is for {needed} output, not {suffix}")
    if wide and layout == "wide":
        raise InvalidOptionError(
            "choose one wide table: wide (--wide) puts tags side by side, "
            "layout='wide' (--layout wide) runs"
        )
    if time != "unix" and (wide or layout == "wide"):
        raise InvalidOptionError(
            "a wide table has no time column: time (--time) needs the long layout"
        )
    if suffix in (".tfevents", *RESULTS_FORMATS) and (layout == "wide" or time != "unix"):
        raise InvalidOptionError(
            f"layout and time (--layout, --time) shape a table of points, not {suffix} output"
        )
    if keep_duplicates and (wide or layout == "wide"):
        raise InvalidOptionError(
            "a wide table holds one point per step: keep_duplicates (--keep-duplicates) "
            "needs the long layout"
        )


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
    wide: bool = False,
    layout: str = "long",
    reduce: str | Sequence[str] | None = None,
    align: str = "steps",
    min_runs: int = 1,
    smoothing: float | None = None,
    time: str = "unix",
    name_by: str = "dir",
    charts: bool = False,
    matlab_script: bool = False,
    results: str | Sequence[str] | None = None,
    group_by: str | Sequence[str] | None = None,
    digits: int | None = None,
    plot: str | os.PathLike[str] | None = None,
    plot_dir: str | os.PathLike[str] | None = None,
    plot_x: str = "step",
    plot_log_y: bool = False,
    write_table: bool = True,
    force: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
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
    replaces read-only outputs (refused otherwise). Raises
    :class:`NoScalarsError` when there is nothing to write. The reading options are
    those of :func:`tbexport.load_scalars`.
    """
    check_options(layout=layout, reduce=reduce, smoothing=smoothing, time=time, name_by=name_by)
    paths = as_list(paths)  # once: a generator (Path.glob) can be read only once
    if plot is not None:
        check_plot_path(plot)  # before reading, like the table's format
    if not write_table and (wide or layout == "wide" or charts or matlab_script or time != "unix"):
        raise InvalidOptionError(
            "wide, layout='wide', charts, matlab_script and time (--wide, --layout wide, "
            "--charts, --matlab-script, --time) shape a table, and only figures are written"
        )
    if plot is None and plot_dir is None and (plot_x != "step" or plot_log_y):
        raise InvalidOptionError(
            "plot_x and plot_log_y (--x, --log-y) shape figures: give plot or plot_dir "
            "(--plot, --plot-dir)"
        )
    if reduce and name_by != "dir":
        raise InvalidOptionError(
            "name_by (--name-by) labels runs, and reduce (--reduce) puts statistics in their place"
        )
    if not reduce and (align != "steps" or min_runs != 1):
        raise InvalidOptionError(
            "align and min_runs (--align, --min-runs) shape the statistics of reduce (--reduce)"
        )
    if reduce:
        check_align(align)
        check_min_runs(min_runs)
        if keep_duplicates:
            raise InvalidOptionError(
                "reduce (--reduce) takes one point per run and step, and keep_duplicates "
                "(--keep-duplicates) keeps the points a resumed run replaced"
            )
    metrics = parse_metrics(results) if results is not None else None
    keys = check_group_by(group_by) if group_by is not None else None
    target = None
    if write_table:
        target = Path(output) if output is not None else default_output(paths, format)
        suffix = format_for(target, format)  # fail on an unknown format before reading
        check_format_options(
            suffix,
            wide=wide,
            layout=layout,
            time=time,
            charts=charts,
            matlab_script=matlab_script,
            keep_duplicates=keep_duplicates,
        )
        check_results_options(
            suffix,
            results=metrics is not None,
            group_by=keys is not None,
            digits=digits,
            reduce=bool(reduce),
            smoothing=smoothing is not None and plot is None and plot_dir is None,
            points_layout=wide or layout == "wide" or time != "unix",
            name_by=name_by != "dir",
        )
        if suffix == ".tfevents" and smoothing is not None and plot is None and plot_dir is None:
            raise InvalidOptionError(
                "smoothing (--smooth) is not written to TensorBoard runs: TensorBoard smooths "
                "its charts itself"
            )
    elif metrics is not None:
        raise InvalidOptionError(
            "results (--results) is a table, and only figures are written: give an output (-o)"
        )
    data = load_scalars(
        paths,
        tags=tags,
        keep_duplicates=keep_duplicates,
        strict=strict,
        verify=verify,
        progress=progress,
        jobs=jobs,
        progress_total=progress_total,
    )
    if data.frame.empty:
        raise NoScalarsError(f"no scalar data found in {_describe(paths)}")
    table = None
    try:
        if metrics is not None:
            runs = [str(r) for r in data.frame["run"].cat.categories]
            labels = run_labels(runs, data.hparams, name_by)
            table = results_table(data.frame, metrics, data.hparams, group_by=keys, labels=labels)
        results_only = table is not None and target is not None and target.suffix != ".xlsx"
        if results_only and plot is None and plot_dir is None:
            frame, hparams = data.frame, pd.DataFrame()  # (no points written: none shaped)
        else:
            frame, hparams = shape(
                data,
                reduce=reduce,
                align=align,
                min_runs=min_runs,
                smoothing=smoothing,
                name_by=name_by,
            )
    except InvalidOptionError as error:
        # a tag filter may be why a metric is missing, a left-out hparams.yaml why a
        # hyperparameter is
        why = [f"read with tags={list(as_list(tags))} (--tags)"] if tags and metrics else []
        why += data.notes
        if not why:
            raise
        raise InvalidOptionError(f"{error} ({'; '.join(why)})") from error
    if frame.empty:  # (min_runs above the runs there are)
        raise NoScalarsError(
            f"no tag and step has {min_runs} runs with a value ({data.frame['run'].nunique()} "
            "runs were read): nothing to write"
        )
    with _gathered_notes() as notes:
        if target is not None:
            if table is not None and format_for(target, format) != ".xlsx":
                _write_results(table, target, format_for(target, format), digits, force)
            else:
                options = WriteOptions(
                    layout="wide" if layout == "wide" else "long",
                    wide_tags=wide,
                    charts=charts,
                    matlab_script=matlab_script,
                    hparams=hparams,
                    results=table.frame if table is not None else None,
                    directories=_directories(data, name_by),
                )
                write_scalars(
                    with_time(frame, time), target, format=format, options=options, force=force
                )
        plots = _plots(frame, plot, plot_dir, plot_x, plot_log_y)
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


def check_results_options(
    suffix: str,
    *,
    results: bool,
    group_by: bool,
    digits: int | None,
    reduce: bool,
    smoothing: bool,
    points_layout: bool = False,
    name_by: bool = False,
) -> None:
    """Raise :class:`InvalidOptionError` for results options the output would ignore.

    ``smoothing``: smoothing was asked for and no figure uses it; ``points_layout``:
    a layout or time option of the points table was.
    """
    if suffix in RESULTS_FORMATS and not results:
        raise InvalidOptionError(
            f"{suffix} output is a results table: give results (--results METRIC:AGG, "
            "e.g. val_acc:max)"
        )
    if group_by and not results:
        raise InvalidOptionError(
            "group_by (--group-by) groups the results table: give results (--results)"
        )
    if digits is not None and suffix not in RESULTS_FORMATS:
        raise InvalidOptionError(
            f"digits (--digits) rounds the results of .md and .tex output, not {suffix}"
        )
    if digits is not None and not 1 <= digits <= 17:
        raise InvalidOptionError(f"digits (--digits) must be 1 to 17, not {digits}")
    if group_by and name_by:
        raise InvalidOptionError(
            "name_by (--name-by) labels runs, and group_by (--group-by) puts groups in their place"
        )
    if not results:
        return
    if suffix not in (".csv", ".xlsx", *RESULTS_FORMATS):
        raise InvalidOptionError(
            f"results (--results) are written as .csv, .md, .tex or .xlsx, not {suffix}"
        )
    if reduce:
        raise InvalidOptionError(
            "results (--results) is a table of runs, and reduce (--reduce) puts statistics "
            "in their place"
        )
    if (smoothing or points_layout) and suffix != ".xlsx":
        raise InvalidOptionError(
            "smoothing, layout, wide and time (--smooth, --layout, --wide, --time) shape the "
            f"points, and a {suffix} with results (--results) holds the results table only"
        )


def _write_results(
    table: ResultsTable, target: Path, suffix: str, digits: int | None, force: bool
) -> None:
    from .writers.results import write

    with atomic_path(target, force=force) as temporary:
        write(table, temporary, suffix, DEFAULT_DIGITS if digits is None else digits)


def _plots(
    frame: pd.DataFrame,
    plot: str | os.PathLike[str] | None,
    plot_dir: str | os.PathLike[str] | None,
    x: str,
    log_y: bool,
) -> list[Path]:
    if plot is None and plot_dir is None:
        return []
    from .plot import plot_scalars

    written = []
    if plot is not None:
        written += plot_scalars(frame, plot, x=x, log_y=log_y)
    if plot_dir is not None:
        written += plot_scalars(frame, plot_dir, x=x, log_y=log_y, per_tag=True)
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


def _directories(data: ScalarData, name_by: str) -> dict[str, str] | None:
    """Each run's label -> its directory, where ``name_by`` relabels runs."""
    if name_by == "dir":
        return None
    runs = [str(r) for r in data.frame["run"].cat.categories]
    return {label: run for run, label in run_labels(runs, data.hparams, name_by).items()}


def _describe(paths: Paths) -> str:
    return ", ".join(os.fspath(p) for p in as_list(paths))
