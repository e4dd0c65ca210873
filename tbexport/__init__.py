"""tbexport: every TensorBoard scalar, exactly as logged, to Excel, MATLAB, CSV and pandas.

>>> import tbexport
>>> frame = tbexport.read_scalars("lightning_logs")            # long DataFrame
>>> wide = tbexport.to_wide(frame)                               # one column per tag
>>> tbexport.export("lightning_logs/version_0", "losses.xlsx")   # one sheet per tag

The pipeline, module by module (each passes on the types of :mod:`tbexport.model`)::

    source        list a directory, read a file at offsets (the one seam to storage)
      |
    discover      the runs under the paths given: directories of event files
      |
    records       TFRecord framing, both CRCs, recovery after damage
      |
    decode        events -> points: C scan over the bytes (tbexport._codec), the
      |           records it leaves decoded by protobuf_events into points
    load          per run: files merged, restarts resolved; all runs: one frame
      |           (csvlogger and hparams read the other inputs; parallel, threads)
    transform,    smoothing, statistics across runs (align), labels, time;
    reshape       long, wide and per-tag tables; results: the paper's table
      |
    write         the format table and atomic writes; writers/: one per format
      |           (xlsx: the streaming workbook), plot: figures
    export, cli   the whole job in one call; the command line around it
"""

from __future__ import annotations

import os as _os
import sys as _sys

if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "tbexport":  # the command
    from ._startup import quiet_interrupts as _quiet_interrupts

    _quiet_interrupts()  # (before the imports below: they take half a second)

from .discover import find_runs
from .exceptions import (
    CorruptEventFileError,
    CorruptRecordWarning,
    InputError,
    InvalidOptionError,
    NoEventFilesError,
    NoMatchingTagsError,
    NoScalarsError,
    NotAnEventFileError,
    OutputError,
    OutputWarning,
    OutputWriteError,
    PathNotFoundError,
    TbexportError,
    UnknownFormatError,
    UnreadableFileError,
)
from .export import ExportResult, export
from .formats import FORMATS
from .load import load_scalars, read_hparams, read_scalars
from .model import Corruption, Run, ScalarData
from .plot import plot_scalars
from .reshape import summarize, tag_stats, to_wide
from .results import results
from .transform import reduce_runs, smooth
from .write import write_scalars

# The one place the version is written: pyproject.toml reads it from here (and
# importlib.metadata would cost a twentieth of a second at every start).
__version__ = "1.0.0"

__all__ = [
    "FORMATS",
    "CorruptEventFileError",
    "CorruptRecordWarning",
    "Corruption",
    "ExportResult",
    "InputError",
    "InvalidOptionError",
    "NoEventFilesError",
    "NoMatchingTagsError",
    "NoScalarsError",
    "NotAnEventFileError",
    "OutputError",
    "OutputWarning",
    "OutputWriteError",
    "PathNotFoundError",
    "Run",
    "ScalarData",
    "TbexportError",
    "UnknownFormatError",
    "UnreadableFileError",
    "__version__",
    "export",
    "find_runs",
    "load_scalars",
    "plot_scalars",
    "read_hparams",
    "read_scalars",
    "reduce_runs",
    "results",
    "smooth",
    "summarize",
    "tag_stats",
    "to_wide",
    "write_scalars",
]
