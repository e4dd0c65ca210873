"""Read scalars, shape them, and write them to a file in one call (what the CLI runs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .discover import as_list
from .exceptions import InvalidOptionError, NoScalarsError
from .hparams import check_name_by, hparams_frame, run_labels
from .load import Paths, ScalarData, load_scalars
from .options import LAYOUTS, WriteOptions
from .plot import check_plot_path
from .records import Corruption
from .transform import (
    check_statistics,
    check_time_mode,
    check_weight,
    reduce_runs,
    relabel_runs,
    smooth,
    with_time,
)
from .write import format_for, write_scalars

__all__ = ["ExportResult", "check_format_options", "default_output", "export", "shape"]

DEFAULT_FORMAT = ".xlsx"


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
    if keep_duplicates and (wide or layout == "wide"):
        raise InvalidOptionError(
            "a wide table holds one point per step: keep_duplicates (--keep-duplicates) "
            "needs the long layout"
        )


def shape(
    data: ScalarData,
    *,
    reduce: str | Sequence[str] | None = None,
    smoothing: float | None = None,
    name_by: str = "dir",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply run labels, statistics and smoothing; return (frame, hparams per run)."""
    frame = data.frame
    runs = [str(r) for r in frame["run"].cat.categories]
    labels = run_labels(runs, data.hparams, name_by)
    frame = relabel_runs(frame, labels)
    hparams = hparams_frame({labels.get(r, r): h for r, h in data.hparams.items()})
    if reduce:
        frame = reduce_runs(frame, reduce)
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
    smoothing: float | None = None,
    time: str = "unix",
    name_by: str = "dir",
    charts: bool = False,
    matlab_script: bool = False,
    plot: str | os.PathLike[str] | None = None,
    plot_dir: str | os.PathLike[str] | None = None,
    plot_x: str = "step",
    plot_log_y: bool = False,
    write_table: bool = True,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
) -> ExportResult:
    """Read every scalar under ``paths``, shape it, and write it to ``output``.

    The format follows ``output``'s suffix (``.xlsx``, ``.mat``, ``.csv``) or
    ``format``; without ``output`` the file is named after the input, in the
    current directory. ``layout`` is ``long`` or ``wide`` (runs side by side);
    ``wide`` (CSV) puts tags side by side instead. ``reduce`` aggregates across runs
    (``mean``, ``std``, ``min``, ``max``, ``median``, ``count``: a list, or one string
    with commas); ``smoothing`` adds
    ``value_smoothed`` (TensorBoard's weight, 0 <= W < 1); ``time`` is ``unix``,
    ``datetime`` or ``relative``; ``name_by`` is ``dir`` or ``hparam:KEY``.
    ``plot``/``plot_dir`` draw figures (see :func:`tbexport.plot_scalars`);
    ``write_table=False`` only plots. Raises :class:`NoScalarsError` when there is
    nothing to write. The reading options are those of :func:`tbexport.load_scalars`.
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
    try:
        frame, hparams = shape(data, reduce=reduce, smoothing=smoothing, name_by=name_by)
    except InvalidOptionError as error:
        if not data.notes:
            raise
        # a left-out hparams.yaml may be why --name-by finds no such hyperparameter
        raise InvalidOptionError(f"{error} ({'; '.join(data.notes)})") from error
    if target is not None:
        options = WriteOptions(
            layout="wide" if layout == "wide" else "long",
            wide_tags=wide,
            charts=charts,
            matlab_script=matlab_script,
            hparams=hparams,
        )
        write_scalars(with_time(frame, time), target, format=format, options=options)
    plots = _plots(frame, plot, plot_dir, plot_x, plot_log_y)
    return ExportResult(
        output=target,
        runs=int(frame["run"].nunique()),
        tags=int(frame["tag"].nunique()),
        points=len(data.frame),
        files=data.files,
        corruptions=data.corruptions,
        truncated=data.truncated,
        notes=data.notes,
        plots=plots,
    )


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


def _describe(paths: Paths) -> str:
    return ", ".join(os.fspath(p) for p in as_list(paths))
