"""The C fast path and the protobuf reader must agree on every file, damaged or not."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

from tbexport import decode

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

pytestmark = pytest.mark.skipif(decode._fastscan is None, reason="C extension not built")


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


@pytest.mark.parametrize("seed", range(60))
def test_c_and_python_readers_agree(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.out.tfevents.1"
    # a third of the files undamaged: the scanner may group those in the same call
    path.write_bytes(_random_file(random.Random(seed), clean=seed % 3 == 0))
    if seed % 2:  # map the file and scan it in small chunks, as for large files
        monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 0)
        monkeypatch.setattr(decode, "_CHUNK_BYTES", 1000)
    _fresh_tag_table(monkeypatch)
    paths = _spy_on_paths(monkeypatch)
    unknown_tags = decode.read_event_file(path)
    known_tags = decode.read_event_file(path)
    if seed % 3:  # damaged (or with restarts): in record order, then grouped in Python
        assert paths == ["in order", "in order"]
    elif seed % 2:  # mapped and undamaged: counted, then each point written to its row
        assert paths == ["in place", "in place"]
    else:  # read whole and undamaged: grouped by the scan once it knows every tag
        assert paths == ["in order", "grouped by the scan"]
    monkeypatch.setattr(decode, "_fastscan", None)
    slow = decode.read_event_file(path)
    _assert_same(unknown_tags, slow)
    _assert_same(known_tags, slow)


def _spy_on_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records, for each file the C path reads, which way it went."""
    paths: list[str] = []
    scan_fast, in_place = decode._scan_fast, decode._scan_in_place
    placed: list[bool] = []

    def spy_in_place(*args: Any) -> Any:
        grouped = in_place(*args)
        placed.append(grouped is not None)
        return grouped

    def spy(*args: Any) -> Any:
        placed.clear()
        scanned = scan_fast(*args)
        if placed == [True]:
            paths.append("in place")
        else:
            paths.append("grouped by the scan" if scanned.grouped is not None else "in order")
        return scanned

    monkeypatch.setattr(decode, "_scan_in_place", spy_in_place)
    monkeypatch.setattr(decode, "_scan_fast", spy)
    return paths


