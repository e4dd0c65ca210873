"""The C fast path and the protobuf reader must agree on every file, damaged or not."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

from tbexport import native, tuning
from tbexport.reading import event_file

from .builders import (
    content_tensor,
    file_version,
    frame_payloads,
    record_bytes,
    session_start,
    simple,
    tensor_event,
    typed_tensor,
    write_events,
)

pytestmark = pytest.mark.skipif(native.codec is None, reason="C extension not built")

T = TypeVar("T")


def _random_file(rng: random.Random, *, clean: bool = False) -> bytes:
    """Random points of every encoding, restarts and damage; ``clean``: no restarts or damage."""
    events = [file_version()]
    for step in range(rng.randint(1, 300)):
        kind = rng.random() * (0.8 if clean else 1)
        tag = rng.choice(["loss", "acc", "lr", "grp/x", "ünï"])
        if kind < 0.7:
            events.append(simple(tag, step, rng.uniform(-5, 5)))
        elif kind < 0.8:
            make = rng.choice([content_tensor, typed_tensor])
            dtype = rng.choice(["float", "double", "half", "bfloat16", "int32", "int64", "bool"])
            number = rng.uniform(-3, 3) if dtype in ("float", "double", "half", "bfloat16") else 1
            tensor = make(number, dtype)
            if rng.random() < 0.1:  # not rank 0: never a scalar
                tensor.tensor_shape.dim.add(size=1)
            plugin = rng.choice(["scalars", "", "text", None, None])
            meta = None
            if plugin is not None:
                meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin))
            events.append(tensor_event("t_" + tag, step, tensor, metadata=meta))
        elif kind < 0.85:
            events.append(session_start(rng.randint(0, step + 1)))
        else:
            events.append(simple(tag, rng.randint(0, step + 1), rng.random()))  # a restart
    blob = bytearray(b"".join(record_bytes([e]) for e in events))
    if clean:
        return bytes(blob)
    for _ in range(rng.randint(0, 3)):  # damage: flipped bytes, inserted garbage, cut tail
        at = rng.randrange(len(blob))
        if rng.random() < 0.5:
            blob[at] ^= 1 << rng.randrange(8)
        else:
            blob[at:at] = rng.randbytes(rng.randint(1, 40))
    if rng.random() < 0.3:
        del blob[-rng.randint(1, 30) :]
    return bytes(blob)


def _on_a_new_thread(function: Callable[[], T]) -> T:
    """``function()`` on a thread of its own: the tags the C scanner knows are kept per
    thread, so there it starts knowing none."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function).result()


def _spy_on_scans(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, Any]]:
    """Records each ``codec.scan`` call: how many tags it was told, and what it returned."""
    assert native.codec is not None
    calls: list[tuple[int, Any]] = []
    scan = native.codec.scan

    def spy(*args: Any) -> Any:
        known = len(args[4])
        got = scan(*args)
        calls.append((known, got))
        return got

    monkeypatch.setattr(native.codec, "scan", spy)
    return calls


def _grouped(calls: list[tuple[int, Any]]) -> list[bool]:
    """For each scan call: whether it came back grouped by tag."""
    return [got.bounds is not None for _, got in calls]


