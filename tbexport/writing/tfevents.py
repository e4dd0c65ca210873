"""TensorBoard event files: each run of a frame as a TensorBoard run (``--format tfevents``).

Layout, one event file per run, so ``tensorboard --logdir DIRECTORY`` shows the runs
by name (a reduced frame's runs are its statistics: ``mean``, ``std``, …)::

    DIRECTORY/<run>/events.out.tfevents.<unix time, 10 digits>.<hostname>.tbexport

A run name with ``/`` becomes nested directories (``a/version_0``); TensorBoard
names a run by its directory, so it shows the same name. A run name must be a
relative path of plain components: one that is empty, absolute, or has an empty,
``.`` or ``..`` component is refused with :class:`OutputWriteError` before anything
is written. Runs without points are not written.

Each file starts with the ``file_version="brain.Event:2"`` event, whose wall time
is the run's earliest (TensorBoard's start time of the run), then holds one
``Event`` per point, in the frame's order, with the point's ``step`` and
``wall_time`` and one ``Summary.Value(tag=<tag>, simple_value=<value>)``: what
``SummaryWriter.add_scalar`` writes. Records are framed by TensorBoard's own
``RecordWriter``, the messages built with its protobuf classes.

Values are written as float32 (``simple_value``), so rounded to the nearest float32
(about 7 significant digits; beyond ±3.4e38 they become ±inf, the tiniest ±0;
NaN and ±inf stay). A double-precision TF2 tensor (``DT_DOUBLE``) would keep every
bit, and TensorBoard's Python reader shows it, but its Rust data server, which
TensorBoard uses by default, drops it (it reads only ``DT_FLOAT`` scalars), so the
charts would be empty. Steps (int64) and wall times (float64) are kept exactly.

An event must carry a wall time: a missing (NaN) one is written as the previous
point's of the same run and tag, the next one's for the series' first points, or
the run's earliest when the series has none (0.0 when the run has none).
``value_smoothed`` is not written: TensorBoard smooths the charts itself.

Points are written as they are, duplicates included; but TensorBoard (its Rust
data server, as ``read_scalars``) keeps a series' points only while the steps
increase: a point at step ``s`` replaces the earlier ones at steps ``>= s`` (as
after a resumed run). The frames ``reduce_runs`` makes have one point per tag and
step, in step order.

All or nothing: ``DIRECTORY`` must not exist or must be empty. Everything is
written into a temporary sibling, ``.<name>.tbexport-tmp-XXXXXXXX``, renamed to
``DIRECTORY`` only when complete (replacing the empty one); on any failure it is
removed and nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from tbexport.exceptions import OutputWriteError

__all__ = ["write_runs"]

FILE_VERSION = "brain.Event:2"
REQUIRED = ("run", "tag", "step", "wall_time", "value")


def write_runs(frame: pd.DataFrame, directory: str | os.PathLike[str]) -> list[Path]:
    """Write each run of ``frame`` as a TensorBoard run under the new ``directory``.

    ``frame`` is a long frame (``run, tag, step, wall_time, value``). Returns the
    event files written, one per run that has points, in the order the runs first
    appear. Raises :class:`OutputWriteError` (leaving nothing behind) when
    ``directory`` exists and is not empty, its parent does not exist, a run name is
    not a relative path, or writing fails.
    """
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise ValueError(f"the frame has no column {', '.join(map(repr, missing))}")
    if frame["run"].isna().any():
        raise ValueError("the frame has points without a run name (NaN in its run column)")
    target = Path(directory)
    groups = [
        (str(run), rows)
        for run, rows in frame.groupby("run", observed=True, sort=False).indices.items()
    ]
    subdirectories = {run: _run_directory(target, run) for run, _ in groups}
    _check_target(target)
    absolute = Path(os.path.abspath(target))
    try:
        temporary = Path(
            tempfile.mkdtemp(prefix=f".{absolute.name}.tbexport-tmp-", dir=absolute.parent)
        )
    except OSError as error:
        raise OutputWriteError(f"cannot write {target}: {error.strerror or error}") from error
    try:
        written = []
        file_name = _file_name()
        steps = frame["step"].to_numpy(dtype=np.int64)
        wall_times = frame["wall_time"].to_numpy(dtype=np.float64)
        with np.errstate(over="ignore"):
            values = frame["value"].to_numpy(dtype=np.float64).astype(np.float32)
        tags = frame["tag"].astype(str).to_numpy(dtype=object)
        for run, rows in groups:
            relative = subdirectories[run] / file_name
            path = temporary / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            start = _start_time(wall_times[rows])
            times = _filled_wall_times(tags[rows], wall_times[rows], start)
            _write_file(
                path, target / relative, start, tags[rows], steps[rows], times, values[rows]
            )
            written.append(target / relative)
        os.chmod(temporary, 0o777 & ~_umask())
        _move_into_place(temporary, absolute)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise OutputWriteError(f"cannot write {target}: {error.strerror or error}") from error
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return written


def _run_directory(target: Path, run: str) -> Path:
    """The directory of ``run`` relative to the output, or ``OutputWriteError``."""
    parts = run.replace(os.sep, "/")
    if os.altsep:
        parts = parts.replace(os.altsep, "/")
    components = parts.split("/")
    plain = all(c not in ("", ".", "..") and "\0" not in c for c in components)
    if not plain or Path(run).is_absolute() or Path(run).drive:
        raise OutputWriteError(
            f"cannot write {target}: run name {run!r} is not a relative path "
            "(tfevents output writes each run into a subdirectory named after it)"
        )
    return Path(*components)


def _check_target(target: Path) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise OutputWriteError(f"cannot write {target}: directory {parent} does not exist")
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise OutputWriteError(f"cannot write {target}: it exists and is not a directory")
    if target.is_dir():
        try:
            empty = next(os.scandir(target), None) is None
        except OSError as error:
            raise OutputWriteError(f"cannot write {target}: {error.strerror or error}") from error
        if not empty:
            raise OutputWriteError(
                f"cannot write {target}: it is not empty "
                "(tfevents output goes into a new directory)"
            )


def _file_name() -> str:
    host = socket.gethostname().replace("/", "_").replace(os.sep, "_") or "localhost"
    return f"events.out.tfevents.{int(time.time()):010d}.{host}.tbexport"


def _start_time(wall_times: np.ndarray) -> float:
    """The run's earliest finite wall time, 0.0 if it has none."""
    finite = wall_times[np.isfinite(wall_times)]
    return float(finite.min()) if len(finite) else 0.0


