"""Figures of scalar curves as TensorBoard draws them: raw values faint, smoothed solid.

One panel per tag in a grid, runs overlaid in one colour per run (the same colour
in every panel), matplotlib's headless Agg backend.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InvalidOptionError, OutputWriteError, UnknownFormatError
from .write import atomic_path

__all__ = ["PLOT_FORMATS", "X_AXES", "plot_scalars"]

PLOT_FORMATS = (".png", ".pdf", ".svg")
X_AXES = ("step", "wall_time", "relative")
_X_LABELS = {"step": "step", "wall_time": "wall time (UTC)", "relative": "hours since start"}


def check_plot_path(output: str | os.PathLike[str]) -> Path:
    """``output`` as a Path; raise :class:`UnknownFormatError` unless it is .png/.pdf/.svg."""
    path = Path(output)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UnknownFormatError(
            f"unknown plot suffix {path.suffix or '(none)'!r}; known: {', '.join(PLOT_FORMATS)}"
        )
    return path


def plot_scalars(
    frame: pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    x: str = "step",
    log_y: bool = False,
    per_tag: bool = False,
) -> list[Path]:
    """Draw ``frame`` (long form) to ``output``: a grid figure, or with ``per_tag`` a
    directory holding one PNG per tag. Returns the files written."""
    if x not in X_AXES:
        raise InvalidOptionError(f"unknown x axis {x!r}; choose from {', '.join(X_AXES)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = [str(t) for t in frame["tag"].cat.categories if (frame["tag"] == t).any()]
    runs = [str(r) for r in frame["run"].cat.categories if (frame["run"] == r).any()]
    colours = {run: plt.get_cmap("tab10")(i % 10) for i, run in enumerate(runs)}
    if per_tag:
        return _per_tag(frame, Path(output), tags, colours, x, log_y, plt)
    path = check_plot_path(output)
    columns = math.ceil(math.sqrt(len(tags)))
    rows = math.ceil(len(tags) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for ax, tag in zip(axes.flat, tags, strict=False):
        _panel(ax, frame[frame["tag"] == tag], tag, colours, x, log_y)
    for ax in list(axes.flat)[len(tags) :]:
        ax.set_visible(False)
    if len(runs) > 1:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colours[r], lw=2) for r in runs]
        figure.legend(
            handles, runs, loc="lower center", ncol=min(len(runs), 5), fontsize=8, frameon=False
        )
        figure.tight_layout(rect=(0, 0.04 + 0.02 * math.ceil(len(runs) / 5), 1, 1))
    else:
        figure.tight_layout()
    _save(figure, path, plt)
    return [path]


def _per_tag(
    frame: pd.DataFrame,
    directory: Path,
    tags: list[str],
    colours: dict[str, Any],
    x: str,
    log_y: bool,
    plt: Any,
) -> list[Path]:
    from .names import file_names

    if directory.exists() and not directory.is_dir():
        raise InvalidOptionError(f"--plot-dir {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot write {directory}: {error.strerror or error}") from None
    names = file_names(tags)  # readable, unique, safe in file names
    written = []
    for tag in tags:
        figure, ax = plt.subplots(figsize=(6, 4))
        _panel(ax, frame[frame["tag"] == tag], tag, colours, x, log_y)
        if frame["run"].nunique() > 1:
            ax.legend(fontsize=8, frameon=False)
        figure.tight_layout()
        path = directory / f"{names[tag]}.png"
        _save(figure, path, plt)
        written.append(path)
    return written


def _panel(
    ax: Any, rows: pd.DataFrame, tag: str, colours: dict[str, Any], x: str, log_y: bool
) -> None:
    smoothed = "value_smoothed" in rows
    for run, group in rows.groupby("run", observed=True, sort=True):
        xs = _x_values(group, rows, x)
        colour = colours[str(run)]
        marker = "o" if len(group) < 3 else None  # a lone point (test_acc) would not show
        ax.plot(
            xs,
            group["value"],
            color=colour,
            alpha=0.3 if smoothed else 1.0,
            lw=1,
            label=None if smoothed else str(run),
            marker=marker,
        )
        if smoothed:
            ax.plot(
                xs, group["value_smoothed"], color=colour, lw=1.6, label=str(run), marker=marker
            )
    ax.set_title(tag, fontsize=10)
    ax.set_xlabel(_X_LABELS[x], fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if log_y and (rows["value"] > 0).any():
        ax.set_yscale("log")
    if x == "wall_time":
        ax.figure.autofmt_xdate()


def _x_values(group: pd.DataFrame, rows: pd.DataFrame, x: str) -> Any:
    if x == "step":
        return group["step"].to_numpy()
    seconds = group["wall_time"].to_numpy(dtype=np.float64)
    if x == "wall_time":
        return pd.to_datetime(seconds, unit="s")
    return (seconds - np.nanmin(seconds)) / 3600.0


def _save(figure: Any, path: Path, plt: Any) -> None:
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format=path.suffix.lstrip(".").lower(), dpi=120)
    finally:
        plt.close(figure)
