"""Other views of the long frame: wide tables and per-tag statistics."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SMOOTHED",
    "runs_side_by_side",
    "summarize",
    "tag_stats",
    "to_wide",
    "value_columns",
    "wide_column",
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


SMOOTHED = "value_smoothed"  # the column tbexport.smooth adds


def value_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's value columns: ``value``, and ``value_smoothed`` when smoothed."""
    return [c for c in ("value", SMOOTHED) if c in frame]


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


def tag_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (run, tag): points, first/last step, last value, min, max and non-finite count."""
    summary = summarize(frame)
    return summary[
        ["run", "tag", "points", "first_step", "last_step", "last_value", "min", "max", "nonfinite"]
    ]


def _run_tag_groups(frame: pd.DataFrame) -> list[tuple[tuple[Any, Any], slice | np.ndarray]]:
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
    for (run, tag), index in _run_tag_groups(frame):
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
