"""``tbexport.writing.tfevents.write_runs``: a frame's runs as TensorBoard event files.

Everything written is read back with TensorBoard's own readers (the Python
``EventAccumulator`` and, where it can be started, the Rust data server that
TensorBoard uses by default) and with ``tbexport.read_scalars``.
"""

from __future__ import annotations

import errno
import math
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

import tbexport
from tbexport import OutputWriteError
from tbexport.writing import tfevents
from tbexport.writing.tfevents import write_runs

Series = dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]]

FILE_NAME = re.compile(
    r"events\.out\.tfevents\.(\d{10})\." + re.escape(socket.gethostname()) + r"\.tbexport"
)


def long_frame(rows: list[tuple[str, str, int, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["run", "tag", "step", "wall_time", "value"])
    frame["run"] = pd.Categorical(frame["run"], categories=list(dict.fromkeys(frame["run"])))
    frame["tag"] = pd.Categorical(frame["tag"], categories=sorted(set(frame["tag"])))
    frame["step"] = frame["step"].astype(np.int64)
    return frame


def frame_series(frame: pd.DataFrame) -> Series:
    """(run, tag) -> steps, wall times, values as written (float32), in frame order."""
    result: Series = {}
    for (run, tag), group in frame.groupby(["run", "tag"], observed=True, sort=False):
        values = group["value"].to_numpy(np.float64)
        with np.errstate(over="ignore"):
            as_written = values.astype(np.float32).astype(np.float64)
        result[(str(run), str(tag))] = (
            group["step"].to_numpy(np.int64),
            group["wall_time"].to_numpy(np.float64),
            as_written,
        )
    return result


def accumulator_series(directory: Path, runs: list[str]) -> Series:
    """Every point TensorBoard's Python backend reads, per (run, tag)."""
    result: Series = {}
    for run in runs:
        accumulator = plugin_event_accumulator.EventAccumulator(
            str(directory / run), size_guidance={"tensors": 0, "scalars": 0}
        )
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            events = accumulator.Tensors(tag)
            metadata = accumulator.SummaryMetadata(tag)
            assert metadata.plugin_data.plugin_name == "scalars"
            values = []
            for event in events:
                assert event.tensor_proto.dtype == 1  # DT_FLOAT: simple_value
                assert len(event.tensor_proto.tensor_shape.dim) == 0
                values.append(event.tensor_proto.float_val[0])
            result[(run, tag)] = (
                np.array([e.step for e in events], np.int64),
                np.array([e.wall_time for e in events], np.float64),
                np.array(values, np.float64),
            )
    return result


def tbexport_series(directory: Path) -> Series:
    return frame_series(tbexport.read_scalars(directory, keep_duplicates=True))


def assert_same_series(actual: Series, expected: Series) -> None:
    assert sorted(actual) == sorted(expected)
    for key, (steps, wall_times, values) in expected.items():
        got_steps, got_wall_times, got_values = actual[key]
        assert got_steps.tolist() == steps.tolist(), key
        assert_same_bits(got_wall_times, wall_times)
        assert_same_bits(got_values, values)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal as IEEE doubles bit for bit (-0.0 differs from 0.0), any NaN equal to NaN."""
    assert actual.shape == expected.shape
    nan = np.isnan(expected)
    assert np.isnan(actual).tolist() == nan.tolist()
    assert actual[~nan].view(np.uint64).tolist() == expected[~nan].view(np.uint64).tolist()


def event_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "tbexport-tmp" in p.name)


@pytest.fixture
def reduced(tmp_path: Path) -> pd.DataFrame:
    """mean and std across three runs logged by torch's SummaryWriter (add_scalar)."""
    torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")
    rng = np.random.default_rng(7)
    logs = tmp_path / "logs"
    for seed in range(3):
        with torch_tb.SummaryWriter(logs / f"version_{seed}") as writer:
            # version_2 goes on alone: std over one run is NaN there
            for step in range(0, 40 + 20 * (seed == 2), 4):
                start = 1_700_000_000.0 + 1000 * seed
                writer.add_scalar("train/loss", rng.normal(), step, walltime=start + step * 0.37)
                if step % 8 == 0:
                    writer.add_scalar("val/acc", rng.random(), step, walltime=start + step * 0.41)
    frame = tbexport.read_scalars(logs)
    assert frame["run"].nunique() == 3
    return tbexport.reduce_runs(frame, ["mean", "std"])


def test_reduced_runs_read_back_by_tensorboard_and_tbexport(
    tmp_path: Path, reduced: pd.DataFrame
) -> None:
    out = tmp_path / "out"
    before = int(time.time())
    written = write_runs(reduced, out)
    after = int(time.time())

    assert [p.parent.name for p in written] == ["mean", "std"]
    assert event_files(out) == sorted(written)
    assert sorted(p.name for p in out.iterdir()) == ["mean", "std"]
    for path in written:
        match = FILE_NAME.fullmatch(path.name)
        assert match, path.name
        assert before <= int(match.group(1)) <= after
        first = next(iter(EventFileLoader(str(path)).Load()))
        assert first.file_version == "brain.Event:2"
        run = reduced[reduced["run"] == path.parent.name]
        assert first.wall_time == run["wall_time"].min()
        events = list(EventFileLoader(str(path)).Load())
        assert len(events) == 1 + len(run)  # one event per point
        assert [e.summary.value[0].tag for e in events[1:]] == run["tag"].astype(str).tolist()

    expected = frame_series(reduced)
    # the reduced values are doubles: written as float32, so the test would fail without it
    assert any(
        not np.array_equal(v, reduced_values, equal_nan=True)
        for (_, _, v), reduced_values in zip(expected.values(), _raw_values(reduced), strict=True)
    )
    assert np.isnan(expected[("std", "train/loss")][2]).sum() == 5  # steps 40..56: one run
    assert len(expected) == 4
    assert_same_series(accumulator_series(out, ["mean", "std"]), expected)
    assert_same_series(tbexport_series(out), expected)


def _raw_values(frame: pd.DataFrame) -> Iterator[np.ndarray]:
    for _, group in frame.groupby(["run", "tag"], observed=True, sort=False):
        yield group["value"].to_numpy(np.float64)


def test_value_smoothed_is_left_out(tmp_path: Path, reduced: pd.DataFrame) -> None:
    smoothed = tbexport.smooth(reduced, 0.6)
    assert "value_smoothed" in smoothed
    write_runs(smoothed, tmp_path / "out")
    read = tbexport.read_scalars(tmp_path / "out")
    assert sorted(set(read["tag"].astype(str))) == ["train/loss", "val/acc"]
    assert_same_series(accumulator_series(tmp_path / "out", ["mean", "std"]), frame_series(reduced))


def test_float32_rounding_and_special_values(tmp_path: Path) -> None:
    values = [0.1, 1 / 3, 1e300, -1e300, 5e-324, math.nan, math.inf, -math.inf, -0.0, 2.0**-149]
    frame = long_frame(
        [("r", "x", i, 1_700_000_000.123456789 + i, v) for i, v in enumerate(values)]
    )
    write_runs(frame, tmp_path / "out")
    got = accumulator_series(tmp_path / "out", ["r"])[("r", "x")][2]
    expected = np.array(
        [
            float(np.float32(0.1)),
            float(np.float32(1 / 3)),
            math.inf,  # beyond float32's range
            -math.inf,
            0.0,  # below its smallest subnormal
            math.nan,
            math.inf,
            -math.inf,
            -0.0,
            2.0**-149,
        ]
    )
    assert_same_bits(got, expected)
    assert_same_bits(tbexport_series(tmp_path / "out")[("r", "x")][2], expected)
    assert_same_bits(
        accumulator_series(tmp_path / "out", ["r"])[("r", "x")][1],
        frame["wall_time"].to_numpy(),
    )


def test_missing_wall_times(tmp_path: Path) -> None:
    nan = math.nan
    frame = long_frame(
        [
            ("r", "a", 0, nan, 1.0),  # first points: the next known time
            ("r", "a", 1, nan, 2.0),
            ("r", "a", 2, 10.5, 3.0),
            ("r", "b", 0, 5.25, 4.0),  # another tag does not lend its times
            ("r", "a", 3, nan, 5.0),  # the previous point's (of its tag)
            ("r", "b", 1, nan, 6.0),
            ("r", "a", 4, 11.5, 7.0),
            ("r", "c", 0, nan, 8.0),  # none in the series: the run's earliest
            ("s", "a", 0, nan, 9.0),  # none in the run: 0.0
        ]
    )
    write_runs(frame, tmp_path / "out")
    got = accumulator_series(tmp_path / "out", ["r", "s"])
    assert got[("r", "a")][1].tolist() == [10.5, 10.5, 10.5, 10.5, 11.5]
    assert got[("r", "b")][1].tolist() == [5.25, 5.25]
    assert got[("r", "c")][1].tolist() == [5.25]
    assert got[("s", "a")][1].tolist() == [0.0]
    assert got[("r", "a")][2].tolist() == [1.0, 2.0, 3.0, 5.0, 7.0]
    start = next(iter(EventFileLoader(str(event_files(tmp_path / "out" / "r")[0])).Load()))
    assert start.wall_time == 5.25  # the run's earliest known time


def test_nested_run_names(tmp_path: Path) -> None:
    runs = ["a/version_0", "a/version_1", "b/c/d", "a"]
    frame = long_frame(
        [
            (run, tag, s, 100.0 + s, i * 10.0 + s)
            for i, run in enumerate(runs)
            for tag in "xy"
            for s in range(3)
        ]
    )
    written = write_runs(frame, tmp_path / "out")
    assert [p.parent.relative_to(tmp_path / "out").as_posix() for p in written] == runs
    assert event_files(tmp_path / "out") == sorted(written)
    assert (tmp_path / "out" / "b" / "c" / "d").is_dir()
    expected = frame_series(frame)
    assert_same_series(accumulator_series(tmp_path / "out", runs), expected)
    assert_same_series(tbexport_series(tmp_path / "out"), expected)


@pytest.mark.parametrize("run", ["", "/abs", "../up", "a/../b", "a/..", "a//b", ".", "./a", "a/"])
def test_run_name_that_is_not_a_relative_path(tmp_path: Path, run: str) -> None:
    frame = long_frame([("fine", "x", 0, 1.0, 1.0), (run, "x", 0, 1.0, 2.0)])
    with pytest.raises(OutputWriteError) as raised:
        write_runs(frame, tmp_path / "out")
    assert str(raised.value) == (
        f"cannot write {tmp_path / 'out'}: run name {run!r} is not a relative path "
        "(tfevents output writes each run into a subdirectory named after it)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_non_empty_directory_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    (out / "old" / "keep.txt").write_text("mine")
    frame = long_frame([("mean", "x", 0, 1.0, 1.0)])
    with pytest.raises(OutputWriteError) as raised:
        write_runs(frame, out)
    assert str(raised.value) == (
        f"cannot write {out}: it is not empty (tfevents output goes into a new directory)"
    )
    assert event_files(out) == [out / "old" / "keep.txt"]
    assert (out / "old" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    (out / "old" / "keep.txt").unlink()
    (out / "old").rmdir()
    (out / ".hidden").write_text("")  # a hidden file counts too
    with pytest.raises(OutputWriteError, match="it is not empty"):
        write_runs(frame, out)


def test_empty_directory_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    frame = long_frame([("mean", "x", 0, 1.0, 0.5), ("mean", "x", 1, 2.0, 0.25)])
    written = write_runs(frame, out)
    assert event_files(out) == written
    assert_same_series(accumulator_series(out, ["mean"]), frame_series(frame))
    assert leftovers(tmp_path) == []
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()


def test_new_directory_gets_ordinary_permissions(tmp_path: Path) -> None:
    write_runs(long_frame([("a/b", "x", 0, 1.0, 1.0)]), tmp_path / "out")
    for directory in (tmp_path / "out", tmp_path / "out" / "a", tmp_path / "out" / "a" / "b"):
        assert directory.stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_relative_directory_and_returned_paths(tmp_path: Path) -> None:
    # the tests run in tmp_path (conftest): a relative output names paths relative to it
    written = write_runs(long_frame([("mean", "x", 0, 1.0, 1.0)]), Path("rel"))
    assert len(written) == 1
    assert not written[0].is_absolute()
    assert written[0].parent == Path("rel/mean")
    assert (tmp_path / written[0]).is_file()


def test_a_file_in_the_way_and_a_missing_parent(tmp_path: Path) -> None:
    frame = long_frame([("mean", "x", 0, 1.0, 1.0)])
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputWriteError) as raised:
        write_runs(frame, tmp_path / "file")
    assert (
        str(raised.value) == f"cannot write {tmp_path / 'file'}: it exists and is not a directory"
    )
    missing = tmp_path / "missing" / "out"
    with pytest.raises(OutputWriteError) as raised:
        write_runs(frame, missing)
    assert str(raised.value) == (
        f"cannot write {missing}: directory {tmp_path / 'missing'} does not exist"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = long_frame(
        [(run, "x", s, 1.0 + s, float(s)) for run in ("mean", "std") for s in range(5)]
    )
    seen: list[Path] = []

    class FullDisk(tfevents.RecordWriter):
        writes = 0

        def write(self, data: bytes) -> None:
            FullDisk.writes += 1
            if FullDisk.writes == 9:  # in the second run's file
                seen.append(Path(self._writer.name))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            super().write(data)

    monkeypatch.setattr(tfevents, "RecordWriter", FullDisk)
    out = tmp_path / "out"
    with pytest.raises(OutputWriteError) as raised:
        write_runs(frame, out)
    assert str(raised.value) == f"cannot write {out}: {os.strerror(errno.ENOSPC)}"
    # it was writing std's file in the temporary sibling, which is gone now
    (failing,) = seen
    temporary = failing.parent.parent
    assert failing.parent.name == "std"
    assert temporary.parent == tmp_path
    assert temporary.name.startswith(".out.tbexport-tmp-")
    assert not temporary.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    # and an existing empty directory is left as it was
    out.mkdir()
    FullDisk.writes = 0
    with pytest.raises(OutputWriteError):
        write_runs(frame, out)
    assert out.is_dir()
    assert list(out.iterdir()) == []
    assert leftovers(tmp_path) == []


def test_unexpected_error_also_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", broken)  # (interrupted as the runs move into place)
    with pytest.raises(KeyboardInterrupt):
        write_runs(long_frame([("mean", "x", 0, 1.0, 1.0)]), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_unobserved_runs_are_not_written(tmp_path: Path) -> None:
    frame = long_frame([("mean", "x", 0, 1.0, 1.0), ("std", "x", 0, 1.0, 2.0)])
    frame = frame[frame["run"] == "std"]
    assert list(frame["run"].cat.categories) == ["mean", "std"]
    written = write_runs(frame, tmp_path / "out")
    assert [p.parent.name for p in written] == ["std"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["std"]


def test_runs_in_the_order_they_first_appear(tmp_path: Path) -> None:
    frame = long_frame([("b", "x", 0, 1.0, 1.0), ("a", "x", 0, 1.0, 2.0), ("b", "x", 1, 2.0, 3.0)])
    frame["run"] = frame["run"].cat.reorder_categories(["a", "b"])
    written = write_runs(frame, tmp_path / "out")
    assert [p.parent.name for p in written] == ["b", "a"]
    assert_same_series(accumulator_series(tmp_path / "out", ["a", "b"]), frame_series(frame))


def test_point_without_a_run(tmp_path: Path) -> None:
    frame = long_frame([("a", "x", 0, 1.0, 1.0), ("b", "x", 0, 1.0, 2.0)])
    frame.loc[1, "run"] = np.nan
    with pytest.raises(ValueError, match="without a run name"):
        write_runs(frame, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_missing_column(tmp_path: Path) -> None:
    frame = long_frame([("mean", "x", 0, 1.0, 1.0)]).rename(columns={"wall_time": "relative_time"})
    with pytest.raises(ValueError, match="'wall_time'"):
        write_runs(frame, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


# ---- TensorBoard's Rust data server (what `tensorboard --logdir` uses by default) ----


def rust_series(logdir: Path, tmp_path: Path) -> Series:
    """Every scalar point the data server loads, read over its gRPC API."""
    grpc = pytest.importorskip("grpc")
    server = pytest.importorskip("tensorboard_data_server")
    from tensorboard.data.proto import data_provider_pb2 as pb
    from tensorboard.data.proto import data_provider_pb2_grpc as pb_grpc

    binary = server.server_binary()
    if not binary or not os.path.exists(binary):
        pytest.skip("the tensorboard-data-server binary is not installed")
    port_file, log = tmp_path / "port", tmp_path / "server.log"
    command = [binary, "--logdir", str(logdir), "--reload", "once", "--port", "0"]
    command += ["--port-file", str(port_file), "--host", "127.0.0.1"]
    command += ["--samples-per-plugin", "scalars=all", "-v"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while "Finished load cycle" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        with grpc.insecure_channel(f"127.0.0.1:{int(port_file.read_text())}") as channel:
            stub = pb_grpc.TensorBoardDataProviderStub(channel)
            scalars = pb.PluginFilter(plugin_name="scalars")
            listing = stub.ListScalars(pb.ListScalarsRequest(plugin_filter=scalars))
            result: Series = {}
            for run in listing.runs:
                request = pb.ReadScalarsRequest(
                    plugin_filter=scalars,
                    run_tag_filter=pb.RunTagFilter(
                        runs=pb.RunFilter(names=[run.run_name]),
                        tags=pb.TagFilter(names=[t.tag_name for t in run.tags]),
                    ),
                    downsample=pb.Downsample(num_points=10**12),
                )
                for read_run in stub.ReadScalars(request).runs:
                    for tag in read_run.tags:
                        result[(read_run.run_name, tag.tag_name)] = (
                            np.array(tag.data.step, np.int64),
                            np.array(tag.data.wall_time, np.float64),
                            np.array(tag.data.value, np.float64),
                        )
            return result
    finally:
        process.kill()
        process.wait()


def test_rust_data_server_reads_every_point(tmp_path: Path, reduced: pd.DataFrame) -> None:
    names = {"mean": "avg/mean", "std": "spread/std"}  # nested run names too
    rows = [
        (names[str(run)], str(tag), int(step), float(wall_time), float(value))
        for run, tag, step, wall_time, value in reduced[
            ["run", "tag", "step", "wall_time", "value"]
        ].itertuples(index=False, name=None)
    ]
    specials = [math.nan, math.inf, -math.inf, -0.0, 0.1, 1e300]
    rows += [("special", "x", i, 5.0 + i, v) for i, v in enumerate(specials)]
    frame = long_frame(rows)
    write_runs(frame, tmp_path / "out")
    got = rust_series(tmp_path / "out", tmp_path)
    expected = frame_series(frame)
    assert len(expected) == 5
    assert len(got[("special", "x")][0]) == len(specials)
    assert_same_series(got, expected)
