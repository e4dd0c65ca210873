"""The options of an export: one frozen dataclass per step, each checking itself once.

:func:`tbexport.export` reads, shapes, writes and draws; each step has its options:

:class:`ReadOptions`
    what is read: the keywords of :func:`tbexport.load_scalars`.
:class:`ShapeOptions`
    how the points are shaped before anything is written: run labels, statistics
    across runs, smoothing, the time column.
:class:`OutputOptions`
    the table written: its format and layout, the results table, what a format adds.
:class:`FigureOptions`
    the figures drawn, and how.

Each checks its own values when made (an :class:`~tbexport.InvalidOptionError`, or an
:class:`~tbexport.UnknownFormatError` for a format) and parses their string forms once
(``"mean,std"``, ``"bins:20"``, ``"val_acc:max"``), so that nothing below checks again.
An option is None (or False) where it was not given: whether options go together is
judged by what was given, in one place, :func:`tbexport.rules.check_options`.

:class:`WriteOptions` is not asked for: it is what every writer receives, which
:func:`~tbexport.export` makes from the :class:`OutputOptions` and the runs read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import pandas as pd

from tbexport.align import parse_align
from tbexport.exceptions import InvalidOptionError, UnknownFormatError, option
from tbexport.reading.hparams import check_name_by
from tbexport.results import Metric, check_group_by, parse_metrics
from tbexport.shaping import (
    check_min_runs,
    check_statistics,
    check_time_mode,
    check_weight,
    statistics_list,
)
from tbexport.values import AlignMode, Band, Layout, Statistic, TimeMode, XAxis

__all__ = [
    "BANDS",
    "LAYOUTS",
    "PLOT_FORMATS",
    "X_AXES",
    "AlignMode",
    "Band",
    "FigureOptions",
    "Layout",
    "OutputOptions",
    "ReadOptions",
    "ShapeOptions",
    "Statistic",
    "TimeMode",
    "WriteOptions",
    "XAxis",
    "check_figure",
    "check_plot_path",
    "grouped",
    "renamed",
]

LAYOUTS = ("long", "wide")
X_AXES = ("step", "wall_time", "relative")
BANDS = ("std", "minmax")
PLOT_FORMATS = (".png", ".pdf", ".svg")


@contextlib.contextmanager
def _value_of(name: str) -> Iterator[None]:
    """Mark an :class:`InvalidOptionError` raised inside as refusing the value of the
    option ``name`` (an API name: the command line says it of that flag)."""
    try:
        yield
    except InvalidOptionError as error:
        error.parameter = name
        raise


def _set(options: object, name: str, value: object) -> None:
    """Set a field of a frozen dataclass in its ``__post_init__`` (its parsed form)."""
    object.__setattr__(options, name, value)


@dataclass(frozen=True)
class ReadOptions:
    """What is read: the keywords of :func:`tbexport.load_scalars` (see it).

    ``tags``: glob patterns of the tags to keep (one string is one pattern; kept as a
    tuple); ``ignore_case``: the patterns match whatever the case; ``keep_duplicates``:
    keep the points a resumed run replaced; ``strict``: a corrupt record or an
    unreadable file is an error; ``verify=False`` skips the CRC checks; ``jobs``:
    threads to read on (default: all cores).
    """

    tags: str | Sequence[str] | None = None
    ignore_case: bool = False
    keep_duplicates: bool = False
    strict: bool = False
    verify: bool = True
    jobs: int | None = None

    def __post_init__(self) -> None:
        if self.tags is not None:
            _set(self, "tags", (self.tags,) if isinstance(self.tags, str) else tuple(self.tags))
        if self.jobs is not None and self.jobs < 1:
            with _value_of("jobs"):
                raise InvalidOptionError(f"jobs must be 1 or more, not {self.jobs}")

    @property
    def patterns(self) -> tuple[str, ...]:
        """The tag patterns, none when every tag is read."""
        return cast("tuple[str, ...]", self.tags or ())

    def keywords(self) -> dict[str, Any]:
        """The keyword arguments of :func:`tbexport.load_scalars` these options are."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class ShapeOptions:
    """How the points are shaped before they are written or drawn.

    ``reduce``: statistics across runs per tag and step (``mean``, ``std``, ``min``,
    ``max``, ``median``, ``count``: a list, or one string with commas; kept as a tuple),
    taken on the steps ``align`` gives (``steps``, ``bins:N``, ``grid:STEP``; parsed
    into ``alignment``), keeping the steps at least ``min_runs`` runs cover;
    ``smooth``: TensorBoard's smoothing weight W (0 <= W < 1), adding
    ``value_smoothed``; ``time``: the time column, ``unix`` (seconds since 1970),
    ``datetime`` or ``relative`` (seconds since the run's first point); ``name_by``:
    ``dir`` or ``hparam:KEY``, the runs' labels. None: not given (the defaults are no
    statistics, ``steps``, 1, no smoothing, ``unix``, ``dir``).
    """

    reduce: str | Sequence[str] | None = None
    align: str | None = None
    min_runs: int | None = None
    smooth: float | None = None
    time: TimeMode | None = None
    name_by: str | None = None
    alignment: tuple[AlignMode, int | None] = field(init=False, default=("steps", None))

    def __post_init__(self) -> None:
        if self.reduce is not None:
            with _value_of("reduce"):
                check_statistics(self.reduce)
            _set(self, "reduce", tuple(statistics_list(self.reduce)))
        if self.align is not None:
            with _value_of("align"):
                _set(self, "alignment", parse_align(self.align))
        if self.min_runs is not None:
            with _value_of("min_runs"):
                check_min_runs(self.min_runs)
        if self.smooth is not None:
            with _value_of("smooth"):
                check_weight(self.smooth)
        if self.time is not None:
            with _value_of("time"):
                check_time_mode(self.time)
        if self.name_by is not None:
            with _value_of("name_by"):
                check_name_by(self.name_by)

    @property
    def statistics(self) -> tuple[Statistic, ...]:
        """The statistics ``reduce`` asks for, none when it was not given."""
        return cast("tuple[Statistic, ...]", self.reduce or ())


