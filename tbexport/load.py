"""Read every scalar under some paths into one long DataFrame (the ``load`` verb)."""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import pandas as pd

from tbexport.exceptions import (
    CorruptRecordWarning,
    InputError,
    InvalidOptionError,
    NoMatchingTagsError,
    TbexportError,
    UnreadableFileError,
    option,
)
from tbexport.model import (
    COLUMNS,
    Corruption,
    GlobFilter,
    HParam,
    Run,
    ScalarData,
)
from tbexport.native import in_use
from tbexport.parallel import chunk_for, default_jobs, map_in_order
from tbexport.reading.discover import as_list, find_runs
from tbexport.reading.event_file import tag_filter
from tbexport.reading.frame import frame_order, long_frame
from tbexport.reading.hparams import hparams_frame
from tbexport.reading.runs import RunScalars, read_run

__all__ = ["COLUMNS", "ScalarData", "load_scalars", "read_hparams", "read_scalars"]

PathLike = str | os.PathLike[str]
Paths = PathLike | Sequence[PathLike]
MAX_THREADS_PER_CORE = 8


def read_scalars(
    paths: Paths,
    *,
    tags: str | Sequence[str] | None = None,
    ignore_case: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    jobs: int | None = None,
) -> pd.DataFrame:
    """Read every scalar point under ``paths`` into a long DataFrame.

    Columns: ``run`` and ``tag`` (categorical), ``step`` (int64), ``wall_time``
    (float64 seconds since the epoch) and ``value`` (float64, holding float32
    values bit-exactly). ``paths`` may be event files, run directories or whole
    trees such as ``lightning_logs``. ``tags``: a glob pattern (``"val_*"``) or a
    list of them, any of which may match (``ignore_case``: whatever the case); one
    that matches no tag while others do is said in a ``UserWarning``.

    Within a run, a point at step ``s`` replaces earlier points of its tag at steps
    ``>= s`` (what TensorBoard shows after a resume) unless ``keep_duplicates``.
    Damaged records are skipped with a :class:`CorruptRecordWarning` and listed in
    ``frame.attrs["corruptions"]``; with ``strict=True`` they raise
    :class:`CorruptEventFileError` instead. ``jobs``: threads to read and list
    directories on (default: one per core; 1 reads on the calling thread alone).
    """
    data = load_scalars(
        paths,
        tags=tags,
        ignore_case=ignore_case,
        keep_duplicates=keep_duplicates,
        strict=strict,
        jobs=jobs,
    )
    for corruption in data.corruptions:
        warnings.warn(str(corruption), CorruptRecordWarning, stacklevel=2)
    for note in data.notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    data.frame.attrs["corruptions"] = [str(c) for c in data.corruptions]
    return data.frame


def read_hparams(paths: Paths) -> pd.DataFrame:
    """Hyperparameters of every run under ``paths``: one row per run, one column each.

    Sources: Lightning's ``hparams.yaml`` in the run directory (nested keys joined
    with ``.``) and hparams-plugin records in the event files
    (``SummaryWriter.add_hparams``, Lightning's ``log_hyperparams``).
    """
    paths = as_list(paths)
    if not paths:
        raise InputError("no paths given to read")
    unlisted: list[Corruption] = []
    runs = find_runs(paths, unreadable=unlisted)
    # no tag accepted: the files' points are never assembled, only their hparams kept
    read = partial(read_run, accept=_no_tag, explicit_files=_explicit_files(paths))
    hparams: dict[str, dict[str, HParam]] = {}
    readers = _readers(max(1, min(default_jobs(), len(runs))))
    for result in map_in_order(read, runs, jobs=readers, chunk=chunk_for(len(runs), readers)):
        for corruption in result.corruptions:
            warnings.warn(str(corruption), CorruptRecordWarning, stacklevel=2)
        for note in result.notes:
            warnings.warn(note, UserWarning, stacklevel=2)
        if result.hparams:
            hparams[result.run.name] = result.hparams
    for corruption in unlisted:
        warnings.warn(str(corruption), CorruptRecordWarning, stacklevel=2)
    return hparams_frame(hparams)


def _no_tag(tag: str) -> bool:
    return False


def _readers(jobs: int) -> int:
    """Threads to read runs on: ``jobs`` where the C scan releases the GIL; one without
    it (protobuf holds the GIL: more threads would only take turns)."""
    return jobs if in_use() else 1


