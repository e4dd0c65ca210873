"""MATLAB ``.mat`` output.

Long layout: one struct per tag with fields ``step``, the time field (``wall_time``,
``datetime`` as a MATLAB ``datenum``, or ``relative_time``), ``value`` and, with
smoothing, ``value_smoothed`` (double column vectors). With several runs each run
is a struct whose fields are the tag structs. Wide layout: one struct per tag with
``step`` (nx1), ``value`` (nxruns, NaN where a run has no point) and ``runs``
(1xruns cell of run names). ``tbexport_tags`` maps each original tag to its
variable name (Nx2 cell), ``tbexport_runs`` does the same for runs, and
``hparams`` holds each run's hyperparameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io

from ..names import matlab_names
from ..options import WriteOptions
from ..reshape import runs_side_by_side, value_columns
from ..transform import time_column

OWN_VARIABLES = ("tbexport_tags", "tbexport_runs", "hparams")
_DATENUM_EPOCH = 719529.0  # datenum(1970, 1, 1)


def write(frame: pd.DataFrame, path: Path, options: WriteOptions | None = None) -> None:
    """Write ``frame`` as a MATLAB v5 file readable by MATLAB and ``scipy.io.loadmat``."""
    options = options or WriteOptions()
    runs = [str(r) for r in frame["run"].cat.categories if (frame["run"] == r).any()]
    tags = [str(t) for t in frame["tag"].cat.categories if (frame["tag"] == t).any()]
    tag_vars = matlab_names(tags, reserved=OWN_VARIABLES)
    run_vars = matlab_names(runs, reserved=OWN_VARIABLES)
    variables: dict[str, Any] = {}
    if options.layout == "wide":
        for tag, group in frame.groupby("tag", observed=True, sort=True):
            variables[tag_vars[str(tag)]] = _wide_struct(group)
    elif len(runs) == 1:
        variables.update(_tag_structs(frame, tag_vars))
    else:
        for run, group in frame.groupby("run", observed=True, sort=True):
            variables[run_vars[str(run)]] = _tag_structs(group, tag_vars)
    if len(runs) > 1 and options.layout == "long":
        variables["tbexport_runs"] = _cell([[r, run_vars[r]] for r in runs])
    variables["tbexport_tags"] = _cell([[t, tag_vars[t]] for t in tags])
    if options.hparams is not None and len(options.hparams.columns) > 1:
        variables["hparams"] = _hparams_struct(options.hparams, run_vars, single=len(runs) == 1)
    scipy.io.savemat(path, variables, oned_as="column", long_field_names=True)


def _tag_structs(frame: pd.DataFrame, tag_vars: dict[str, str]) -> dict[str, dict[str, Any]]:
    time = time_column(frame)
    fields = ["step", time, *value_columns(frame)]
    structs = {}
    for tag, group in frame.groupby("tag", observed=True, sort=True):
        struct = {f: group[f].to_numpy(dtype=np.float64) for f in fields}
        if time == "datetime":
            struct[time] = struct[time] / 86400.0 + _DATENUM_EPOCH
        structs[tag_vars[str(tag)]] = struct
    return structs


def _wide_struct(group: pd.DataFrame) -> dict[str, Any]:
    table = runs_side_by_side(group)
    # which cells hold a point: a NaN logged is not a step the run skipped
    logged = runs_side_by_side(group.assign(logged=1.0), "logged").notna()
    struct: dict[str, Any] = {
        "step": table.index.to_numpy(dtype=np.float64),
        "value": table.to_numpy(dtype=np.float64),
        "logged": logged.to_numpy(dtype=bool),
        "runs": _row_cell(list(table.columns)),
    }
    if "value_smoothed" in group:
        struct["value_smoothed"] = runs_side_by_side(group, "value_smoothed").to_numpy()
    return struct


def _hparams_struct(hparams: pd.DataFrame, run_vars: dict[str, str], single: bool) -> Any:
    names = matlab_names([str(c) for c in hparams.columns if c != "run"])
    # runs with hyperparameters but no scalars get valid names too, unlike the others'
    others = [str(r) for r in hparams["run"] if str(r) not in run_vars]
    single = single and not others  # (the one run's own hyperparameters, not another's)
    run_vars = run_vars | matlab_names(others, reserved=[*OWN_VARIABLES, *run_vars.values()])
    structs = {}
    for row in hparams.to_dict("records"):
        run = str(row.pop("run"))
        structs[run_vars[run]] = {
            names[str(k)]: v for k, v in row.items() if v is not None and v == v
        }
    return next(iter(structs.values())) if single and len(structs) == 1 else structs


def _cell(rows: list[list[str]]) -> np.ndarray:
    cell = np.empty((len(rows), 2), dtype=object)
    for i, row in enumerate(rows):
        cell[i, 0], cell[i, 1] = row
    return cell


def _row_cell(items: list[str]) -> np.ndarray:
    cell = np.empty((1, len(items)), dtype=object)
    for i, item in enumerate(items):
        cell[0, i] = item
    return cell