def _spy_on_grouping(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each file the C path reads, whether the scanner grouped it."""
    grouped: list[bool] = []
    scan_fast = decode._scan_fast

    def spy(*args: Any) -> Any:
        scanned = scan_fast(*args)
        grouped.append(scanned.grouped is not None)
        return scanned

    monkeypatch.setattr(decode, "_scan_fast", spy)
    return grouped


def _fresh_tag_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decode._tables, "table", decode._TagTable(), raising=False)


def _assert_same(fast: decode.FileScalars, slow: decode.FileScalars) -> None:
    assert fast.corruptions == slow.corruptions
    assert fast.truncated_tail == slow.truncated_tail
    assert fast.valid_records == slow.valid_records
    assert fast.purges == slow.purges
    assert fast.hparams == slow.hparams
    assert fast.series.keys() == slow.series.keys()
    for tag in fast.series:
        a, b = fast.series[tag], slow.series[tag]
        assert np.array_equal(a.steps, b.steps)
        assert np.array_equal(a.wall_times, b.wall_times)
        assert np.array_equal(a.values, b.values, equal_nan=True)


def _scan(data: bytes, names: list[bytes], rank: np.ndarray | None = None) -> tuple:  # type: ignore[type-arg]
    assert decode._fastscan is not None
    return tuple(decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank))


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
    *_, tags, flags, fallbacks, bounds = _scan(data, names)
    assert bounds is None and tags is not None and flags is not None and fallbacks == []
    assert names == [b"b10", b"b2", b"a", b"t"]
    rank = np.array([3, 1, 0, 2], dtype=np.int32)  # natural order: a, b2, b10, t
    ungrouped = _scan(data, names)
    grouped = _scan(data, names, rank)
    assert grouped[6] is None and grouped[9] is not None  # no tag column; bounds
    bounds = np.frombuffer(grouped[9], dtype=np.int64)
    assert bounds.tolist() == [0, 50, 100, 150, 200]
    sources = [
        np.frombuffer(c, dtype=t) for c, t in zip(ungrouped[3:8], decode._FAST_DTYPES, strict=True)
    ]
    tag_column = sources.pop(3)
    expected_bounds, expected = decode._group(tag_column, rank, sources, 4)
    assert bounds.tolist() == expected_bounds.tolist()
    for column, dtype, want in zip(
        (3, 4, 5, 7), (np.int64, np.float64, np.float64, np.int8), expected, strict=True
    ):
        assert np.array_equal(np.frombuffer(grouped[column], dtype=dtype), want)
    assert np.frombuffer(grouped[5], dtype=np.float64)[:3].tolist() == [1.5, 1.5, 1.5]  # "a" first


def test_scan_leaves_grouping_to_python_when_it_cannot_group_alone() -> None:
    data = _clean_file()
    names: list[bytes] = []
    _scan(data, names)
    rank = np.array([3, 1, 0, 2], dtype=np.int32)
    # a tag the rank does not know
    with_new_tag = data + record_bytes([simple("zz", 0, 1.0)])
    assert _scan(with_new_tag, list(names), rank)[9] is None
    # a record left to protobuf (a purge_step restart)
    assert _scan(data + record_bytes([session_start(3)]), list(names), rank)[9] is None
    # damage: the call stops at it
    assert _scan(data[:-3], list(names), rank)[9] is None
    with pytest.raises(ValueError, match="rank must be int32 ranks of every tag"):
        _scan(data, list(names), np.array([0, 1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match="rank must be int32 ranks of every tag"):
        _scan(data, list(names), np.array([0, 1, 2, 9], dtype=np.int32))


def test_grouped_files_honour_tag_globs_and_skip_tags_they_lack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_tag_table(monkeypatch)
    grouped = _spy_on_grouping(monkeypatch)
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
    accept = decode.tag_filter(["a*"])
    results = [decode.read_event_file(p, accept) for p in (first, second)]
    assert grouped == [False, True]
    assert list(results[1].series) == ["a10", "a_t", "acc"]  # natural order, "b" filtered
    assert results[1].series["a_t"].values.tolist() == [0.0, 3.0]
    monkeypatch.setattr(decode, "_fastscan", None)
    for fast, path in zip(results, (first, second), strict=True):
        _assert_same(fast, decode.read_event_file(path, accept))


def test_a_file_stopped_by_an_exception_leaves_the_tag_table_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_tag_table(monkeypatch)
    grouped = _spy_on_grouping(monkeypatch)
    path = write_events(
        tmp_path / "events.out.tfevents.1", [file_version(), simple("loss", 1, 0.5)]
    )

    def interrupt(done: int) -> None:
        raise KeyboardInterrupt  # after the scan appended "loss" to the table

    with pytest.raises(KeyboardInterrupt):
        decode.read_event_file(path, progress=interrupt)
    assert decode.read_event_file(path).series["loss"].values.tolist() == [0.5]
    assert decode.read_event_file(path).series["loss"].values.tolist() == [0.5]
    assert grouped == [True, True]  # the table knew "loss" from the interrupted read


def test_the_tag_table_starts_afresh_past_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fresh_tag_table(monkeypatch)
    monkeypatch.setattr(decode, "_TABLE_MAX_TAGS", 4)
    sizes = []
    for run in range(6):  # runs that each log different tags
        path = write_events(
            tmp_path / f"events.out.tfevents.{run}",
            [file_version(), simple(f"r{run}/loss", 0, run), simple(f"r{run}/acc", 1, -run)],
        )
        result = decode.read_event_file(path)
        assert {t: s.values.tolist() for t, s in result.series.items()} == {
            f"r{run}/loss": [run],
            f"r{run}/acc": [-run],
        }
        sizes.append(len(decode._tables.table.names))
    assert sizes == [2, 4, 6, 2, 4, 6]  # past 4 names, the next file starts a new table


CRC_CHECK = """
import sys
from tbexport import _fastscan
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
data = bytes(range(256)) * 4
for start in (0, 3):  # unaligned starts too
    for size in (0, 1, 7, 8, 9, 15, 16, 63, 1000):
        chunk = data[start : start + size]
        assert _fastscan.masked_crc32c(chunk) == masked_crc32c(chunk), (start, size)
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

    from tbexport.records import _python_masked_crc32c

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
    assert decode._fastscan is not None
    values = _awkward_doubles()[kind]
    values = values[np.isfinite(values)]
    steps = np.arange(len(values), dtype=np.int64) - len(values) // 2
    text = bytes(decode._fastscan.csv_rows(b"", steps, (values,))).decode()
    expected = [f"{s},{v!r}" for s, v in zip(steps.tolist(), values.tolist(), strict=True)]
    assert text.splitlines() == expected


def test_c_grouping_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The C counting sort groups rows exactly like a stable argsort by tag rank."""
    rng = np.random.default_rng(3)
    tags = rng.integers(0, 7, 5000).astype(np.int32)
    rank = rng.permutation(7).astype(np.int32)
    columns = [
        rng.integers(-(2**40), 2**40, 5000),
        rng.random(5000),
        rng.integers(0, 16, 5000).astype(np.int8),
    ]
    fast_bounds, fast = decode._group(tags, rank, list(columns), 7)
    monkeypatch.setattr(decode, "_fastscan", None)
    slow_bounds, slow = decode._group(tags, rank, list(columns), 7)
    assert fast_bounds.tolist() == slow_bounds.tolist()
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert fast_bounds[-1] == 5000 and len(set(fast_bounds.tolist())) == 8


def test_c_grouping_rejects_unknown_tags() -> None:
    assert decode._fastscan is not None
    tags = np.array([0, 3], dtype=np.int32)
    with pytest.raises(ValueError, match="tag index out of range"):
        decode._group(tags, np.arange(2, dtype=np.int32), [np.zeros(2)], 2)


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


def test_an_error_in_progress_stops_the_c_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scanner calls back into Python mid-file; an exception there comes out intact."""
    path = tmp_path / "events.out.tfevents.1"
    write_events(path, [file_version()] + [simple("loss", s, s / 10) for s in range(2000)])
    monkeypatch.setattr(decode, "_CHUNK_BYTES", 1000)
    calls: list[int] = []

    def progress(done: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        decode.read_event_file(path, progress=progress)
    assert len(calls) == 3 and all(0 < c <= 1100 for c in calls)


def _lightning_like_file(path: Path) -> Path:
    """What Lightning's TensorBoardLogger writes: hyperparameters (records only protobuf
    decodes) among simple values and TF2-style tensors, tags first met out of order."""
    torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")
    from torch.utils.tensorboard.summary import hparams

    with torch_tb.SummaryWriter(path) as writer:
        for summary in hparams({"lr": 0.01, "optimizer": "adam"}, {"hp_metric": -1}):
            writer.file_writer.add_summary(summary)
        for step in range(300):
            writer.add_scalar("val/loss10", 1 / (step + 1), step)
            writer.add_scalar("val/loss2", step * 0.5, step)
            if step % 3 == 0:
                writer.add_scalar("lr", 0.1 * 0.99**step, step, new_style=True)
    [file] = path.glob("events.out.tfevents.*")
    return file


@pytest.mark.parametrize("damaged", [False, True])
def test_big_files_are_counted_then_placed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged: bool
) -> None:
    """A mapped file is read in two passes: the same points, hparams and progress."""
    path = _lightning_like_file(tmp_path / "run")
    if damaged:  # a flipped byte mid-file: the general path, after the count failed
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0x40
        path.write_bytes(bytes(blob))
    monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 0)
    monkeypatch.setattr(decode, "_CHUNK_BYTES", 4000)
    _fresh_tag_table(monkeypatch)
    paths = _spy_on_paths(monkeypatch)
    reported: list[int] = []
    fast = decode.read_event_file(path, progress=reported.append)
    assert paths == ["in order" if damaged else "in place"]
    assert sum(reported) == path.stat().st_size and all(r >= 0 for r in reported)
    assert len(reported) > 4  # the chunks of both passes
    assert fast.hparams == {"lr": 0.01, "optimizer": "adam"}
    assert list(fast.series) == ["lr", "val/loss2", "val/loss10"]
    if not damaged:
        assert fast.series["val/loss10"].steps.tolist() == list(range(300))
        assert fast.series["lr"].values[1] == np.float32(0.1 * 0.99**3)  # new_style: a tensor
        assert fast.corruptions == []
    monkeypatch.setattr(decode, "_fastscan", None)
    _assert_same(fast, decode.read_event_file(path))


