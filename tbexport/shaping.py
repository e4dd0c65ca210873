"""Shaping the long frame for papers: smoothing, statistics across runs, run labels,
time columns; and its other views: wide tables and per-tag summaries.

The functions that transform take and return a long frame (``run, tag, step,
wall_time, value`` plus any columns added here), so they compose and every writer
handles the result.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tbexport.align import aligned, parse_align, sorted_codes
from tbexport.exceptions import InvalidOptionError
from tbexport.model import SMOOTHED, value_columns

if TYPE_CHECKING:
    from tbexport.values import AlignMode, TimeMode

__all__ = [
    "LIST_COLUMNS",
    "REDUCTIONS",
    "SMOOTHED",
    "TIME_MODES",
    "check_min_runs",
    "check_statistics",
    "check_time_mode",
    "check_weight",
    "reduce_runs",
    "reduced",
    "relabel_runs",
    "run_tag_groups",
    "runs_side_by_side",
    "smooth",
    "smoothed",
    "statistics_list",
    "summarize",
    "tag_stats",
    "to_wide",
    "value_columns",
    "wide_column",
    "with_time",
]


def to_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step), one column per tag; a missing point is NaN.

    Where ``keep_duplicates`` left several points of a tag at one step, the
    last one logged is used. A smoothed frame (:func:`tbexport.smooth`) gets a
    ``<tag> (smoothed)`` column after the tags' own.
    """
    if frame.empty:
        return pd.DataFrame(columns=["run", "step"])
    values = value_columns(frame)
    last = frame.drop_duplicates(["run", "tag", "step"], keep="last")
    wide = last.pivot_table(
        index=["run", "step"],
        columns="tag",
        values=values,
        aggfunc="last",
        observed=True,
        dropna=False,
        sort=True,
    )
    wide = wide.dropna(how="all")
    pairs: Any = wide.columns  # (value column, tag) pairs
    wide.columns = [wide_column(str(tag), column) for column, tag in pairs]
    wide = wide.reset_index()
    wide["run"] = wide["run"].astype(str)
    return wide


def wide_column(name: str, column: str) -> str:
    """A wide table's column for a tag's or a run's ``value`` or smoothed value."""
    return name if column == "value" else f"{name} (smoothed)"


