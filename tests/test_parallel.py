"""Reading on several threads or processes gives exactly what one reader reads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

import tbexport
from tbexport import decode, load, parallel, placing

from .builders import session_start, simple, write_events


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for version in range(12):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(200) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    return root


@pytest.mark.parametrize("workers", ["prefetch", "threads", "processes"])
def test_parallel_read_equals_serial(
    sweep: Path, workers: str, monkeypatch: pytest.MonkeyPatch, prefetch_takes: list[bool]
) -> None:
    """prefetch: small files scanned on C threads, taken by this one; threads: each run
    read on a Python thread (as big files are); processes: without the C scanner."""
    serial = tbexport.read_scalars(sweep, jobs=1)
    monkeypatch.setattr(parallel, "PROCESSES_MIN_BYTES", 0)
    monkeypatch.setattr(load, "scans_without_gil", lambda: workers != "processes")
    if workers == "threads":
        monkeypatch.setattr(load, "prefetcher", lambda *args, **kwargs: None)
    pools: list[int] = []
    real_pool = parallel._process_pool

    def process_pool(count: int) -> Executor:
        pools.append(count)
        return real_pool(count)

    monkeypatch.setattr(parallel, "_process_pool", process_pool)
    readers: set[str] = set()
    real_read_run = load.read_run

    def read_run(*args: Any, **kwargs: Any) -> load.RunScalars:
        readers.add(threading.current_thread().name)
        return real_read_run(*args, **kwargs)

    if workers != "processes":  # (processes would have to pickle it)
        monkeypatch.setattr(load, "read_run", read_run)
    seen: list[int] = []
    data = tbexport.load_scalars(
        sweep, jobs=2, progress=seen.append, progress_total=lambda total: seen.append(-total)
    )
    pd.testing.assert_frame_equal(serial, data.frame)
    assert len(serial) == 12 * 200 * 3
    assert list(serial["run"].cat.categories) == [f"version_{v}" for v in range(12)]
    total = sum(f.stat().st_size for f in sweep.rglob("events.out.*"))
    assert seen[0] == -total and sum(seen[1:]) == total  # the total first, once
    if workers == "prefetch":  # every file was scanned ahead; this thread took them
        assert pools == [] and readers == {threading.current_thread().name}
        assert prefetch_takes == [True] * 12
    elif workers == "threads":
        assert pools == [] and readers and readers <= {"tbexport-0", "tbexport-1"}
    else:  # the reads ran in the pool's processes
        assert pools == [2] and readers == set()


def test_an_unreadable_file_is_reported_with_worker_processes(
    sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Choosing processes by the input's size must not stat the file first and fail."""
    monkeypatch.setattr(parallel, "PROCESSES_MIN_BYTES", 0)
    monkeypatch.setattr(load, "scans_without_gil", lambda: False)
    broken = sweep / "version_3" / "events.out.tfevents.9"
    broken.symlink_to(sweep / "gone")
    data = load.load_scalars(sweep, jobs=2)
    assert [str(c) for c in data.corruptions] == [
        f"{broken}: cannot be read (No such file or directory), skipped"
    ]
    assert len(data.frame) == 12 * 200 * 3


def test_threads_return_results_in_order_and_raise_the_first_failure() -> None:
    def double(item: int) -> int:
        return 2 * item

    finished: list[int] = []
    results = parallel.map_in_order(double, range(60), jobs=3, threads=True, done=finished.append)
    assert list(results) == [2 * i for i in range(60)]
    assert sorted(finished) == [2 * i for i in range(60)]  # each once, as it finished

    def fail_at_7_and_40(item: int) -> int:
        if item in (7, 40):
            raise ValueError(f"item {item}")
        return item

    def stop_at_10(result: int) -> None:
        if result == 10:
            raise KeyboardInterrupt  # e.g. from a progress bar

    with pytest.raises(KeyboardInterrupt):
        list(parallel.map_in_order(double, range(60), jobs=2, threads=True, done=stop_at_10))

    with pytest.raises(ValueError, match=r"^item 7$"):
        list(parallel.map_in_order(fail_at_7_and_40, range(60), jobs=2, threads=True))


