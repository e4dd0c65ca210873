"""Write a long frame to a file whose format follows its suffix (the ``write`` verb).

Every output is written to a temporary file beside the target and renamed over
it only when complete, so a failure never leaves a half-written file behind or
destroys an earlier one.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pandas as pd

from tbexport.exceptions import UnknownFormatError
from tbexport.options import WriteOptions
from tbexport.writing.atomic import atomic_path, atomic_paths
from tbexport.writing.formats import FORMATS, RESULTS_FORMATS, Writer, format_for

__all__ = ["write_scalars"]


def _writer(suffix: str) -> Writer:
    entry = FORMATS[suffix]
    if callable(entry):
        return entry
    module = importlib.import_module(f"tbexport.writing.{entry}")
    function: Writer = module.write
    return function


def write_scalars(
    frame: pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    format: str | None = None,
    options: WriteOptions | None = None,
    force: bool = False,
) -> Path:
    """Write a long scalar frame to ``output`` atomically; return the path written.

    With ``options.matlab_script`` and a ``.mat`` output, a ``.m`` script that plots
    it is written beside it (same name, ``.m`` suffix).
    """
    path = Path(output)
    options = options or WriteOptions()
    suffix = format_for(path, format)
    if suffix in RESULTS_FORMATS:
        raise UnknownFormatError(f"{suffix} holds a results table (tbexport.results), not points")
    if suffix == ".tfevents":
        from tbexport.writing.tfevents import write_runs

        write_runs(frame, path)  # (all or nothing: a new directory, renamed into place)
        return path
    writer = _writer(suffix)
    if not (options.matlab_script and suffix == ".mat"):
        with atomic_path(path, force=force) as temporary:
            writer(frame, temporary, options)
        return path
    from tbexport.writing.matlab_script import script as script_text

    # the .mat and its .m: both or neither (every destination checked before the first
    # is written, both renamed into place only when both are complete)
    with atomic_paths([path, path.with_suffix(".m")], force=force) as (mat, m):
        writer(frame, mat, options)
        m.write_text(script_text(path, int(frame["run"].nunique()), options), encoding="utf-8")
    return path

    # (the renames run as the stack unwinds, the last path first, only after success)
