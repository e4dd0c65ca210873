"""MATLAB ``.mat`` output: one struct per tag (``step``, ``wall_time``, ``value``).

With several runs, each run is a struct whose fields are the tag structs. The cell
array ``tbexport_tags`` maps each original tag to its field or variable name, and
``tbexport_runs`` (several runs only) does the same for runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io

from ..names import matlab_names

_OWN_VARIABLES = ("tbexport_tags", "tbexport_runs")


def write(frame: pd.DataFrame, path: Path, *, wide: bool = False) -> None:
    """Write ``frame`` as a MATLAB v5 file readable by MATLAB and ``scipy.io.loadmat``."""
    runs = [str(r) for r in frame["run"].cat.categories if (frame["run"] == r).any()]
    tags = [str(t) for t in frame["tag"].cat.categories if (frame["tag"] == t).any()]
    tag_vars = matlab_names(tags, reserved=_OWN_VARIABLES)
    variables: dict[str, Any] = {}
    if len(runs) == 1:
        variables.update(_tag_structs(frame, tag_vars))
    else:
        run_vars = matlab_names(runs, reserved=_OWN_VARIABLES)
        for run, group in frame.groupby("run", observed=True, sort=True):
            variables[run_vars[str(run)]] = _tag_structs(group, tag_vars)
        variables["tbexport_runs"] = _cell([[r, run_vars[r]] for r in runs])
    variables["tbexport_tags"] = _cell([[t, tag_vars[t]] for t in tags])
    scipy.io.savemat(path, variables, oned_as="column", long_field_names=True)


def _tag_structs(frame: pd.DataFrame, tag_vars: dict[str, str]) -> dict[str, dict[str, Any]]:
    structs = {}
    for tag, group in frame.groupby("tag", observed=True, sort=True):
        structs[tag_vars[str(tag)]] = {
            "step": group["step"].to_numpy(dtype=np.float64),
            "wall_time": group["wall_time"].to_numpy(dtype=np.float64),
            "value": group["value"].to_numpy(dtype=np.float64),
        }
    return structs


def _cell(rows: list[list[str]]) -> np.ndarray:
    cell = np.empty((len(rows), 2), dtype=object)
    for i, row in enumerate(rows):
        cell[i, 0], cell[i, 1] = row
    return cell
