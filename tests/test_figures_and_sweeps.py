"""Many runs side by side, statistics, smoothing, labels, time modes, charts, figures,
hyperparameters: checked against independent computations."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import scipy.io
from click.testing import CliRunner

import tbexport
from tbexport.cli import cli
from tbexport.shaping import smooth_values

from .builders import simple, write_events

# Three runs with different lengths, step sets and a NaN: what real sweeps look like.
RUNS = {
    "version_0": {"loss": [(s, 1.0 + s) for s in range(0, 10)], "acc": [(4, 0.5)]},
    "version_1": {"loss": [(s, 2.0 * s) for s in range(0, 10, 2)]},
    "version_2": {"loss": [(s, 3.0 if s != 4 else math.nan) for s in range(0, 6)]},
}
LRS = {"version_0": 0.1, "version_1": 0.01, "version_2": 0.001}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for run, tags in RUNS.items():
        events = [simple(tag, s, v) for tag, points in tags.items() for s, v in points]
        write_events(root / run / "events.out.tfevents.1", events)
        (root / run / "hparams.yaml").write_text(f"lr: {LRS[run]}\noptimizer:\n  name: adam\n")
    return root


def _reference_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's algorithm, written out point by point."""
    finite = [v for v in values if math.isfinite(v)]
    if all(v == values[0] for v in values):
        return list(values)
    last, n, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    assert finite
    return out


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.95, 0.999])
def test_smoothing_matches_tensorboards_formula(weight: float) -> None:
    values = [3.0, 1.0, math.nan, 4.0, math.inf, 1.0, -5.0, 9.0, 2.0, 6.0]
    got = smooth_values(np.array(values), weight).tolist()
    expected = _reference_smoothing(values, weight)
    for a, b in zip(got, expected, strict=True):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12)
    assert smooth_values(np.array([2.5] * 5), weight).tolist() == [2.5] * 5  # constant
    assert smooth_values(np.array([]), weight).tolist() == []


def test_smooth_column_in_every_format(sweep: Path, tmp_path: Path) -> None:
    out = tbexport.export(sweep / "version_0", tmp_path / "s.csv", smooth=0.6).output
    table = pd.read_csv(out)
    loss = table[table["tag"] == "loss"]
    assert loss["value_smoothed"].tolist() == pytest.approx(
        _reference_smoothing([1.0 + s for s in range(10)], 0.6), rel=1e-12
    )
    mat = scipy.io.loadmat(
        tbexport.export(sweep / "version_0", tmp_path / "s.mat", smooth=0.6).output,
        simplify_cells=True,
    )
    assert mat["loss"]["value_smoothed"].tolist() == pytest.approx(loss["value_smoothed"].tolist())


def test_reduce_statistics_over_unequal_runs(sweep: Path, tmp_path: Path) -> None:
    stats = ["mean", "std", "min", "max", "median", "count"]
    out = tbexport.export(sweep, tmp_path / "r.csv", reduce=stats).output
    table = pd.read_csv(out)
    loss = table[table["tag"] == "loss"]
    for step in range(10):
        present = [v for run in RUNS.values() for s, v in run["loss"] if s == step and v == v]
        got = {r: loss[(loss["run"] == r) & (loss["step"] == step)]["value"].item() for r in stats}
        assert got["count"] == len(present)
        assert got["mean"] == pytest.approx(np.mean(present))
        assert got["min"] == min(present) and got["max"] == max(present)
        assert got["median"] == pytest.approx(np.median(present))
        if len(present) > 1:
            assert got["std"] == pytest.approx(np.std(present, ddof=1))
        else:
            assert math.isnan(got["std"])
    acc = table[table["tag"] == "acc"]  # only one run logged it
    assert acc[acc["run"] == "count"]["value"].tolist() == [1.0]


