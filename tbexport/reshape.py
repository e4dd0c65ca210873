"""Other views of the long frame: wide (one column per tag) and per-tag statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["tag_stats", "to_wide"]


def to_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step), one column per tag; a missing point is NaN.

    Where ``keep_duplicates`` left several points of a tag at one step, the
    last one logged is used.
    """
    if frame.empty:
        return pd.DataFrame(columns=["run", "step"])
    last = frame.drop_duplicates(["run", "tag", "step"], keep="last")
    wide = last.pivot_table(
        index=["run", "step"],
        columns="tag",
        values="value",
        aggfunc="last",
        observed=True,
        dropna=False,
        sort=True,
    )
    wide = wide.dropna(how="all")
    wide.columns = [str(c) for c in wide.columns]
    wide = wide.reset_index()
    wide["run"] = wide["run"].astype(str)
    return wide


def tag_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (run, tag): points, first/last step, last value, min, max and non-finite count."""
    rows = []
    for (run, tag), group in frame.groupby(["run", "tag"], observed=True, sort=True):
        values = group["value"].to_numpy()
        steps = group["step"].to_numpy()
        finite = np.isfinite(values)
        rows.append(
            {
                "run": str(run),
                "tag": str(tag),
                "points": len(values),
                "first_step": int(steps[0]),
                "last_step": int(steps[-1]),
                "last_value": float(values[-1]),
                "min": float(values[finite].min()) if finite.any() else np.nan,
                "max": float(values[finite].max()) if finite.any() else np.nan,
                "nonfinite": int((~finite).sum()),
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
        "max",
        "nonfinite",
    ]
    return pd.DataFrame(rows, columns=columns)
