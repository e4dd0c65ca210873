"""Outputs written all or nothing: to a temporary file beside the target, renamed over
it only when complete (several files: all renamed once all are written), so that a
failure never leaves a half-written file behind or destroys an earlier one."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tbexport.exceptions import OutputWriteError, option

__all__ = ["atomic_path", "atomic_paths", "check_replaceable"]


@contextlib.contextmanager
def atomic_paths(paths: list[Path], *, force: bool = False) -> Iterator[list[Path]]:
    """:func:`atomic_path` for outputs that belong together: each is checked before any
    is written, and all are renamed into place once the block has written them all."""
    for path in paths:
        _check_destination(path, force)
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(atomic_path(p, force=force)) for p in paths]
        yield temporaries


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
