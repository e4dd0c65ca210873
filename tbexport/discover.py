"""Find the runs (directories that directly hold event files) under the given paths."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import NoEventFilesError, PathNotFoundError

__all__ = ["Run", "as_list", "find_runs", "is_event_file"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Run:
    """One run: its display name and its event files in file-name order."""

    name: str
    files: tuple[Path, ...]


def is_event_file(name: str) -> bool:
    """True for file names TensorBoard writers give event files."""
    return "tfevents" in name


@functools.lru_cache(maxsize=1 << 16)  # the same tags recur in every file and run
def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``version_2`` before ``version_10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", text)
    )


def as_list(paths: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path or several, as a list."""
    return [paths] if isinstance(paths, str | os.PathLike) else list(paths)


def find_runs(paths: PathLike | Sequence[PathLike]) -> list[Run]:
    """All runs under ``paths``, named by their path relative to the root they were found in."""
    roots = [Path(p) for p in as_list(paths)]
    found: list[tuple[Path, str, list[Path]]] = []
    seen: set[Path] = set()
    for root in roots:
        under = _runs_under(root)
        base = root.parent if root.is_file() else root
        for directory, files in under:
            if len(roots) > 1:  # overlapping roots could name the same file twice
                files = [f for f in files if f.resolve() not in seen]
                seen.update(f.resolve() for f in files)
            if files:
                found.append((root, _relative_name(base, directory), files))
    names = [name for _, name, _ in found]
    if len(set(names)) < len(names):
        # Two roots hold runs of the same relative name: fall back to the paths as given.
        found = [(root, _given_path(root, name), files) for root, name, files in found]
    runs = [Run(name, tuple(sorted(files, key=lambda f: f.name))) for _, name, files in found]
    return sorted(runs, key=lambda run: natural_key(run.name))


def _runs_under(root: Path) -> list[tuple[Path, list[Path]]]:
    if not root.exists():
        raise PathNotFoundError(f"path does not exist: {root}")
    if root.is_file():
        return [(root.parent, [root])]
    runs = []
    for directory, subdirs, filenames in os.walk(root):
        subdirs.sort(key=natural_key)
        names = [name for name in filenames if is_event_file(name)]
        if not names and "metrics.csv" in filenames:  # a Lightning CSVLogger run
            names = ["metrics.csv"]
        if names:
            where = Path(directory)
            runs.append((where, [where / name for name in names]))
    if not runs:
        raise NoEventFilesError(
            f"no TensorBoard event files (*tfevents*) or CSVLogger metrics.csv under {root}"
        )
    return runs


def _relative_name(base: Path, directory: Path) -> str:
    if directory == base:
        return _display_name(base)
    return directory.relative_to(base).as_posix()


def _display_name(directory: Path) -> str:
    return directory.resolve().name or directory.resolve().as_posix()


def _given_path(root: Path, name: str) -> str:
    base = root.parent if root.is_file() else root
    if name == _display_name(base):
        return base.as_posix()
    return (base / name).as_posix()
