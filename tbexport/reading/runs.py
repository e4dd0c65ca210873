"""One run read: its files read, merged in order, and its restarts resolved (what
TensorBoard shows after a resume)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tbexport.exceptions import (
    CorruptEventFileError,
    NotAnEventFileError,
    UnreadableFileError,
)
from tbexport.model import (
    Corruption,
    FileScalars,
    HParam,
    Run,
    Series,
    TagFilter,
)
from tbexport.reading.discover import HPARAMS_FILE
from tbexport.reading.event_file import read_event_file, strictly_increasing
from tbexport.reading.hparams import merge_hparams, read_hparams_yaml

__all__ = ["RunScalars", "read_run", "superseded_mask"]


@dataclass
class RunScalars:
    """One run read: its series (restarts resolved unless kept) and what was noticed."""

    run: Run
    series: dict[str, Series]
    corruptions: list[Corruption]
    truncated: dict[str, int]
    hparams: dict[str, HParam]
    bytes_read: int = 0
    notes: list[str] = field(default_factory=list)


def read_run(
    run: Run,
    *,
    accept: TagFilter,
    verify: bool = True,
    keep_duplicates: bool = False,
    strict: bool = False,
    explicit_files: frozenset[str] = frozenset(),
    progress: Callable[[int], None] | None = None,
) -> RunScalars:
    """Read one run's files, merge them in order and resolve restarts (one worker's job).

    ``progress`` is called with the bytes read since its last call, as the files are read.
    """
    results: list[FileScalars] = []
    for path in run.files:
        try:
            result = read_event_file(path, accept, verify=verify, progress=progress)
        except OSError as error:  # a broken link, no permission, gone since the walk
            result = _unreadable(path, error, strict=strict, explicit=explicit_files)
        results.append(result)
    corruptions: list[Corruption] = []
    truncated: dict[str, int] = {}
    from_events: dict[str, HParam] = {}
    for result in results:
        _check_file(result, strict=strict, explicit=result.path in explicit_files)
        corruptions.extend(result.corruptions)
        if result.truncated_tail:
            truncated[result.path] = result.truncated_tail
        from_events.update(result.hparams)
    notes: list[str] = []
    try:
        from_yaml = read_hparams_yaml(run.files[0].parent, run.hparams_yaml, notes)
    except OSError as error:  # no permission, not a file, not UTF-8: as an event file
        yaml_path = run.files[0].parent / HPARAMS_FILE
        unreadable = _unreadable(yaml_path, error, strict=strict, explicit=frozenset())
        corruptions.extend(unreadable.corruptions)
        from_yaml = {}
    hparams = merge_hparams(from_yaml, from_events) if from_yaml else from_events
    series = {}
    for tag, merged in _merge_files(results).items():
        if not len(merged.steps):
            continue
        if keep_duplicates or (not merged.purges and strictly_increasing(merged.steps)):
            series[tag] = merged  # the common case: nothing superseded
            continue
        keep = superseded_mask(merged.steps, merged.purges)
        if not keep.all():
            merged = Series(merged.steps[keep], merged.wall_times[keep], merged.values[keep])
        series[tag] = merged
    bytes_read = sum(result.size for result in results)
    return RunScalars(run, series, corruptions, truncated, hparams, bytes_read, notes=notes)


def _unreadable(
    path: Path, error: OSError, *, strict: bool, explicit: frozenset[str]
) -> FileScalars:
    """A file that cannot be read, as read: no points, reported as skipped whole. An
    error if it was named to read, or with ``strict``."""
    name, reason = os.fspath(path), error.strerror or str(error)
    if strict or name in explicit:
        raise UnreadableFileError(f"cannot read {name}: {reason}") from error
    skipped = Corruption(name, 0, 0, f"cannot be read ({reason})", unit="file")
    return FileScalars(name, {}, [skipped], truncated_tail=0, valid_records=0)


def _check_file(result: FileScalars, *, strict: bool, explicit: bool) -> None:
    # A file named on the command line with bytes but no complete record (a short text
    # file reads as a "truncated" record) is not an event file.
    if explicit and result.valid_records == 0 and (result.corruptions or result.truncated_tail):
        raise NotAnEventFileError(f"not a TensorBoard event file: {result.path}")
    if strict and result.corruptions:
        raise CorruptEventFileError(str(result.corruptions[0]))


def _merge_files(results: list[FileScalars]) -> dict[str, Series]:
    """Concatenate each tag's points over the run's files, in file-name order."""
    if len(results) == 1 and not results[0].purges:
        return results[0].series
    parts: dict[str, list[Series]] = {}
    purges: dict[str, list[tuple[int, int]]] = {}
    lengths: dict[str, int] = {}
    for result in results:
        for step, counts in result.purges:
            # A purge also covers tags this file has not logged yet (count 0).
            for tag in lengths.keys() | counts.keys():
                position = lengths.get(tag, 0) + counts.get(tag, 0)
                purges.setdefault(tag, []).append((position, step))
        for tag, series in result.series.items():
            parts.setdefault(tag, []).append(series)
            lengths[tag] = lengths.get(tag, 0) + len(series.steps)
    return {
        tag: Series(
            np.concatenate([s.steps for s in chunks]),
            np.concatenate([s.wall_times for s in chunks]),
            np.concatenate([s.values for s in chunks]),
            purges.get(tag, []),
        )
        for tag, chunks in parts.items()
    }


def superseded_mask(steps: np.ndarray, purges: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """Which points survive restarts: those with no later point at the same or an earlier step.

    ``purges`` are ``(position, step)`` restarts (``purge_step``): every point
    before ``position`` at a step ``>= step`` is dropped too, as TensorBoard does.
    """
    keep = np.ones(len(steps), dtype=bool)
    if len(steps) == 0:
        return keep
    later_min = np.minimum.accumulate(steps[::-1])[::-1]
    keep[:-1] = steps[:-1] < later_min[1:]
    if purges:
        positions = np.array([p for p, _ in purges], dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        purge_steps = np.array([s for _, s in purges], dtype=np.int64)[order]
        # lowest purge step among purges at or after each position
        purge_min = np.append(
            np.minimum.accumulate(purge_steps[::-1])[::-1], np.iinfo(np.int64).max
        )
        first_after = np.searchsorted(positions, np.arange(len(steps)), side="right")
        keep &= steps < purge_min[first_after]
    return keep
