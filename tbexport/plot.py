"""Figures of scalar curves as TensorBoard draws them: raw values faint, smoothed solid.

One panel per tag in a grid, runs overlaid in one colour per run (the same colour
in every panel; ten colours for up to ten runs, a continuous colour map past
that), one legend for the whole figure below the panels. A frame of statistics
(:func:`tbexport.reduce_runs`) is drawn as its mean with a shaded band instead of a
curve per statistic.

Figures are made without pyplot (no global figure list, no backend switched, safe
headless): each is drawn, saved and let go before the next, so memory stays that of
one figure whatever the number of tags. A grid holds at most ``max_panels`` panels
(48); more tags are split over several numbered files.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from tbexport.exceptions import (
    InvalidOptionError,
    NoScalarsError,
    OutputWarning,
    OutputWriteError,
    option,
)
from tbexport.options import (
    BANDS,
    PLOT_FORMATS,
    X_AXES,
    Band,
    check_figure,
    check_plot_path,
    plot_suffix,
)
from tbexport.shaping import REDUCTIONS, SMOOTHED
from tbexport.writing.atomic import atomic_paths

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BANDS",
    "LEGEND_MAX_RUNS",
    "MAX_PANELS",
    "PLOT_FORMATS",
    "X_AXES",
    "Band",
    "check_plot_path",
    "figure",
    "plot_scalars",
]

MAX_PANELS = 48  # panels in one grid figure; more tags are split over several files
LEGEND_MAX_RUNS = 40  # more runs get a colour bar of their order instead of a legend
PANEL_SIZE = (4.2, 3.2)  # inches of one panel of a grid
TAG_SIZE = (6.0, 4.0)  # inches of the panel of a per-tag figure
DPI = 120
_TAB10_RUNS = 10  # up to this many runs take tab10's distinct colours

# Fixed margins (inches) around each panel's axes inside its cell, so that a
# figure's size is exactly what is asked and no layout engine has to run (and warn).
_LEFT, _RIGHT, _BOTTOM, _TOP = 0.62, 0.16, 0.48, 0.14
_TITLE_LINE = 0.19  # one line of a 10 pt title
_LEGEND_ROW = 0.19  # one row of an 8 pt legend
_COLOUR_BAR = 0.82  # the colour bar that stands in for a legend, with its labels
_TITLE_PT, _LABEL_PT, _TICK_PT, _LEGEND_PT = 10.0, 8.0, 7.0, 8.0
_CHAR_EM = 0.62  # a generous average width of a DejaVu Sans character, in ems
_LABEL_MAX = 40  # characters of a run's name in the legend


@overload
def plot_scalars(
    frame: pd.DataFrame,
    output: None = None,
    *,
    x: str = ...,
    log_y: bool = ...,
    per_tag: Literal[False] = ...,
    band: Band = ...,
    figsize: tuple[float, float] | None = ...,
    cols: int | None = ...,
    dpi: int = ...,
    format: None = ...,
    max_panels: int = ...,
    progress: Callable[[int], None] | None = ...,
    progress_total: Callable[[int], None] | None = ...,
    force: bool = ...,
) -> Figure: ...


@overload
def plot_scalars(
    frame: pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    x: str = ...,
    log_y: bool = ...,
    per_tag: bool = ...,
    band: Band = ...,
    figsize: tuple[float, float] | None = ...,
    cols: int | None = ...,
    dpi: int = ...,
    format: str | None = ...,
    max_panels: int = ...,
    progress: Callable[[int], None] | None = ...,
    progress_total: Callable[[int], None] | None = ...,
    force: bool = ...,
) -> list[Path]: ...


def plot_scalars(
    frame: pd.DataFrame,
    output: str | os.PathLike[str] | None = None,
    *,
    x: str = "step",
    log_y: bool = False,
    per_tag: bool = False,
    band: Band = "std",
    figsize: tuple[float, float] | None = None,
    cols: int | None = None,
    dpi: int = DPI,
    format: str | None = None,
    max_panels: int = MAX_PANELS,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
    force: bool = False,
) -> list[Path] | Figure:
    """Draw ``frame`` (the long frame: ``run, tag, step, value``, and ``wall_time`` for
    a time axis) one panel per tag.

    ``output`` a ``.png``, ``.pdf`` or ``.svg`` file: a grid of at most ``max_panels``
    panels; more tags are split evenly over ``curves-1.png``, ``curves-2.png``, ...
    (numbers zero-padded to sort: ``curves-01.png`` from ten files), ``curves.png``
    itself is then not written. ``per_tag``: ``output`` is a directory, one file per
    tag in ``format`` (``png``, ``pdf`` or ``svg``; default ``png``). No ``output``:
    the :class:`~matplotlib.figure.Figure` of every tag, unsaved (see :func:`figure`).
    Returns the files written, in order.

    ``x`` is ``step``, ``wall_time`` or ``relative`` (time since each run's first
    point, in seconds, minutes, hours or days by the longest run); ``log_y`` draws a
    logarithmic y axis, leaving out values <= 0. A frame of statistics
    (:func:`tbexport.reduce_runs`: every run named by a statistic) is drawn as its
    mean with a shaded band (``band``: ``std``, mean ± std, or ``minmax``), the
    median dashed, ``count`` not at all. ``figsize`` (inches, the whole figure;
    default ``PANEL_SIZE`` per panel, ``TAG_SIZE`` per tag, plus the legend), ``cols``
    (panels per row; default about the square root of the panels) and ``dpi`` shape
    each figure. ``progress`` is called with 1 as each panel is drawn,
    ``progress_total`` once before with the number of panels. What a person should
    know about the figures (files split, values a log axis cannot show, a legend
    left out) is emitted as :class:`~tbexport.OutputWarning`. Raises
    :class:`InvalidOptionError` for a bad option or a frame that is not long,
    :class:`UnknownFormatError` for an unknown suffix or format.
    """
    options = _options(x, band, figsize, cols, dpi, max_panels, log_y)
    if output is None:
        if per_tag or format is not None:
            raise InvalidOptionError(
                "per_tag and format name the files of a directory: give it as output"
            )
        return figure(
            frame,
            x=x,
            log_y=log_y,
            band=band,
            figsize=figsize,
            cols=cols,
            dpi=dpi,
            progress=progress,
            progress_total=progress_total,
        )
    if per_tag:
        suffix = plot_suffix(format)
    else:
        path = check_plot_path(output)
        if format is not None and plot_suffix(format) != path.suffix.lower():
            raise InvalidOptionError(
                f"format {format!r} conflicts with the figure's suffix {path.suffix!r} "
                "(format names the files of per_tag)"
            )
    data = _prepare(frame, x)
    notes = _Notes()
    if per_tag:
        pages = [[tag] for tag in data.tags]
        directory = _directory(Path(output))
        from tbexport.names import file_names

        names = file_names(data.tags)  # readable, unique, safe in file names
        paths = [directory / f"{names[tag]}{suffix}" for tag in data.tags]
    else:
        pages = _pages(data.tags, options.max_panels)
        paths = _page_paths(path, len(pages))
        if len(pages) > 1:
            notes.add(
                f"{len(data.tags):,} tags are drawn in {len(pages)} figures of at most "
                f"{options.max_panels} panels: {paths[0].name} to {paths[-1].name}"
            )
    if progress_total is not None:
        progress_total(len(data.tags))
    drawer = _Drawer(data, options, notes, progress, per_tag=per_tag)
    # all or nothing: every file into a temporary beside it, renamed once all are drawn
    # (a full disk at the 500th figure leaves none of the 499, nor replaces old ones)
    with atomic_paths(paths, force=force) as temporaries:
        for page, target, temporary in zip(pages, paths, temporaries, strict=True):
            with _quiet_matplotlib(notes):
                drawn = drawer.page(page)
                try:
                    _save(drawn, temporary, target.suffix, options.dpi)
                except OSError as error:  # (named here: the stack knows not which failed)
                    raise OutputWriteError(
                        f"cannot write {target}: {error.strerror or error}"
                    ) from error
                drawn.clear()  # let go of its artists now, not at the next collection
    notes.emit()
    return paths


def figure(
    frame: pd.DataFrame,
    *,
    x: str = "step",
    log_y: bool = False,
    band: Band = "std",
    figsize: tuple[float, float] | None = None,
    cols: int | None = None,
    dpi: int = DPI,
    progress: Callable[[int], None] | None = None,
    progress_total: Callable[[int], None] | None = None,
) -> Figure:
    """The figure :func:`plot_scalars` draws, every tag of ``frame`` in one grid, as a
    :class:`matplotlib.figure.Figure` to show in a notebook (it is the cell's value),
    adjust (``fig.axes``, one per tag, in the frame's tag order; ``fig.legends``) and
    save (``fig.savefig``). Made without pyplot: ``plt.show()`` does not know it.
    Options as for :func:`plot_scalars`; more than ``MAX_PANELS`` tags are drawn (an
    :class:`~tbexport.OutputWarning` says so: select tags of the frame first)."""
    options = _options(x, band, figsize, cols, dpi, None, log_y)
    data = _prepare(frame, x)
    notes = _Notes()
    if len(data.tags) > MAX_PANELS:
        notes.add(
            f"{len(data.tags):,} panels in one figure (plot_scalars to a file splits them "
            f"into figures of {MAX_PANELS}): select tags of the frame to draw fewer"
        )
    if progress_total is not None:
        progress_total(len(data.tags))
    with _quiet_matplotlib(notes):
        drawn = _Drawer(data, options, notes, progress, per_tag=False).page(data.tags)
    notes.emit(stacklevel=3)
    if "IPython" in sys.modules:
        # a notebook shows a Figure as a cell's value once its inline backend is on,
        # and importing pyplot turns it on (the figure itself stays unknown to pyplot)
        import matplotlib.pyplot  # noqa: F401
    return drawn


# -- options and the frame -------------------------------------------------------------


@dataclass(frozen=True)
class _Options:
    x: str
    log_y: bool
    band: str
    figsize: tuple[float, float] | None
    cols: int | None
    dpi: int
    max_panels: int


def _options(
    x: str,
    band: str,
    figsize: tuple[float, float] | None,
    cols: int | None,
    dpi: int,
    max_panels: int | None,
    log_y: bool,
) -> _Options:
    size = check_figure(x=x, band=band, figsize=figsize, cols=cols, dpi=dpi, max_panels=max_panels)
    return _Options(x, bool(log_y), band, size, cols, dpi, max_panels or MAX_PANELS)


@dataclass
class _Data:
    """The frame as arrays, split once into the rows of each (tag, run)."""

    tags: list[str]
    runs: list[str]
    series: dict[str, list[tuple[int, np.ndarray]]]  # tag -> [(run index, row positions)]
    step: np.ndarray
    x: np.ndarray
    value: np.ndarray
    smoothed: np.ndarray | None
    x_label: str
    reduced: bool  # every run is a statistic of reduce_runs
    date_axis: bool


def _prepare(frame: Any, x: str) -> _Data:
    if not isinstance(frame, pd.DataFrame):
        raise InvalidOptionError(
            f"plot_scalars draws a DataFrame (read_scalars' long frame), not {type(frame).__name__}"
        )
    needed = ["run", "tag", "step", "value"] + (["wall_time"] if x != "step" else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        columns = [str(c) for c in frame.columns]
        shown = ", ".join(columns[:8]) + (
            f", ... ({len(columns)} columns)" if len(columns) > 8 else ""
        )
        hint = ""
        if "tag" in missing and "step" in frame.columns:
            hint = (
                "; it looks like a wide frame (one column per tag, as to_wide returns): "
                "draw the long frame it was made from"
            )
        time = f" and wall_time (for x={x!r})" if x != "step" else ""
        raise InvalidOptionError(
            "plot_scalars draws a long frame, one row per point with the columns run, tag, "
            f"step and value{time}, as read_scalars returns; this frame has no "
            f"{' or '.join(missing)} column (its columns: {shown or 'none'}){hint}"
        )
    tag_codes, tags = _codes(frame["tag"])
    run_codes, runs = _codes(frame["run"])
    keep = (tag_codes >= 0) & (run_codes >= 0)
    if not keep.any():
        raise NoScalarsError("the frame holds no points to draw")
    positions = np.flatnonzero(keep)
    key = tag_codes[positions].astype(np.int64) * len(runs) + run_codes[positions]
    order = np.argsort(key, kind="stable")
    positions, key = positions[order], key[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(key)) + 1])
    series: dict[str, list[tuple[int, np.ndarray]]] = {tag: [] for tag in tags}
    for start, end in zip(starts, [*starts[1:], len(key)], strict=True):
        tag_code, run_code = divmod(int(key[start]), len(runs))
        series[tags[tag_code]].append((run_code, positions[start:end]))
    x_values, label = _x_axis(frame, x, run_codes, len(runs))
    smoothed = frame[SMOOTHED].to_numpy(dtype=np.float64) if SMOOTHED in frame else None
    return _Data(
        tags=tags,
        runs=runs,
        series=series,
        step=frame["step"].to_numpy(),
        x=x_values,
        value=frame["value"].to_numpy(dtype=np.float64),
        smoothed=smoothed,
        x_label=label,
        reduced=set(runs) <= set(REDUCTIONS),
        date_axis=x == "wall_time",
    )


def _codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes 0..n-1 of the values present (-1: missing) and their names: a category's
    order, else the order of first appearance."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        present = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=0))
        remap = np.full(len(column.cat.categories) + 1, -1, dtype=np.int64)
        remap[present] = np.arange(len(present))
        names = [str(name) for name in column.cat.categories[present]]
        return remap[codes], names  # (code -1 picks the last entry: -1)
    codes, uniques = pd.factorize(column, sort=False)
    return codes.astype(np.int64), [str(u) for u in uniques]


_UNITS = (("seconds", 1.0), ("minutes", 60.0), ("hours", 3600.0), ("days", 86400.0))


def _x_axis(frame: pd.DataFrame, x: str, run_codes: np.ndarray, runs: int) -> tuple[Any, str]:
    if x == "step":
        return frame["step"].to_numpy(), "step"
    seconds = frame["wall_time"].to_numpy(dtype=np.float64)
    if x == "wall_time":
        return pd.to_datetime(seconds, unit="s").to_numpy(), "wall time (UTC)"
    # since each run's first point (over all its tags, as --time relative counts)
    start = pd.Series(seconds).groupby(run_codes).min().reindex(range(runs)).to_numpy()
    relative = seconds - start[np.maximum(run_codes, 0)]
    finite = relative[np.isfinite(relative)]
    span = float(finite.max()) if len(finite) else 0.0
    # the unit in which the longest run lasts under 3 of the next (180 s, 180 min, 72 h)
    unit, factor = _UNITS[-1]
    for (name, size), limit in zip(_UNITS, (180.0, 3 * 3600.0, 72 * 3600.0, math.inf), strict=True):
        if span < limit:
            unit, factor = name, size
            break
    return relative / factor, f"{unit} since start"


def _pages(tags: list[str], max_panels: int) -> list[list[str]]:
    """``tags`` split evenly into as few pages of at most ``max_panels`` as can be."""
    size, longer = divmod(len(tags), math.ceil(len(tags) / max_panels))
    pages, start = [], 0
    for page in range(math.ceil(len(tags) / max_panels)):
        end = start + size + (page < longer)
        pages.append(tags[start:end])
        start = end
    return pages


def _page_paths(path: Path, pages: int) -> list[Path]:
    if pages == 1:
        return [path]
    width = len(str(pages))
    return [path.with_name(f"{path.stem}-{i:0{width}d}{path.suffix}") for i in range(1, pages + 1)]


def _directory(directory: Path) -> Path:
    if directory.exists() and not directory.is_dir():
        raise InvalidOptionError(f"{option('plot_dir')} {directory} is a file, not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot write {directory}: {error.strerror or error}") from None
    return directory


# -- notes ---------------------------------------------------------------------------


@dataclass
class _Notes:
    """What to tell a person about the figures, gathered over every page, emitted once."""

    texts: list[str] = field(default_factory=list)
    dropped: int = 0  # values <= 0 a log axis left out
    dropped_tags: list[str] = field(default_factory=list)
    linear_tags: list[str] = field(default_factory=list)  # no value > 0: linear axis
    shortened: list[str] = field(default_factory=list)  # titles shortened with …
    glyphs: set[str] = field(default_factory=set)  # characters the font lacks
    once: set[str] = field(default_factory=set)

    def add(self, text: str) -> None:
        if text not in self.once:
            self.once.add(text)
            self.texts.append(text)

    def emit(self, stacklevel: int = 3) -> None:
        texts = list(self.texts)
        if self.dropped:
            texts.append(
                f"log y axis: {self.dropped:,} value{_s(self.dropped)} <= 0 left out "
                f"(in {_count_tags(self.dropped_tags)})"
            )
        if self.linear_tags:
            texts.append(
                f"log y axis: {_count_tags(self.linear_tags)} without a value > 0 "
                f"drawn on a linear axis"
            )
        if self.shortened:
            texts.append(
                f"{_count_tags(self.shortened)} too long for a title shortened with … "
                "in the middle (in an SVG, the title's id is the whole tag)"
            )
        if self.glyphs:
            shown = "".join(sorted(self.glyphs)[:10]) + ("..." if len(self.glyphs) > 10 else "")
            texts.append(
                f"{len(self.glyphs):,} character{_s(len(self.glyphs))} of the tags or runs "
                f"missing from the font, drawn as boxes: {shown}"
            )
        for text in texts:
            warnings.warn(text, OutputWarning, stacklevel=stacklevel)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _count_tags(tags: Sequence[str]) -> str:
    """``1 tag: loss``, ``5 tags: a, b, c and 2 more``."""
    shown = ", ".join(repr(t) if len(t) < 60 else repr(_middle(t, 60)) for t in tags[:3])
    more = f" and {len(tags) - 3:,} more" if len(tags) > 3 else ""
    return f"{len(tags):,} tag{_s(len(tags))}: {shown}{more}"


# -- drawing -------------------------------------------------------------------------


_Colour = tuple[float, float, float, float]


def _run_colours(count: int) -> list[_Colour]:
    """One colour per run: tab10's ten for up to ten runs, else ``count`` distinct
    colours sampled evenly from the turbo colour map (its darkest ends left out)."""
    import matplotlib

    if count <= _TAB10_RUNS:
        tab10 = matplotlib.colormaps["tab10"]
        return [tuple(float(c) for c in tab10(i)) for i in range(count)]  # type: ignore[misc]
    table = np.asarray(matplotlib.colormaps["turbo"](np.linspace(0.0, 1.0, 256)))
    where = np.linspace(0.05, 0.95, count) * 255  # interpolated: 256 entries, any count
    channels = [np.interp(where, np.arange(256), table[:, c]) for c in range(4)]
    return [(float(r), float(g), float(b), float(a)) for r, g, b, a in zip(*channels, strict=True)]


@contextlib.contextmanager
def _quiet_matplotlib(notes: _Notes) -> Iterator[None]:
    """Drop matplotlib's own warnings (layout, log-scale, tick locators) while drawing and
    saving; a glyph missing from the font becomes a note."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        text = str(warning.message)
        if issubclass(warning.category, OutputWarning):
            notes.add(text)
        elif issubclass(warning.category, UserWarning):
            glyph = re.match(r"Glyph (\d+) .*missing from", text)
            if glyph:
                notes.glyphs.add(chr(int(glyph.group(1))))
        else:  # (not ours to swallow)
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


@dataclass
class _Layout:
    """Where a page's panels, titles and legend go, in inches of a figure of ``size``."""

    size: tuple[float, float]
    cols: int
    cell: tuple[float, float]
    bottom: float  # below the panels: the legend or the colour bar
    legend_cols: int
    title_lines: int
    axis_bottom: float

    def rect(self, index: int) -> tuple[float, float, float, float]:
        width, height = self.size
        row, col = divmod(index, self.cols)
        cell_w, cell_h = self.cell
        top = _TOP + self.title_lines * _TITLE_LINE
        left = col * cell_w + _LEFT
        lower = height - (row + 1) * cell_h + self.axis_bottom
        w = max(cell_w - _LEFT - _RIGHT, 0.05)
        h = max(cell_h - self.axis_bottom - top, 0.05)
        return (left / width, lower / height, w / width, h / height)

    def title_chars(self) -> int:
        """Characters of a title line that fit over a panel's axes."""
        points = max(self.cell[0] - _LEFT - _RIGHT, 0.05) * 72
        return max(8, int(points / (_TITLE_PT * _CHAR_EM)))


class _Drawer:
    """Draws pages of panels; one per figure, each figure on its own."""

    def __init__(
        self,
        data: _Data,
        options: _Options,
        notes: _Notes,
        progress: Callable[[int], None] | None,
        *,
        per_tag: bool,
    ) -> None:
        self.data = data
        self.options = options
        self.notes = notes
        self.progress = progress
        self.panel = TAG_SIZE if per_tag else PANEL_SIZE
        self.colour_bar = False
        self.labels: list[str] = []  # the legend's, in order
        if data.reduced:
            self.colours = _run_colours(1) * len(data.runs)
            self.labels = self._statistics_legend()
        else:
            self.colours = _run_colours(len(data.runs))
            if len(data.runs) > LEGEND_MAX_RUNS:
                self.colour_bar = True
                notes.add(
                    f"{len(data.runs):,} runs are too many for a legend (more than "
                    f"{LEGEND_MAX_RUNS}): a colour bar shows their order instead, "
                    f"{data.runs[0]!r} to {data.runs[-1]!r}"
                )
            elif len(data.runs) > 1:
                self.labels = [_middle(run, _LABEL_MAX) for run in data.runs]

    # -- a page ------------------------------------------------------------------

    def page(self, tags: list[str]) -> Figure:
        from matplotlib.figure import Figure

        layout = self._layout(tags)
        drawn = Figure(figsize=layout.size, dpi=self.options.dpi)
        chars = layout.title_chars()
        for index, tag in enumerate(tags):
            ax = drawn.add_axes(layout.rect(index))
            title, shortened = _title(tag, chars)
            text = ax.set_title(title, fontsize=_TITLE_PT, y=1.0)  # (y: no costly auto-placing)
            if shortened:
                text.set_gid(tag)
                self.notes.shortened.append(tag)
            if self.data.reduced:
                self._statistics_panel(ax, tag)
            else:
                self._runs_panel(ax, tag)
            self._axes(ax, tag)
            if self.progress is not None:
                self.progress(1)
        if self.colour_bar:
            self._draw_colour_bar(drawn, layout)
        elif self.labels:
            self._draw_legend(drawn, layout)
        return drawn

    def _layout(self, tags: list[str]) -> _Layout:
        count = len(tags)
        cols = min(self.options.cols or math.ceil(math.sqrt(count)), count)
        rows = math.ceil(count / cols)
        panel_w, panel_h = self.panel
        width = self.options.figsize[0] if self.options.figsize else cols * panel_w
        legend_cols, bottom = 1, 0.0
        if self.colour_bar:
            bottom = _COLOUR_BAR
        elif self.labels:
            longest = max(len(label) for label in self.labels)
            # handle, gap to the text and space between columns: 2 + 0.8 + 2 ems
            entry = (4.8 + longest * _CHAR_EM) * _LEGEND_PT
            legend_cols = max(1, min(len(self.labels), int((width * 72 - 24) / entry)))
            bottom = math.ceil(len(self.labels) / legend_cols) * _LEGEND_ROW + 0.16
        if self.options.figsize:
            height = self.options.figsize[1]
            cell = (width / cols, max(height - bottom, 0.1) / rows)
        else:
            height = rows * panel_h + bottom
            cell = (panel_w, panel_h)
        layout = _Layout(
            size=(width, height),
            cols=cols,
            cell=cell,
            bottom=bottom,
            legend_cols=legend_cols,
            title_lines=1,
            axis_bottom=_BOTTOM + (0.14 if self.data.date_axis else 0.0),
        )
        chars = layout.title_chars()
        layout.title_lines = max(_title(tag, chars)[0].count("\n") + 1 for tag in tags)
        return layout

    def _draw_legend(self, drawn: Figure, layout: _Layout) -> None:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles: list[Any] = []
        if self.data.reduced:
            colour = self.colours[0]
            styles = {
                "mean": Line2D([], [], color=colour, lw=1.6),
                "median": Line2D([], [], color=colour, lw=1.4, ls="--"),
                "min, max": Line2D([], [], color=colour, lw=0.9, ls=":"),
            }
            band = Patch(facecolor=colour, alpha=0.22, lw=0)
            handles = [styles.get(label, band) for label in self.labels]
        else:
            handles = [Line2D([], [], color=self.colours[i], lw=2) for i in range(len(self.labels))]
        drawn.legend(
            handles,
            self.labels,
            loc="lower center",
            bbox_to_anchor=(0.5, 0.06 / layout.size[1]),
            ncol=layout.legend_cols,
            fontsize=_LEGEND_PT,
            frameon=False,
            borderaxespad=0.0,
        )

    def _draw_colour_bar(self, drawn: Figure, layout: _Layout) -> None:
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import ListedColormap, Normalize

        width, height = layout.size
        count = len(self.data.runs)
        bar_w = min(width - 1.2, 10.0) if width > 2.4 else width * 0.8
        cax = drawn.add_axes(
            ((width - bar_w) / 2 / width, 0.44 / height, bar_w / width, 0.13 / height)
        )
        mappable = ScalarMappable(Normalize(-0.5, count - 0.5), ListedColormap(self.colours))
        bar = drawn.colorbar(mappable, cax=cax, orientation="horizontal")
        ticks = np.unique(np.linspace(0, count - 1, max(2, min(6, int(bar_w / 1.6)))).round())
        bar.set_ticks(list(ticks), labels=[_middle(self.data.runs[int(i)], 24) for i in ticks])
        bar.ax.tick_params(labelsize=_TICK_PT)
        bar.set_label(f"{count:,} runs, in order", fontsize=_LABEL_PT)

    # -- a panel -----------------------------------------------------------------

    def _axes(self, ax: Axes, tag: str) -> None:
        ax.set_xlabel(self.data.x_label, fontsize=_LABEL_PT)
        ax.tick_params(labelsize=_TICK_PT)
        ax.xaxis.get_offset_text().set_fontsize(_TICK_PT)
        ax.yaxis.get_offset_text().set_fontsize(_TICK_PT)
        ax.grid(alpha=0.3)
        # fewer ticks than matplotlib's auto (up to 9): each costs ~2 ms to make and draw
        if not self.data.date_axis:
            ax.locator_params(axis="x", nbins=6)
        if ax.get_yscale() == "linear":
            ax.locator_params(axis="y", nbins=6)
        if self.data.date_axis:
            from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

            locator = AutoDateLocator()  # type: ignore[no-untyped-call]
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]

    def _log_axis(self, ax: Axes, tag: str, values: list[np.ndarray]) -> bool:
        """Whether the panel's y axis is logarithmic (``log_y`` and a value > 0)."""
        if not self.options.log_y:
            return False
        every = np.concatenate(values) if values else np.empty(0)
        if not (np.isfinite(every) & (every > 0)).any():
            self.notes.linear_tags.append(tag)
            return False
        dropped = int(np.count_nonzero(every <= 0))
        if dropped:
            self.notes.dropped += dropped
            self.notes.dropped_tags.append(tag)
        ax.set_yscale("log")
        return True

    def _runs_panel(self, ax: Axes, tag: str) -> None:
        data = self.data
        series = data.series[tag]
        log = self._log_axis(ax, tag, [data.value[rows] for _, rows in series])
        for run, rows in series:
            xs = data.x[rows]
            colour = self.colours[run]
            marker = "o" if len(rows) < 3 else None  # a lone point (test_acc) would not show
            label = data.runs[run]
            raw = _shown(data.value[rows], log)
            if data.smoothed is None:
                ax.plot(xs, raw, color=colour, lw=1, marker=marker, ms=3, label=label)
                continue
            ax.plot(xs, raw, color=colour, alpha=0.3, lw=1, marker=marker, ms=3)
            smooth = _shown(data.smoothed[rows], log)
            ax.plot(xs, smooth, color=colour, lw=1.6, marker=marker, ms=3, label=label)

    def _statistics_legend(self) -> list[str]:
        present = set(self.data.runs)
        band = self.options.band
        labels = []
        if "mean" in present:
            labels.append("mean")
        if band == "std" and {"mean", "std"} <= present:
            labels.append("mean ± std")
        if band == "minmax" and {"min", "max"} <= present:
            labels.append("min to max")
        if "median" in present:
            labels.append("median")
        if band != "minmax" and present & {"min", "max"}:
            labels.append("min, max")
        if "count" in present:
            self.notes.add("count is not drawn: it counts runs, not values of the tags")
        if "std" in present and "mean ± std" not in labels:
            why = "band='minmax' shades min to max" if band == "minmax" else "there is no mean"
            self.notes.add(f"std is not drawn: {why}")
        if band == "minmax" and not {"min", "max"} <= present:
            self.notes.add(
                "band='minmax' needs the min and max statistics (reduce_runs(frame, "
                "'mean,min,max')): no band is drawn"
            )
        return labels

    def _statistics_panel(self, ax: Axes, tag: str) -> None:
        data = self.data
        stats = {data.runs[run]: rows for run, rows in data.series[tag]}
        band = self.options.band
        edges = ("min", "max") if band == "minmax" else ()  # the band's, not lines
        drawn = [s for s in ("mean", "median", "min", "max") if s in stats and s not in edges]
        log = self._log_axis(ax, tag, [data.value[stats[s]] for s in drawn])
        colour = self.colours[0]

        def values(name: str, rows: np.ndarray | None = None) -> np.ndarray:
            """The drawn (smoothed where present) values of a statistic, at ``rows``' steps."""
            column = data.smoothed if data.smoothed is not None else data.value
            found: np.ndarray = column[stats[name]]
            if rows is None or np.array_equal(data.step[rows], data.step[stats[name]]):
                return found
            by_step = pd.Series(found, index=data.step[stats[name]]).groupby(level=0).mean()
            return by_step.reindex(data.step[rows]).to_numpy(dtype=np.float64)

        shaded: tuple[np.ndarray, np.ndarray, np.ndarray, str] | None = None
        if band == "std" and "mean" in stats and "std" in stats:
            rows = stats["mean"]
            centre, spread = values("mean"), values("std", rows)
            shaded = (rows, centre - spread, centre + spread, "mean ± std")
        if band == "minmax" and "min" in stats and "max" in stats:
            rows = stats["min"]
            shaded = (rows, values("min"), values("max", rows), "min to max")
        if shaded is not None:
            rows, low, high = shaded[:3]
            if len(rows) < 3:  # (test_acc, logged once: an area of no width shows nothing)
                ax.vlines(data.x[rows], low, high, colors=[colour], alpha=0.35, lw=5,
                          label=shaded[3])  # fmt: skip
            else:
                ax.fill_between(data.x[rows], low, high, color=colour, alpha=0.22, lw=0,
                                label=shaded[3])  # fmt: skip
        styles = {"mean": ("-", 1.6), "median": ("--", 1.4), "min": (":", 0.9), "max": (":", 0.9)}
        for name in drawn:
            rows = stats[name]
            xs = data.x[rows]
            style, width = styles[name]
            marker = "o" if len(rows) < 3 else None
            if data.smoothed is not None:
                raw = _shown(data.value[rows], log)
                ax.plot(xs, raw, color=colour, alpha=0.3, lw=1, ls=style, marker=marker, ms=3)
            shown = _shown(values(name), log)
            ax.plot(xs, shown, color=colour, lw=width, ls=style, marker=marker, ms=3, label=name)


def _shown(values: np.ndarray, log: bool) -> np.ndarray:
    """``values`` as drawn: on a log axis, those <= 0 left out (NaN: a gap in the line)."""
    return np.where(values > 0, values, np.nan) if log else values


def _title(tag: str, chars: int) -> tuple[str, bool]:
    """``tag`` on one line, or two broken after a ``/`` (else ``_ - . :`` or a space,
    else anywhere); a tag longer than two lines keeps its start and end around an
    ellipsis. Returns (title, whether it was shortened)."""
    if len(tag) <= chars:
        return tag, False
    if len(tag) <= 2 * chars:
        # breaks leaving both lines short enough, a quarter over if that saves a word
        # (val_metrics/precision_macro breaks at its /, not in "precision")
        slack = chars + chars // 4
        fits = range(max(1, len(tag) - slack), min(slack, len(tag) - 1) + 1)
        for separators in ("/", "_-.: "):
            breaks = [i for i in fits if tag[i - 1] in separators]
            if breaks:
                best = min(breaks, key=lambda i: max(i, len(tag) - i))
                return f"{tag[:best]}\n{tag[best:]}", False
        return f"{tag[:chars]}\n{tag[chars:]}", False
    return f"{tag[:chars]}\n…{tag[-(chars - 1) :]}", True


def _middle(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters: its start and end around an ellipsis."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[-(limit - 1 - head) :]}"


def _save(drawn: Figure, path: Path, suffix: str, dpi: int) -> None:
    """Save ``drawn`` to ``path`` in the format of ``suffix`` (the file it will become)."""
    format = suffix.lstrip(".").lower()
    # zlib level 3: a third of the default's (6) time for files about 12% larger
    extra: dict[str, Any] = {"pil_kwargs": {"compress_level": 3}} if format == "png" else {}
    drawn.savefig(path, format=format, dpi=dpi, **extra)