def test_cli_jobs_and_no_verify(sweep: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tbexport.cli import cli

    out = tmp_path / "s.csv"
    result = CliRunner().invoke(cli, [str(sweep), "-o", str(out), "-j", "2", "--no-verify", "-q"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 12 * 200 * 3
    bad = CliRunner().invoke(cli, [str(sweep), "-j", "0"])
    assert bad.exit_code == 2 and "0 is not in the range x>=1" in bad.stderr
    huge = CliRunner().invoke(cli, [str(sweep), "-o", str(out), "-j", "3000000000", "-q"])
    assert huge.exit_code == 0, huge.output  # (more than a C int of threads asked: capped)
    assert len(pd.read_csv(out)) == 12 * 200 * 3


def _process_id(item: int) -> int:
    return os.getpid()


def test_processes_start_only_for_enough_input() -> None:
    small = parallel.map_in_order(
        _process_id, range(4), jobs=2, sizes=lambda items: [10] * len(items)
    )
    assert set(small) == {os.getpid()}
    big = parallel.map_in_order(
        _process_id, range(4), jobs=2, sizes=lambda items: [1 << 30] * len(items)
    )
    assert os.getpid() not in set(big)


def test_threads_take_items_while_a_generator_still_produces_them() -> None:
    def produce(fail: bool) -> Iterator[int]:
        yield from range(10)
        if fail:
            raise RuntimeError("the walk failed")

    def double(item: int) -> int:
        return 2 * item

    assert list(parallel.map_in_order(double, produce(False), jobs=2, threads=True)) == [
        2 * i for i in range(10)
    ]
    with pytest.raises(RuntimeError, match="the walk failed"):
        list(parallel.map_in_order(double, produce(True), jobs=2, threads=True))

    def fail_at_3(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return item

    # a failing item before the generator's own error comes first, as in order
    with pytest.raises(ValueError, match="item 3"):
        list(parallel.map_in_order(fail_at_3, produce(True), jobs=2, threads=True))


def test_runs_come_out_in_find_runs_order(tmp_path: Path) -> None:
    # the walk meets a/b before a-x; natural order of the names puts a-x first
    for name in ("a/b", "a-x", "a/c/version_10", "a/c/version_9", "z"):
        write_events(tmp_path / name / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    expected = [run.name for run in tbexport.find_runs(tmp_path)]
    assert expected == ["a-x", "a/b", "a/c/version_9", "a/c/version_10", "z"]
    for jobs in (1, 2):
        data = tbexport.load_scalars(tmp_path, jobs=jobs)
        assert [run.name for run in data.runs] == expected
        assert list(data.frame["run"].cat.categories) == expected
        assert data.frame["run"].astype(str).tolist() == expected


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_columns_are_joined_in_stretches_on_threads(
    jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "_JOIN_ON_THREADS_MIN", 0)  # split even small columns
    rng = np.random.default_rng(jobs)
    pieces = [rng.random(int(n)) for n in rng.integers(0, 50, 40)]
    steps = [np.arange(len(p), dtype=np.int64) for p in pieces]
    joined = load._join_columns(
        {"value": list(pieces), "step": list(steps), "none": []},
        {"value": np.float64, "step": np.int64, "none": np.float64},
        jobs,
    )
    assert np.array_equal(joined["value"], np.concatenate(pieces))
    assert np.array_equal(joined["step"], np.concatenate(steps))
    assert joined["step"].dtype == np.int64 and len(joined["none"]) == 0


def test_a_huge_jobs_value_joins_on_no_more_threads_than_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-j 99999999 made a list of 10**8 cuts (the process grew to 24 GB on 3,000 runs)."""
    monkeypatch.setattr(load, "_JOIN_ON_THREADS_MIN", 0)
    threads: list[int] = []
    real_map = load.map_in_order

    def map_in_order(*args: Any, jobs: int, **kwargs: Any) -> Any:
        threads.append(jobs)
        return real_map(*args, jobs=jobs, **kwargs)

    monkeypatch.setattr(load, "map_in_order", map_in_order)
    pieces = [np.full(n, float(n)) for n in range(1, 41)]
    joined = load._join_columns({"value": pieces}, {"value": np.float64}, 10**6)
    assert np.array_equal(joined["value"], np.concatenate(pieces))
    assert threads == [40]


def test_one_file_run_columns_are_used_without_a_copy() -> None:
    column = np.arange(100, dtype=np.float64)
    views = [column[0:30], column[30:31], column[31:100]]
    joined = load._join_columns({"value": views}, {"value": np.float64}, 2)
    assert np.shares_memory(joined["value"], column) and len(joined["value"]) == 100
    shuffled = [column[30:31], column[0:30], column[31:100]]  # not in order: copied
    joined = load._join_columns({"value": shuffled}, {"value": np.float64}, 2)
    assert not np.shares_memory(joined["value"], column)
    assert joined["value"].tolist() == [30.0, *range(30), *range(31, 100)]


def test_an_interrupt_of_the_calling_thread_stops_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[int] = []

    def slow(item: int) -> int:
        started.append(item)
        time.sleep(0.002)
        return item

    def interrupted_wait(pool: list[threading.Thread]) -> None:
        time.sleep(0.05)
        raise KeyboardInterrupt  # Ctrl-C while waiting

    monkeypatch.setattr(parallel, "_wait_for", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        list(parallel.map_in_order(slow, range(2000), jobs=2, threads=True))
    time.sleep(0.1)
    stopped_at = len(started)
    time.sleep(0.1)
    assert len(started) == stopped_at < 500  # nothing taken after the interrupt


def _mixed_tree(root: Path) -> Path:
    """Runs of every shape the placing must keep in order: restarts, two files, a
    purge, no points at all, a CSVLogger run, tags that differ from run to run."""
    for version in range(6):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(50) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    write_events(
        root / "version_6" / "events.out.tfevents.1",
        [simple("loss", s, s) for s in range(30)] + [simple("loss", 10, -1.0)],  # a restart
    )
    write_events(root / "version_6" / "events.out.tfevents.2", [simple("acc", 3, 0.5)])
    write_events(
        root / "version_7" / "events.out.tfevents.1",
        [simple("loss", s, s) for s in range(20)] + [session_start(5), simple("loss", 5, 9.0)],
    )
    write_events(root / "version_8" / "events.out.tfevents.1", [session_start(0)])  # no point
    (root / "version_9").mkdir()
    (root / "version_9" / "metrics.csv").write_text("epoch,step,val_loss\n0,9,0.25\n1,19,0.5\n")
    write_events(root / "version_10" / "events.out.tfevents.1", [simple("other", 1, 2.0)])
    return root


@pytest.mark.parametrize("jobs", [1, 2])
def test_runs_placed_in_shared_columns_read_as_joined_ones(
    tmp_path: Path, jobs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _mixed_tree(tmp_path)
    placed = tbexport.read_scalars(root, jobs=jobs)
    if decode.scans_without_gil():  # threads: the columns are views of one reservation
        step = placed["step"].to_numpy()
        assert isinstance(step.base, np.ndarray) and len(step.base) > len(placed)
    monkeypatch.setattr(placing, "_RESERVE_MAX_BYTES", 0)  # nothing reserved: joined
    joined = tbexport.read_scalars(root, jobs=jobs)
    assert joined["step"].to_numpy().base is None or len(joined) == len(
        joined["step"].to_numpy().base
    )
    pd.testing.assert_frame_equal(placed, joined)
    # the restart keeps loss 0..9 then 10; the purge keeps 0..4 then 5; epoch is a metric
    assert len(placed) == 6 * 150 + (10 + 1 + 1) + (5 + 1) + 0 + 2 * 2 + 1


@pytest.mark.parametrize("bound", [1, 60])
def test_a_file_grown_past_its_reservation_stops_the_placing(
    tmp_path: Path, bound: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _mixed_tree(tmp_path)
    expected = tbexport.read_scalars(root, jobs=2)
    # As if every file had been smaller when its size was taken. 12 files of 60 points
    # at most: the first four runs (150 points each) are placed, the fifth does not fit.
    monkeypatch.setattr(placing, "max_points", lambda path, size: bound)
    placed_runs: list[int] = []
    real_series_of = placing.RunPlacer.series_of

    def series_of(self: placing.RunPlacer, placed: placing.Placed) -> Any:
        placed_runs.append(placed.start)
        return real_series_of(self, placed)

    monkeypatch.setattr(placing.RunPlacer, "series_of", series_of)
    for jobs in (1, 2):
        data = tbexport.load_scalars(root, jobs=jobs)
        pd.testing.assert_frame_equal(data.frame, expected)
        assert not np.shares_memory(data.frame["value"].to_numpy(), expected["value"].to_numpy())
    if decode.scans_without_gil():  # placed runs are joined from their places
        assert placed_runs == ([] if bound == 1 else [0, 150, 300, 450] * 2)


def test_no_file_holds_more_points_than_its_bound(tmp_path: Path) -> None:
    # the densest encodings there are: many untagged values in one record (7 bytes
    # each), and a CSVLogger row of one-character cells
    dense = Event(step=1, summary=Summary(value=[Summary.Value(simple_value=1.0)] * 1000))
    path = write_events(tmp_path / "run" / "events.out.tfevents.1", [dense])
    csv = tmp_path / "csv" / "metrics.csv"
    csv.parent.mkdir()
    csv.write_text(
        "step," + ",".join(f"m{i}" for i in range(50)) + "\n" + ("1" + ",1" * 50 + "\n") * 20
    )
    for file, points in ((path, 1000), (csv, 1000)):
        read = decode.read_event_file(file)
        assert sum(len(s.steps) for s in read.series.values()) == points
        assert points <= decode.max_points(file, file.stat().st_size) < 1.2 * points + 20


def test_more_tags_than_one_byte_codes_stop_the_placing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for run in range(3):  # 150 tags in all: codes past int8
        events = [simple(f"r{run}/t{t}", s, run + t + s) for t in range(50) for s in range(3)]
        write_events(tmp_path / f"version_{run}" / "events.out.tfevents.1", events)
    read = tbexport.read_scalars(tmp_path, jobs=2)
    monkeypatch.setattr(placing, "_RESERVE_MAX_BYTES", 0)
    pd.testing.assert_frame_equal(read, tbexport.read_scalars(tmp_path, jobs=2))
    assert len(read["tag"].cat.categories) == 150 and read["tag"].cat.codes.dtype == np.int16
    assert read["tag"].astype(str).iloc[-1] == "r2/t49" and read["value"].iloc[-1] == 2 + 49 + 2


def test_a_refused_reservation_leaves_the_frame_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _mixed_tree(tmp_path)
    expected = tbexport.read_scalars(root, jobs=2)

    class Refusing:  # numpy, but with no address space for big arrays
        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

        def empty(self, rows: int, dtype: Any = float) -> np.ndarray:
            if rows > 100:
                raise MemoryError("refused")
            return np.empty(rows, dtype)

    monkeypatch.setattr(placing, "np", Refusing())
    for jobs in (1, 2):
        read = tbexport.read_scalars(root, jobs=jobs)
        pd.testing.assert_frame_equal(read, expected)
        assert read["step"].to_numpy().base is None or len(read["step"].to_numpy().base) == len(
            read
        )


def test_a_huge_jobs_starts_no_more_threads_than_help(tmp_path: Path) -> None:
    from benchmarks.generate import write_sweep

    write_sweep(tmp_path / "logs", 200, 2, 2_000)
    write_sweep(tmp_path / "warm", 2, 1, 10)
    tbexport.read_scalars(tmp_path / "warm", jobs=1)  # (pools that stay, as Arrow's do)
    before = len(os.listdir("/proc/self/task"))
    most = [0]
    reading = threading.Event()

    def count() -> None:  # the process's threads, C ones included
        while not reading.is_set():
            most[0] = max(most[0], len(os.listdir("/proc/self/task")))

    counter = threading.Thread(target=count)
    counter.start()
    try:
        frame = tbexport.read_scalars(tmp_path / "logs", jobs=300_000)
    finally:
        reading.set()
        counter.join()
    assert len(frame) == 200 * 2 * 2_000
    cores = len(os.sched_getaffinity(0))
    assert most[0] - before <= 8 * cores + 2  # (and the counter, and a spare)
