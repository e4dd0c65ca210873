"""Hostile inputs: names that are not UTF-8, damaged CSVLogger files, digit runs past
int()'s limit, hparams.yaml bombs, runs deeper than PATH_MAX. Each is read without a
traceback, the readable data kept exactly and the damage reported by file and line."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import scipy.io
from click.testing import CliRunner, Result

import tbexport
from tbexport.cli import cli
from tbexport.exceptions import CorruptRecordWarning, UnreadableFileError
from tbexport.reading.discover import find_runs, natural_key

from .builders import simple, write_events


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@contextlib.contextmanager
def strings_stored_in(storage: str) -> Iterator[None]:
    """pandas' strings stored in Python objects or in Arrow (as where pyarrow is
    installed); before pandas 3, with strings inferred as its string dtype."""
    if storage == "pyarrow":
        pytest.importorskip("pyarrow")
    options: dict[str, object] = {"mode.string_storage": storage}
    if int(pd.__version__.split(".")[0]) < 3:
        options["future.infer_string"] = True
    with contextlib.ExitStack() as stack:
        for name, value in options.items():
            stack.enter_context(pd.option_context(name, value))
        yield


# ---------- 1. run directories whose names are not UTF-8 ----------

ODD = b"run_\xff\xfe"  # legal on Linux, no UTF-8
ODD_NAME = "run_\\xff\\xfe"  # as tbexport names it: the bytes as backslash escapes


@pytest.fixture
def odd_logs(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkdir(os.fsencode(logs) + b"/" + ODD)
    odd = logs / os.fsdecode(ODD)
    write_events(odd / "events.out.tfevents.1", [simple("loss", s, 0.5 + s) for s in range(3)])
    (odd / "hparams.yaml").write_text("lr: 0.125\n")
    write_events(logs / "ok" / "events.out.tfevents.1", [simple("loss", s, 0.25) for s in range(2)])
    return logs


def test_undecodable_names_are_shown_with_backslash_escapes() -> None:
    from tbexport.reading.discover import readable_name

    assert readable_name(os.fsdecode(b"run_\xff\xfe")) == "run_\\xff\\xfe"
    assert readable_name("a\ud800b") == "a\\ud800b"  # a lone surrogate of another kind
    assert readable_name("plain é ✓") == "plain é ✓"  # other text as it is


def test_a_run_named_by_undecodable_bytes_keeps_its_real_path(odd_logs: Path) -> None:
    runs = find_runs(odd_logs)
    assert [run.name for run in runs] == ["ok", ODD_NAME]
    assert os.fsencode(runs[1].files[0]) == os.fsencode(odd_logs) + b"/" + ODD + (
        b"/events.out.tfevents.1"
    )
    # given itself, the run is named after its directory, escaped the same way
    (alone,) = find_runs(odd_logs / os.fsdecode(ODD))
    assert alone.name == ODD_NAME


def test_an_escaped_name_and_the_same_text_stay_two_runs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    os.mkdir(os.fsencode(logs) + b"/" + ODD)
    write_events(logs / os.fsdecode(ODD) / "events.out.tfevents.1", [simple("x", 0, 1.0)])
    write_events(logs / ODD_NAME / "events.out.tfevents.1", [simple("x", 0, 2.0)])
    assert sorted(run.name for run in find_runs(logs)) == [ODD_NAME, f"{ODD_NAME} (2)"]


@pytest.mark.parametrize("storage", ["python", "pyarrow"])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".mat"])
def test_an_undecodable_run_name_exports_in_every_format(
    odd_logs: Path, tmp_path: Path, suffix: str, storage: str
) -> None:
    out = tmp_path / f"out{suffix}"
    with strings_stored_in(storage):
        result = invoke(odd_logs, "-o", out)
        frame = tbexport.read_scalars(odd_logs)
    assert result.exit_code == 0, result.output
    assert result.stderr == f"wrote {out}: 2 runs, 1 tag, 5 points from 2 event files\n"
    assert list(frame["run"].cat.categories) == ["ok", ODD_NAME]
    categories = frame["run"].cat.categories.dtype
    assert getattr(categories, "storage", None) == storage  # (strings in Arrow, or not)
    odd_rows = frame[frame["run"] == ODD_NAME]
    assert odd_rows["value"].tolist() == [0.5, 1.5, 2.5]
    assert odd_rows["step"].tolist() == [0, 1, 2]
    if suffix == ".csv":
        assert out.read_text(encoding="utf-8").splitlines() == [
            "run,tag,step,wall_time,value",
            "ok,loss,0,1000.0,0.25",
            "ok,loss,1,1001.0,0.25",
            f"{ODD_NAME},loss,0,1000.0,0.5",
            f"{ODD_NAME},loss,1,1001.0,1.5",
            f"{ODD_NAME},loss,2,1002.0,2.5",
        ]
    elif suffix == ".xlsx":
        book = openpyxl.load_workbook(out)
        index = list(book["index"].iter_rows(values_only=True))
        assert [row[0] for row in index] == ["run", "ok", ODD_NAME]
        assert list(book["hparams"].iter_rows(values_only=True))[1] == (ODD_NAME, 0.125)
    else:
        mat = scipy.io.loadmat(out, simplify_cells=True)
        assert mat["tbexport_runs"][1][0] == ODD_NAME
        assert mat["run__xff_xfe"]["loss"]["value"].tolist() == [0.5, 1.5, 2.5]
        assert mat["hparams"]["run__xff_xfe"]["lr"] == 0.125


# ---------- 2. damaged CSVLogger metrics.csv ----------


def test_a_damaged_metrics_csv_loses_only_its_bad_rows(tmp_path: Path) -> None:
    run = tmp_path / "csv_logs" / "version_0"
    run.mkdir(parents=True)
    metrics = run / "metrics.csv"
    metrics.write_bytes(
        b"step,loss\n"
        b"0,1.5\n"
        b"inf,2.0\n"  # line 3: a step no integer holds
        b"1,0.75\n"
        b"1e30,3.0\n"  # line 5: beyond int64
        b"2," + b"9" * 140_000 + b"\n"  # line 6: a field past csv's limit
        b"3,\xff\xfe\n"  # line 7: not UTF-8
        b"9223372036854775807,0.125\n"  # line 8: the largest int64, exactly
        b"nan,4.0\n"  # line 9: as before
    )
    result = invoke(tmp_path / "csv_logs", "-o", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    *warned, summary = result.stderr.splitlines()
    assert warned == [
        f"warning: {metrics}: unreadable row (step beyond int64) at line 3, skipped",
        f"warning: {metrics}: unreadable row (step beyond int64) at line 5, skipped",
        f"warning: {metrics}: unreadable row (a field over 131072 characters) at line 6, skipped",
        f"warning: {metrics}: unreadable row (not UTF-8) at line 7, skipped",
        f"warning: {metrics}: unreadable row at line 9, skipped",
    ]
    assert summary == (
        f"wrote {tmp_path / 'out.csv'}: 1 run, 1 tag, 3 points from 1 event file; "
        "skipped 5 unreadable rows"
    )
    assert (tmp_path / "out.csv").read_text().splitlines() == [
        "run,tag,step,wall_time,value",
        "version_0,loss,0,,1.5",
        "version_0,loss,1,,0.75",
        "version_0,loss,9223372036854775807,,0.125",
    ]
    with pytest.warns(CorruptRecordWarning) as caught:
        frame = tbexport.read_scalars(tmp_path / "csv_logs")
    assert [int(re.findall(r"line (\d+)", str(w.message))[0]) for w in caught] == [3, 5, 6, 7, 9]
    assert frame["step"].tolist() == [0, 1, 9223372036854775807]
    assert frame["value"].tolist() == [1.5, 0.75, 0.125]


def test_a_metrics_csv_column_that_is_not_utf8_is_named_with_escapes(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    run.mkdir()
    (run / "metrics.csv").write_bytes(b"step,lo\xffss,acc\n0,1.0,0.5\n1,2.0,\n")
    result = invoke(run, "-o", tmp_path / "out.xlsx")
    assert result.exit_code == 0, result.output
    frame = tbexport.read_scalars(run)
    assert list(frame["tag"].cat.categories) == ["acc", "lo\\xffss"]
    assert frame[frame["tag"] == "lo\\xffss"]["value"].tolist() == [1.0, 2.0]


def test_a_metrics_csv_whose_header_cannot_be_read_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.csv").write_bytes(b"step,l" + b"o" * 140_000 + b"ss\n0,1.0\n")
    write_events(tmp_path / "good" / "events.out.tfevents.1", [simple("loss", 0, 0.5)])
    result = invoke(tmp_path, "-o", tmp_path / "out.csv")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        f"warning: {bad / 'metrics.csv'}: header unreadable "
        "(a field over 131072 characters), skipped"
    )
    assert (tmp_path / "out.csv").read_text().splitlines()[1:] == ["good,loss,0,1000.0,0.5"]


# ---------- 3. digit runs past int()'s 4,300 digits ----------


def test_natural_order_compares_digit_runs_of_any_length() -> None:
    huge = "9" * 5000
    names = ["a" + "1" + "0" * 5000, "a10", "a" + huge, "a0" + huge, "a9", "a" + huge + "b", "b"]
    expected = ["a9", "a10", "a0" + huge, "a" + huge, "a" + huge + "b", "a1" + "0" * 5000, "b"]
    assert sorted(names, key=natural_key) == expected
    assert sorted(reversed(names), key=natural_key) == expected
    # other scripts' digits are the numbers they write, as int() reads them
    assert sorted(["x10", "x٣", "x2"], key=natural_key) == ["x2", "x٣", "x10"]


def test_tags_and_columns_with_thousands_of_digits_export(tmp_path: Path) -> None:
    long_tag = "loss_" + "7" * 5000
    write_events(
        tmp_path / "tb" / "events.out.tfevents.1",
        [simple(long_tag, 0, 0.5), simple("loss_2", 0, 0.25), simple("loss_10", 0, 0.125)],
    )
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(f"step,{long_tag},loss_2\n0,1.5,2.5\n")
    for suffix in (".csv", ".xlsx", ".mat"):
        result = invoke(tmp_path, "-o", tmp_path / f"out{suffix}")
        assert result.exit_code == 0, result.output
    frame = tbexport.read_scalars(tmp_path)
    assert list(frame["tag"].cat.categories) == ["loss_2", "loss_10", long_tag]
    assert frame[frame["tag"] == long_tag]["value"].tolist() == [1.5, 0.5]


# ---------- 4. hparams.yaml bombs and numbers no writer stores ----------


def _billion_laughs(levels: int = 9) -> str:
    """The alias bomb: each level nine aliases of the one before (9 levels: 324 bytes
    that expand to 9**9 values; it took 33 s and 2.6 GB to read, and an export of it
    ran out of memory)."""
    names = "abcdefghi"[:levels]
    lines = [f"a: &a [{','.join(['lol'] * 9)}]"]
    for prev, cur in itertools.pairwise(names):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("opt: &a {inner: *a}\n", "a recursive alias (line 1)"),
        ("opt: &a [1, *a]\n", "a recursive alias (line 1)"),
        ("x: " + "[" * 5000 + "]" * 5000 + "\n", "nested over 100 levels deep (line 1)"),
        ("x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nested over 100 levels deep (line 1)"),
        # (7 levels: 9**7 values, small enough to export before the fix, as a test)
        (_billion_laughs(7), "aliases repeat over 100000 values (line 6)"),
    ],
    ids=["recursive-mapping", "recursive-list", "lists", "mappings", "billion-laughs"],
)
def test_a_hostile_hparams_yaml_is_left_out_with_a_note(
    tmp_path: Path, text: str, reason: str
) -> None:
    run = tmp_path / "version_0"
    write_events(run / "events.out.tfevents.1", [simple("loss", 0, 0.5)])
    (run / "hparams.yaml").write_text(text)
    started = time.monotonic()
    result = invoke(run, "-o", tmp_path / "out.mat", "-q")
    assert time.monotonic() - started < 20  # (the bomb took 33 s and 2.6 GB)
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"note: {run / 'hparams.yaml'}: {reason}, hyperparameters left out\n")
    assert scipy.io.loadmat(tmp_path / "out.mat", simplify_cells=True)["loss"]["value"] == 0.5
    with pytest.warns(UserWarning, match=re.escape(reason)):
        assert tbexport.read_hparams(run).columns.tolist() == ["run"]


def test_the_billion_laughs_bomb_is_refused_at_once(tmp_path: Path) -> None:
    from tbexport.reading.hparams import read_hparams_yaml

    (tmp_path / "hparams.yaml").write_text(_billion_laughs())
    notes: list[str] = []
    started = time.monotonic()
    assert read_hparams_yaml(tmp_path, True, notes) == {}
    assert time.monotonic() - started < 5
    assert notes == [
        f"{tmp_path / 'hparams.yaml'}: aliases repeat over 100000 values (line 6), "
        "hyperparameters left out"
    ]


def test_aliases_within_the_bounds_are_followed(tmp_path: Path) -> None:
    from tbexport.reading.hparams import MAX_DEPTH, read_hparams_yaml

    # as yaml.dump writes one object met twice, and YAML's merge key
    (tmp_path / "hparams.yaml").write_text(
        "a: &id001 [1, 2]\nb: *id001\nbase: &b {lr: 0.5, m: 0.9}\nopt:\n  <<: *b\n  m: 0.8\n"
    )
    assert read_hparams_yaml(tmp_path, True) == {
        "a": "[1, 2]",
        "b": "[1, 2]",
        "base.lr": 0.5,
        "base.m": 0.9,
        "opt.lr": 0.5,
        "opt.m": 0.8,
    }
    # MAX_DEPTH levels, the top mapping and the innermost value counted, are read
    nested = MAX_DEPTH - 2
    (tmp_path / "hparams.yaml").write_text("x: " + "{a: " * nested + "1" + "}" * nested + "\n")
    assert read_hparams_yaml(tmp_path, True) == {"x" + ".a" * nested: 1}
    notes: list[str] = []
    (tmp_path / "hparams.yaml").write_text(
        "s: &s {a: {b: 1}}\nx: " + "{a: " * nested + "*s" + "}" * nested + "\n"
    )
    assert read_hparams_yaml(tmp_path, True, notes) == {}  # (an alias's levels count too)
    assert notes and "nested over 100 levels deep (line 2)" in notes[0]


def test_integers_beyond_int64_are_kept_as_text(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    write_events(run / "events.out.tfevents.1", [simple("loss", 0, 0.5)])
    digits = "1" * 5000
    (run / "hparams.yaml").write_text(
        "seed: 1000000000000000000000000000000\n"
        f"long: {digits}\n"
        "low: -9223372036854775808\n"  # int64's ends stay numbers
        "high: 0x7fffffffffffffff\n"
        "over: 9_223_372_036_854_775_808\n"
        "padded: 0x" + "0" * 100 + "1f\n"
        "month: 2001-13-01\n"  # no date: the text
        "tagged: !!int abc\n"
        "python: !!python/tuple [1, 2]\n"  # (lenient, as before)
        "shared: &s {lr: 0.5}\n"
        "again: *s\n"
    )
    expected = {
        "seed": "1000000000000000000000000000000",
        "long": digits,
        "low": -(2**63),
        "high": 2**63 - 1,
        "over": "9_223_372_036_854_775_808",
        "padded": 31,
        "month": "2001-13-01",
        "tagged": "abc",
        "python": "[1, 2]",
        "shared.lr": 0.5,
        "again.lr": 0.5,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hparams = tbexport.read_hparams(run)
    assert hparams.iloc[0].to_dict() == {"run": "version_0", **expected}
    for suffix in (".mat", ".xlsx", ".csv"):
        result = invoke(run, "-o", tmp_path / f"out{suffix}", "-q")
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
    mat = scipy.io.loadmat(tmp_path / "out.mat", simplify_cells=True)
    assert mat["hparams"]["seed"] == "1000000000000000000000000000000"
    assert mat["hparams"]["high"] == 2**63 - 1
    sheet = list(
        openpyxl.load_workbook(tmp_path / "out.xlsx")["hparams"].iter_rows(values_only=True)
    )
    assert dict(zip(sheet[0], sheet[1], strict=True))["seed"] == "1000000000000000000000000000000"


def test_text_that_is_no_unicode_in_hparams_yaml_is_escaped(tmp_path: Path) -> None:
    run = tmp_path / "version_0"
    write_events(run / "events.out.tfevents.1", [simple("loss", 0, 0.5)])
    (run / "hparams.yaml").write_text('name: "a\\udcffb"\n"k\\ud800": 1\n')
    assert tbexport.read_hparams(run).iloc[0].to_dict() == {
        "run": "version_0",
        "name": "a\\xffb",
        "k\\ud800": 1,
    }
    for suffix in (".xlsx", ".mat"):
        assert invoke(run, "-o", tmp_path / f"out{suffix}", "-q").exit_code == 0


# ---------- 5. runs deeper than PATH_MAX ----------


def _deep_run(top: Path, length: int = 20_033) -> Path:
    """A run ``length`` characters below ``top``, made relative to directory descriptors
    (no path that long can be given to the system); its path, as text."""
    part = "d" * 200
    parts = -(-length // (len(part) + 1))
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(parts):
            os.mkdir(part, dir_fd=fd)
            below = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = below
        events = os.open("events.out.tfevents.1", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        from .builders import record_bytes

        os.write(events, record_bytes([simple("loss", 0, 2.0)]))
        os.close(events)
    finally:
        os.close(fd)
    return top.joinpath(*[part] * parts)


def _first_too_long(top: Path, deep: Path) -> str:
    """The first directory on the way to ``deep`` whose path the system refuses."""
    path = str(top)
    for part in deep.relative_to(top).parts:
        path = os.path.join(path, part)
        try:
            os.stat(path)
        except OSError as error:
            assert error.errno == errno.ENAMETOOLONG
            return path
    raise AssertionError("no path too long")


@pytest.mark.parametrize("jobs", [1, 4])
def test_runs_deeper_than_path_max_are_reported_and_counted(tmp_path: Path, jobs: int) -> None:
    top = tmp_path / "logs"
    top.mkdir()
    write_events(top / "short" / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
    deep = _deep_run(top)
    assert len(str(deep)) > 20_033
    skipped = _first_too_long(top, deep)
    result = invoke(top, "-o", tmp_path / "out.csv", "-j", str(jobs))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {skipped}: path too long, skipped",
        f"wrote {tmp_path / 'out.csv'}: 1 run, 1 tag, 1 point from 1 event file; "
        "skipped 1 unreadable file",
    ]
    assert (tmp_path / "out.csv").read_text().splitlines()[1:] == ["short,loss,0,1000.0,1.0"]
    with pytest.warns(CorruptRecordWarning, match="path too long, skipped"):
        assert [run.name for run in find_runs(top, jobs=jobs)] == ["short"]
    unreadable: list[tbexport.Corruption] = []
    find_runs(top, unreadable=unreadable, jobs=jobs)
    assert [(c.path, c.reason, c.unit) for c in unreadable] == [(skipped, "path too long", "file")]


def test_a_path_given_that_is_too_long_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = _deep_run(tmp_path, 5000)
    monkeypatch.chdir(tmp_path)
    given = os.path.relpath(deep, tmp_path)
    with pytest.raises(UnreadableFileError, match="path too long"):
        find_runs(given)
    # (the command line's own check of its paths refuses it first: a usage error)
    result = CliRunner().invoke(cli, [given, "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out.csv").exists()
