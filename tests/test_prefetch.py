"""Small files read and scanned ahead on C threads give exactly what one reader reads."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tbexport
from tbexport import decode, load
from tbexport.records import Corruption

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

fastscan = pytest.importorskip("tbexport._fastscan", reason="needs the C extension")
if not hasattr(fastscan, "Prefetch"):
    pytest.skip("no prefetching on this platform", allow_module_level=True)


def _mixed_sweep(root: Path) -> Path:
    """Runs of every kind the general path handles: plain, damaged, truncated, with
    records only protobuf decodes (hparams, restarts, TF2 tensors), empty, several files."""
    for version in range(6):
        events = [simple(f"m{t}", s, version + s / 7 + t) for s in range(300) for t in range(3)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    damaged = record_bytes(simple("loss", s, s / 3) for s in range(50))
    middle = len(damaged) // 2
    flipped = damaged[:middle] + bytes([damaged[middle] ^ 0xFF]) + damaged[middle + 1 :]
    (root / "version_2" / "events.out.tfevents.1").write_bytes(flipped + b"\x07" * 9)
    second = _lightning_like_file(root / "lightning")  # a second file for version_3
    second.rename(root / "version_3" / second.name)
    (root / "lightning").rmdir()
    restarted = [simple("loss", s, s) for s in range(20)] + [session_start(10)]
    restarted += [simple("loss", s, -s) for s in range(10, 15)]
    tensors = (content_tensor(s / 4, "double") for s in range(5))
    restarted += [
        tensor_event("acc", s, t, metadata=scalars_metadata()) for s, t in enumerate(tensors)
    ]
    write_events(root / "version_4" / "events.out.tfevents.2", restarted)
    (root / "version_5" / "events.out.tfevents.0").write_bytes(b"")
    return root


@pytest.mark.parametrize("budget", [decode._PREFETCH_BUDGET, 1])
def test_prefetched_read_equals_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefetch_takes: list[bool], budget: int
) -> None:
    """Budget 1: the C threads wait for each file to be taken before reading the next."""
    root = _mixed_sweep(tmp_path / "logs")
    serial = load.load_scalars(root, jobs=1)
    monkeypatch.setattr(decode, "_PREFETCH_BUDGET", budget)
    seen: list[int] = []
    data = load.load_scalars(root, jobs=2, progress=seen.append)
    assert prefetch_takes == [True] * 9  # 6 runs, version_4 and version_5 with two files more
    pd.testing.assert_frame_equal(serial.frame, data.frame)
    assert data.corruptions == serial.corruptions and len(data.corruptions) == 1
    assert data.truncated == serial.truncated and list(data.truncated.values()) == [9]
    assert data.hparams == serial.hparams and data.hparams["version_3"]["lr"] == 0.01
    assert sum(seen) == sum(f.stat().st_size for f in root.rglob("events.out.*"))
    restarted = data.frame[data.frame["run"] == "version_4"]
    loss = restarted[restarted["tag"] == "loss"]
    assert loss["step"].tolist() == list(range(15))  # steps 10.. of the first session went
    assert loss["value"].tolist()[10:] == [-10.0, -11.0, -12.0, -13.0, -14.0]
    assert restarted[restarted["tag"] == "acc"]["value"].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_csvlogger_runs_among_prefetched_ones_are_read_in_place(
    tmp_path: Path, prefetch_takes: list[bool]
) -> None:
    root = _mixed_sweep(tmp_path / "logs")
    (root / "version_1" / "events.out.tfevents.1").unlink()
    (root / "version_1" / "metrics.csv").write_text("step,val_loss\n0,2.5\n1,1.5\n")
    serial = load.load_scalars(root, jobs=1)
    data = load.load_scalars(root, jobs=2)
    assert prefetch_takes == [True] * 8  # the event files; metrics.csv is read as usual
    pd.testing.assert_frame_equal(serial.frame, data.frame)
    csv_run = data.frame[data.frame["run"] == "version_1"]
    assert csv_run["value"].tolist() == [2.5, 1.5]


def test_strict_stops_at_a_damaged_prefetched_file(tmp_path: Path) -> None:
    root = _mixed_sweep(tmp_path / "logs")
    threads = _threads()
    with pytest.raises(
        tbexport.CorruptEventFileError, match=r"version_2/events.out.tfevents.1: .* at byte \d+"
    ):
        load.load_scalars(root, jobs=2, strict=True)
    assert _threads() == threads  # the C threads were stopped and joined


def test_a_file_gone_since_the_walk_is_reported_as_in_a_serial_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefetch_takes: list[bool]
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
    data = load.load_scalars(root, jobs=2)
    assert prefetch_takes == [True, False] + [True] * 7  # version_1 read as usual, to report it
    gone = Corruption(str(going), 0, 0, "cannot be read (No such file or directory)", "file")
    assert data.corruptions[0] == serial.corruptions[0] == gone
    assert str(gone) == f"{going}: cannot be read (No such file or directory), skipped"
    pd.testing.assert_frame_equal(serial.frame, data.frame)
    assert "version_1" not in set(data.frame["run"])  # its only file is gone
    going.write_bytes(contents)
    with pytest.raises(tbexport.UnreadableFileError, match=r"cannot read .*version_1.*: No such"):
        load.load_scalars(root, jobs=2, strict=True)


def test_big_files_are_read_on_python_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _mixed_sweep(tmp_path / "logs")
    files = [os.fspath(f) for f in sorted(root.rglob("events.out.*"))]
    sizes = decode.file_sizes([*files, os.fspath(root / "gone")])
    assert list(sizes.values()) == [os.path.getsize(f) for f in files] + [0]
    del sizes[os.fspath(root / "gone")]
    assert decode.prefetcher(sizes, verify=True, workers=2) is not None
    assert decode.prefetcher(sizes, verify=True, workers=1) is None
    assert decode.prefetcher({files[0]: sizes[files[0]]}, verify=True, workers=2) is None
    monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 1000)  # the bigger files mapped
    assert decode.prefetcher(sizes, verify=True, workers=2) is None


def test_prefetch_takes_in_order_and_reads_unclaimed_files_itself(tmp_path: Path) -> None:
    threads = _threads()
    paths = []
    for n in range(5):
        path = tmp_path / f"events.out.tfevents.{n}"
        path.write_bytes(record_bytes(simple("x", s, n * 100 + s) for s in range(10)))
        paths.append(os.fspath(path))
    for workers in (0, 3):  # 0: no thread, every file read by take()
        prefetch = fastscan.Prefetch(paths, True, workers, 1 << 20, 1 << 20)
        for n in range(5):
            contents, pos, failed, records, steps, _, values, *rest = prefetch.take()
            assert contents is None and pos == os.path.getsize(paths[n])  # grouped
            assert (failed, records) == (False, 10)
            assert np.frombuffer(values, np.float64).tolist() == [n * 100 + s for s in range(10)]
            assert np.frombuffer(steps, np.int64).tolist() == list(range(10))
            assert rest[-1] == [b"x"] and np.frombuffer(rest[-2], np.int64).tolist() == [0, 10]
        with pytest.raises(IndexError, match="no file left"):
            prefetch.take()
        prefetch.close()
        prefetch.close()  # (twice is harmless)
    big = fastscan.Prefetch(paths, True, 2, 10, 1 << 20)  # every file over the limit
    assert big.take() is None
    del big  # (files not taken are freed, the threads joined)
    assert _threads() == threads


def test_take_reads_the_next_files_while_a_worker_reads_the_one_it_needs(
    tmp_path: Path,
) -> None:
    """The taker is one of the readers: waiting for a file a worker is reading, it reads
    the files after it (else three busy threads would time-share two cores)."""
    record = record_bytes([simple("x", 1, 1.0)])
    big = tmp_path / "events.out.tfevents.0"
    big.write_bytes(record * (40 * 2**20 // len(record)))  # ~0.1 s or more for a worker
    small = [
        write_events(tmp_path / f"events.out.tfevents.{n}", [simple("y", s, n) for s in range(3)])
        for n in range(1, 9)
    ]
    paths = [os.fspath(big), *map(os.fspath, small)]
    prefetch = fastscan.Prefetch(paths, True, 1, 64 << 20, 1 << 20)
    time.sleep(0.01)  # the worker claims the big file first

    def remove_small_files() -> None:  # while the big one is still being read
        time.sleep(0.03)
        for path in small:
            path.unlink()

    remover = threading.Thread(target=remove_small_files)
    remover.start()
    assert prefetch.take()[3] == 40 * 2**20 // len(record)  # (waits for the worker)
    remover.join()
    for n in range(1, 9):
        fetched = prefetch.take()
        assert fetched is not None, f"file {n} was not read while the big one was"
        assert np.frombuffer(fetched[6], np.float64).tolist() == [n, n, n]
    prefetch.close()


# open() made slow for files named slow.N: 3 s for slow.0, 50 ms for the others (as on
# a network mount), by a library preloaded into a child process
_SLOW_OPEN = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>
static int slowed(const char *path, int flags, int mode, const char *name) {
    int (*real)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    const char *base = strrchr(path, '/');
    if (base && strncmp(base, "/slow.", 6) == 0) usleep(strcmp(base, "/slow.0") ? 50000 : 3000000);
    return real(path, flags, mode);
}
int open(const char *path, int flags, ...) {
    va_list args; va_start(args, flags); int mode = va_arg(args, int); va_end(args);
    return slowed(path, flags, mode, "open");
}
int open64(const char *path, int flags, ...) {
    va_list args; va_start(args, flags); int mode = va_arg(args, int); va_end(args);
    return slowed(path, flags, mode, "open64");
}
"""

