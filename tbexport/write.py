"""Write a long frame to a file whose format follows its suffix (the ``write`` verb).

Every output is written to a temporary file beside the target and renamed over
it only when complete, so a failure never leaves a half-written file behind or
destroys an earlier one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from .exceptions import OutputWriteError, UnknownFormatError
from .options import WriteOptions

__all__ = ["FORMATS", "RESULTS_FORMATS", "atomic_path", "format_for", "write_scalars"]

Writer = Callable[..., None]

# suffix -> module in tbexport.writers, or a writer function; the one table that
# decides what tbexport can write. Modules are imported on use (scipy is slow to load).
FORMATS: dict[str, str | Writer] = {
    ".xlsx": "excel",
    ".mat": "matlab",
    ".csv": "csv",
    ".tfevents": "tfevents",  # a directory of TensorBoard runs, not one file
}
# Formats that hold only a results table (tbexport.results), never the points.
RESULTS_FORMATS = (".md", ".tex")


def _writer(suffix: str) -> Writer:
    entry = FORMATS[suffix]
    if callable(entry):
        return entry
    module = importlib.import_module(f"tbexport.writers.{entry}")
    function: Writer = module.write
    return function


def format_for(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The format (a key of ``FORMATS``) for ``path``, or for an explicit ``format``."""
    suffix = ("." + format.lower().lstrip(".")) if format else Path(path).suffix.lower()
    if suffix not in FORMATS and suffix not in RESULTS_FORMATS:
        files = [f for f in FORMATS if f != ".tfevents"]
        known = ", ".join([*files, *RESULTS_FORMATS, ".tfevents (a directory)"])
        what = f"format {format!r}" if format else f"output suffix {suffix or '(none)'!r}"
        raise UnknownFormatError(f"unknown {what}; known formats: {known}")
    return suffix


def write_scalars(
    frame: pd.DataFrame,
    output: str | os.PathLike[str],
    *,
    format: str | None = None,
    options: WriteOptions | None = None,
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
        from .writers.tfevents import write_runs

        write_runs(frame, path)  # (all or nothing: a new directory, renamed into place)
        return path
    writer = _writer(suffix)
    with atomic_path(path) as temporary:
        writer(frame, temporary, options)
    if options.matlab_script and suffix == ".mat":
        from .writers.matlab_script import script

        text = script(path, int(frame["run"].nunique()), options)
        with atomic_path(path.with_suffix(".m")) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    directory = path.parent
    if not directory.is_dir():
        raise OutputWriteError(f"cannot write {path}: directory {directory} does not exist")
    if path.is_dir():
        raise OutputWriteError(f"cannot write {path}: it is a directory")
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise OutputWriteError(f"cannot write {path}: {error.strerror}") from error
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        raise OutputWriteError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
