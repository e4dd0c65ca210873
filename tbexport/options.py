"""How an export is laid out: the options every writer receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pandas as pd

__all__ = ["LAYOUTS", "FigureOptions", "WriteOptions"]

LAYOUTS = ("long", "wide")


@dataclass(frozen=True)
class WriteOptions:
    """Layout choices shared by all formats.

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


@dataclass(frozen=True)
class FigureOptions:
    """How figures are drawn; None where not given (the figure's own default).

    ``band``: what a statistics frame's shaded band spans, ``std`` (mean ± std) or
    ``minmax``; ``figsize``: the whole figure in inches (width, height); ``cols``:
    panels per row; ``dpi``: pixels per inch of a PNG; ``format``: ``png``, ``pdf`` or
    ``svg`` for the one-figure-per-tag directory (``--plot-dir``).
    """

    band: Literal["std", "minmax"] | None = None
    figsize: tuple[float, float] | None = None
    cols: int | None = None
    dpi: int | None = None
    format: str | None = None

    def given(self) -> list[str]:
        """The API names of the options given (for the rules between options)."""
        names = {"band": "plot_band", "figsize": "plot_figsize", "cols": "plot_cols"}
        names |= {"dpi": "plot_dpi", "format": "plot_format"}
        return [names[n] for n in names if getattr(self, n) is not None]
