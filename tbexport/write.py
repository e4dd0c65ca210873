"""Write a long frame to a file whose format follows its suffix (the ``write`` verb).

Every output is written to a temporary file beside the target and renamed over
it only when complete, so a failure never leaves a half-written file behind or
destroys an earlier one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .exceptions import OutputWriteError, UnknownFormatError, option
from .formats import FORMATS, RESULTS_FORMATS, Writer, format_for
from .options import WriteOptions

__all__ = ["atomic_path", "atomic_paths", "check_replaceable", "write_scalars"]


def _writer(suffix: str) -> Writer:
    entry = FORMATS[suffix]
    if callable(entry):
        return entry
    module = importlib.import_module(f"tbexport.writers.{entry}")
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
        from .writers.tfevents import write_runs

        write_runs(frame, path)  # (all or nothing: a new directory, renamed into place)
        return path
    writer = _writer(suffix)
    if not (options.matlab_script and suffix == ".mat"):
        with atomic_path(path, force=force) as temporary:
            writer(frame, temporary, options)
        return path
    from .writers.matlab_script import script as script_text

    # the .mat and its .m: both or neither (every destination checked before the first
    # is written, both renamed into place only when both are complete)
    with atomic_paths([path, path.with_suffix(".m")], force=force) as (mat, m):
        writer(frame, mat, options)
        m.write_text(script_text(path, int(frame["run"].nunique()), options), encoding="utf-8")
    return path


@contextlib.contextmanager
def atomic_paths(paths: list[Path], *, force: bool = False) -> Iterator[list[Path]]:
    """:func:`atomic_path` for outputs that belong together: each is checked before any
    is written, and all are renamed into place once the block has written them all."""
    for path in paths:
        _check_destination(path, force)
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_path(p, force=force)) for p in paths]
        yield temporaries
    # (the renames run as the stack unwinds, the last path first, only after success)


@contextlib.contextmanager
def atomic_path(path: Path, *, force: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed over it when the block ends without error.

    A read-only ``path`` (no owner write bit) is refused unless ``force``, as ``cp``
    refuses without ``-f``. Temporaries are named ``.<name>.tbexport-<host>-<pid>-*.tmp``:
    one left by a process of this host that no longer runs (killed with SIGKILL) is
    removed by the next write of the same output.
    """
    _check_destination(path, force)
    directory = path.parent
    _remove_stale_temporaries(path)
    try:
        handle, name = tempfile.mkstemp(
            prefix=_temporary_prefix(path), suffix=".tmp", dir=directory
        )
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


def _check_destination(path: Path, force: bool) -> None:
    if not path.parent.is_dir():
        raise OutputWriteError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():
        raise OutputWriteError(f"cannot write {path}: it is a directory")
    check_replaceable(path, force=force)


def check_replaceable(path: Path, *, force: bool = False) -> None:
    """Raise :class:`OutputWriteError` if ``path`` is read-only and not ``force``."""
    if not force and _read_only(path):
        raise OutputWriteError(
            f"cannot write {path}: it is read-only ({option('force', True)} replaces it)"
        )


def _read_only(path: Path) -> bool:
    try:
        return not path.lstat().st_mode & stat.S_IWUSR
    except OSError:  # (none yet)
        return False


_HOST = socket.gethostname().replace("-", "_").replace("/", "_") or "host"


def _temporary_prefix(path: Path, pid: int | None = None) -> str:
    return f".{path.name}.tbexport-{_HOST}-{os.getpid() if pid is None else pid}-"


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of ``path`` that processes of this host, now gone, left."""
    start = f".{path.name}.tbexport-{_HOST}-"
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(start) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(start) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(OSError):
                (path.parent / name).unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (another user's process: it runs)
        return True
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
