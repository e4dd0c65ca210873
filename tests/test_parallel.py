"""Reading on several threads gives exactly what one reader reads."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary

import tbexport
from tbexport import load, native, parallel, tuning
from tbexport.model import Corruption
from tbexport.reading import frame

from .builders import (
    content_tensor,
    record_bytes,
    scalars_metadata,
    session_start,
    simple,
    tensor_event,
    write_events,
)
from .test_fast_path import _lightning_like_file


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for version in range(12):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(200) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    return root


@pytest.mark.parametrize("native_reader", [True, False], ids=["c", "python"])
def test_parallel_read_equals_serial(sweep: Path, native_reader: bool) -> None:
    """c: each run read on a pool thread; python: protobuf holds the GIL, so the runs
    are read on the calling thread alone, whatever ``jobs`` says."""
    if native_reader and native.codec is None:
        pytest.skip("the C extension is not built")
    with tuning.tuned(native=native_reader):
        serial = tbexport.read_scalars(sweep, jobs=1)
        readers: set[str] = set()
        seen: list[int] = []

        def progress(done: int) -> None:  # called by the thread that reads
            readers.add(threading.current_thread().name)
            seen.append(done)

        data = tbexport.load_scalars(
            sweep, jobs=2, progress=progress, progress_total=lambda total: seen.append(-total)
        )
    pd.testing.assert_frame_equal(serial, data.frame)
    assert len(serial) == 12 * 200 * 3
    assert list(serial["run"].cat.categories) == [f"version_{v}" for v in range(12)]
    first_two = serial[serial["run"] == "version_5"]["value"].iloc[:2].tolist()
    assert first_two == [5.0, float(np.float32(5 + 1 / 7))]  # m0 at steps 0 and 1
    total = sum(f.stat().st_size for f in sweep.rglob("events.out.*"))
    assert seen[0] == -total and sum(seen[1:]) == total  # the total first, once
    if native_reader:
        assert readers and readers <= {"tbexport_0", "tbexport_1"}
    else:
        assert readers == {threading.current_thread().name}


def test_an_unreadable_file_is_reported_when_read_on_threads(sweep: Path) -> None:
    broken = sweep / "version_3" / "events.out.tfevents.9"
    broken.symlink_to(sweep / "gone")
    data = load.load_scalars(sweep, jobs=2)
    assert [str(c) for c in data.corruptions] == [
        f"{broken}: cannot be read (No such file or directory), skipped"
    ]
    assert len(data.frame) == 12 * 200 * 3


def test_threads_return_results_in_order_and_raise_the_first_failure() -> None:
    threads: set[str] = set()

    def double(item: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.001 * (item % 3))  # (finishing out of order)
        return 2 * item

    assert list(parallel.map_in_order(double, range(60), jobs=3)) == [2 * i for i in range(60)]
    assert threads and threads <= {"tbexport_0", "tbexport_1", "tbexport_2"}
    threads.clear()
    assert list(parallel.map_in_order(double, range(5), jobs=1)) == [0, 2, 4, 6, 8]
    assert threads == {threading.current_thread().name}  # one job: on the calling thread
    assert list(parallel.map_in_order(double, [], jobs=4)) == []

    started: list[int] = []

    def fail_at_7_and_40(item: int) -> int:
        started.append(item)
        if item in (7, 40):
            raise ValueError(f"item {item}")
        time.sleep(0.002)
        return item

    with pytest.raises(ValueError, match=r"^item 7$"):
        list(parallel.map_in_order(fail_at_7_and_40, range(2000), jobs=2))
    time.sleep(0.05)
    assert len(started) < 100 and 40 not in started  # the items after it dropped


def test_a_progress_error_stops_the_reading_of_the_other_runs(sweep: Path) -> None:
    """Ctrl-C in a progress bar, on a reading thread: raised, and no run started after."""
    calls: list[int] = []

    def progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    for _ in range(200):  # (more runs than can be in flight)
        version = len(list(sweep.iterdir()))
        write_events(sweep / f"version_{version}" / "events.out.tfevents.1", [simple("x", 0, 1)])
    with pytest.raises(KeyboardInterrupt):
        load.load_scalars(sweep, jobs=2, progress=progress)
    time.sleep(0.05)
    assert 2 <= len(calls) <= 4 * 2 + 2  # what was in flight, at most


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


def test_at_most_four_items_a_job_are_in_flight() -> None:
    """A long ``items`` is taken as the threads go, not all at once."""
    taken: list[int] = []
    release = threading.Event()

    def produce() -> Iterator[int]:
        for item in range(1000):
            taken.append(item)
            yield item

    def wait(item: int) -> int:
        release.wait(5)
        return item

    results = parallel.map_in_order(wait, produce(), jobs=3)
    first = threading.Timer(0.1, release.set)
    first.start()
    assert next(results) == 0
    assert len(taken) <= 4 * 3 + 1  # taken before the first result was in
    assert list(results) == list(range(1, 1000))
    first.join()


def test_threads_take_items_while_a_generator_still_produces_them() -> None:
    def produce(fail: bool) -> Iterator[int]:
        yield from range(10)
        if fail:
            raise RuntimeError("the walk failed")

    def double(item: int) -> int:
        return 2 * item

    assert list(parallel.map_in_order(double, produce(False), jobs=2)) == [2 * i for i in range(10)]
    with pytest.raises(RuntimeError, match="the walk failed"):
        list(parallel.map_in_order(double, produce(True), jobs=2))


def test_a_failing_item_comes_before_a_later_error_of_the_items() -> None:
    def produce() -> Iterator[int]:
        yield from range(10)
        raise RuntimeError("the walk failed")

    def fail_at_3(item: int) -> int:
        if item == 3:
            raise ValueError("item 3")
        return item

    with pytest.raises(ValueError, match="item 3"):
        list(parallel.map_in_order(fail_at_3, produce(), jobs=2))


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


@pytest.fixture
def join_on_threads() -> Iterator[None]:
    """Even small columns joined on threads."""
    with tuning.tuned(join_threads_points=0):
        yield


@pytest.mark.usefixtures("join_on_threads")
@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_columns_are_joined_in_stretches_on_threads(jobs: int) -> None:
    rng = np.random.default_rng(jobs)
    pieces = [rng.random(int(n)) for n in rng.integers(0, 50, 40)]
    steps = [np.arange(len(p), dtype=np.int64) for p in pieces]
    joined = frame.join_columns(
        {"value": list(pieces), "step": list(steps), "none": []},
        {"value": np.float64, "step": np.int64, "none": np.float64},
        jobs,
    )
    assert np.array_equal(joined["value"], np.concatenate(pieces))
    assert np.array_equal(joined["step"], np.concatenate(steps))
    assert joined["step"].dtype == np.int64 and len(joined["none"]) == 0


@pytest.mark.usefixtures("join_on_threads")
def test_a_huge_jobs_value_joins_on_no_more_threads_than_pieces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """-j 99999999 made a list of 10**8 cuts (the process grew to 24 GB on 3,000 runs)."""
    threads: list[int] = []
    real_map = frame.map_in_order

    def map_in_order(*args: Any, jobs: int, **kwargs: Any) -> Any:
        threads.append(jobs)
        return real_map(*args, jobs=jobs, **kwargs)

    monkeypatch.setattr(frame, "map_in_order", map_in_order)
    pieces = [np.full(n, float(n)) for n in range(1, 41)]
    joined = frame.join_columns({"value": pieces}, {"value": np.float64}, 10**6)
    assert np.array_equal(joined["value"], np.concatenate(pieces))
    assert threads == [40]


def test_one_file_run_columns_are_used_without_a_copy() -> None:
    column = np.arange(100, dtype=np.float64)
    views = [column[0:30], column[30:31], column[31:100]]
    joined = frame.join_columns({"value": views}, {"value": np.float64}, 2)
    assert np.shares_memory(joined["value"], column) and len(joined["value"]) == 100
    shuffled = [column[30:31], column[0:30], column[31:100]]  # not in order: copied
    joined = frame.join_columns({"value": shuffled}, {"value": np.float64}, 2)
    assert not np.shares_memory(joined["value"], column)
    assert joined["value"].tolist() == [30.0, *range(30), *range(31, 100)]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_an_interrupt_of_the_calling_thread_stops_the_workers() -> None:
    """Ctrl-C while the calling thread waits for a result: no item is started after."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    started: list[int] = []

    def slow(item: int) -> int:
        started.append(item)
        time.sleep(0.002)
        return item

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt):
            list(parallel.map_in_order(slow, range(2000), jobs=2))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
    time.sleep(0.05)
    stopped_at = len(started)
    time.sleep(0.1)
    assert 0 < len(started) == stopped_at < 500  # nothing taken after the interrupt