def test_a_file_rewritten_between_the_passes_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_events(
        tmp_path / "events.out.tfevents.1",
        [file_version()] + [simple(t, s, s / 4) for s in range(20) for t in ("a", "b")],
    )
    assert decode._fastscan is not None
    count = decode._fastscan.count

    def stale_count(*args: Any) -> Any:  # as if "a" had one point more when counted
        pos, failed, records, counts, unusual, fallbacks = count(*args)
        counts = np.frombuffer(counts, dtype=np.int64).copy()
        counts[0] += 1
        return pos, failed, records, counts, unusual, fallbacks

    monkeypatch.setattr(decode._fastscan, "count", stale_count)
    monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 0)
    _fresh_tag_table(monkeypatch)
    paths = _spy_on_paths(monkeypatch)
    result = decode.read_event_file(path)
    assert paths == ["grouped by the scan"]  # read again in one pass, every tag known by then
    assert result.series["a"].values.tolist() == [s / 4 for s in range(20)]
    assert result.series["b"].steps.tolist() == list(range(20))


def test_c_count_and_place() -> None:
    """count() gives each tag's points; scan() with them writes the grouped rows."""
    assert decode._fastscan is not None
    data = _clean_file()
    names: list[bytes] = [b"zz"]  # a tag known from an earlier file, absent here
    pos, failed, records, counts, unusual, fallbacks = decode._fastscan.count(
        data, True, names, 0, None
    )
    assert (pos, failed, records, unusual, fallbacks) == (len(data), False, 201, True, [])
    assert names == [b"zz", b"b10", b"b2", b"a", b"t"]
    assert np.frombuffer(counts, dtype=np.int64).tolist() == [0, 50, 50, 50, 50]
    rank = np.array([4, 2, 1, 0, 3], dtype=np.int32)  # a, b2, b10, t, zz
    placed = decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank, counts, True)
    grouped = _scan(data, names, rank)  # the one-pass grouping, for comparison
    assert np.frombuffer(placed[9], np.int64).tolist() == [0, 50, 100, 150, 200, 200]
    dtypes = {3: np.int64, 4: np.float64, 5: np.float64, 7: np.int8, 9: np.int64}
    for column, dtype in dtypes.items():  # steps, wall times, values, flags, bounds
        assert np.array_equal(
            np.frombuffer(placed[column], dtype), np.frombuffer(grouped[column], dtype)
        )
    assert placed[6] is None and placed[:3] == (len(data), False, 201)
    fewer = np.frombuffer(counts, dtype=np.int64).copy()
    fewer[1] -= 1  # one row short for "b10"
    more = fewer.copy()
    more[1] += 2  # a row "b10" never fills
    for wrong in (fewer, more):
        with pytest.raises(decode._fastscan.RecordsChanged, match="differ from the counted ones"):
            decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank, wrong, True)
    with pytest.raises(decode._fastscan.RecordsChanged):  # flags where none were counted
        decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank, counts, False)
    with pytest.raises(ValueError, match="counts need a rank"):
        decode._fastscan.scan(data, 0, True, names, 0, 0, None, None, counts, True)
    with pytest.raises(ValueError, match="counts need a rank"):
        decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank, bytes(counts)[:8], True)
    huge = np.array([0, 2**62, 2**62, 2**62, 0], dtype=np.int64)  # would overflow the rows
    with pytest.raises(ValueError, match="counts the buffer cannot hold"):
        decode._fastscan.scan(data, 0, True, names, 0, 0, None, rank, huge, True)