@pytest.mark.parametrize("seed", range(60))
def test_c_and_python_readers_agree(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.out.tfevents.1"
    # a third of the files undamaged: the scanner may group those in the same call
    path.write_bytes(_random_file(random.Random(seed), clean=seed % 3 == 0))
    # odd seeds: read 1000 bytes at a time, as big files are
    changes: dict[str, Any] = {"whole_file_bytes": 0, "window_bytes": 1000} if seed % 2 else {}
    calls = _spy_on_scans(monkeypatch)
    with tuning.tuned(**changes):
        first, again = _on_a_new_thread(
            lambda: (event_file.read_event_file(path), event_file.read_event_file(path))
        )
    half = len(calls) // 2
    if seed % 2 == 0 and seed % 3 == 0:  # whole and undamaged: grouped once every tag known
        assert _grouped(calls) == [False, True]
    else:  # windows, or damage (or restarts): in record order, grouped in Python
        assert not any(_grouped(calls)) and len(calls) == 2 * half
    if seed % 2:
        assert half > 1  # (more than one window)
    with tuning.tuned(native=False):
        slow = event_file.read_event_file(path)
    _assert_same(first, slow)
    _assert_same(again, slow)


def _assert_same(fast: event_file.FileScalars, slow: event_file.FileScalars) -> None:
    assert fast.corruptions == slow.corruptions
    assert fast.truncated_tail == slow.truncated_tail
    assert fast.valid_records == slow.valid_records
    assert fast.purges == slow.purges
    assert fast.hparams == slow.hparams
    assert fast.size == slow.size
    assert fast.series.keys() == slow.series.keys()
    for tag in fast.series:
        a, b = fast.series[tag], slow.series[tag]
        assert np.array_equal(a.steps, b.steps)
        assert np.array_equal(a.wall_times, b.wall_times)
        assert np.array_equal(a.values, b.values, equal_nan=True)


def _scan(data: bytes, names: list[bytes], rank: np.ndarray | None = None) -> Any:
    assert native.codec is not None
    return native.codec.scan(data, 0, len(data), True, names, 0, rank)


_COLUMNS = (("steps", np.int64), ("wall_times", np.float64), ("values", np.float64))


def _column(got: Any, name: str, dtype: Any) -> np.ndarray:
    return np.frombuffer(memoryview(getattr(got, name)), dtype=dtype)


def _clean_file() -> bytes:
    """Tags first seen out of natural order, TF2 tensors (point flags) among simple values."""
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    events = [file_version()]
    for step in range(50):
        events += [simple("b10", step, step / 3), simple("b2", step, -step), simple("a", step, 1.5)]
        events.append(tensor_event("t", step, typed_tensor(step * 0.25, "double"), metadata=meta))
    return record_bytes(events)


def test_scan_groups_a_whole_file_when_it_knows_every_tag() -> None:
    data = _clean_file()
    names: list[bytes] = []
    first = _scan(data, names)
    assert first.bounds is None and first.tags is not None and first.flags is not None
    assert first.fallbacks == [] and first.needed == 0 and not first.damaged
    assert (first.position, first.records) == (len(data), 201)
    assert names == [b"b10", b"b2", b"a", b"t"]
    rank = np.array([3, 1, 0, 2], dtype=np.int32)  # a, b2, t, b10
    ungrouped = _scan(data, names)
    grouped = _scan(data, names, rank)
    assert grouped.tags is None and grouped.bounds is not None
    assert _column(grouped, "bounds", np.int64).tolist() == [0, 50, 100, 150, 200]
    tags = _column(ungrouped, "tags", np.int32)
    order = np.argsort(rank[tags], kind="stable")  # rows by tag rank, in record order
    for name, dtype in (*_COLUMNS, ("flags", np.int8)):
        assert np.array_equal(_column(grouped, name, dtype), _column(ungrouped, name, dtype)[order])
    assert _column(grouped, "values", np.float64)[:3].tolist() == [1.5, 1.5, 1.5]  # "a" first
    assert _column(grouped, "values", np.float64)[100:103].tolist() == [0.0, 0.25, 0.5]  # "t"


def test_scan_leaves_grouping_to_python_when_it_cannot_group_alone() -> None:
    data = _clean_file()
    names: list[bytes] = []
    _scan(data, names)
    rank = np.array([3, 1, 0, 2], dtype=np.int32)
    # a tag the rank does not know
    with_new_tag = data + record_bytes([simple("zz", 0, 1.0)])
    assert _scan(with_new_tag, list(names), rank).bounds is None
    # a record left to protobuf (a purge_step restart)
    restart = _scan(data + record_bytes([session_start(3)]), list(names), rank)
    assert restart.bounds is None and [f[0] for f in restart.fallbacks] == [201]
    # damage: the call stops at it
    cut = _scan(data[:-3], list(names), rank)
    assert cut.bounds is None and cut.damaged and cut.records == 200
    with pytest.raises(ValueError, match="rank must be int32 ranks of every tag"):
        _scan(data, list(names), np.array([0, 1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match="rank must be int32 ranks of every tag"):
        _scan(data, list(names), np.array([0, 1, 2, 9], dtype=np.int32))


def test_a_scan_of_a_window_asks_for_the_bytes_its_next_record_needs() -> None:
    """``size`` past the buffer: a record running past the buffer (not the file) stops
    the scan with ``needed``; one running past ``size`` is damage."""
    assert native.codec is not None
    records = [record_bytes([simple("loss", s, s / 2)]) for s in range(3)]
    data = b"".join(records)
    first, second = len(records[0]), len(records[0]) + len(records[1])
    # (under 16 bytes in the buffer: 16 asked for, enough to read the length)
    for cut, at, needed in (
        (second + 5, second, 16),
        (second + 17, second, len(records[2])),
        (8, 0, 16),
    ):
        names: list[bytes] = []
        got = native.codec.scan(data[:cut], 0, len(data), True, names, 0)
        assert (got.position, got.needed, got.damaged) == (at, needed, False)
        assert got.records == (2 if at else 0) and names == ([b"loss"] if at else [])
        # the next buffer, from where it stopped, holding that record
        length = len(records[2] if at else records[0])
        rest = native.codec.scan(
            data[at : at + length], 0, len(data) - at, True, names, got.records
        )
        assert (rest.position, rest.needed, rest.damaged) == (length, 0, False)
        assert rest.records == got.records + 1
    past = native.codec.scan(data[: second + 5], 0, second + 5, True, [], 0)
    assert (past.position, past.needed, past.damaged, past.records) == (second, 0, True, 2)
    values = _column(native.codec.scan(data, first, len(data), True, [], 1), "values", np.float64)
    assert values.tolist() == [0.5, 1.0]  # from a record's start, numbered on
    with pytest.raises(ValueError, match="start outside the buffer, or size below it"):
        native.codec.scan(data, 0, len(data) - 1, True, [], 0)
    with pytest.raises(ValueError, match="start outside the buffer, or size below it"):
        native.codec.scan(data, len(data) + 1, len(data), True, [], 0)
    # a header claiming 2**64 - 17 bytes asks for them without overflowing
    header = (2**64 - 17).to_bytes(8, "little")
    header += native.codec.masked_crc32c(header).to_bytes(4, "little")
    huge = native.codec.scan(header + bytes(4), 0, 2**64 - 1, True, [], 0)
    assert (huge.position, huge.needed, huge.damaged) == (0, 2**64 - 1, False)
    assert native.codec.scan(header + bytes(4), 0, 2**63, True, [], 0).damaged


def test_resync_says_whether_it_checked_the_record_it_found() -> None:
    assert native.codec is not None
    codec = native.codec
    records = [record_bytes([simple("loss", s, s / 2)]) for s in range(2)]
    garbage = b"\x05" * 33 + bytes(3000)
    data = garbage + b"".join(records)
    whole = codec.resync(data, 0, len(data))
    assert (whole.position, whole.state) == (len(garbage), codec.RESYNC_VERIFIED)
    assert codec.resync(data, len(garbage) + 1, len(data)).position == len(garbage) + len(
        records[0]
    )
    # the header in the buffer, the data past it (within size): found, not checked
    part = codec.resync(data[: len(garbage) + 20], 0, len(data))
    assert (part.position, part.state) == (len(garbage), codec.RESYNC_UNCHECKED)
    # no record: NONE, and the first position not looked at (a header needs 12 bytes)
    none = codec.resync(garbage, 0, len(garbage) + 100)
    assert (none.position, none.state) == (len(garbage) - 11, codec.RESYNC_NONE)
    past_the_last = codec.resync(data, len(data) - len(records[1]) + 1, len(data))
    assert past_the_last.state == codec.RESYNC_NONE
    flipped = bytearray(data)
    flipped[len(garbage) + 14] ^= 1  # the first record's data: the second one is found
    found = codec.resync(bytes(flipped), 0, len(data))
    assert (found.position, found.state) == (len(garbage) + len(records[0]), codec.RESYNC_VERIFIED)
    with pytest.raises(ValueError, match="start outside the buffer, or size below it"):
        codec.resync(data, 0, len(data) - 1)


def test_grouped_files_honour_tag_globs_and_skip_tags_they_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_on_scans(monkeypatch)
    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    first = write_events(
        tmp_path / "events.out.tfevents.1",
        [file_version()]
        + [simple(t, s, s + 0.5) for s in range(5) for t in ("acc", "b", "a2", "a10")]
        + [
            tensor_event("a_t", s, typed_tensor(s * 2.0, "double"), metadata=meta) for s in range(3)
        ],
    )
    second = write_events(  # only tags the table knows, not all of them
        tmp_path / "events.out.tfevents.2",
        [file_version()]
        + [simple(t, s, -s) for s in range(4) for t in ("a10", "acc")]
        + [tensor_event("a_t", s, typed_tensor(s * 3.0, "double")) for s in range(2)],
    )
    accept = event_file.tag_filter(["a*"])
    results = _on_a_new_thread(
        lambda: [event_file.read_event_file(p, accept) for p in (first, second)]
    )
    assert _grouped(calls) == [False, True]
    assert list(results[1].series) == ["a10", "a_t", "acc"]  # natural order, "b" filtered
    assert results[1].series["a_t"].values.tolist() == [0.0, 3.0]
    assert results[0].series["a2"].values.tolist() == [s + 0.5 for s in range(5)]
    with tuning.tuned(native=False):
        for fast, path in zip(results, (first, second), strict=True):
            _assert_same(fast, event_file.read_event_file(path, accept))


def test_a_file_stopped_by_an_exception_leaves_the_tag_table_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _spy_on_scans(monkeypatch)
    path = write_events(
        tmp_path / "events.out.tfevents.1", [file_version(), simple("loss", 1, 0.5)]
    )

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt  # after the scan appended "loss" to the table

    def read() -> list[list[float]]:
        with pytest.raises(KeyboardInterrupt):
            event_file.read_event_file(path, progress=interrupt)
        return [event_file.read_event_file(path).series["loss"].values.tolist() for _ in range(2)]

    assert _on_a_new_thread(read) == [[0.5], [0.5]]
    assert [known for known, _ in calls] == [0, 1, 1]
    assert _grouped(calls) == [False, True, True]  # it knew "loss" from the interrupted read


def test_the_tag_table_starts_afresh_past_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs that each log different tags: the tags the scanner is told stay bounded
    (every file pays for every name known), and every file still reads right."""
    calls = _spy_on_scans(monkeypatch)
    paths = [
        write_events(
            tmp_path / f"events.out.tfevents.{run}",
            [file_version(), simple(f"r{run}/loss", 0, run), simple(f"r{run}/acc", 1, -run)],
        )
        for run in range(300)
    ]
    results = _on_a_new_thread(lambda: [event_file.read_event_file(p) for p in paths])
    for run, result in enumerate(results):
        assert {t: s.values.tolist() for t, s in result.series.items()} == {
            f"r{run}/acc": [-run],
            f"r{run}/loss": [run],
        }
    known = [count for count, _ in calls]
    assert known[:3] == [0, 2, 4] and max(known) <= 256 + 2
    restarts = [n for n in range(1, len(known)) if known[n] < known[n - 1]]
    assert restarts and all(known[n] == 0 for n in restarts)  # a table started afresh


CRC_CHECK = """
import sys
from tbexport import _codec
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
data = bytes(range(256)) * 4
for start in (0, 3):  # unaligned starts too
    for size in (0, 1, 7, 8, 9, 15, 16, 63, 1000):
        chunk = data[start : start + size]
        assert _codec.masked_crc32c(chunk) == masked_crc32c(chunk), (start, size)
import crc32c
for cut in (0, 1, 5, 8, 500, 1024):  # crc32c(data, value): on from a first part's CRC
    whole = crc32c.crc32c(data)
    assert _codec.crc32c(data) == whole
    assert _codec.crc32c(data[cut:], _codec.crc32c(data[:cut])) == whole, cut
print("ok")
"""


@pytest.mark.parametrize("table_only", [False, True], ids=["cpu-instruction", "tables"])
def test_masked_crc_matches_tensorboard(table_only: bool) -> None:
    # The CRC implementation is chosen when the module loads: check each in a fresh process.
    env = {k: v for k, v in os.environ.items() if k != "TBEXPORT_NO_HW_CRC"}
    if table_only:
        env["TBEXPORT_NO_HW_CRC"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", CRC_CHECK], env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_python_crc_matches_tensorboard() -> None:
    # the crc32c package serves installs built without the C extension
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    from tbexport.reading.framing import _python_masked_crc32c

    data = bytes(range(256)) * 4
    for size in (0, 1, 8, 9, 1000):
        assert _python_masked_crc32c(data[:size]) == masked_crc32c(data[:size])


def _awkward_doubles() -> dict[str, np.ndarray]:
    """Doubles where a shortest-digits algorithm goes wrong first, by kind."""
    rng = np.random.default_rng(7)
    n = 20_000
    powers_of_two = np.ldexp(1.0, rng.integers(-20, 54, n))
    powers_of_ten = 10.0 ** rng.integers(-5, 17, n)
    return {
        "random bits": rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64),
        "float32 in [0, 1)": rng.random(n).astype(np.float32).astype(np.float64),
        "log-uniform": 10 ** rng.uniform(-5, 17, n),
        "short decimals": np.array([round(x, d % 8) for d, x in enumerate(rng.uniform(0, 1e3, n))]),
        "wall times": 1.7e9 + np.round(rng.uniform(0, 1e5, n), 2),
        "integers": rng.integers(-(2**53), 2**53, n).astype(np.float64),
        "powers of two": powers_of_two,
        "below powers of two": np.nextafter(powers_of_two, 0),
        "above powers of two": np.nextafter(powers_of_two, np.inf),
        "powers of ten": powers_of_ten,
        "below powers of ten": np.nextafter(powers_of_ten, 0),
        "above powers of ten": np.nextafter(powers_of_ten, np.inf),
        "edges": np.array(
            [1e-4, np.nextafter(1e-4, 0), np.nextafter(1e-4, 1), 2.0**53, 2.0**53 - 1, 0.0]
        ),
        "others": np.array([-0.0, 5e-324, 1.7976931348623157e308, -1e-4, 0.1, 2 / 3, -123.456]),
    }


@pytest.mark.parametrize("kind", list(_awkward_doubles()))
def test_c_number_text_is_python_repr(kind: str) -> None:
    """The C formatter's shortest digits and layout are exactly repr()'s."""
    assert native.codec is not None
    values = _awkward_doubles()[kind]
    values = values[np.isfinite(values)]
    steps = np.arange(len(values), dtype=np.int64) - len(values) // 2
    text = bytes(native.codec.csv_rows(b"", steps, (values,))).decode()
    expected = [f"{s},{v!r}" for s, v in zip(steps.tolist(), values.tolist(), strict=True)]
    assert text.splitlines() == expected


def test_c_grouping_matches_numpy() -> None:
    """The C counting sort groups rows exactly like a stable argsort by tag rank."""
    assert native.codec is not None
    rng = np.random.default_rng(3)
    tags = rng.integers(0, 7, 5000).astype(np.int32)
    rank = rng.permutation(7).astype(np.int32)
    columns = [
        rng.integers(-(2**40), 2**40, 5000),
        rng.random(5000),
        rng.integers(0, 16, 5000).astype(np.int8),
        rng.integers(0, 9, 5000).astype(np.int32),
    ]
    grouped = [np.empty_like(c) for c in columns]
    bounds = np.empty(8, dtype=np.int64)
    native.codec.group(tags, rank, tuple(columns), tuple(grouped), bounds)
    ranks = rank[tags]
    order = np.argsort(ranks, kind="stable")
    assert bounds.tolist() == np.searchsorted(ranks[order], np.arange(8)).tolist()
    for a, b in zip(grouped, columns, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b[order])
    assert bounds[-1] == 5000 and len(set(bounds.tolist())) == 8


def test_c_grouping_rejects_unknown_tags() -> None:
    assert native.codec is not None
    tags = np.array([0, 3], dtype=np.int32)
    into, bounds = np.zeros(2), np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError, match="tag index out of range"):
        native.codec.group(tags, np.arange(2, dtype=np.int32), (np.ones(2),), (into,), bounds)
    assert into.tolist() == [0.0, 0.0]  # nothing written
    with pytest.raises(ValueError, match="bad arguments"):  # bounds of the wrong length
        native.codec.group(tags, np.arange(4, dtype=np.int32), (np.ones(2),), (into,), bounds)


LAZY_CHECK = """
import sys
import tbexport
frame = tbexport.read_scalars(sys.argv[1])
print(len(frame), "tensorboard.compat.proto.event_pb2" in sys.modules)
"""


def test_protobuf_is_loaded_only_for_records_that_need_it(tmp_path: Path) -> None:
    from .conftest import SAMPLE_RUNS

    def run(path: Path) -> list[str]:
        argv = [sys.executable, "-c", LAZY_CHECK, str(path)]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()

    points, loaded = run(SAMPLE_RUNS / "lightning_logs" / "version_0")
    assert int(points) > 0 and loaded == "False"  # plain scalars: the C scanner alone
    events = [file_version(), simple("loss", 1, 0.5), session_start(1), simple("loss", 1, 0.25)]
    write_events(tmp_path / "events.out.tfevents.1", events)
    assert run(tmp_path) == ["1", "True"]  # a SessionLog restart is decoded by protobuf


def _windows(window: int = 4000) -> Any:
    """Every file read ``window`` bytes at a time, as files too big to read whole are."""
    return tuning.tuned(whole_file_bytes=0, window_bytes=window)


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_an_error_in_progress_stops_the_reading(tmp_path: Path, error: type) -> None:
    """Progress is called as each window is read; an exception there comes out intact,
    and nothing more of the file is read."""
    path = tmp_path / "events.out.tfevents.1"
    write_events(path, [file_version()] + [simple("loss", s, s / 10) for s in range(2000)])
    calls: list[int] = []

    def progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise error("stop")

    with _windows(1000), pytest.raises(error):
        event_file.read_event_file(path, progress=progress)
    assert len(calls) == 3 and all(0 < c <= 1000 for c in calls)
    assert sum(calls) < path.stat().st_size // 10


def _lightning_like_file(path: Path) -> Path:
    """What Lightning's TensorBoardLogger writes: hyperparameters (records only protobuf
    decodes) among simple values and TF2-style tensors, tags first met out of order."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    data = HParamsPluginData(version=0)
    data.session_start_info.hparams["lr"].number_value = 0.01
    data.session_start_info.hparams["optimizer"].string_value = "adam"
    meta = SummaryMetadata(
        plugin_data=SummaryMetadata.PluginData(
            plugin_name="hparams", content=data.SerializeToString()
        )
    )
    hparams = Summary.Value(tag="_hparams_/session_start_info", metadata=meta)
    events = [file_version(), Event(wall_time=999.0, summary=Summary(value=[hparams]))]
    scalars = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in range(300):
        events.append(simple("val/loss10", step, 1 / (step + 1)))
        events.append(simple("val/loss2", step, step * 0.5))
        if step % 3 == 0:  # as add_scalar(new_style=True): a float tensor, metadata first
            tensor = content_tensor(float(np.float32(0.1 * 0.99**step)), "float")
            events.append(tensor_event("lr", step, tensor, metadata=scalars if not step else None))
    return write_events(path / "events.out.tfevents.1", events)


@pytest.mark.parametrize("damaged", [False, True])
def test_big_files_read_in_windows_give_what_a_whole_read_gives(
    tmp_path: Path, damaged: bool
) -> None:
    """A file read a window at a time: the same points, hparams and corruptions, and
    progress as each window is read."""
    path = _lightning_like_file(tmp_path / "run")
    if damaged:  # a flipped byte mid-file
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x40
        path.write_bytes(bytes(blob))
    whole = event_file.read_event_file(path)
    reported: list[int] = []
    with _windows():
        fast = event_file.read_event_file(path, progress=reported.append)
    assert sum(reported) == path.stat().st_size and all(r > 0 for r in reported)
    assert len(reported) > 4 and max(reported) <= 4000  # a report a window
    assert fast.hparams == {"lr": 0.01, "optimizer": "adam"}
    assert list(fast.series) == ["lr", "val/loss2", "val/loss10"]
    if damaged:
        assert len(fast.corruptions) == 1
    else:
        assert fast.series["val/loss10"].steps.tolist() == list(range(300))
        assert fast.series["lr"].values[1] == np.float32(0.1 * 0.99**3)  # new_style: a tensor
        assert fast.corruptions == []
    _assert_same(fast, whole)
    with tuning.tuned(native=False):
        _assert_same(fast, event_file.read_event_file(path))


@pytest.mark.parametrize("window", [16, 64, 1000])
def test_records_longer_than_a_window_and_damage_across_windows(
    tmp_path: Path, window: int
) -> None:
    """A record longer than the window is read whole; damage and the search for the next
    record straddle the windows."""
    long_tag = "x" * 5000
    frames = [record_bytes([e]) for e in [file_version(), *(simple("a", s, s) for s in range(20))]]
    frames.insert(5, record_bytes([simple(long_tag, 3, 0.5)]))
    frames.insert(12, b"\x05" * 37 + bytes(2500))  # garbage, then zeros
    frames[15] = frames[15][:-1] + bytes([frames[15][-1] ^ 1])  # a data CRC broken
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(b"".join(frames))
    whole = event_file.read_event_file(path)
    ends = np.cumsum([0, *(len(f) for f in frames)])
    assert [(c.offset, c.skipped) for c in whole.corruptions] == [
        (int(ends[12]), len(frames[12])),
        (int(ends[15]), len(frames[15])),
    ]
    assert whole.series[long_tag].values.tolist() == [0.5]
    assert len(whole.series["a"].steps) == 19
    with _windows(window):
        _assert_same(event_file.read_event_file(path), whole)
    with tuning.tuned(native=False):
        _assert_same(event_file.read_event_file(path), whole)


def test_a_progress_error_late_in_a_big_file_is_raised(tmp_path: Path) -> None:
    path = _lightning_like_file(tmp_path / "run")
    size, reported = path.stat().st_size, [0]

    def progress(done: int) -> None:
        reported[0] += done
        if reported[0] > size * 3 // 4:
            raise ValueError("stop")

    with _windows(), pytest.raises(ValueError, match="stop"):
        event_file.read_event_file(path, progress=progress)
    assert reported[0] < size


def test_a_file_being_written_is_read_up_to_its_last_whole_record(tmp_path: Path) -> None:
    path = _lightning_like_file(tmp_path / "run")
    path.write_bytes(path.read_bytes()[:-7])  # the last record half written
    with _windows():
        fast = event_file.read_event_file(path)
    assert fast.truncated_tail > 0 and fast.corruptions == []
    assert fast.series["val/loss2"].steps.tolist() == list(range(299))  # the last one cut
    with tuning.tuned(native=False):
        _assert_same(fast, event_file.read_event_file(path))


@pytest.mark.parametrize("windows", [False, True], ids=["whole", "windows"])
def test_records_only_protobuf_reads_as_points_are_left_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, windows: bool
) -> None:
    """A value with both a simple_value and a tensor on the wire: protobuf keeps the
    tensor (the last of the oneof); the C scanner hands such a record over."""
    value = (
        Summary.Value(tag="loss", simple_value=0.5).SerializeToString()
        + Summary.Value(tensor=typed_tensor(2.0, "double")).SerializeToString()
    )
    summary = bytes([1 << 3 | 2, len(value)]) + value  # Summary.value, by hand
    both = Event(step=5, wall_time=1005.0).SerializeToString()
    both += bytes([5 << 3 | 2, len(summary)]) + summary  # Event.summary
    earlier = [simple("loss", s, s / 8) for s in range(5)]
    path = tmp_path / "events.out.tfevents.1"
    path.write_bytes(record_bytes([file_version(), *earlier]) + frame_payloads([both]))
    calls = _spy_on_scans(monkeypatch)
    with _windows(64) if windows else tuning.tuned():
        fast = event_file.read_event_file(path)
    assert [f[0] for _, got in calls for f in got.fallbacks] == [6]  # record 6, to protobuf
    assert fast.series["loss"].values.tolist() == [0, 1 / 8, 2 / 8, 3 / 8, 4 / 8, 2.0]
    with tuning.tuned(native=False):
        _assert_same(fast, event_file.read_event_file(path))


def test_a_big_run_moves_the_progress_while_it_is_read(tmp_path: Path) -> None:
    """load_scalars passes each file's progress on (on threads), not one report a run."""
    import tbexport

    path = _lightning_like_file(tmp_path / "run")
    seen: list[int] = []
    with tuning.tuned(whole_file_bytes=0, window_bytes=4096):
        tbexport.load_scalars(tmp_path / "run", progress=seen.append)
    size = path.stat().st_size
    assert sum(seen) == size
    assert len(seen) > 4 and max(seen) <= 4096  # a report a window


def test_files_that_cannot_be_read_are_errors_not_crashes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        event_file.read_event_file(tmp_path / "events.out.tfevents.gone")
    assert missing.value.filename == str(tmp_path / "events.out.tfevents.gone")
    (tmp_path / "events.out.tfevents.dir").mkdir()
    with pytest.raises(OSError, match="not a regular file"):
        event_file.read_event_file(tmp_path / "events.out.tfevents.dir")
    empty = tmp_path / "events.out.tfevents.empty"
    empty.write_bytes(b"")
    for changes in ({}, {"whole_file_bytes": 0, "window_bytes": 16}, {"native": False}):
        with tuning.tuned(**changes):
            read = event_file.read_event_file(empty)
        assert (read.series, read.corruptions, read.size, read.valid_records) == ({}, [], 0, 0)