def _mixed_sweep(root: Path) -> Path:
    """Runs of every kind the reading handles: plain, damaged, truncated, with records
    only protobuf decodes (hparams, restarts, TF2 tensors), empty, several files, a
    CSVLogger run, a run with no point at all, tags that differ from run to run."""
    for version in range(6):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(300) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    damaged = record_bytes(simple("loss", s, s / 3) for s in range(50))
    middle = len(damaged) // 2
    flipped = damaged[:middle] + bytes([damaged[middle] ^ 0xFF]) + damaged[middle + 1 :]
    (root / "version_2" / "events.out.tfevents.1").write_bytes(flipped + b"\x07" * 9)
    second = _lightning_like_file(root / "lightning")  # a second file for version_3
    second.rename(root / "version_3" / "events.out.tfevents.2")
    (root / "lightning").rmdir()
    restarted = [simple("loss", s, s) for s in range(20)] + [session_start(10)]
    restarted += [simple("loss", s, -s) for s in range(10, 15)]
    tensors = (content_tensor(s / 4, "double") for s in range(5))
    restarted += [
        tensor_event("acc", s, t, metadata=scalars_metadata()) for s, t in enumerate(tensors)
    ]
    write_events(root / "version_4" / "events.out.tfevents.2", restarted)
    (root / "version_5" / "events.out.tfevents.0").write_bytes(b"")
    write_events(root / "version_6" / "events.out.tfevents.1", [session_start(0)])  # no point
    (root / "version_7").mkdir()
    (root / "version_7" / "metrics.csv").write_text("epoch,step,val_loss\n0,9,0.25\n1,19,0.5\n")
    write_events(root / "version_8" / "events.out.tfevents.1", [simple("other", 1, 2.0)])
    return root


