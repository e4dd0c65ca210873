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
``InvalidOptionError`` into a usage error, exit code 2. A message names options with
:func:`option`: as the API's parameters in ``str(error)`` (``log_y``,
``layout='wide'``), as the command's flags in ``error.worded(flags)`` (``--log-y``,
``--layout wide``), so that each audience reads its own words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

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
    "option",
]

# Around an option's name (and value) in a message, so that it can be worded for the
# API or for the command line; control characters no path or tag is printed with.
_START, _VALUE, _END = "\x1e", "\x1f", "\x1d"
_OPTION = re.compile(
    f"{_START}([^{_VALUE}{_END}]*)(?:{_VALUE}([^{_VALUE}{_END}]*){_VALUE}([^{_END}]*))?{_END}"
)


def option(name: str, value: object = None) -> str:
    """An option named in an error message: its API parameter ``name``, with ``value``
    (``layout='wide'``, ``force=True``); :meth:`TbexportError.worded` names it as a flag
    instead (``--layout wide``, ``--force``)."""
    if value is None:
        return f"{_START}{name}{_END}"
    flag_value = "" if value is True else str(value)  # (a flag takes no value)
    return f"{_START}{name}{_VALUE}{value!r}{_VALUE}{flag_value}{_END}"


class TbexportError(Exception):
    """Base class of every error tbexport raises on purpose."""

    def __init__(self, message: str = "") -> None:
        self.template = message
        super().__init__(_OPTION.sub(_api_words, message))

    def worded(self, flags: Mapping[str, str]) -> str:
        """The message with each option named as ``flags`` says (``{"log_y": "--log-y"}``)."""

        def flag(match: re.Match[str]) -> str:
            named, value = flags.get(match[1], match[1]), match[3]
            return f"{named} {value}" if value else named

        return _OPTION.sub(flag, self.template)


def _api_words(match: re.Match[str]) -> str:
    name, value = match[1], match[2]
    return name if value is None else f"{name}={value}"


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

    # The API name of the one option whose value is refused, where the options' own
    # check (tbexport.options) refused it; None for options that do not go together,
    # or a value refused once the runs were read.
    parameter: str | None = None


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
