"""Each output format read back with an independent reader, values compared exactly."""

from __future__ import annotations

import contextlib
import math
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import scipy.io

import tbexport
from tbexport import tuning
from tbexport.options import WriteOptions
from tbexport.writing import excel

from .builders import simple, write_events

RNG_VALUES = np.random.default_rng(7).standard_normal(300).astype(np.float32)


@pytest.fixture
def two_runs(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for version, scale in [(0, 1.0), (1, 2.0)]:
        events = [
            simple("train/loss", s, float(RNG_VALUES[s]) * scale, wall_time=1e9 + s / 3)
            for s in range(300)
        ]
        events += [simple("val_acc", s, s / 1000 * scale) for s in range(0, 300, 100)]
        write_events(root / f"version_{version}" / "events.out.tfevents.1", events)
    return root


@pytest.fixture
def odd_values(tmp_path: Path) -> Path:
    run = tmp_path / "version_0"
    values = [1.5, math.nan, math.inf, -math.inf, 2.5]
    write_events(run / "events.out.tfevents.1", [simple("odd", s, v) for s, v in enumerate(values)])
    return run


def _sheet_rows(path: Path, name: str) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(path, read_only=True)
    return [tuple(r) for r in book[name].iter_rows(values_only=True)]


def test_xlsx_single_run_layout_and_exact_values(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs / "version_0", tmp_path / "out.xlsx").output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["index", "summary", "train_loss", "val_acc"]
    rows = _sheet_rows(out, "train_loss")
    assert rows[0] == ("step", "wall_time", "value")
    assert [r[0] for r in rows[1:]] == list(range(300))
    assert [r[1] for r in rows[1:]] == [1e9 + s / 3 for s in range(300)]
    # bit-exact doubles (xlsxwriter/openpyxl's 16 digits would fail this)
    assert [r[2] for r in rows[1:]] == RNG_VALUES.astype(np.float64).tolist()
    index = _sheet_rows(out, "index")
    assert index[0] == tuple(excel.INDEX_COLUMNS)
    finite = RNG_VALUES.astype(np.float64)
    assert index[1] == (
        "version_0",
        "train/loss",
        "train_loss",
        300,
        0,
        299,
        float(finite[-1]),
        float(finite.min()),
        float(finite.max()),
        0,
    )
    assert index[2][:6] == ("version_0", "val_acc", "val_acc", 3, 0, 200)
    assert book["index"]["C2"].hyperlink.location == "'train_loss'!A1"


def test_xlsx_several_runs_get_a_run_column(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs, tmp_path / "sweep.xlsx").output
    rows = _sheet_rows(out, "val_acc")
    assert rows == [
        ("run", "step", "wall_time", "value"),
        *[("version_0", s, 1000.0 + s, float(np.float32(s / 1000))) for s in (0, 100, 200)],
        *[("version_1", s, 1000.0 + s, float(np.float32(s / 1000 * 2))) for s in (0, 100, 200)],
    ]
    index = _sheet_rows(out, "index")
    assert [(r[0], r[1], r[2]) for r in index[1:]] == [
        ("version_0", "train/loss", "train_loss"),
        ("version_0", "val_acc", "val_acc"),
        ("version_1", "train/loss", "train_loss"),
        ("version_1", "val_acc", "val_acc"),
    ]


def test_xlsx_nonfinite_values_are_text_and_counted(odd_values: Path, tmp_path: Path) -> None:
    out = tbexport.export(odd_values, tmp_path / "odd.xlsx").output
    assert [r[2] for r in _sheet_rows(out, "odd")[1:]] == [1.5, "nan", "inf", "-inf", 2.5]
    index = _sheet_rows(out, "index")[1]
    assert index[3:] == (5, 0, 4, 2.5, 1.5, 2.5, 3)


def test_xlsx_reads_back_with_calamine(two_runs: Path, tmp_path: Path) -> None:
    calamine = pytest.importorskip("python_calamine")
    out = tbexport.export(two_runs / "version_1", tmp_path / "c.xlsx").output
    book = calamine.CalamineWorkbook.from_path(str(out))
    assert book.sheet_names == ["index", "summary", "train_loss", "val_acc"]
    rows = book.get_sheet_by_name("train_loss").to_python()
    assert [r[2] for r in rows[1:]] == (RNG_VALUES.astype(np.float64) * 2).astype(
        np.float32
    ).astype(np.float64).tolist()


def test_xlsx_tag_longer_than_a_sheet_continues(
    two_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(excel, "ROWS_PER_SHEET", 120)  # 300 rows -> 3 sheets, same code path
    out = tbexport.export(two_runs / "version_0", tmp_path / "long.xlsx").output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == [
        "index",
        "summary",
        "train_loss",
        "train_loss #2",
        "train_loss #3",
        "val_acc",
    ]
    steps = [r[0] for name in book.sheetnames[2:5] for r in _sheet_rows(out, name)[1:]]
    assert steps == list(range(300))
    assert _sheet_rows(out, "train_loss #3")[0] == ("step", "wall_time", "value")
    assert _sheet_rows(out, "index")[1][2] == "train_loss, train_loss #2, train_loss #3"


def test_xlsx_package_is_well_formed(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs, tmp_path / "pkg.xlsx").output
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
        assert {
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/styles.xml",
            "xl/_rels/workbook.xml.rels",
        } <= set(names)
        import xml.dom.minidom

        for name in names:  # every part parses as XML
            xml.dom.minidom.parseString(archive.read(name))


def test_mat_single_run(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs / "version_0", tmp_path / "v0.mat").output
    mat = scipy.io.loadmat(out, squeeze_me=False)
    loss = mat["train_loss"][0, 0]
    assert loss["step"].shape == (300, 1)
    assert loss["step"].dtype == np.float64
    assert loss["step"][:, 0].tolist() == list(range(300))
    assert loss["wall_time"][:, 0].tolist() == [1e9 + s / 3 for s in range(300)]
    assert loss["value"][:, 0].tolist() == RNG_VALUES.astype(np.float64).tolist()
    tags = mat["tbexport_tags"]
    assert tags.shape == (2, 2)
    assert [(str(tags[i, 0][0]), str(tags[i, 1][0])) for i in range(2)] == [
        ("train/loss", "train_loss"),
        ("val_acc", "val_acc"),
    ]


def test_mat_several_runs_nest_one_struct_per_run(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs, tmp_path / "all.mat").output
    mat = scipy.io.loadmat(out, simplify_cells=True)
    assert mat["version_1"]["val_acc"]["value"].tolist() == [
        float(np.float32(s / 1000 * 2)) for s in (0, 100, 200)
    ]
    assert mat["version_0"]["train_loss"]["step"].tolist() == list(range(300))
    assert [list(r) for r in mat["tbexport_runs"]] == [  # {run, variable, directory}
        ["version_0", "version_0", "version_0"],
        ["version_1", "version_1", "version_1"],
    ]


def test_mat_keeps_nan_and_inf(odd_values: Path, tmp_path: Path) -> None:
    out = tbexport.export(odd_values, tmp_path / "odd.mat").output
    values = scipy.io.loadmat(out, simplify_cells=True)["odd"]["value"]
    assert (
        values[0] == 1.5
        and math.isnan(values[1])
        and values[2] == math.inf
        and values[3] == -math.inf
    )


def test_csv_long_and_wide(two_runs: Path, tmp_path: Path) -> None:
    out = tbexport.export(two_runs, tmp_path / "all.csv").output
    back = pd.read_csv(out)
    assert list(back.columns) == ["run", "tag", "step", "wall_time", "value"]
    frame = tbexport.read_scalars(two_runs)
    assert back["value"].tolist() == frame["value"].tolist()
    assert back["wall_time"].tolist() == frame["wall_time"].tolist()
    assert back["run"].tolist() == frame["run"].astype(str).tolist()
    wide = pd.read_csv(tbexport.export(two_runs, tmp_path / "w.csv", wide=True).output)
    assert list(wide.columns) == ["run", "step", "train/loss", "val_acc"]
    assert len(wide) == 600
    assert wide["val_acc"].notna().sum() == 6


def test_wide_csv_layouts_carry_the_smoothed_values_and_keep_run_order(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    # "b" logs only "acc": the first tag's table holds runs a, c; natural order is a, b, c
    write_events(
        root / "c" / "events.out.tfevents.1", [simple("acc", 0, 1.0), simple("acc", 1, 3.0)]
    )
    write_events(root / "a" / "events.out.tfevents.1", [simple("acc", 0, 2.0)])
    write_events(root / "b" / "events.out.tfevents.1", [simple("zloss", 5, 4.0)])
    runs = pd.read_csv(tbexport.export(root, tmp_path / "r.csv", layout="wide", smooth=0.5).output)
    assert list(runs.columns) == [
        "tag", "step", "a", "b", "c", "a (smoothed)", "b (smoothed)", "c (smoothed)"
    ]  # fmt: skip
    acc = runs[runs["tag"] == "acc"]
    assert acc["c"].tolist() == [1.0, 3.0]
    # TensorBoard's debiased EMA: (0.5 * 1 + 0.5 * 3) / (1 - 0.25) after two points
    assert acc["c (smoothed)"].tolist() == [1.0, (0.25 * 1.0 + 0.5 * 3.0) / 0.75]
    assert runs[runs["tag"] == "zloss"]["b (smoothed)"].tolist() == [4.0]
    tags = pd.read_csv(tbexport.export(root, tmp_path / "t.csv", wide=True, smooth=0.5).output)
    assert list(tags.columns) == [
        "run",
        "step",
        "acc",
        "zloss",
        "acc (smoothed)",
        "zloss (smoothed)",
    ]
    assert tags[tags["run"] == "c"]["acc (smoothed)"].tolist() == acc["c (smoothed)"].tolist()
    smoothed = tbexport.smooth(tbexport.read_scalars(root), 0.5)
    assert tbexport.to_wide(smoothed).columns.tolist() == list(tags.columns)


def test_csv_quotes_tags_that_hold_line_breaks_commas_and_quotes(tmp_path: Path) -> None:
    tags = ["new\nline", "cr\rx", "a,b", 'q"uote', "plain"]
    run = tmp_path / "version_0"
    write_events(run / "events.out.tfevents.1", [simple(t, i, i + 0.5) for i, t in enumerate(tags)])
    back = pd.read_csv(tbexport.export(run, tmp_path / "t.csv").output, keep_default_na=False)
    assert sorted(zip(back["tag"], back["value"], strict=True)) == sorted(
        (t, i + 0.5) for i, t in enumerate(tags)
    )
    book = openpyxl.load_workbook(tbexport.export(run, tmp_path / "t.xlsx").output)
    index = list(book["index"].iter_rows(values_only=True))
    sheet = index[0].index("sheet")
    assert sorted(row[sheet] for row in index[1:]) == sorted(book.sheetnames[2:])
    assert "new_line" in book.sheetnames  # no line break in a sheet name


def test_csv_writes_nan_and_inf(odd_values: Path, tmp_path: Path) -> None:
    text = tbexport.export(odd_values, tmp_path / "odd.csv").output.read_text().splitlines()
    assert [line.rsplit(",", 1)[1] for line in text[1:]] == ["1.5", "", "inf", "-inf", "2.5"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_c_python_and_parallel_rendering_write_identical_files(
    two_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    from tbexport.writing import render

    def contents(path: Path) -> dict[str, bytes] | bytes:
        if suffix == ".csv":
            return path.read_bytes()
        with zipfile.ZipFile(path) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    first = contents(tbexport.export(two_runs, tmp_path / f"c{suffix}").output)
    monkeypatch.setattr(render, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(render, "default_jobs", lambda: 2)
    parallel = contents(tbexport.export(two_runs, tmp_path / f"p{suffix}").output)
    with tuning.tuned(native=False):  # Python renders the numbers
        python = contents(tbexport.export(two_runs, tmp_path / f"py{suffix}").output)
    assert first == parallel == python


@pytest.mark.parametrize("c_writer", [True, False], ids=["c", "python"])
def test_xlsx_wide_layout_holds_hundreds_of_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, c_writer: bool
) -> None:
    """360 runs with smoothing: 721 value columns, past two-letter column names (ZZ)."""
    root = tmp_path / "sweep"
    for run in range(360):
        events = [simple("loss", step, run + step / 4) for step in range(3)]
        write_events(root / f"version_{run}" / "events.out.tfevents.1", events)
    with tuning.tuned(native=c_writer):
        out = tbexport.export(root, tmp_path / "w.xlsx", layout="wide", smooth=0.5).output
    rows = _sheet_rows(out, "loss")
    assert len(rows[0]) == 721
    assert rows[0][:2] == ("step", "version_0") and rows[0][360] == "version_359"
    assert rows[0][-1] == "version_359 (smoothed)"
    assert [r[0] for r in rows[1:]] == [0, 1, 2]
    assert [r[360] for r in rows[1:]] == [359.0, 359.25, 359.5]
    assert rows[1][-1] == 359.0  # the first smoothed point is the point itself
    workbook = openpyxl.load_workbook(out, read_only=True)
    cells = workbook["loss"]
    assert cells["AAS1"].value == "version_359 (smoothed)" and cells["ZZ2"].value is not None
    workbook.close()


def _runs_frame(runs: int) -> pd.DataFrame:
    names = [f"r{i}" for i in range(runs)]
    return pd.DataFrame(
        {
            "run": pd.Categorical(names, categories=names),
            "tag": pd.Categorical(["loss"] * runs),
            "step": np.zeros(runs, np.int64),
            "wall_time": np.zeros(runs),
            "value": np.arange(runs, dtype=np.float64),
        }
    )


def test_xlsx_wide_layout_fills_excel_columns_to_the_last(tmp_path: Path) -> None:
    """step in A, then 16,383 runs: the last one in XFD, Excel's last column."""
    out = tbexport.write_scalars(
        _runs_frame(16_383), tmp_path / "w.xlsx", options=WriteOptions(layout="wide")
    )
    workbook = openpyxl.load_workbook(out, read_only=True)
    sheet = workbook["loss"]
    assert (sheet["XFD1"].value, sheet["XFD2"].value) == ("r16382", 16382.0)
    workbook.close()


def test_xlsx_wide_layout_past_excel_columns_is_an_error(tmp_path: Path) -> None:
    options = WriteOptions(layout="wide")
    with pytest.raises(tbexport.OutputError) as raised:
        tbexport.write_scalars(_runs_frame(16_384), tmp_path / "w.xlsx", options=options)
    assert str(raised.value) == (
        "loss: 16384 run columns do not fit in an Excel sheet (16,384 columns at most); "
        "use the long layout or .csv"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_failing_xlsx_write_reports_its_own_error_and_keeps_the_old_file(
    two_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tbexport.writing import xlsx

    out = tmp_path / "out.xlsx"
    out.write_bytes(b"an earlier export")

    def disk_full(self: xlsx.Sheet, rows: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xlsx.Sheet, "raw_bytes", disk_full)
    with pytest.raises(tbexport.OutputWriteError) as raised:
        tbexport.export(two_runs, out)
    assert str(raised.value) == f"cannot write {out}: No space left on device"
    assert out.read_bytes() == b"an earlier export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightning_logs", "out.xlsx"]


def test_a_failure_while_finishing_an_xlsx_leaves_no_file_open(
    two_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from tbexport.writing import xlsx

    def disk_full(self: xlsx.Workbook) -> dict[str, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xlsx.Workbook, "_package_parts", disk_full)
    out = tmp_path / "out.xlsx"
    with pytest.raises(tbexport.OutputWriteError) as raised:
        tbexport.export(two_runs, out)
    assert str(raised.value) == f"cannot write {out}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightning_logs"]
    if os.path.isdir("/proc/self/fd"):  # the temporary file is closed, not just deleted
        open_files = []
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):  # (the listing's own descriptor is gone)
                open_files.append(os.readlink(f"/proc/self/fd/{fd}"))
        assert not [f for f in open_files if ".out.xlsx." in f]


def test_an_hparams_sheet_past_the_last_column_is_turned(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tbexport.cli import cli

    for run in ("a", "b"):
        write_events(tmp_path / "logs" / run / "events.out.tfevents.1", [simple("x", 1, 1.0)])
        keys = "".join(f"k{i:05d}: {i}\n" for i in range(17_000))
        (tmp_path / "logs" / run / "hparams.yaml").write_text(keys)
    out = tmp_path / "h.xlsx"
    result = CliRunner().invoke(cli, [str(tmp_path / "logs"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "note: sheet 'hparams': 17,000 hyperparameters are more columns than a sheet has "
        "(16,384): written one row per hyperparameter"
    )
    book = openpyxl.load_workbook(out, read_only=True)
    rows = list(book["hparams"].iter_rows(values_only=True))
    book.close()  # (read_only keeps the file open until then)
    assert rows[0] == ("hyperparameter", "a", "b")
    assert len(rows) == 17_001
    assert rows[-1] == ("k16999", 16999, 16999)