def _filled_wall_times(tags: np.ndarray, wall_times: np.ndarray, start: float) -> np.ndarray:
    """``wall_times`` with each NaN replaced by the previous point's of its tag, else
    the next point's, else ``start`` (an event must have a wall time)."""
    if not np.isnan(wall_times).any():
        return wall_times
    series = pd.Series(wall_times)
    by_tag = series.groupby(tags, sort=False)
    filled = series.fillna(by_tag.ffill()).fillna(by_tag.bfill()).fillna(start)
    result: np.ndarray = filled.to_numpy(dtype=np.float64)
    return result


def _write_file(
    path: Path,
    shown: Path,
    start: float,
    tags: np.ndarray,
    steps: np.ndarray,
    wall_times: np.ndarray,
    values: np.ndarray,
) -> None:
    try:
        handle = path.open("xb")
    except FileExistsError as error:
        raise OutputWriteError(
            f"cannot write {shown}: two runs map to this directory (the file system ignores case?)"
        ) from error
    with handle:
        writer = RecordWriter(handle)
        writer.write(Event(wall_time=start, file_version=FILE_VERSION).SerializeToString())
        for tag, step, wall_time, value in zip(
            tags.tolist(), steps.tolist(), wall_times.tolist(), values.tolist(), strict=True
        ):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
            event = Event(wall_time=wall_time, step=step, summary=summary)
            writer.write(event.SerializeToString())


def _move_into_place(temporary: Path, target: Path) -> None:
    """Rename ``temporary`` to ``target`` (absent or an empty directory)."""
    try:
        os.replace(temporary, target)
    except OSError:
        # Windows does not rename a directory over another: remove the empty one first
        if not target.is_dir() or next(os.scandir(target), None) is not None:
            raise
        os.rmdir(target)
        os.rename(temporary, target)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