@dataclass(frozen=True)
class OutputOptions:
    """The table written (the points, or a results table).

    ``format``: ``xlsx``, ``mat``, ``csv``, ``md``, ``tex`` or ``tfevents`` where the
    output's suffix does not say it; ``layout``: ``long`` (one row per point) or
    ``wide`` (runs side by side); ``wide``: CSV with tags side by side; ``charts``:
    an Excel chart per tag; ``matlab_script``: a ``.m`` beside the ``.mat``;
    ``results``: the results table (``"val_acc:max,val_loss:min"``; parsed into
    ``metrics``), ``group_by`` its groups (``"hparam:lr"``; parsed into
    ``group_keys``), ``digits`` its significant digits in ``.md``/``.tex`` (1 to 17,
    default 4); ``csv_safe``: prefix ``'`` to CSV text a spreadsheet would run as a
    formula; ``force``: replace read-only outputs; ``write_table=False``: write no
    table, only figures. None (False): not given.
    """

    format: str | None = None
    layout: Layout | None = None
    wide: bool = False
    charts: bool = False
    matlab_script: bool = False
    results: str | Sequence[str] | None = None
    group_by: str | Sequence[str] | None = None
    digits: int | None = None
    csv_safe: bool = False
    force: bool = False
    write_table: bool = True
    metrics: tuple[Metric, ...] | None = field(init=False, default=None)
    group_keys: tuple[str, ...] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.format is not None:
            from tbexport.writing.formats import format_for

            format_for("", self.format)
        if self.layout is not None and self.layout not in LAYOUTS:
            with _value_of("layout"):
                raise InvalidOptionError(
                    f"unknown layout {self.layout!r}; choose from {', '.join(LAYOUTS)}"
                )
        if self.results is not None:
            with _value_of("results"):
                _set(self, "metrics", tuple(parse_metrics(self.results)))
        if self.group_by is not None:
            with _value_of("group_by"):
                _set(self, "group_keys", tuple(check_group_by(self.group_by)))
        if self.digits is not None and not 1 <= self.digits <= 17:
            with _value_of("digits"):
                raise InvalidOptionError(f"{option('digits')} must be 1 to 17, not {self.digits}")