def _mapped(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(decode, "_MAP_MIN_BYTES", 0)
    monkeypatch.setattr(decode, "_CHUNK_BYTES", 4000)
    _fresh_tag_table(monkeypatch)
    return _spy_on_paths(monkeypatch)


def test_each_pass_reports_half_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _lightning_like_file(tmp_path / "run")
    paths = _mapped(monkeypatch)
    assert decode._fastscan is not None
    count = decode._fastscan.count
    reported: list[int] = []
    at_count_end: list[int] = []

    def spy_count(*args: Any) -> Any:
        result = count(*args)
        at_count_end.append(sum(reported))
        return result

    monkeypatch.setattr(decode._fastscan, "count", spy_count)
    decode.read_event_file(path, progress=reported.append)
    size = path.stat().st_size
    assert paths == ["in place"]
    assert size // 2 - 4000 <= at_count_end[0] <= size // 2
    assert sum(reported) == size


def test_a_progress_error_in_the_second_pass_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not taken for a changed file: the error comes out, the file is not read again."""
    path = _lightning_like_file(tmp_path / "run")
    _mapped(monkeypatch)
    size, reported = path.stat().st_size, [0]

    def progress(done: int) -> None:
        reported[0] += done
        if reported[0] > size * 3 // 4:
            raise ValueError("stop")

    with pytest.raises(ValueError, match="stop"):
        decode.read_event_file(path, progress=progress)
    assert reported[0] < size


def test_a_file_being_written_is_placed_up_to_its_last_whole_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _lightning_like_file(tmp_path / "run")
    path.write_bytes(path.read_bytes()[:-7])  # the last record half written
    paths = _mapped(monkeypatch)
    fast = decode.read_event_file(path)
    assert paths == ["in place"]
    assert fast.truncated_tail > 0 and fast.corruptions == []
    assert fast.series["val/loss2"].steps.tolist() == list(range(299))  # the last one cut
    monkeypatch.setattr(decode, "_fastscan", None)
    _assert_same(fast, decode.read_event_file(path))


def test_records_only_protobuf_reads_as_points_take_the_general_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    paths = _mapped(monkeypatch)
    fast = decode.read_event_file(path)
    assert paths == ["in order"]
    assert fast.series["loss"].values.tolist() == [0, 1 / 8, 2 / 8, 3 / 8, 4 / 8, 2.0]
    monkeypatch.setattr(decode, "_fastscan", None)
    _assert_same(fast, decode.read_event_file(path))


def test_a_big_run_moves_the_progress_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_scalars passes each file's progress on (on threads), not one report a run."""
    import tbexport

    path = _lightning_like_file(tmp_path / "run")
    _mapped(monkeypatch)
    seen: list[int] = []
    tbexport.load_scalars(tmp_path / "run", progress=seen.append)
    size = path.stat().st_size
    assert sum(seen) == size
    assert len(seen) > 4 and max(seen) <= size // 2  # the chunks of both passes


@pytest.mark.skipif(not hasattr(decode._fastscan, "read_small"), reason="POSIX only")
def test_c_reads_small_files_whole_and_leaves_big_ones(tmp_path: Path) -> None:
    fastscan: Any = decode._fastscan
    path = tmp_path / "events.out.tfevents.1"
    blob = record_bytes([file_version(), simple("loss", 1, 0.5)])
    path.write_bytes(blob)
    assert bytes(memoryview(fastscan.read_small(str(path), len(blob) + 1))) == blob
    assert fastscan.read_small(path, len(blob)) is None  # as big as the limit: mapped instead
    (tmp_path / "empty").write_bytes(b"")
    assert bytes(memoryview(fastscan.read_small(tmp_path / "empty", 1))) == b""
    with pytest.raises(FileNotFoundError) as missing:
        fastscan.read_small(str(tmp_path / "gone"), 1 << 20)
    assert missing.value.filename == str(tmp_path / "gone")
    with pytest.raises(OSError, match="not a regular file") as directory:
        fastscan.read_small(tmp_path, 1 << 20)  # (a directory, as a FIFO, is refused)
    assert directory.value.filename == tmp_path
    series = decode.read_event_file(path).series  # through the reader, the same bytes
    assert series["loss"].values.tolist() == [0.5]


def test_c_join_copies_pieces_one_after_the_other() -> None:
    fastscan: Any = decode._fastscan
    steps, values, codes = np.zeros(8, np.int64), np.zeros(8), np.zeros(8, np.int8)
    pieces = (
        (np.arange(2, dtype=np.int64), np.arange(10, 13, dtype=np.int64)),
        (np.ones(5),),
        ((3, 2), (-1, 3)),  # fills: two rows of 3, three of -1
    )
    fastscan.join(pieces, (steps, values, codes), 2)  # from row 2
    assert steps.tolist() == [0, 0, 0, 1, 10, 11, 12, 0]
    assert values.tolist() == [0, 0, 1, 1, 1, 1, 1, 0]
    assert codes.tolist() == [0, 0, 3, 3, -1, -1, -1, 0]
    short = np.zeros(3, np.int16)
    fastscan.join((((300, 2),),), (short,), 1)
    assert short.tolist() == [0, 300, 300]
    with pytest.raises(ValueError, match="overflow"):
        fastscan.join(pieces, (steps, values, codes), 4)
    with pytest.raises(ValueError, match="overflow"):
        fastscan.join((((1, 4),),), (short,), 0)
    with pytest.raises(ValueError, match="one destination per column"):
        fastscan.join(pieces, (steps,), 0)
    with pytest.raises(TypeError, match="must be tuples"):
        fastscan.join(([np.ones(1)],), (values,), 0)
    with pytest.raises(ValueError, match="part of an item"):
        fastscan.join(((np.ones(1, np.int8),),), (values,), 0)
    with pytest.raises(BufferError):  # a read-only destination
        fastscan.join(((np.ones(1),),), (b"12345678",), 0)
    assert values.tolist() == [0, 0, 1, 1, 1, 1, 1, 0]  # untouched by the failed calls