def load_scalars(
    paths: Paths,
    *,
    tags: str | Sequence[str] | None = None,
    ignore_case: bool = False,
    keep_duplicates: bool = False,
    strict: bool = False,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
    jobs: int | None = None,
    progress_total: Callable[[int], None] | None = None,
) -> ScalarData:
    """Like :func:`read_scalars`, returning the frame together with the read report.

    ``verify=False`` skips the CRC checks (damage then goes unnoticed).
    ``jobs`` is how many threads read and list directories (default: one per core);
    ``progress`` is called with the number of bytes read since its last call;
    ``progress_total`` once, before the reading, with the bytes the files found hold.
    """
    if jobs is not None and jobs < 1:
        raise InvalidOptionError(f"jobs must be 1 or more, not {jobs}")
    # (once: the walk, the reading, the join); never more threads than help: a thread
    # per file at most, and 8 per core (reads that wait on a network mount may use them)
    jobs = default_jobs() if jobs is None else min(jobs, MAX_THREADS_PER_CORE * default_jobs())
    paths = as_list(paths)  # once: a generator (Path.glob) can be read only once
    if not paths:
        raise InputError("no paths given to read")
    tags = [tags] if isinstance(tags, str) else tags
    accept = tag_filter(list(tags) if tags else None, ignore_case)
    unlisted: list[Corruption] = []
    found = find_runs(paths, jobs=jobs, unreadable=unlisted)
    jobs = max(1, min(jobs, sum(len(run.files) for run in found)))
    if strict and unlisted:
        raise UnreadableFileError(str(unlisted[0]).removesuffix(", skipped"))
    if progress_total is not None:
        progress_total(sum(_size(f) for run in found for f in run.files))
    read: Callable[[Run], RunScalars] = partial(
        read_run,
        accept=accept,
        verify=verify,
        keep_duplicates=keep_duplicates,
        strict=strict,
        explicit_files=_explicit_files(paths),
        progress=_serialized(progress) if progress is not None else None,
    )
    readers = _readers(jobs)
    chunk = chunk_for(len(found), readers)
    ordered = list(map_in_order(read, found, jobs=readers, chunk=chunk))
    data = ScalarData(frame=pd.DataFrame(), runs=[result.run for result in ordered])
    data.corruptions.extend(unlisted)
    for result in ordered:
        data.corruptions.extend(result.corruptions)
        data.truncated.update(result.truncated)
        data.notes.extend(result.notes)
        if result.hparams:
            data.hparams[result.run.name] = result.hparams
    names = [run.name for run in data.runs]
    pieces = [
        (code, tag, len(s.steps), s)
        for code, result in enumerate(ordered)
        for tag, s in frame_order(result.series)
    ]
    data.tags_seen = {t for _, t, _, _ in pieces}
    if tags and not data.tags_seen:
        raise NoMatchingTagsError(_no_match(paths, list(tags), accept, jobs))
    for pattern in accept.unmatched(data.tags_seen) if tags else []:
        data.notes.append(f"the tag pattern {pattern!r} matches no tag (the others do)")
    data.frame = long_frame(names, pieces, data.tags_seen, jobs)
    return data


def _size(path: Path) -> int:
    """A file's size for the progress bar's total; 0 for one gone (its reader says so)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _no_match(paths: Paths, patterns: list[str], accept: GlobFilter, jobs: int) -> str:
    """What to say when no tag matches: the patterns, and the tags closest to them (read
    again without the filter: this is the path of a mistake, not of an export)."""
    text = f"no scalar tag matches {', '.join(repr(p) for p in patterns)}"
    try:
        tags = sorted(set(load_scalars(paths, jobs=jobs).frame["tag"].astype(str)))
    except TbexportError:
        return text
    if not tags:
        return text
    stems = [
        p.strip("*?[]").casefold() if accept.ignore_case else p.strip("*?[]") for p in patterns
    ]
    close = []
    for stem in stems:
        pool = [t.casefold() for t in tags] if accept.ignore_case else tags
        close += [tags[pool.index(c)] for c in difflib.get_close_matches(stem, pool, n=5, cutoff=0)]
    shown = list(dict.fromkeys(close))[:5]
    more = "" if len(tags) <= len(shown) else f" ({len(tags)} in all)"
    if not accept.ignore_case and any(GlobFilter(accept.patterns, True)(t) for t in tags):
        text += f" (but with {option('ignore_case', True)} some do)"
    return f"{text}; tags include: {', '.join(shown)}{more}"


def _serialized(callback: Callable[[int], None]) -> Callable[[int], None]:
    """``callback`` called by one thread at a time (a progress bar's count is not atomic)."""
    lock = threading.Lock()

    def call(done: int) -> None:
        with lock:
            callback(done)

    return call


def _explicit_files(paths: Paths) -> frozenset[str]:
    return frozenset(os.fspath(p) for p in as_list(paths) if os.path.isfile(p))
