"""Put runs logged at different steps onto common steps before statistics across them.

:func:`tbexport.reduce_runs` takes its statistics per (tag, step). That only means
something when the runs logged at the same steps; ``align`` says how to make them:

``steps`` (the default)
    No alignment: each statistic uses the runs that logged a (non-NaN) value at
    exactly that step.

``bins:N`` (N a positive integer)
    Per tag, the step range of all runs together (the smallest to the largest step
    any run logged for that tag, NaN values included) is split into equal-width
    bins, ``min(N, max(1, hi - lo))`` of them so that every bin is at least one step
    wide (a tag logged at a single step gets one bin). Bin ``i`` holds the steps
    ``lo + i*width <= step < lo + (i+1)*width`` (``width = (hi - lo) / bins``,
    compared exactly: a step on an edge opens the next bin); the last bin also
    holds ``hi``.
    Each run's points in a bin are averaged first (every point, duplicates
    included; NaN values ignored), and so are their wall times; a run whose
    values in a bin are all NaN does not have that bin. The statistics are then
    taken across the runs that have the bin, and ``wall_time`` is the median of
    those runs' mean wall times. A bin's row sits at its centre step,
    ``lo + (i + 0.5)*width`` rounded half up (``floor(centre + 0.5)``), so steps
    stay integers. Bins that no run has are left out.

``grid:STEP`` (STEP a positive integer)
    Each run's series of a tag is linearly interpolated onto the multiples of
    STEP from its first to its last step with a non-NaN value (inclusive; never
    extrapolated), using its points with a non-NaN value; ``wall_time`` is
    interpolated the same way. Where a run logged several points at one step
    (``keep_duplicates``), the last one logged there is used. A run with a single
    point contributes only if that step is a multiple of STEP. The statistics are
    then taken across the runs per grid step.

Every value column (``value``, and ``value_smoothed`` when smoothed) is aligned
the same way; under ``grid`` a smoothed value is interpolated on its own non-NaN
points and is NaN outside their range. ``min_runs=K`` in :func:`tbexport.reduce_runs`
then drops the rows, of every statistic, of a (tag, step) that fewer than K runs
have a non-NaN ``value`` at after alignment (a run with several points at one step
counts once); the default, 1, keeps every row, as without alignment.

Rows are taken to be in logging order within each (run, tag), as
:func:`tbexport.read_scalars` gives them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tbexport.exceptions import InvalidOptionError
from tbexport.model import value_columns

if TYPE_CHECKING:
    from tbexport.values import AlignMode

__all__ = ["ALIGN_MODES", "align_runs", "check_align", "parse_align"]

ALIGN_MODES = ("steps", "bins", "grid")
_PARAMETER = {"bins": "N", "grid": "STEP"}


def parse_align(align: str) -> tuple[AlignMode, int | None]:
    """``align`` as (mode, parameter): ``"bins:20"`` is ``("bins", 20)``, ``"steps"`` is
    ``("steps", None)``; raise :class:`InvalidOptionError` for anything else."""
    text = align.strip() if isinstance(align, str) else ""
    if text == "steps":
        return "steps", None
    mode, _, number = text.partition(":")
    if mode not in _PARAMETER:
        raise InvalidOptionError(
            f"unknown alignment {align!r}; use steps, bins:N or grid:STEP "
            "(N, STEP positive integers)"
        )
    name = _PARAMETER[mode]
    if not re.fullmatch(r"[0-9]+", number.strip()) or int(number) < 1:
        raise InvalidOptionError(
            f"invalid alignment {align!r}: {name} in {mode}:{name} must be a positive integer"
        )
    return ("bins" if mode == "bins" else "grid"), int(number)


def check_align(align: str) -> None:
    """Raise :class:`InvalidOptionError` unless ``align`` is steps, bins:N or grid:STEP."""
    parse_align(align)


def align_runs(frame: pd.DataFrame, align: str) -> pd.DataFrame:
    """Each run's points moved onto common steps per tag, as the module docstring says.

    Returns a long frame with ``run, tag, step, wall_time`` and the value columns:
    ``frame`` itself for ``steps``; one point per run per bin, at the bin's centre
    step, for ``bins:N``; the interpolated points for ``grid:STEP``. Sorted by run,
    tag and step.
    """
    mode, parameter = parse_align(align)
    return aligned(frame, mode, parameter)


def aligned(frame: pd.DataFrame, mode: str, parameter: int | None) -> pd.DataFrame:
    """:func:`align_runs` for an ``align`` already parsed by :func:`parse_align`."""
    if mode == "steps" or parameter is None:
        return frame
    series = _Series(frame)
    if mode == "bins":
        return series.binned(parameter)
    return series.gridded(parameter)


class _Series:
    """The frame's points sorted by (run, tag, step), logging order kept among equal steps."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.columns = value_columns(frame)
        runs, tags, steps, order = sorted_codes(frame)
        self.runs, self.tags, self.steps = runs, tags, steps
        self.wall_time = self._column("wall_time", order)
        self.values = {c: self._column(c, order) for c in self.columns}
        # starts of each (run, tag) series, and one past the last
        change = (runs[1:] != runs[:-1]) | (tags[1:] != tags[:-1])
        self.starts = np.concatenate(([0], np.flatnonzero(change) + 1, [len(runs)]))

    def _column(self, name: str, order: np.ndarray | None) -> np.ndarray:
        column = self.frame[name].to_numpy(dtype=np.float64)
        return column if order is None else column[order]

    def binned(self, bins: int) -> pd.DataFrame:
        """One point per run per bin (see the module docstring)."""
        if len(self.steps) == 0:
            return self._result(self.runs, self.tags, self.steps, self.wall_time, self.values)
        firsts, lasts = self.starts[:-1], self.starts[1:] - 1
        # per tag: the step range of all runs, and the number of bins
        lo = np.full(int(self.tags.max()) + 1, np.iinfo(np.int64).max)
        hi = np.full(len(lo), np.iinfo(np.int64).min)
        np.minimum.at(lo, self.tags[firsts], self.steps[firsts])
        np.maximum.at(hi, self.tags[lasts], self.steps[lasts])
        absent = lo > hi
        lo[absent], hi[absent] = 0, 0
        span = hi - lo
        counts = np.minimum(bins, np.maximum(1, span))
        # bin i holds lo + i*span/count <= step < lo + (i+1)*span/count, in exact integers
        exact = (
            max(2 * c * s + c for c, s in zip(counts.tolist(), span.tolist(), strict=True)) < 2**62
        )
        index = _floor_div(
            self.steps - lo[self.tags],
            counts[self.tags],
            0,
            np.maximum(span, 1)[self.tags],
            exact=exact,
        )
        index = np.minimum(index, counts[self.tags] - 1)  # the last bin holds hi
        # points of one (run, tag, bin) are contiguous: steps are sorted per series
        new = np.empty(len(index), dtype=bool)
        new[0] = True
        new[1:] = index[1:] != index[:-1]
        new[firsts] = True
        starts = np.flatnonzero(new)
        has = np.logical_or.reduceat(~np.isnan(self.values["value"]), starts)
        keep = starts[has]
        points = np.diff(np.append(starts, len(index)))[has]
        wall_time = np.add.reduceat(self.wall_time, starts)[has] / points
        means = {c: _nan_means(v, starts)[has] for c, v in self.values.items()}
        # the centre lo + (i + 0.5)*span/count, rounded half up
        tags, bin_index = self.tags[keep], index[keep]
        centre = lo[tags] + _floor_div(
            2 * bin_index + 1, span[tags], counts[tags], 2 * counts[tags], exact=exact
        )
        return self._result(self.runs[keep], tags, centre, wall_time, means)

    def gridded(self, step: int) -> pd.DataFrame:
        """Each series interpolated onto the multiples of ``step`` (module docstring)."""
        if len(self.steps) == 0:
            return self._result(self.runs, self.tags, self.steps, self.wall_time, self.values)
        last = np.ones(len(self.steps), dtype=bool)  # the last point logged at its step
        last[:-1] = self.steps[1:] != self.steps[:-1]
        last[self.starts[1:] - 1] = True  # and each series' last point
        # each series' start among the kept points
        starts = np.concatenate(([0], np.cumsum(last)))[self.starts]
        steps = self.steps[last]
        runs, tags = self.runs[last], self.tags[last]
        wall_time = self.wall_time[last]
        values = {c: v[last] for c, v in self.values.items()}
        out_runs, out_tags, out_steps, out_walls = [], [], [], []
        out_values: dict[str, list[np.ndarray]] = {c: [] for c in values}
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
            x = steps[a:b]
            valid = ~np.isnan(values["value"][a:b])
            if not valid.any():
                continue
            xs = x[valid]
            first = -(-int(xs[0]) // step) * step
            grid = np.arange(first, int(xs[-1]) + 1, step, dtype=np.int64)
            if len(grid) == 0:
                continue
            out_steps.append(grid)
            out_runs.append(np.full(len(grid), runs[a]))
            out_tags.append(np.full(len(grid), tags[a]))
            out_walls.append(np.interp(grid, xs, wall_time[a:b][valid]))
            for column, v in values.items():
                out_values[column].append(_interpolate(grid, x, v[a:b]))
        if not out_steps:
            empty = np.empty(0, dtype=np.int64)
            return self._result(empty, empty, empty, np.empty(0), {c: np.empty(0) for c in values})
        return self._result(
            np.concatenate(out_runs),
            np.concatenate(out_tags),
            np.concatenate(out_steps),
            np.concatenate(out_walls),
            {c: np.concatenate(parts) for c, parts in out_values.items()},
        )

    def _result(
        self,
        runs: np.ndarray,
        tags: np.ndarray,
        steps: np.ndarray,
        wall_time: np.ndarray,
        values: dict[str, np.ndarray],
    ) -> pd.DataFrame:
        run, tag = self.frame["run"].cat, self.frame["tag"].cat
        return pd.DataFrame(
            {
                "run": pd.Categorical.from_codes(
                    runs.astype(np.int64), categories=run.categories, ordered=run.ordered
                ),
                "tag": pd.Categorical.from_codes(
                    tags.astype(np.int64), categories=tag.categories, ordered=tag.ordered
                ),
                "step": steps.astype(np.int64),
                "wall_time": wall_time.astype(np.float64),
                **{c: values[c].astype(np.float64) for c in self.columns},
            }
        )


def sorted_codes(
    frame: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The run codes, tag codes and steps sorted by (run, tag, step), and the permutation
    that sorts them (None when the rows already are, as read)."""
    runs = frame["run"].cat.codes.to_numpy()
    tags = frame["tag"].cat.codes.to_numpy()
    steps = np.asarray(frame["step"].to_numpy(), dtype=np.int64)
    order = series_order(runs, tags, steps)
    if order is not None:
        runs, tags, steps = runs[order], tags[order], steps[order]
    return runs, tags, steps, order


def series_order(runs: np.ndarray, tags: np.ndarray, steps: np.ndarray) -> np.ndarray | None:
    """The stable permutation sorting rows by (run, tag, step); None if they already are."""
    if in_series_order(runs, tags, steps):
        return None
    series = runs.astype(np.int64) * (int(tags.max()) + 1) + tags
    low, high = int(steps.min()), int(steps.max())
    if (int(series.max()) + 1) * (high - low + 1) < 2**63:
        # one int64 key: numpy's stable sort is fast on nearly sorted rows (resumed runs)
        order: np.ndarray = np.argsort(series * (high - low + 1) + (steps - low), kind="stable")
        return order
    return np.lexsort((steps, series))


def in_series_order(runs: np.ndarray, tags: np.ndarray, steps: np.ndarray) -> bool:
    """Whether rows are sorted by (run, tag, step)."""
    if len(runs) < 2:
        return True
    run_up, same_run = runs[1:] > runs[:-1], runs[1:] == runs[:-1]
    tag_up, same_tag = tags[1:] > tags[:-1], tags[1:] == tags[:-1]
    ordered = run_up | (same_run & (tag_up | (same_tag & (steps[1:] >= steps[:-1]))))
    return bool(ordered.all())


def _floor_div(
    a: np.ndarray, b: np.ndarray, add: np.ndarray | int, divisor: np.ndarray, *, exact: bool
) -> np.ndarray:
    """``floor((a*b + add) / divisor)`` elementwise, in int64 if ``exact`` says it fits."""
    if exact:
        return np.asarray((a * b + add) // divisor, dtype=np.int64)
    # huge steps: numpy's object arithmetic on Python integers keeps it exact
    big = [np.asarray(x).astype(object) for x in (a, b, add, divisor)]
    return np.asarray((big[0] * big[1] + big[2]) // big[3], dtype=np.int64)


def _nan_means(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The mean of the non-NaN values of each segment starting at ``starts`` (NaN if none)."""
    finite = ~np.isnan(values)
    sums = np.add.reduceat(np.where(finite, values, 0.0), starts)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means: np.ndarray = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return means


def _interpolate(grid: np.ndarray, steps: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` over ``steps`` linearly interpolated at ``grid``; NaN outside their range."""
    valid = ~np.isnan(values)
    if not valid.any():
        return np.full(len(grid), np.nan)
    xs, ys = steps[valid], values[valid]
    result: np.ndarray = np.interp(grid, xs, ys)
    result[(grid < xs[0]) | (grid > xs[-1])] = np.nan
    return result