@pytest.mark.parametrize(
    "changes",
    [{}, {"whole_file_bytes": 0, "window_bytes": 256}, {"native": False}],
    ids=["c", "c-windows", "python"],
)
def test_a_mixed_sweep_read_on_threads_equals_the_serial_read(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    if changes.get("native", True) and native.codec is None:
        pytest.skip("the C extension is not built")
    root = _mixed_sweep(tmp_path / "logs")
    serial = load.load_scalars(root, jobs=1)  # (the default tuning)
    seen: list[int] = []
    with tuning.tuned(**changes):
        data = load.load_scalars(root, jobs=3, progress=seen.append)
    pd.testing.assert_frame_equal(serial.frame, data.frame)
    assert data.corruptions == serial.corruptions and len(data.corruptions) == 1
    assert data.truncated == serial.truncated and list(data.truncated.values()) == [9]
    assert data.hparams == serial.hparams and data.hparams["version_3"]["lr"] == 0.01
    assert (
        sum(seen)
        == sum(f.stat().st_size for f in root.rglob("*") if f.name.startswith("events.out."))
        + (root / "version_7" / "metrics.csv").stat().st_size
    )
    restarted = data.frame[data.frame["run"] == "version_4"]
    loss = restarted[restarted["tag"] == "loss"]
    assert loss["step"].tolist() == list(range(15))  # steps 10.. of the first session went
    assert loss["value"].tolist()[10:] == [-10.0, -11.0, -12.0, -13.0, -14.0]
    assert restarted[restarted["tag"] == "acc"]["value"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    csv_run = data.frame[data.frame["run"] == "version_7"]
    assert csv_run["value"].tolist() == [0.0, 1.0, 0.25, 0.5]  # epoch, then val_loss
    assert "version_6" not in set(data.frame["run"]) and len(data.runs) == 9


def test_strict_stops_at_a_damaged_file_among_many(tmp_path: Path) -> None:
    root = _mixed_sweep(tmp_path / "logs")
    for jobs in (1, 3):
        with pytest.raises(
            tbexport.CorruptEventFileError,
            match=r"version_2/events.out.tfevents.1: .* at byte \d+",
        ):
            load.load_scalars(root, jobs=jobs, strict=True)


def test_a_file_gone_since_the_walk_is_reported_as_in_a_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _mixed_sweep(tmp_path / "logs")
    going = root / "version_1" / "events.out.tfevents.1"
    contents = going.read_bytes()
    real_find_runs = load.find_runs

    def find_then_remove(paths: Any, **options: Any) -> list[Any]:
        runs = real_find_runs(paths, **options)
        going.unlink()
        return runs

    monkeypatch.setattr(load, "find_runs", find_then_remove)
    serial = load.load_scalars(root, jobs=1)
    going.write_bytes(contents)
    data = load.load_scalars(root, jobs=3)
    gone = Corruption(str(going), 0, 0, "cannot be read (No such file or directory)", "file")
    assert data.corruptions[0] == serial.corruptions[0] == gone
    assert str(gone) == f"{going}: cannot be read (No such file or directory), skipped"
    pd.testing.assert_frame_equal(serial.frame, data.frame)
    assert "version_1" not in set(data.frame["run"])  # its only file is gone
    going.write_bytes(contents)
    with pytest.raises(tbexport.UnreadableFileError, match=r"cannot read .*version_1.*: No such"):
        load.load_scalars(root, jobs=3, strict=True)


def test_the_densest_encodings_read_every_point(tmp_path: Path) -> None:
    # many untagged values in one record (7 bytes each), and a CSVLogger row of
    # one-character cells
    dense = Event(step=1, summary=Summary(value=[Summary.Value(simple_value=1.0)] * 1000))
    write_events(tmp_path / "run" / "events.out.tfevents.1", [dense])
    csv = tmp_path / "csv" / "metrics.csv"
    csv.parent.mkdir()
    csv.write_text(
        "step," + ",".join(f"m{i}" for i in range(50)) + "\n" + ("1" + ",1" * 50 + "\n") * 20
    )
    frame = load.load_scalars(tmp_path, jobs=2, keep_duplicates=True).frame
    counts = frame.groupby("run", observed=True).size().to_dict()
    assert counts == {"csv": 1000, "run": 1000}
    assert (frame["value"] == 1.0).all()


def test_more_tags_than_one_byte_codes_read_on_threads(tmp_path: Path) -> None:
    for run in range(3):  # 150 tags in all: codes past int8
        events = [simple(f"r{run}/t{t}", s, run + t + s) for t in range(50) for s in range(3)]
        write_events(tmp_path / f"version_{run}" / "events.out.tfevents.1", events)
    read = tbexport.read_scalars(tmp_path, jobs=2)
    pd.testing.assert_frame_equal(read, tbexport.read_scalars(tmp_path, jobs=1))
    assert len(read["tag"].cat.categories) == 150 and read["tag"].cat.codes.dtype == np.int16
    assert read["tag"].astype(str).iloc[-1] == "r2/t49" and read["value"].iloc[-1] == 2 + 49 + 2


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


def test_chunks_keep_the_order_and_stop_at_the_first_failure() -> None:
    from tbexport.parallel import map_in_order

    assert list(map_in_order(lambda n: n * n, range(100), jobs=3, chunk=7)) == [
        n * n for n in range(100)
    ]
    started: list[int] = []

    def work(n: int) -> int:
        started.append(n)
        if n in (50, 80):
            raise ValueError(f"item {n}")
        time.sleep(0.001)
        return n

    with pytest.raises(ValueError, match="item 50"):
        list(map_in_order(work, range(1000), jobs=2, chunk=10))
    time.sleep(0.05)
    # the chunks in flight stop at their next item: at most what was in flight started
    assert 50 in started and 80 not in started and len(started) <= 4 * 2 * 10