_TAKE_THEN_CTRL_C = """
import os, signal, sys, threading, time
from tbexport import _fastscan
paths = sys.argv[1:]
prefetch = _fastscan.Prefetch(paths, True, 1, 16 << 20, 8 << 20)
time.sleep(0.2)  # the worker claims slow.0 first
threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
started = time.perf_counter()
try:
    prefetch.take()
    print("taken", time.perf_counter() - started)
except KeyboardInterrupt:
    print("interrupted", time.perf_counter() - started)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("cc") is None,
    reason="needs Linux and a C compiler",
)
def test_ctrl_c_stops_a_take_on_files_slow_to_open(tmp_path: Path) -> None:
    """Waiting for a worker's file, or reading the next ones meanwhile, take() answers
    Ctrl-C within about 100 ms (here: long before the worker's file is read)."""
    (tmp_path / "slow_open.c").write_text(_SLOW_OPEN)
    shim = tmp_path / "slow_open.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", shim, tmp_path / "slow_open.c", "-ldl"], check=True
    )
    paths = [
        os.fspath(write_events(tmp_path / f"slow.{n}", [simple("x", 1, float(n))]))
        for n in range(80)
    ]
    preloaded = " ".join(filter(None, [os.environ.get("LD_PRELOAD"), os.fspath(shim)]))
    child = subprocess.run(
        [sys.executable, "-c", _TAKE_THEN_CTRL_C, *paths],
        env={**os.environ, "LD_PRELOAD": preloaded},
        capture_output=True,
        text=True,
        timeout=120,
    )
    outcome, seconds = child.stdout.split()
    assert outcome == "interrupted", child.stderr
    assert float(seconds) < 1.2  # Ctrl-C at 0.2 s; the worker's file takes 3 s