@dataclass(frozen=True)
class FigureOptions:
    """The figures drawn, and how; None (False) where not given (the figure's default).

    ``plot``: one file of panels (``.png``, ``.pdf`` or ``.svg``); ``plot_dir``: a
    directory of one figure per tag; ``x``: the x axis, ``step`` (default),
    ``wall_time`` (UTC dates) or ``relative``, the time since each run's first point
    in seconds, minutes, hours or days as the longest run's span suits (the axis says
    which; unlike ``time="relative"``, always seconds); ``log_y``: a logarithmic y
    axis; ``band``: what a statistics frame's shaded band spans, ``std`` (mean ± std,
    default) or ``minmax``; ``figsize``: the whole figure in inches (width, height);
    ``cols``: panels per row; ``dpi``: pixels per inch of a PNG (default 120);
    ``format``: ``png``, ``pdf`` or ``svg`` for the figures of ``plot_dir`` (the
    API's ``plot_format=``, the command's ``--plot-format``).
    """

    plot: str | os.PathLike[str] | None = None
    plot_dir: str | os.PathLike[str] | None = None
    x: XAxis | None = None
    log_y: bool = False
    band: Band | None = None
    figsize: tuple[float, float] | None = None
    cols: int | None = None
    dpi: int | None = None
    format: str | None = None

    def __post_init__(self) -> None:
        if self.plot is not None:
            check_plot_path(self.plot)
        if self.format is not None:
            plot_suffix(self.format)
        given: dict[str, Any] = {"x": self.x, "band": self.band, "dpi": self.dpi}
        figsize = check_figure(
            **{name: value for name, value in given.items() if value is not None},
            figsize=self.figsize,
            cols=self.cols,
        )
        _set(self, "figsize", figsize)

    @property
    def figures(self) -> bool:
        """Whether any figure is drawn."""
        return self.plot is not None or self.plot_dir is not None

    def given(self) -> list[str]:
        """The API names of the options given that shape figures (for the rules)."""
        names = {"x": "x", "log_y": "log_y", "band": "band", "figsize": "figsize"}
        names |= {"cols": "cols", "dpi": "dpi", "format": "plot_format"}
        return [name for f, name in names.items() if getattr(self, f) not in (None, False)]


def check_plot_path(output: str | os.PathLike[str]) -> Path:
    """``output`` as a Path; raise :class:`UnknownFormatError` unless it is .png/.pdf/.svg."""
    path = Path(output)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise UnknownFormatError(
            f"unknown plot suffix {path.suffix or '(none)'!r}; known: {', '.join(PLOT_FORMATS)}"
        )
    return path


def plot_suffix(format: str | None) -> str:
    """The suffix of a per-tag figure in ``format`` (``png`` when None)."""
    suffix = "." + (format or "png").lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise UnknownFormatError(
            f"unknown plot format {format!r}; known: "
            f"{', '.join(f.lstrip('.') for f in PLOT_FORMATS)}"
        )
    return suffix


_UNSET: Any = object()  # an option check_figure is not asked to check


def check_figure(
    *,
    x: str | None = _UNSET,
    band: str | None = _UNSET,
    figsize: Sequence[float] | None = None,
    cols: int | None = None,
    dpi: int | None = _UNSET,
    max_panels: int | None = None,
) -> tuple[float, float] | None:
    """Raise :class:`InvalidOptionError` for a figure option no figure can take (those
    not passed are not checked, nor a ``figsize``, ``cols`` or ``max_panels`` of None);
    return ``figsize`` as two floats."""
    if x is not _UNSET and x not in X_AXES:
        with _value_of("x"):
            raise InvalidOptionError(f"unknown x axis {x!r}; choose from {', '.join(X_AXES)}")
    if band is not _UNSET and band not in BANDS:
        with _value_of("band"):
            raise InvalidOptionError(f"unknown band {band!r}; choose from {', '.join(BANDS)}")
    size = None
    if figsize is not None:
        with _value_of("figsize"):
            try:
                width, height = (float(v) for v in figsize)
            except (TypeError, ValueError):
                raise InvalidOptionError(
                    f"figsize is (width, height) in inches, not {figsize!r}"
                ) from None
            if not (0 < width <= 1000 and 0 < height <= 1000):
                raise InvalidOptionError(
                    f"figsize is (width, height) in inches, each above 0 and at most 1000, "
                    f"not {figsize!r}"
                )
        size = (width, height)
    if cols is not None and (isinstance(cols, bool) or not isinstance(cols, int) or cols < 1):
        with _value_of("cols"):
            raise InvalidOptionError(
                f"cols (panels per row) must be a whole number >= 1, not {cols!r}"
            )
    if dpi is not _UNSET and (
        isinstance(dpi, bool) or not isinstance(dpi, int) or not 1 <= dpi <= 2400
    ):
        with _value_of("dpi"):
            raise InvalidOptionError(f"dpi must be a whole number from 1 to 2400, not {dpi!r}")
    if max_panels is not None and (
        isinstance(max_panels, bool) or not isinstance(max_panels, int) or max_panels < 1
    ):
        raise InvalidOptionError(f"max_panels must be a whole number >= 1, not {max_panels!r}")
    return size


