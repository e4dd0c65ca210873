"""Find the runs (directories that directly hold event files) under the given paths."""

from __future__ import annotations

import errno
import functools
import itertools
import os
import re
import time
import unicodedata
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from tbexport.exceptions import (
    CorruptRecordWarning,
    InvalidOptionError,
    NoEventFilesError,
    PathNotFoundError,
    UnreadableFileError,
)
from tbexport.model import Corruption, Run
from tbexport.parallel import chunk_for, default_jobs, map_in_order
from tbexport.reading.source import Listing, list_directory

__all__ = ["Run", "as_list", "find_runs", "is_event_file", "readable_name", "run_order"]

PathLike = str | os.PathLike[str]
HPARAMS_FILE = "hparams.yaml"  # what Lightning's loggers write beside the metrics


def is_event_file(name: str) -> bool:
    """True for file names TensorBoard writers give event files."""
    return "tfevents" in name


_DIGIT_RUNS = re.compile(r"(\d+)")
# The key of natural order: (1, text) for text, (0, significant digits, those digits)
# for a digit run, and (-1, the whole name) last.
NaturalKey = tuple[tuple[int, int, str] | tuple[int, str], ...]


def _number_key(digits: str) -> tuple[int, int, str]:
    """A digit run, by the number it writes, without converting it to an int (a run of
    thousands of digits is beyond what ``int()`` converts, and costly to convert):
    fewer significant digits is smaller, and equal lengths compare as text."""
    if not digits.isascii():  # other scripts' decimal digits ("٣"): as the digits they are
        digits = "".join(str(unicodedata.decimal(c)) for c in digits)
    significant = digits.lstrip("0")
    return (0, len(significant), significant)


@functools.lru_cache(maxsize=1 << 16)  # the same tags recur in every file and run
def natural_key(text: str) -> NaturalKey:
    """Sort key that orders ``version_2`` before ``version_10``.

    Digit runs compare by the numbers they write (of any length: no conversion to
    int); names equal but for leading zeros (``a1``, ``a01``) are ordered by the text
    itself, so the order never depends on which was met first.
    """
    # The split alternates text and digit runs: the runs are at odd places. (Telling
    # them by str.isdigit() would take "²", a digit that int() refuses, for a number.)
    parts: tuple[tuple[int, int, str] | tuple[int, str], ...] = tuple(
        _number_key(part) if odd else (1, part)
        for part, odd in zip(_DIGIT_RUNS.split(text), itertools.cycle((False, True)))
    )
    return (*parts, (-1, text))  # -1: a name that is a prefix of another still sorts first


_UNDECODED = re.compile("[\ud800-\udfff]")