def test_paths_that_change_the_list_while_encoded_are_safe(tmp_path: Path) -> None:
    """Encoding a path-like object runs its __fspath__, which could empty the list."""
    path = write_events(tmp_path / "events.out.tfevents.1", [simple("x", 0, 1.0)])
    paths: list[Any] = []

    class Emptying:
        def __fspath__(self) -> str:
            paths.clear()
            return os.fspath(path)

    for call in (
        lambda: fastscan.Prefetch(paths, True, 1, 1 << 20, 1 << 20).take(),
        lambda: fastscan.file_sizes(paths),
        lambda: fastscan.list_dirs(paths),
    ):
        paths[:] = [Emptying(), Emptying()]
        result = call()
        assert result is not None  # (and no crash: both paths were encoded first)


def test_one_thread_at_a_time_takes_or_closes(tmp_path: Path) -> None:
    """A take() waiting without the GIL (here: for a C thread scanning a big file) keeps
    other threads from closing, or taking the same file."""
    record = record_bytes([simple("x", 1, 1.0)])
    big = tmp_path / "events.out.tfevents.1"
    big.write_bytes(record * (15 * 2**20 // len(record)))  # valid records, quick to make
    for _ in range(20):  # until the close() below comes while the take() waits
        prefetch = fastscan.Prefetch([os.fspath(big)], True, 1, 16 << 20, 1 << 20)
        started, taken = threading.Event(), []

        def take(
            prefetch: Any = prefetch, taken: list[Any] = taken, started: Any = started
        ) -> None:
            started.set()
            with contextlib.suppress(IndexError):  # (closed before it took)
                taken.append(prefetch.take())

        taker = threading.Thread(target=take)
        taker.start()
        started.wait()
        time.sleep(0.002)
        try:
            prefetch.close()
        except RuntimeError as error:
            assert str(error) == "Prefetch: another thread is taking a file"
            taker.join()
            assert taken[0][3] == 15 * 2**20 // len(record)  # every record, whole
            prefetch.close()
            return
        taker.join()
    pytest.fail("no close() came while a take() waited")


def _threads() -> int:
    """Threads of this process, C ones included (as Linux counts them; 0 elsewhere)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0
