"""Every error tbexport raises on purpose.

The tree, so callers can catch as broadly or narrowly as they need::

    TbexportError
    ├── InputError
    │   ├── PathNotFoundError
    │   ├── NoEventFilesError
    │   ├── NotAnEventFileError
    │   ├── UnreadableFileError
    │   ├── NoScalarsError
    │   └── NoMatchingTagsError
    ├── CorruptEventFileError
    ├── InvalidOptionError (also a ValueError)
    └── OutputError
        ├── UnknownFormatError
        └── OutputWriteError

``CorruptRecordWarning`` is not an error: it is the warning emitted (and the
record kept in ``DataFrame.attrs["corruptions"]``) when a damaged record is skipped.
``OutputWarning`` is what a writer or a figure says about its output that a person
should know (a chart capped, values a log axis cannot show); :func:`tbexport.export`
gathers them into ``ExportResult.notes``, which the CLI prints as ``note:`` lines.
The CLI turns every ``TbexportError`` into a one-line message and exit code 1, but
``InvalidOptionError`` into a usage error, exit code 2.
"""

from __future__ import annotations

__all__ = [
    "CorruptEventFileError",
    "CorruptRecordWarning",
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
    "TbexportError",
    "UnknownFormatError",
    "UnreadableFileError",
]


class TbexportError(Exception):
    """Base class of every error tbexport raises on purpose."""


class InputError(TbexportError):
    """The paths given to read cannot be turned into scalar data."""


class PathNotFoundError(InputError):
    """A path given to read does not exist."""


class NoEventFilesError(InputError):
    """A directory given to read holds no TensorBoard event files."""


class NotAnEventFileError(InputError):
    """A file given to read holds no valid TensorBoard record at all."""


class UnreadableFileError(InputError):
    """An event file named to read, or any with ``strict``, cannot be opened or read."""


class NoScalarsError(InputError):
    """The event files were read but hold no scalar data to export."""


class NoMatchingTagsError(InputError):
    """The tag filter matched none of the tags in the event files."""


class CorruptEventFileError(TbexportError):
    """A corrupt record was found while reading with ``strict=True``."""


class InvalidOptionError(TbexportError, ValueError):
    """An option has a value tbexport cannot use (a bad statistic, weight or label)."""


class OutputError(TbexportError):
    """The output cannot be written."""


class UnknownFormatError(OutputError):
    """The output format (from a suffix or an option) is not one tbexport writes."""


class OutputWriteError(OutputError):
    """Writing the output file failed; no partial file was left behind."""


class CorruptRecordWarning(UserWarning):
    """A damaged record was skipped while reading; the data around it was kept."""


class OutputWarning(UserWarning):
    """An output was written, with something about it a person should know."""