@dataclass(frozen=True)
class WriteOptions:
    """What every writer receives: made by :func:`tbexport.export` from the
    :class:`OutputOptions` asked for and the runs read.

    ``layout``: ``long`` keeps one row per point (a ``run`` column when several runs
    are written); ``wide`` puts runs side by side, one column per run (outer join on
    step; a missing point is empty / NaN). ``wide_tags`` (CSV ``--wide``) instead puts
    tags side by side, one row per (run, step). ``charts`` adds a native line chart
    to each Excel tag sheet; ``matlab_script`` writes a ``.m`` file that plots the
    ``.mat``; ``hparams`` (one row per run) becomes an ``hparams`` sheet or struct;
    ``results`` (:func:`tbexport.results`' table) becomes the workbook's first sheet;
    ``directories`` maps each run's label to its directory where ``--name-by``
    relabelled runs (the index, hparams and run maps keep both); ``statistics`` names
    the statistics that ``--reduce`` put in the runs' place (none: the runs are runs);
    ``csv_safe`` prefixes ``'`` to CSV text that a spreadsheet would run as a formula.
    """

    layout: Literal["long", "wide"] = "long"
    wide_tags: bool = False
    charts: bool = False
    matlab_script: bool = False
    hparams: pd.DataFrame | None = None
    results: pd.DataFrame | None = None
    directories: Mapping[str, str] | None = None
    statistics: tuple[str, ...] = ()
    csv_safe: bool = False


Options = TypeVar("Options", ReadOptions, ShapeOptions, OutputOptions, FigureOptions)


def grouped(
    kind: type[Options], given: Options | None, keywords: Mapping[str, Any], name: str
) -> Options:
    """``given`` (or the defaults) with the ``keywords`` given (those not at their
    default); raise :class:`InvalidOptionError` for an option given both ways."""
    defaults = {f.name: f.default for f in dataclasses.fields(kind) if f.init}
    asked = {key: value for key, value in keywords.items() if not _same(value, defaults[key])}
    if given is None:
        return kind(**asked)
    twice = [key for key in asked if not _same(getattr(given, key), defaults[key])]
    if twice:
        raise InvalidOptionError(
            f"{', '.join(twice)} given both as a keyword and in {name}=: give one"
        )
    return dataclasses.replace(given, **asked) if asked else given


def _same(value: object, default: object) -> bool:
    """Whether ``value`` is the field's default (``0.0`` is not ``False``)."""
    if default is None or isinstance(default, bool):
        return value is default
    return value == default


def renamed(
    function: str,
    old: Mapping[str, Any],
    names: Mapping[str, str],
    new: dict[str, Any],
    stacklevel: int = 3,
) -> None:
    """Move each deprecated keyword of ``old`` to its new name (``names``) in ``new``,
    with a :class:`DeprecationWarning` pointing at the caller of ``function``; raise
    :class:`TypeError` for a keyword it does not take, or one given both ways."""
    for name, value in old.items():
        if name not in names:
            raise TypeError(f"{function}() got an unexpected keyword argument {name!r}")
        current = names[name]
        warnings.warn(
            f"{function}({name}=...) is deprecated and will be removed in the next release: "
            f"use {current}=",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        if new.get(current) is not None and new.get(current) is not False:
            raise TypeError(f"{function}() got both {name}= and {current}=: give {current}=")
        new[current] = value