def runs_side_by_side(group: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """One tag's points with steps as rows and runs as columns (outer join; missing NaN)."""
    last = group.drop_duplicates(["run", "step"], keep="last")
    table = last.pivot(index="step", columns="run", values=column)
    runs = [r for r in group["run"].cat.categories if r in table.columns]
    table = table[runs]
    table.columns = [str(c) for c in table.columns]
    return table.sort_index()


# the columns of summarize() that --list prints (and tag_stats returned)
LIST_COLUMNS = [
    "run", "tag", "points", "first_step", "last_step", "last_value", "min", "max", "nonfinite"
]  # fmt: skip


def tag_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Deprecated: ``summarize(frame)[LIST_COLUMNS]`` (goes in the next release)."""
    warnings.warn(
        "tag_stats() is deprecated and will be removed in the next release: use summarize()",
        DeprecationWarning,
        stacklevel=2,
    )
    return summarize(frame)[LIST_COLUMNS]


def run_tag_groups(frame: pd.DataFrame) -> list[tuple[tuple[Any, Any], slice | np.ndarray]]:
    """Each (run, tag) with its rows, in run then tag order, as groupby would give them.

    A frame as read holds each run's tags one after the other: its groups are then
    found as stretches of the codes, without the sort that groupby makes (seconds for
    15M rows).
    """
    runs, tags = frame["run"], frame["tag"]
    if isinstance(runs.dtype, pd.CategoricalDtype) and isinstance(tags.dtype, pd.CategoricalDtype):
        run_codes = runs.cat.codes.to_numpy(np.int64)
        tag_codes = tags.cat.codes.to_numpy(np.int64)
        key = run_codes * len(tags.cat.categories) + tag_codes
        if (
            len(key)
            and run_codes.min() >= 0
            and tag_codes.min() >= 0
            and (key[1:] >= key[:-1]).all()
        ):
            bounds = [0, *(np.flatnonzero(key[1:] != key[:-1]) + 1).tolist(), len(key)]
            run_names, tag_names = runs.cat.categories, tags.cat.categories
            return [
                ((run_names[run_codes[a]], tag_names[tag_codes[a]]), slice(a, b))
                for a, b in itertools.pairwise(bounds)
            ]
    groups: dict[Any, Any] = frame.groupby(["run", "tag"], observed=True, sort=True).indices
    return list(groups.items())


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run and tag: points, first/last step, last value, min and max with their
    steps, non-finite count and wall-clock duration (seconds, first to last point)."""
    rows = []
    name = next((c for c in ("wall_time", "datetime", "relative_time") if c in frame), None)
    time = frame[name] if name else None
    for (run, tag), index in run_tag_groups(frame):
        values = frame["value"].to_numpy()[index]
        steps = frame["step"].to_numpy()[index]
        finite = np.isfinite(values)
        low = int(np.argmin(np.where(finite, values, np.inf))) if finite.any() else None
        high = int(np.argmax(np.where(finite, values, -np.inf))) if finite.any() else None
        walls = time.to_numpy()[index] if time is not None else np.array([np.nan])
        rows.append(
            {
                "run": str(run),
                "tag": str(tag),
                "points": len(values),
                "first_step": int(steps[0]),
                "last_step": int(steps[-1]),
                "last_value": float(values[-1]),
                "min": float(values[low]) if low is not None else np.nan,
                "min_step": int(steps[low]) if low is not None else None,
                "max": float(values[high]) if high is not None else np.nan,
                "max_step": int(steps[high]) if high is not None else None,
                "nonfinite": int((~finite).sum()),
                "duration_s": float(np.nanmax(walls) - np.nanmin(walls))
                if np.isfinite(walls).any()
                else np.nan,
            }
        )
    columns = [
        "run",
        "tag",
        "points",
        "first_step",
        "last_step",
        "last_value",
        "min",
        "min_step",
        "max",
        "max_step",
        "nonfinite",
        "duration_s",
    ]
    return pd.DataFrame(rows, columns=columns)


REDUCTIONS = ("mean", "std", "min", "max", "median", "count")
TIME_MODES = ("unix", "datetime", "relative")
TIME_COLUMNS = {"unix": "wall_time", "datetime": "datetime", "relative": "relative_time"}


def statistics_list(statistics: str | Sequence[str]) -> list[str]:
    """``statistics`` as a list: a string names one, or several with commas (``"mean,std"``)."""
    if isinstance(statistics, str):
        return [name.strip() for name in statistics.split(",") if name.strip()]
    return list(statistics)


def check_statistics(statistics: str | Sequence[str]) -> None:
    """Raise :class:`InvalidOptionError` unless ``statistics`` names known reductions."""
    statistics = statistics_list(statistics)
    unknown = [s for s in statistics if s not in REDUCTIONS]
    if unknown or not statistics:
        raise InvalidOptionError(
            f"unknown statistic {', '.join(map(repr, unknown)) or '(none)'}; "
            f"choose from {', '.join(REDUCTIONS)}"
        )


def check_min_runs(min_runs: int) -> None:
    """Raise :class:`InvalidOptionError` unless ``min_runs`` is an integer >= 1."""
    if isinstance(min_runs, bool) or not isinstance(min_runs, int | np.integer) or min_runs < 1:
        raise InvalidOptionError(f"min_runs must be an integer >= 1, not {min_runs!r}")


def check_weight(weight: float) -> None:
    """Raise :class:`InvalidOptionError` unless ``weight`` is a smoothing weight (0 <= W < 1)."""
    if not 0 <= weight < 1:
        raise InvalidOptionError(f"smoothing weight must be in [0, 1), not {weight:g}")


def check_time_mode(mode: str) -> None:
    """Raise :class:`InvalidOptionError` unless ``mode`` is one of ``TIME_MODES``."""
    if mode not in TIME_MODES:
        raise InvalidOptionError(f"unknown time mode {mode!r}; choose from {', '.join(TIME_MODES)}")


def smooth_values(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's scalar-chart smoothing of one series.

    A debiased exponential moving average over the points in order:
    ``last = last*W + (1-W)*y; n += 1; smoothed = last / (1 - W**n)``. Non-finite
    values pass through and are not counted; a constant series is left unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if len(values) == 0 or np.all(values == values[0]) or not finite.any():
        return values.copy()
    from scipy.signal import lfilter  # deferred: scipy.signal takes a second to import

    y = values[finite]
    # lfilter computes last_n = W*last_{n-1} + (1-W)*y_n in C, starting from last = 0
    last = lfilter([1.0 - weight], [1.0, -weight], y)
    debias = 1.0 - weight ** np.arange(1, len(y) + 1, dtype=np.float64)
    smoothed = values.copy()
    smoothed[finite] = last / debias
    return smoothed


def smooth(frame: pd.DataFrame, weight: float) -> pd.DataFrame:
    """Add ``value_smoothed``: TensorBoard's smoothing of each (run, tag) series, with
    ``weight`` W (0 <= W < 1; :func:`smooth_values` says how)."""
    check_weight(weight)
    return smoothed(frame, weight)


def smoothed(frame: pd.DataFrame, weight: float) -> pd.DataFrame:
    """:func:`smooth` with a ``weight`` already checked (by :class:`ShapeOptions`)."""
    result = frame.copy()
    smoothed = np.empty(len(frame), dtype=np.float64)
    for _, rows in frame.groupby(["run", "tag"], observed=True, sort=False).indices.items():
        smoothed[rows] = smooth_values(frame["value"].to_numpy()[rows], weight)
    result[SMOOTHED] = smoothed
    return result


def reduce_runs(
    frame: pd.DataFrame,
    statistics: str | Sequence[str],
    *,
    align: str = "steps",
    min_runs: int = 1,
) -> pd.DataFrame:
    """Aggregate across runs per (tag, step); the ``run`` column names the statistic.

    Runs may have different tags, steps or lengths: each statistic uses the runs
    that have a (non-NaN) value at that step, and ``count`` says how many did. A run
    that logged a step more than once (a frame read with ``keep_duplicates``) counts
    once there, with the point it logged last.
    ``std`` is the sample standard deviation (NaN for a single run). ``wall_time``
    is the median of the runs' wall times at that step.

    ``align`` first puts the runs on common steps: ``"steps"`` (as logged),
    ``"bins:N"`` (N equal-width step bins per tag, each run averaged per bin) or
    ``"grid:STEP"`` (each run interpolated onto the multiples of STEP); see
    :mod:`tbexport.align`. ``min_runs`` drops every statistic's row of a (tag, step)
    that fewer than ``min_runs`` runs have a non-NaN value at (after alignment).
    """
    statistics = statistics_list(statistics)
    check_statistics(statistics)
    alignment = parse_align(align)
    check_min_runs(min_runs)
    return reduced(frame, statistics, alignment, min_runs)


def reduced(
    frame: pd.DataFrame,
    statistics: Sequence[str],
    alignment: tuple[AlignMode, int | None],
    min_runs: int,
) -> pd.DataFrame:
    """:func:`reduce_runs` with its options already checked and parsed (by
    :class:`~tbexport.options.ShapeOptions`): ``alignment`` as
    :func:`~tbexport.align.parse_align` gives it."""
    mode, parameter = alignment
    frame = aligned(frame, mode, parameter) if mode != "steps" else _last_per_step(frame)
    columns = value_columns(frame)
    grouped = frame.groupby(["tag", "step"], observed=True, sort=True)
    wall_time = grouped["wall_time"].median()
    keep = None
    if min_runs > 1:
        keep = grouped["value"].count().to_numpy() >= min_runs
    parts = []
    for statistic in statistics:
        values = {c: _aggregate(grouped[c], statistic) for c in columns}
        part = pd.DataFrame({"wall_time": wall_time, **values})
        if keep is not None:
            part = part[keep]
        part = part.reset_index()
        part.insert(0, "run", statistic)
        parts.append(part)
    result = pd.concat(parts, ignore_index=True)
    result["run"] = pd.Categorical(result["run"], categories=list(statistics))
    result["tag"] = pd.Categorical(
        result["tag"].astype(str), categories=frame["tag"].cat.categories
    )
    result = result.sort_values(["run", "tag", "step"], kind="stable", ignore_index=True)
    order = ["run", "tag", "step", "wall_time", *columns]
    return result[order]


def _last_per_step(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with one point per run, tag and step: the last logged, where a run
    logged a step again (``keep_duplicates``), so that it counts once."""
    runs, tags, steps, _ = sorted_codes(frame)
    same = (runs[1:] == runs[:-1]) & (tags[1:] == tags[:-1]) & (steps[1:] == steps[:-1])
    if not same.any():  # (as read by default: no step twice, and no copy)
        return frame
    return frame.drop_duplicates(["run", "tag", "step"], keep="last")


def _aggregate(column: Any, statistic: str) -> pd.Series:
    result: pd.Series
    if statistic == "count":
        result = column.count().astype(np.float64)
    elif statistic == "std":
        result = column.std(ddof=1)
    else:
        result = column.agg(statistic)
    return result


def relabel_runs(frame: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Rename runs (e.g. ``version_0`` -> ``lr=0.001``); labels must stay unique."""
    result = frame.copy()
    result["run"] = result["run"].cat.rename_categories(
        [labels.get(str(r), str(r)) for r in frame["run"].cat.categories]
    )
    return result


def with_time(frame: pd.DataFrame, mode: TimeMode) -> pd.DataFrame:
    """Name (and for ``relative``, shift) the time column for the ``--time`` mode.

    ``unix``: ``wall_time``, seconds since 1970. ``datetime``: ``datetime``, the
    same seconds, written by each format as a date (Excel date cells, ISO 8601 in
    CSV, ``datenum`` in MATLAB). ``relative``: ``relative_time``, seconds since the
    run's first point in ``frame`` (after any tag filter). ``mode`` is one of
    ``TIME_MODES``, as :class:`~tbexport.options.ShapeOptions` checked it.
    """
    if mode == "unix":
        return frame
    result = frame.rename(columns={"wall_time": TIME_COLUMNS[mode]})
    if mode == "relative":
        start = frame.groupby("run", observed=True)["wall_time"].transform("min")
        result["relative_time"] = frame["wall_time"] - start
    return result


def time_column(frame: pd.DataFrame) -> str:
    """The name of the frame's time column."""
    return next(c for c in ("wall_time", "datetime", "relative_time") if c in frame)
