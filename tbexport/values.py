"""The closed sets of option values, as types (at the bottom of the import graph: the
modules that take these values and the options that check them both import it)."""

from __future__ import annotations

from typing import Literal

__all__ = ["AlignMode", "Band", "Layout", "Statistic", "TimeMode", "XAxis"]

Layout = Literal["long", "wide"]
Statistic = Literal["mean", "std", "min", "max", "median", "count"]
TimeMode = Literal["unix", "datetime", "relative"]
AlignMode = Literal["steps", "bins", "grid"]
XAxis = Literal["step", "wall_time", "relative"]
Band = Literal["std", "minmax"]