def test_wide_layout_xlsx_csv_mat(sweep: Path, tmp_path: Path) -> None:
    out = tbexport.export(sweep, tmp_path / "w.xlsx", layout="wide").output
    rows = list(openpyxl.load_workbook(out)["loss"].iter_rows(values_only=True))
    assert rows[0] == ("step", "version_0", "version_1", "version_2")
    assert rows[1] == (0, 1.0, 0.0, 3.0)
    assert rows[2] == (1, 2.0, None, 3.0)  # version_1 has no step 1: empty cell
    assert rows[5] == (4, 5.0, 8.0, None)  # version_2 logged NaN at step 4
    assert [r[0] for r in rows[1:]] == list(range(10))
    wide = pd.read_csv(tbexport.export(sweep, tmp_path / "w.csv", layout="wide").output)
    assert list(wide.columns) == ["tag", "step", "version_0", "version_1", "version_2"]
    assert wide[wide["tag"] == "loss"]["version_1"].isna().sum() == 5
    mat = scipy.io.loadmat(
        tbexport.export(sweep, tmp_path / "w.mat", layout="wide").output, simplify_cells=True
    )
    loss = mat["loss"]
    assert loss["value"].shape == (10, 3)
    assert list(loss["runs"]) == ["version_0", "version_1", "version_2"]
    assert loss["value"][2].tolist()[:1] == [3.0] and math.isnan(loss["value"][1][1])
    steps, logged = loss["step"].tolist(), loss["logged"]
    assert logged.shape == (10, 3)  # (MATLAB logicals load as uint8)
    assert not logged[1, 1]  # version_1 logs even steps only: no point at step 1
    four = steps.index(4)  # version_2 logged NaN at step 4: a point all the same
    assert logged[four, 2] and math.isnan(loss["value"][four][2])


def test_name_by_hyperparameter(sweep: Path, tmp_path: Path) -> None:
    out = tbexport.export(sweep, tmp_path / "n.csv", name_by="hparam:lr").output
    assert pd.read_csv(out)["run"].unique().tolist() == ["lr=0.1", "lr=0.01", "lr=0.001"]
    with pytest.raises(tbexport.InvalidOptionError, match="no run has the hyperparameter 'beta'"):
        tbexport.export(sweep, tmp_path / "n2.csv", name_by="hparam:beta")


def test_hparams_everywhere(sweep: Path, tmp_path: Path) -> None:
    frame = tbexport.read_hparams(sweep)
    assert frame.to_dict("records") == [
        {"run": r, "lr": LRS[r], "optimizer.name": "adam"} for r in RUNS
    ]
    book = openpyxl.load_workbook(tbexport.export(sweep, tmp_path / "h.xlsx").output)
    assert book.sheetnames[:3] == ["index", "summary", "hparams"]
    assert list(book["hparams"].iter_rows(values_only=True))[1] == ("version_0", 0.1, "adam")
    mat = scipy.io.loadmat(tbexport.export(sweep, tmp_path / "h.mat").output, simplify_cells=True)
    assert mat["hparams"]["version_1"]["lr"] == 0.01
    assert mat["hparams"]["version_1"]["optimizer_name"] == "adam"
    listing = CliRunner().invoke(cli, [str(sweep), "--list"]).stdout
    assert "  hparams: lr=0.1, optimizer.name=adam" in listing