def readable_name(text: str) -> str:
    r"""A name read from the file system (or a file), as it is shown and written out.

    Bytes that are not UTF-8 reach Python as lone surrogates (``os.fsdecode``'s
    "surrogateescape"), which no UTF-8 output (CSV, XLSX, Arrow strings) can hold:
    each is written as a backslash escape of the byte, so the directory ``run_``
    followed by the bytes 0xFF 0xFE is named ``run_\xff\xfe`` (the text, backslashes
    and all); any other lone surrogate as ``\udXXX``. Other text is returned as it is.
    """
    if text.isascii() or not _UNDECODED.search(text):
        return text
    return _UNDECODED.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def as_list(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path or several, as a list."""
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


def find_runs(
    paths: PathLike | Sequence[PathLike],
    *,
    jobs: int | None = None,
    unreadable: list[Corruption] | None = None,
) -> list[Run]:
    """All runs under ``paths``, named by their path relative to the root they were found in.

    ``jobs``: threads to list directories on (default: one per core). A directory that
    cannot be listed (no permission) is skipped and reported: appended to
    ``unreadable`` when given, else as a :class:`CorruptRecordWarning`. A path given
    that cannot be listed raises :class:`UnreadableFileError`.
    """
    if jobs is not None and jobs < 1:
        raise InvalidOptionError(f"jobs must be 1 or more, not {jobs}")
    roots = [Path(p) for p in as_list(paths)]
    threads = default_jobs() if jobs is None else jobs
    found: list[tuple[Path, str, Run]] = []  # (root, path relative to it, run)
    seen: set[Path] = set()
    skipped: list[Corruption] = []
    for root in roots:
        for relative, run in _runs(root, threads, skipped):  # (sorted below)
            if len(roots) > 1:  # overlapping roots could name the same file twice
                run = replace(run, files=tuple(f for f in run.files if f.resolve() not in seen))
                seen.update(f.resolve() for f in run.files)
            if run.files:
                found.append((root, relative, run))
    if len(roots) > 1:
        found = _one_run_per_directory(found)
    if unreadable is not None:
        unreadable.extend(skipped)
    else:
        for corruption in skipped:
            warnings.warn(str(corruption), CorruptRecordWarning, stacklevel=2)
    names = [run.name for _, _, run in found]
    if len(set(names)) < len(names) and len(
        set(given := [_given_path(root, relative) for root, relative, _ in found])
    ) > len(set(names)):
        # Two roots hold runs of the same relative name, or a root that is a run holds
        # one named as the root is: fall back to the paths as given.
        found = [
            (root, relative, replace(run, name=name))
            for (root, relative, run), name in zip(found, given, strict=True)
        ]
    runs = sorted((run for _, _, run in found), key=lambda run: (run_order(run), run.files))
    return _unique_names(runs)


def _unique_names(runs: list[Run]) -> list[Run]:
    """``runs``, a name two of them still share (an undecodable name written as
    ``\\xff`` and a name that is that very text) told apart: the second as
    ``NAME (2)``, the next ``NAME (3)``, in run order."""
    names = {run.name for run in runs}
    if len(names) == len(runs):
        return runs
    seen: set[str] = set()
    unique = []
    for run in runs:
        name, n = run.name, 2
        while name in seen:
            name, n = f"{run.name} ({n})", n + 1
            if name in names:  # another run's own name
                name = run.name
        seen.add(name)
        names.add(name)
        unique.append(replace(run, name=name))
    return unique


def _one_run_per_directory(found: list[tuple[Path, str, Run]]) -> list[tuple[Path, str, Run]]:
    """Runs of one directory found from several roots (its event files given one by
    one, as a shell glob gives them) merged into one, named as first found."""
    merged: dict[Path, tuple[Path, str, Run]] = {}
    for root, relative, run in found:
        directory = run.files[0].parent.resolve()
        if directory not in merged:
            merged[directory] = (root, relative, run)
            continue
        first_root, first_relative, first = merged[directory]
        files = tuple(sorted({*first.files, *run.files}, key=str))
        yaml = first.hparams_yaml if first.hparams_yaml is not None else run.hparams_yaml
        merged[directory] = (
            first_root,
            first_relative,
            replace(first, files=files, hparams_yaml=yaml),
        )
    return list(merged.values())


def _runs(root: Path, threads: int, skipped: list[Corruption]) -> Iterator[tuple[str, Run]]:
    """The runs under one root, in no set order, with their paths relative to it; the
    directories that cannot be listed appended to ``skipped``."""
    base = root.parent if _is_file(root) else root
    for relative, files, hparams_yaml in _runs_under(root, threads, skipped):
        name = readable_name(relative) if relative else _display_name(base)
        yield relative, Run(name, tuple(Path(path) for path in sorted(files)), hparams_yaml)


def run_order(run: Run) -> NaturalKey:
    """Sort key of runs: natural order of their names."""
    return natural_key(run.name)


def _runs_under(
    root: Path, threads: int, skipped: list[Corruption]
) -> Iterator[tuple[str, list[str], bool | None]]:
    """Run directories under ``root`` (relative to it, "" for itself) with their files,
    and whether each holds an hparams.yaml (None: a file given, its directory not looked at).
    """
    if not _exists(root):
        raise PathNotFoundError(f"path does not exist: {root}")
    if _is_file(root):
        yield "", [os.fspath(root)], None
        return
    top = os.fspath(root)
    found = False
    for directory, names, hparams_yaml in _directories_with_runs(top, threads, skipped):
        relative = directory[len(top) :].lstrip(os.sep)  # directory is top joined with more
        found = True
        paths = [os.path.join(directory, name) for name in names]
        yield relative.replace(os.sep, "/"), paths, hparams_yaml
    if not found:
        raise NoEventFilesError(
            f"no TensorBoard event files (*tfevents*) or CSVLogger metrics.csv under {root}"
        )


def _directories_with_runs(
    top: str, threads: int = 1, skipped: list[Corruption] | None = None
) -> list[tuple[str, list[str], bool]]:
    """``top`` and the directories below it that are runs, with their run files (and
    whether an hparams.yaml is among the files), in no set order.

    Like ``os.walk`` (unreadable directories are skipped, and appended to ``skipped``;
    ``top`` unreadable raises :class:`UnreadableFileError`) but on strings, and level
    by level: a level's directories are listed in one call (in C: one release of the
    GIL, on up to ``threads`` threads). Links to directories are entered too, as
    TensorBoard's walk enters them, once every directory reached without one has
    been: a directory met again (through a link, or a cycle of links) is skipped, so
    each is found by its real path where the tree has one.
    """
    found = []
    seen: set[object] = set()
    level: list[str] = [top]
    links: list[str] = []  # links to directories, entered once the rest is walked
    while level or links:
        if not level:
            level, links = links, []
        below_level = []
        for directory, listing in zip(level, _list_dirs(level, threads), strict=True):
            if listing is None:
                _cannot_list(directory, top, skipped)
                continue
            files, below, linked, identity = listing
            if identity in seen:
                continue
            if identity is not None:
                seen.add(identity)
            elif linked:  # no inode numbers here: a cycle of links could not be told
                linked = []
            if run := _run_directory(directory, files):
                found.append(run)
            # in natural order, so that which link names a directory met twice is the
            # same on every machine, whatever order the file system lists them in
            below_level += [os.path.join(directory, n) for n in sorted(below, key=natural_key)]
            links += [os.path.join(directory, n) for n in sorted(linked, key=natural_key)]
        level = below_level
    return found


def _cannot_list(directory: str, top: str, skipped: list[Corruption] | None) -> None:
    """Report a directory the listing could not read (the reason asked of the OS again:
    the C listing gives none); one gone since its parent was listed is not reported.

    A directory whose path is longer than the system takes (PATH_MAX, 4096 bytes on
    Linux) cannot be opened by its path: it is skipped as "path too long", and so is
    every run below it (each file is opened by its path too)."""
    try:
        with os.scandir(directory):
            os.stat(directory)
        reason = "cannot be listed"
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            reason = "path too long"
        else:
            reason = f"cannot be listed ({error.strerror or error})"
    if directory == top:
        raise UnreadableFileError(f"cannot read {directory}: {reason}")
    if skipped is not None:
        skipped.append(Corruption(directory, 0, 0, reason, unit="file"))


def _exists(path: Path) -> bool:
    """Whether ``path`` exists; a path the system cannot look up (too long) is an
    :class:`UnreadableFileError`, not a traceback."""
    try:
        return path.exists()
    except OSError as error:
        raise _unreadable_path(path, error) from error


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as error:
        raise _unreadable_path(path, error) from error


def _unreadable_path(path: Path, error: OSError) -> UnreadableFileError:
    too_long = error.errno == errno.ENAMETOOLONG
    return UnreadableFileError(
        f"cannot read {path}: {'path too long' if too_long else error.strerror or error}"
    )


def _run_directory(directory: str, files: list[str]) -> tuple[str, list[str], bool] | None:
    """A directory holding ``files`` as a run: its run files (event files, or a CSVLogger
    metrics.csv) and whether an hparams.yaml is beside them; None if it is no run."""
    names = [name for name in files if is_event_file(name)]
    if not names and "metrics.csv" in files:
        names = ["metrics.csv"]
    return (directory, names, HPARAMS_FILE in files) if names else None


# A local directory lists in ~20 us, less than handing it to a thread costs: the 201
# directories of the 200-run sweep took 4.5 ms on the calling thread, 9.4 ms on two.
# Threads pay where a listing waits (a network file system): from this many seconds a
# directory, measured on the first ones of a level.
_SLOW_LISTING_S = 0.5e-3
_PROBE = 8  # directories listed first, to measure


def _list_dirs(paths: list[str], threads: int = 1) -> list[Listing | None]:
    """Each directory's listing (see :func:`tbexport.reading.source.list_directory`): on the
    calling thread, or on up to ``threads`` threads where listing is slow."""
    start = time.perf_counter()
    listed = [list_directory(path) for path in paths[:_PROBE]]
    rest = paths[_PROBE:]
    slow = (time.perf_counter() - start) / max(1, len(listed)) >= _SLOW_LISTING_S
    jobs = min(threads, len(rest)) if slow else 1
    listed += map_in_order(list_directory, rest, jobs=jobs, chunk=chunk_for(len(rest), jobs))
    return listed


def _display_name(directory: Path) -> str:
    return readable_name(directory.resolve().name or directory.resolve().as_posix())


def _given_path(root: Path, relative: str) -> str:
    base = root.parent if root.is_file() else root
    return readable_name((base / relative).as_posix() if relative else base.as_posix())
