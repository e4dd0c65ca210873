"""--reduce on a common grid, and statistics written back as TensorBoard runs, from the CLI."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import tbexport
from tbexport.cli import cli

from .builders import file_version, simple, write_events

# Three runs logging val_loss at different steps (a batch size, a log interval).
POINTS = {
    "a": [(0, 1.0), (10, 0.5), (20, 0.25)],
    "b": [(0, 2.0), (5, 1.5), (15, 1.0), (25, 0.5)],
    "c": [(12, 4.0)],
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    for run, points in POINTS.items():
        events = [file_version(), *(simple("val_loss", s, v) for s, v in points)]
        write_events(root / run / "events.out.tfevents.1.host", events)
    return root


def invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_bins_from_the_cli_by_hand(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.csv"
    result = invoke(sweep, "--reduce", "mean,count", "--align", "bins:2", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    # steps 0..25 in two bins of 12.5: [0, 12.5) centred at 6.25 -> 6, [12.5, 25] at 18.75 -> 19
    mean = table[table["run"] == "mean"]
    assert mean["step"].tolist() == [6, 19]
    first = [statistics.fmean([1.0, 0.5]), statistics.fmean([2.0, 1.5]), 4.0]  # a, b, c
    second = [0.25, statistics.fmean([1.0, 0.5])]  # a, b
    assert mean["value"].tolist() == [statistics.fmean(first), statistics.fmean(second)]
    assert table[table["run"] == "count"]["value"].tolist() == [3.0, 2.0]


def test_grid_and_min_runs_from_the_cli(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.csv"
    args = ["--reduce", "mean", "--align", "grid:10", "--min-runs", "2", "-o", out, "-q"]
    result = invoke(sweep, *args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    # a at 0, 10, 20; b interpolated at 10 (1.25) and 20 (0.75), and 0; c (step 12) none
    assert table["step"].tolist() == [0, 10, 20]
    assert table["value"].tolist() == [1.5, (0.5 + 1.25) / 2, (0.25 + 0.75) / 2]
    frame = tbexport.read_scalars(sweep)
    same = tbexport.reduce_runs(frame, "mean", align="grid:10", min_runs=2)
    assert same["value"].tolist() == table["value"].tolist()


def test_statistics_back_into_tensorboard(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats"
    result = invoke(sweep, "--reduce", "mean,std", "--align", "bins:2", "-o", f"{out}/")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["mean", "std"]
    back = tbexport.read_scalars(out)
    expected = tbexport.reduce_runs(tbexport.read_scalars(sweep), "mean,std", align="bins:2")
    assert back["run"].astype(str).tolist() == expected["run"].astype(str).tolist()
    assert back["step"].tolist() == expected["step"].tolist()
    assert back["wall_time"].tolist() == expected["wall_time"].tolist()
    # TensorBoard's charts read float32 scalars: the statistics are rounded to them
    assert back["value"].tolist() == expected["value"].astype(np.float32).astype(float).tolist()
    from tensorboard.backend.event_processing.plugin_event_accumulator import (
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(out / "mean"), size_guidance={"tensors": 0})
    accumulator.Reload()
    shown = [float(e.tensor_proto.float_val[0]) for e in accumulator.Tensors("val_loss")]
    means = expected[expected["run"] == "mean"]["value"]
    assert shown == means.astype(np.float32).astype(float).tolist()


def test_format_flag_writes_the_runs_themselves(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    result = invoke(sweep, "--format", "tfevents", "-o", out, "-t", "val_*", "-q")
    assert result.exit_code == 0, result.output
    back = tbexport.read_scalars(out)
    assert sorted(back["run"].unique()) == ["a", "b", "c"]
    assert len(back) == sum(len(p) for p in POINTS.values())
    assert not math.isnan(back["value"].sum())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["--align", "bins:10", "-o", "s.csv"],
            2,
            "--align and --min-runs shape the statistics of --reduce",
        ),
        (
            ["--min-runs", "1", "-o", "s.csv"],
            2,
            "--align and --min-runs shape the statistics of --reduce",
        ),
        (
            ["--reduce", "mean", "--align", "bins:0", "-o", "s.csv"],
            2,
            "Invalid value for '--align': invalid alignment 'bins:0': N in bins:N must be a "
            "positive integer",
        ),
        (
            ["--reduce", "mean", "--align", "every:3", "-o", "s.csv"],
            2,
            "Invalid value for '--align': unknown alignment 'every:3'; use steps, bins:N or "
            "grid:STEP (N, STEP positive integers)",
        ),
        (
            ["--reduce", "mean", "--time", "relative", "-o", "s/"],
            2,
            "--time shapes a table of points, not TensorBoard runs (which TensorBoard smooths "
            "itself)",
        ),
        (["--mat", "-o", "s/"], 2, "--mat conflicts with output 's/', a directory"),
        (
            ["--format", "md", "-o", "s.csv"],
            2,
            "--format md conflicts with output suffix '.csv'",
        ),
    ],
)
def test_usage_errors(
    sweep: Path, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    result = invoke(sweep, *args)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert list(tmp_path.glob("s*")) == []


def test_tfevents_into_a_directory_that_holds_files(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = invoke(sweep, "--reduce", "mean", "-o", f"{out}/")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: cannot write {out}: it is not empty (tfevents output goes into a new directory)\n"
    )
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_summary_says_how_many_runs_were_reduced(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "stats.xlsx"
    result = invoke(sweep, "--reduce", "mean,std,count", "-o", out)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"wrote {out}: 3 runs reduced to mean, std, count; 1 tag, 8 points from 3 event files\n"
    )


def test_keep_duplicates_with_reduce_is_refused(sweep: Path) -> None:
    result = invoke(sweep, "--reduce", "mean", "--keep-duplicates", "-o", "s.csv")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: --reduce takes one point per run and step, and --keep-duplicates keeps the "
        "points a resumed run replaced"
    )


def test_a_resumed_run_read_whole_counts_once_per_step(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "resumed"
    write_events(run / "events.out.tfevents.1.a", [file_version(), simple("x", 1, 1.0)])
    write_events(run / "events.out.tfevents.2.b", [file_version(), simple("x", 1, 3.0)])
    write_events(tmp_path / "logs" / "other" / "events.out.tfevents.1.c", [simple("x", 1, 5.0)])
    frame = tbexport.read_scalars(tmp_path / "logs", keep_duplicates=True)
    assert len(frame) == 3
    reduced = tbexport.reduce_runs(frame, "mean,count")
    assert reduced["value"].tolist() == [(3.0 + 5.0) / 2, 2.0]  # the resumed run's last point