def test_hparams_from_add_hparams(tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    hparams = {"lr": 0.5, "opt": "sgd", "nesterov": True, "wd": 0.1, "bs": 32, "act": "relu"}
    with torch_tb.SummaryWriter(tmp_path / "run") as writer:
        writer.add_hparams(hparams, {"hp/final": 1.25}, run_name=".")
    frame = tbexport.read_hparams(tmp_path / "run")
    assert frame.loc[0, "lr"] == 0.5 and frame.loc[0, "opt"] == "sgd"
    assert bool(frame.loc[0, "nesterov"]) is True
    # a protobuf map comes out in an order that changes from process to process
    assert list(frame.columns) == ["run", *sorted(hparams)]
    assert tbexport.read_scalars(tmp_path / "run")["value"].tolist() == [1.25]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lightning_hparams_come_out_as_given_not_as_tensorboard_copies_them(
    tmp_path: Path,
) -> None:
    """Lightning's default logger writes hparams.yaml and, in the event file, a lossy
    copy (32.0, True as 1.0, None as "None", keys joined with "/"): the yaml's win."""
    loggers = pytest.importorskip("pytorch_lightning.loggers", reason="needs the train extra")
    logger = loggers.TensorBoardLogger(tmp_path, name="lightning_logs")  # default_hp_metric
    given = {"hidden": 32, "lr": 1e-3, "flag": True, "none": None, "opt": {"name": "adam"}}
    logger.log_hyperparams(given)
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize("success")
    run = tmp_path / "lightning_logs" / "version_0"
    with torch_tb().SummaryWriter(run) as writer:  # one only the event file holds
        writer.add_hparams({"seed": 7}, {}, run_name=".")
    hparams = tbexport.load_scalars(tmp_path).hparams["lightning_logs/version_0"]
    assert hparams == {"flag": True, "hidden": 32, "lr": 1e-3, "opt.name": "adam", "seed": 7.0}
    assert type(hparams["hidden"]) is int and type(hparams["flag"]) is bool
    frame = tbexport.read_hparams(tmp_path)
    assert list(frame.columns) == ["run", "flag", "hidden", "lr", "opt.name", "seed"]
    book = openpyxl.load_workbook(tbexport.export(tmp_path, tmp_path / "h.xlsx").output)
    row = list(book["hparams"].iter_rows(values_only=True))[1]
    assert row == ("lightning_logs/version_0", True, 32, 1e-3, "adam", 7.0)
    assert row[1] is True and type(row[2]) is int  # a logical cell, an integer


def test_a_hyperparameter_named_run_does_not_replace_the_run_column(tmp_path: Path) -> None:
    for version, seed in ((0, 7), (1, 8)):
        run = tmp_path / f"version_{version}"
        write_events(run / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
        (run / "hparams.yaml").write_text(f"run: {seed}\nlr: 0.1\n")
    frame = tbexport.read_hparams(tmp_path)
    assert frame.to_dict("list") == {
        "run": ["version_0", "version_1"],
        "run (hparam)": [7, 8],
        "lr": [0.1, 0.1],
    }


def test_a_fifo_named_hparams_yaml_is_not_waited_on(tmp_path: Path) -> None:
    import os
    import threading

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    write_events(tmp_path / "run" / "events.out.tfevents.1", [simple("loss", 0, 1.5)])
    os.mkfifo(tmp_path / "run" / "hparams.yaml")  # nothing will ever write to it
    found: list[tbexport.ScalarData] = []
    reading = threading.Thread(
        target=lambda: found.append(tbexport.load_scalars(tmp_path / "run")), daemon=True
    )
    reading.start()
    reading.join(timeout=30)
    assert not reading.is_alive(), "the read waited on the FIFO"
    assert found[0].hparams == {} and found[0].frame["value"].tolist() == [1.5]
    (tmp_path / "run" / "hparams.yaml").unlink()
    (tmp_path / "run" / "hparams.yaml").mkdir()  # a directory of that name: no hparams
    assert tbexport.load_scalars(tmp_path / "run" / "events.out.tfevents.1").hparams == {}


def torch_tb():  # type: ignore[no-untyped-def]
    return pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")


def test_mat_hparams_of_a_run_without_scalars_get_a_valid_name(tmp_path: Path) -> None:
    with torch_tb().SummaryWriter(tmp_path / "edge" / "hponly") as writer:
        writer.add_hparams({"lr": 0.1, "opt": "adam"}, {}, run_name="1795805409.9")
    write_events(tmp_path / "edge" / "scal" / "events.out.tfevents.1", [simple("x", 0, 1.0)])
    out = tbexport.export(tmp_path / "edge", tmp_path / "e.mat").output
    hparams = scipy.io.loadmat(out, simplify_cells=True)["hparams"]
    # not the one scalar run's own: kept under its run's (valid MATLAB) name
    assert hparams == {"hponly_1795805409_9": {"lr": 0.1, "opt": "adam"}}


def test_summary_matches_an_independent_computation(sweep: Path) -> None:
    frame = tbexport.read_scalars(sweep)
    summary = tbexport.summarize(frame)
    row = summary[(summary["run"] == "version_2") & (summary["tag"] == "loss")].iloc[0]
    assert (row["points"], row["first_step"], row["last_step"]) == (6, 0, 5)
    assert row["min"] == 3.0 and row["max"] == 3.0 and row["nonfinite"] == 1
    row = summary[(summary["run"] == "version_0") & (summary["tag"] == "loss")].iloc[0]
    assert (row["min"], row["min_step"], row["max"], row["max_step"]) == (1.0, 0, 10.0, 9)
    assert row["duration_s"] == 9.0  # builders put wall_time at 1000 + step


def test_summary_of_a_frame_in_any_row_order_is_the_same(sweep: Path) -> None:
    """A frame as read is split into stretches of its codes; any other is grouped."""
    from tbexport import shaping

    frame = tbexport.read_scalars(sweep)
    assert all(isinstance(rows, slice) for _, rows in shaping.run_tag_groups(frame))
    shuffled = frame.sample(frac=1.0, random_state=3).sort_values("step", kind="stable")
    assert not any(isinstance(rows, slice) for _, rows in shaping.run_tag_groups(shuffled))
    columns = ["run", "tag", "points", "min", "max", "nonfinite", "duration_s"]
    pd.testing.assert_frame_equal(
        tbexport.summarize(frame)[columns], tbexport.summarize(shuffled)[columns]
    )


def test_time_modes(sweep: Path, tmp_path: Path) -> None:
    rel = pd.read_csv(
        tbexport.export(sweep / "version_1", tmp_path / "r.csv", time="relative").output
    )
    assert rel.columns.tolist() == ["run", "tag", "step", "relative_time", "value"]
    assert rel["relative_time"].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    iso = pd.read_csv(
        tbexport.export(sweep / "version_1", tmp_path / "d.csv", time="datetime").output
    )
    assert iso["datetime"][0] == "1970-01-01T00:16:40.000000Z"  # 1000 s after the epoch
    book = openpyxl.load_workbook(
        tbexport.export(sweep / "version_1", tmp_path / "d.xlsx", time="datetime").output
    )
    cell = book["loss"]["B2"]
    assert cell.is_date and cell.value == pd.Timestamp("1970-01-01 00:16:40").to_pydatetime()
    mat = scipy.io.loadmat(
        tbexport.export(sweep / "version_1", tmp_path / "d.mat", time="datetime").output,
        simplify_cells=True,
    )
    assert mat["loss"]["datetime"][0] == pytest.approx(719529 + 1000 / 86400)


def test_excel_charts(sweep: Path, tmp_path: Path) -> None:
    out = tbexport.export(sweep, tmp_path / "c.xlsx", layout="wide", charts=True, smooth=0.6).output
    book = openpyxl.load_workbook(out)
    assert [len(book[name]._charts) for name in book.sheetnames] == [0, 0, 0, 1, 1]
    with zipfile.ZipFile(out) as archive:
        chart = archive.read("xl/charts/chart2.xml").decode()
    assert chart.count("<c:ser>") == 6  # 3 runs, raw + smoothed
    assert "'loss'!$B$2:$B$11" in chart and "'loss'!$E$2:$E$11" in chart
    long_chart = tbexport.export(sweep, tmp_path / "l.xlsx", charts=True).output
    with zipfile.ZipFile(long_chart) as archive:
        chart = archive.read("xl/charts/chart2.xml").decode()
    # long layout: one series per run over that run's rows
    assert "'loss'!$D$2:$D$11" in chart and "'loss'!$D$12:$D$16" in chart


def test_matlab_script(sweep: Path, tmp_path: Path) -> None:
    out = tbexport.export(sweep, tmp_path / "m.mat", matlab_script=True).output
    script = (tmp_path / "m.m").read_text()
    assert "name = 'm.mat';" in script
    assert "data = load(fullfile(fileparts(mfilename('fullpath')), name));" in script
    assert "runs = data.tbexport_runs;" in script
    assert "set(get(ax, 'Title'), 'String', tags{k, 1}, 'Interpreter', 'none');" in script
    assert out.exists()
    single = tbexport.export(sweep / "version_0", tmp_path / "one.mat", matlab_script=True)
    assert "s = data.(tags{k, 2});" in (tmp_path / "one.m").read_text()
    assert single.output is not None


def _interleaved_runs(root: Path) -> Path:
    """Two runs logged at alternate steps: every row of a wide table has a blank."""
    for name, offset in (("even", 0), ("odd", 1)):
        events = [
            simple("loss", step + offset, 1 / (step + offset + 1)) for step in range(0, 20, 2)
        ]
        write_events(root / name / "events.out.tfevents.1", events)
    return root


def test_wide_charts_and_scripts_draw_runs_logged_at_different_steps(tmp_path: Path) -> None:
    root = _interleaved_runs(tmp_path / "inter")
    book = tbexport.export(root, tmp_path / "w.xlsx", layout="wide", charts=True).output
    with zipfile.ZipFile(book) as archive:
        chart = archive.read("xl/charts/chart1.xml").decode()
    assert '<c:dispBlanksAs val="span"/>' in chart  # "gap" broke each line at every row
    tbexport.export(root, tmp_path / "it's w.mat", layout="wide", matlab_script=True)
    script = (tmp_path / "it's w.m").read_text()
    assert "'it''s w.mat'" in script  # a quote in a MATLAB string literal is doubled
    assert "ok = logical(s.logged(:, r));" in script


def test_plots(sweep: Path, tmp_path: Path) -> None:
    from PIL import Image

    frame = tbexport.shaping.smooth(tbexport.read_scalars(sweep), 0.6)
    [png] = tbexport.plot_scalars(frame, tmp_path / "f.png")
    with Image.open(png) as image:
        # 2 tags: a 2x1 grid of 4.2 x 3.2 in panels, and the legend's row of 3 runs below
        assert image.size == (int(4.2 * 2 * 120), int((3.2 * 1 + 0.35) * 120))
    left_out = r"log y axis: 1 value <= 0 left out \(in 1 tag: 'loss'\)"  # version_1's 0.0
    with pytest.warns(tbexport.OutputWarning, match=left_out):
        [svg] = tbexport.plot_scalars(frame, tmp_path / "f.svg", x="relative", log_y=True)
    text = svg.read_text()
    assert text.count('id="axes_') == 2  # one axis per tag
    files = tbexport.plot_scalars(frame, tmp_path / "figs", per_tag=True)
    assert sorted(p.name for p in files) == ["acc.png", "loss.png"]
    pdf = tbexport.plot_scalars(frame, tmp_path / "f.pdf")[0]
    assert pdf.read_bytes().startswith(b"%PDF")
    with pytest.raises(tbexport.UnknownFormatError, match=r"unknown plot suffix '\.gif'"):
        tbexport.plot_scalars(frame, tmp_path / "f.gif")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--reduce", "mean,avg"],
            "unknown statistic 'avg'; choose from mean, std, min, max, median, count",
        ),
        (["--smooth", "1"], "1.0 is not in the range 0<=x<1"),
        (["--smooth", "-0.1"], "-0.1 is not in the range 0<=x<1"),
        (["--name-by", "lr"], "use 'dir' or 'hparam:KEY' (e.g. hparam:lr), not 'lr'"),
        (["--layout", "tall"], "'tall' is not one of 'long', 'wide'"),
        (["--time", "local"], "'local' is not one of 'unix', 'datetime', 'relative'"),
    ],
)
def test_cli_rejects_bad_values(sweep: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [str(sweep), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_unknown_plot_suffix_fails_before_reading(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read before the plot suffix was checked")

    import sys

    monkeypatch.setattr(sys.modules["tbexport.export"], "load_scalars", no_reading)
    result = CliRunner().invoke(cli, [str(sweep), "--plot", str(tmp_path / "x.gif")])
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown plot suffix '.gif'; known: .png, .pdf, .svg\n"


def test_cli_plot_only_writes_no_table(sweep: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [str(sweep), "--plot", str(tmp_path / "p.png"), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").exists()
    assert not (tmp_path / "lightning_logs.xlsx").exists()
    unknown = CliRunner().invoke(cli, [str(sweep), "--name-by", "hparam:beta", "-q"])
    assert unknown.exit_code == 2  # a bad option value: a usage error
    assert unknown.stderr.endswith(
        "\n\nError: no run has the hyperparameter 'beta'; known: lr, optimizer.name\n"
    )


def test_csv_logger_runs_are_read(tmp_path: Path) -> None:
    """Lightning's CSVLogger layout, written by hand as it writes it."""
    run = tmp_path / "csv_logs" / "version_0"
    run.mkdir(parents=True)
    (run / "metrics.csv").write_text(
        "epoch,step,train_loss_step,val_loss\n"
        "0,0,2.3025850929940455,\n"
        "0,1,1.9,\n"
        "0,1,,1.75\n"
        "1,2,0.1000000000000000055511151231257827,\n"
        "oops,x,1,\n"
    )
    (run / "hparams.yaml").write_text("lr: 0.01\n")
    data = tbexport.load_scalars(tmp_path / "csv_logs")
    frame = data.frame
    loss = frame[frame["tag"] == "train_loss_step"]
    assert loss["step"].tolist() == [0, 1, 2]
    assert loss["value"].tolist() == [2.3025850929940455, 1.9, 0.1]
    assert frame[frame["tag"] == "val_loss"]["value"].tolist() == [1.75]
    assert frame[frame["tag"] == "epoch"]["value"].tolist() == [0.0, 0.0, 1.0]  # steps 0, 1, 2
    assert frame["wall_time"].isna().all()
    assert [str(c) for c in data.corruptions] == [
        f"{run / 'metrics.csv'}: unreadable row at line 6, skipped"
    ]
    assert data.hparams == {"version_0": {"lr": 0.01}}
    out = tbexport.export(tmp_path / "csv_logs", tmp_path / "c.xlsx").output
    rows = list(openpyxl.load_workbook(out)["val_loss"].iter_rows(values_only=True))
    assert rows == [("step", "wall_time", "value"), (1, None, 1.75)]


def test_csv_logger_matches_tensorboard_logger_from_the_same_training(tmp_path: Path) -> None:
    pytest.importorskip("pytorch_lightning", reason="needs the train extra")
    from tbexport.reference.train import train

    result = train(
        tmp_path,
        max_epochs=1,
        limit_train_batches=4,
        accelerator="cpu",
        csv_log=True,
        progress_bar=False,
    )
    tb = tbexport.read_scalars(result.log_dir, tags=["train_loss_step", "val_acc"])
    csv_run = tbexport.read_scalars(tmp_path / "csv_logs", tags=["train_loss_step", "val_acc"])
    assert (
        tb[["tag", "step", "value"]].astype(str).values.tolist()
        == csv_run[["tag", "step", "value"]].astype(str).values.tolist()
    )
