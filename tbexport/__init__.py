"""tbexport: every TensorBoard scalar, exactly as logged, to Excel, MATLAB, CSV and pandas.

>>> import tbexport
>>> frame = tbexport.read_scalars("lightning_logs")            # long DataFrame
>>> wide = tbexport.to_wide(frame)                               # one column per tag
>>> tbexport.export("lightning_logs/version_0", "losses.xlsx")   # one sheet per tag

The pipeline, package by package (each passes on the types of :mod:`tbexport.model`)::

    reading/      source       list a directory, read a file at offsets (the seam)
      |           discover     the runs under the paths given
      |           framing      TFRecord records, both CRCs, recovery after damage
      |           event_file   events -> points: the C scan (tbexport._codec) over
      |                        the bytes, protobuf for the records it leaves
      |           runs         a run's files merged, restarts resolved
      |           frame        every run in one long DataFrame
    load          the reading verb: read_scalars, load_scalars, read_hparams
      |
    shaping       smoothing, statistics across runs (align), labels, time; long,
      |           wide and per-tag tables; results: the paper's table
      |
    writing/      formats (the table), atomic (all or nothing), one module per
      |           format (xlsx: the streaming workbook); plot: figures
    export, cli   the whole job in one call; the command line around it
"""

from __future__ import annotations

import os as _os
import sys as _sys

if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "tbexport":  # the command
    from tbexport._startup import quiet_interrupts as _quiet_interrupts

    _quiet_interrupts()  # (before the imports below: they take half a second)

from tbexport.exceptions import (
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
from tbexport.export import ExportResult, export
from tbexport.load import load_scalars, read_hparams, read_scalars
from tbexport.model import Corruption, Run, ScalarData
from tbexport.plot import plot_scalars
from tbexport.reading.discover import find_runs
from tbexport.results import results
from tbexport.shaping import reduce_runs, smooth, summarize, tag_stats, to_wide
from tbexport.write import write_scalars
from tbexport.writing.formats import FORMATS

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
