"""The results table: values against plain computations, and the files in their programs."""

from __future__ import annotations

import math
import shutil
import statistics
import subprocess
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

import tbexport
from tbexport.cli import cli
from tbexport.results import parse_metrics
from tbexport.writing.results import latex_escape, significant

from .builders import file_version, simple, write_events
from .programs import require

NAN = math.nan

# run -> (hparams.yaml text, {tag: [(step, value), ...]} per event file, in order)
RUNS: dict[str, tuple[str, list[dict[str, list[tuple[int, float]]]]]] = {
    "version_0": (
        "lr: 0.001\nseed: 1\n",
        [
            {
                "val_acc": [(10, 0.50), (20, 0.75), (30, 0.70)],
                "val_loss": [(10, 1.5), (20, 0.9), (30, 1.1)],
                "test_acc": [(30, 0.72)],
            }
        ],
    ),
    "version_1": (
        "lr: 0.001\nseed: 2\n",
        [
            {
                "val_acc": [(10, 0.55), (20, NAN), (30, 0.80), (40, 0.80)],
                "val_loss": [(10, 1.4), (20, NAN), (30, 0.7), (40, 0.8)],
                "test_acc": [(40, 0.78)],
            }
        ],
    ),
    # resumed: the second file restarts at step 20, replacing the first file's 20 and 30
    "version_2": (
        "lr: 0.001\nseed: 3\n",
        [
            {"val_acc": [(10, 0.60), (20, 0.99), (30, 0.98)], "val_loss": [(10, 1.2), (20, 0.1)]},
            {"val_acc": [(20, 0.65), (30, 0.85)], "val_loss": [(20, 0.8), (30, 0.6)]},
        ],
    ),
    # another learning rate, and no test_acc
    "version_3": (
        "lr: 0.01\nseed: 1\n",
        [{"val_acc": [(10, 0.40), (20, 0.45)], "val_loss": [(10, 2.0), (20, 1.8)]}],
    ),
}

# What TensorBoard shows of each run after the resume: the points as kept.
SHOWN = {
    "version_0": RUNS["version_0"][1][0],
    "version_1": RUNS["version_1"][1][0],
    "version_2": {
        "val_acc": [(10, 0.60), (20, 0.65), (30, 0.85)],
        "val_loss": [(10, 1.2), (20, 0.8), (30, 0.6)],
    },
    "version_3": RUNS["version_3"][1][0],
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    root = tmp_path / "lightning_logs"
    for run, (yaml_text, files) in RUNS.items():
        directory = root / run
        for number, tags in enumerate(files):
            events = [file_version()]
            for tag, points in tags.items():
                events += [simple(tag, step, value) for step, value in points]
            write_events(directory / f"events.out.tfevents.{1000 + number}.host.{number}", events)
        (directory / "hparams.yaml").write_text(yaml_text)
    return root


def f32(x: float) -> float:
    """The value as TensorBoard stores a simple_value: a float32."""
    import numpy as np

    return float(np.float32(x))


def plain(run: str, tag: str, aggregation: str) -> tuple[float, int | None]:
    """The result computed from the points by hand, without tbexport."""
    points = [(s, f32(v)) for s, v in SHOWN[run][tag]]
    if aggregation == "last":
        return points[-1][1], None
    if aggregation == "first":
        return points[0][1], None
    known = [(s, v) for s, v in points if not math.isnan(v)]
    if aggregation == "mean":
        return statistics.fmean(v for _, v in known), None
    best = max(v for _, v in known) if aggregation == "max" else min(v for _, v in known)
    return best, next(s for s, v in known if v == best)


def test_per_run_results_are_exact(sweep: Path) -> None:
    table = tbexport.results(
        sweep, "val_acc:max,val_loss:min,val_acc:last,val_loss:mean,val_acc:first,test_acc:last"
    )
    assert list(table.columns) == [
        "run",
        "lr",
        "seed",
        "val_acc:max",
        "val_acc:max@step",
        "val_loss:min",
        "val_loss:min@step",
        "val_acc:last",
        "val_loss:mean",
        "val_acc:first",
        "test_acc:last",
    ]
    assert table["run"].tolist() == list(RUNS)
    assert table["seed"].tolist() == [1, 2, 3, 1]
    for position, run in enumerate(RUNS):
        row = table.iloc[position]
        for metric in ("val_acc:max", "val_loss:min", "val_acc:last", "val_loss:mean"):
            tag, aggregation = metric.split(":")
            value, step = plain(run, tag, aggregation)
            assert row[metric] == value, (run, metric)
            if step is not None:
                assert row[f"{metric}@step"] == step, (run, metric)
        assert row["val_acc:first"] == plain(run, "val_acc", "first")[0]
    # the resumed run: its replaced 0.99 at step 20 is not its best
    assert table.loc[2, "val_acc:max"] == f32(0.85)
    assert table.loc[2, "val_acc:max@step"] == 30
    # a tie: the step where the best was first reached
    assert table.loc[1, "val_acc:max@step"] == 30
    # a run without the metric: empty
    assert math.isnan(table.loc[3, "test_acc:last"])
    assert table["val_acc:max@step"].dtype == "Int64"


def test_grouped_results_are_mean_and_sample_std(sweep: Path) -> None:
    table = tbexport.results(sweep, ["val_acc:max", "test_acc:last"], group_by="hparam:lr")
    assert table["lr"].tolist() == [0.001, 0.01]
    assert table["n"].tolist() == [3, 1]
    group = ["version_0", "version_1", "version_2"]
    best = [plain(run, "val_acc", "max")[0] for run in group]
    assert table.loc[0, "val_acc:max mean"] == pytest.approx(statistics.fmean(best), abs=0)
    assert table.loc[0, "val_acc:max std"] == pytest.approx(statistics.stdev(best), rel=1e-12)
    steps = [plain(run, "val_acc", "max")[1] for run in group]
    assert table.loc[0, "val_acc:max@step mean"] == statistics.fmean(steps)  # type: ignore[arg-type]
    assert table.loc[1, "val_acc:max mean"] == f32(0.45)
    assert math.isnan(table.loc[1, "val_acc:max std"])  # one run: no spread
    # version_2 has no test_acc: the group's mean is over the two runs that have one
    tests = [f32(0.72), f32(0.78)]
    assert table.loc[0, "test_acc:last mean"] == statistics.fmean(tests)
    assert table.loc[0, "test_acc:last n"] == 2
    assert table.loc[1, "test_acc:last n"] == 0
    assert "val_acc:max n" not in table  # every run has it


def test_results_of_a_frame_need_the_hparams_to_group(sweep: Path) -> None:
    frame = tbexport.read_scalars(sweep)
    per_run = tbexport.results(frame, "val_acc:max")
    assert list(per_run.columns) == ["run", "val_acc:max", "val_acc:max@step"]
    grouped = tbexport.results(
        frame, "val_acc:max", group_by=["seed"], hparams=tbexport.read_hparams(sweep)
    )
    assert grouped["seed"].tolist() == [1, 2, 3]
    assert grouped["n"].tolist() == [2, 1, 1]
    with pytest.raises(tbexport.InvalidOptionError, match="group_by needs the runs' hyper"):
        tbexport.results(frame, "val_acc:max", group_by="hparam:lr")
    without = tbexport.results(sweep, "val_acc:max", hparams=False)
    assert list(without.columns) == ["run", "val_acc:max", "val_acc:max@step"]


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (0.97312, 4, "0.9731"),
        (9.9996, 4, "10.00"),
        (12346.0, 4, "12350"),
        (0.000123456, 3, "0.000123"),
        (-2.5, 2, "-2.5"),
        (0.0, 3, "0.00"),
        (NAN, 4, "nan"),
    ],
)
def test_significant_digits(value: float, digits: int, text: str) -> None:
    assert significant(value, digits)[0] == text


def test_metric_goals() -> None:
    goals = [
        m.best
        for m in parse_metrics("val_acc:last,val_loss:last,lr:last,x:max,acc:min,a:b:last:min")
    ]
    assert goals == ["max", "min", None, "max", "min", "min"]
    assert parse_metrics("train:loss:min")[0].tag == "train:loss"


def invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def markdown_rows(text: str) -> list[list[str]]:
    lines = text.strip().splitlines()
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines]


def test_markdown_table_groups_with_the_best_in_bold(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    result = invoke(
        sweep, "--results", "val_acc:max,val_loss:last", "--group-by", "hparam:lr", "-o", out
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"wrote {out}: the results of 4 runs in 2 groups, from 26 points of 3 tags in "
        "5 event files\n"
    )
    best = [plain(r, "val_acc", "max")[0] for r in ("version_0", "version_1", "version_2")]
    last = [plain(r, "val_loss", "last")[0] for r in ("version_0", "version_1", "version_2")]
    mean, std = significant(statistics.fmean(best), 4)[0], statistics.stdev(best)
    rows = markdown_rows(out.read_text())
    assert rows[0] == ["lr", "n", "val_acc:max", "val_acc:max@step", "val_loss:last"]
    assert rows[1] == [":--", "--:", "--:", "--:", "--:"]
    assert rows[2][:3] == ["0.001", "3", f"**{mean} ± {std:.4f}**"]  # 0.8167 > 0.4500
    assert rows[2][3] == "27 ± 6"  # steps 20, 30, 30
    assert rows[2][4] == f"**{statistics.fmean(last):.4f} ± {statistics.stdev(last):.4f}**"
    assert rows[3] == ["0.01", "1", "0.4500", "20", "1.800"]


def test_missing_metric_is_a_note(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    result = invoke(sweep, "--results", "test_acc:last", "-o", out, "-q")
    assert result.exit_code == 0
    assert result.stderr == "note: 2 of 4 runs have no test_acc (left empty)\n"
    assert out.read_text().splitlines() == [
        "run,lr,seed,test_acc:last",
        f"version_0,0.001,1,{f32(0.72)!r}",
        f"version_1,0.001,2,{f32(0.78)!r}",
        "version_2,0.001,3,",
        "version_3,0.01,1,",
    ]


def test_latex_table_compiles_with_pdflatex(sweep: Path, tmp_path: Path) -> None:
    pdflatex = require("pdflatex")
    # names with every character LaTeX treats specially
    renamed = tmp_path / "logs"
    shutil.copytree(sweep, renamed)
    (renamed / "version_0").rename(renamed / "run_&%$#{}~^\\<>|")
    out = tmp_path / "table.tex"
    result = invoke(
        renamed, "--results", "val_acc:max,val_loss:min:min", "-o", out, "--digits", "3"
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("\\begin{tabular}{lllrrrr}\n\\toprule\n")
    assert (
        "run & lr & seed & val\\_acc:max & val\\_acc:max@step & val\\_loss:min & "
        "val\\_loss:min@step \\\\\n"
    ) in text
    assert latex_escape("run_&%$#{}~^\\<>|") + " & 0.001 & 1 & 0.750 & 20 & 0.900 & 20" in text
    assert "version\\_2 & 0.001 & 3 & \\textbf{0.850} & 30 & \\textbf{0.600} & 30 \\\\" in text
    document = tmp_path / "paper.tex"
    document.write_text(
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n"
        "\\begin{document}\n"
        "\\input{table.tex}\n\\end{document}\n"
    )
    compiled = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stdout[-2000:]
    assert (tmp_path / "paper.pdf").stat().st_size > 1000
    # what the reader sees (and copies) is the name as it is on disk
    shown = subprocess.run(
        [require("pdftotext"), "paper.pdf", "-"], cwd=tmp_path, capture_output=True, text=True
    )
    assert "run_&%$#{}~^\\<>|" in shown.stdout.splitlines()


def test_grouped_latex_compiles(sweep: Path, tmp_path: Path) -> None:
    pdflatex = require("pdflatex")
    out = tmp_path / "table.tex"
    result = invoke(sweep, "--results", "val_acc:max", "--group-by", "hparam:lr", "-o", out)
    assert result.exit_code == 0, result.output
    assert "$\\pm$" in out.read_text()
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}"
        "\\input{table.tex}\\end{document}\n"
    )
    compiled = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "paper.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compiled.returncode == 0, compiled.stdout[-2000:]


def test_results_sheet_in_a_workbook(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.xlsx"
    result = invoke(sweep, "--results", "val_acc:max", "--name-by", "hparam:seed", "-o", out)
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out)
    assert book.sheetnames[:2] == ["results", "index"]
    assert "val_acc" in book.sheetnames  # the points too
    rows = list(book["results"].iter_rows(values_only=True))
    assert rows[0] == ("run", "dir", "lr", "seed", "val_acc:max", "val_acc:max@step")
    assert rows[1] == ("seed=1", "version_0", 0.001, 1, f32(0.75), 20)
    assert rows[3] == ("seed=3", "version_2", 0.001, 3, f32(0.85), 30)
    assert rows[4] == ("seed=1 (2)", "version_3", 0.01, 1, f32(0.45), 20)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--results", "val_acc:best", "-o", "t.md"],
            "Invalid value for '--results': cannot read 'val_acc:best' as METRIC:AGG[:max|min]; "
            "AGG is one of last, first, max, min, mean (e.g. val_acc:max)",
        ),
        (
            ["--results", "val_accuracy:max", "-o", "t.md"],
            "no run has the metric 'val_accuracy'; tags include: val_acc, val_loss, test_acc",
        ),
        (
            ["--results", "val_acc:max", "--group-by", "hparam:batch", "-o", "t.md"],
            "no run has the hyperparameter 'batch' to group by; known: lr, seed",
        ),
        (
            ["-o", "t.tex"],
            ".tex output is a results table: give --results METRIC:AGG (e.g. val_acc:max)",
        ),
        (
            ["--group-by", "hparam:lr", "-o", "t.csv"],
            "--group-by groups the results table: give --results",
        ),
        (
            ["--results", "val_acc:max", "--digits", "3", "-o", "t.csv"],
            "--digits is for .md and .tex output, not .csv",
        ),
        (
            ["--results", "val_acc:max", "-o", "t.mat"],
            "--results are written as .csv, .md, .tex or .xlsx, not .mat",
        ),
        (
            ["--results", "val_acc:max", "--reduce", "mean", "-o", "t.csv"],
            "--results is a table of runs, and --reduce puts statistics in their place",
        ),
        (
            ["--results", "val_acc:max", "--smooth", "0.6", "-o", "t.md"],
            "--smooth shapes the points, and a .md with --results holds the results table only",
        ),
        (
            ["--reduce", "mean", "--smooth", "0.6", "-o", "s/"],
            "--smooth shapes a table of points, not TensorBoard runs (which TensorBoard smooths "
            "itself)",
        ),
        (
            [
                "--results",
                "val_acc:max",
                "--group-by",
                "hparam:lr",
                "--name-by",
                "hparam:seed",
                "-o",
                "s.md",
            ],
            "--name-by labels runs, and --group-by puts groups in their place",
        ),
        (
            ["--format", "tfevents", "-o", "s.xlsx"],
            "--format tfevents conflicts with output suffix '.xlsx'",
        ),
        (
            ["--results", "val_acc:max", "--group-by", "hparam:lr,lr", "-o", "s.md"],
            "Invalid value for '--group-by': group by each hyperparameter once, not lr twice",
        ),
        (
            ["--results", "val_acc:max", "-t", "val_loss", "-o", "s.md"],
            "no run has the metric 'val_acc'; tags include: val_loss (read with --tags val_loss)",
        ),
    ],
)
def test_results_usage_errors(sweep: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(sweep, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {message}"
    assert [*tmp_path.glob("t.*"), *tmp_path.glob("s*")] == []  # nothing written


def odd_runs(root: Path, runs: dict[str, tuple[str, list[tuple[int, float]]]]) -> Path:
    """Runs of one tag ``m`` each, with their hparams.yaml text."""
    for run, (yaml_text, points) in runs.items():
        events = [file_version(), *(simple("m", s, v) for s, v in points)]
        write_events(root / run / "events.out.tfevents.1.host", events)
        if yaml_text:
            (root / run / "hparams.yaml").write_text(yaml_text)
    return root


def test_nan_results_are_shown_and_spoil_their_group_mean(tmp_path: Path) -> None:
    root = odd_runs(
        tmp_path / "logs",
        {
            "s1": ("lr: 0.1\n", [(1, 2.0), (2, 1.0)]),
            "s2": ("lr: 0.1\n", [(1, 2.0), (2, NAN)]),  # diverged
            "s3": ("lr: 0.2\n", [(1, 4.0), (2, 3.0)]),
            "s4": ("lr: 0.2\n", [(1, 5.0), (2, 4.0)]),
        },
    )
    out = tmp_path / "t.md"
    result = invoke(root, "--results", "m:last", "--group-by", "hparam:lr", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: 1 of 4 run's m:last is NaN\n"
    rows = markdown_rows(out.read_text())
    assert rows[2] == ["0.1", "2", "nan"]
    assert rows[3] == ["0.2", "2", "3.500 ± 0.707"]  # the only finite row: no bold to give
    table = tbexport.results(root, "m:last")
    assert math.isnan(table.loc[1, "m:last"])
    per_run = tmp_path / "r.md"
    assert invoke(root, "--results", "m:last", "-o", per_run, "-q").exit_code == 0
    # (a tag named m says nothing of which way is better: no bold)
    assert [r[-1] for r in markdown_rows(per_run.read_text())[2:]] == [
        "1.000",
        "nan",
        "3.000",
        "4.000",
    ]


def test_names_and_numbers_of_any_size_come_out_readable(tmp_path: Path) -> None:
    root = odd_runs(
        tmp_path / "logs",
        {
            "__init__|<b>": ("n: 1\nrun: exp\nm:last: 3\n", [(1, -1.91e32)]),
            "b": ("n: 2\n", [(1, 1.91e-28)]),
        },
    )
    table = tbexport.results(root, "m:last")
    # hyperparameters named like the table's columns keep their values, renamed
    assert list(table.columns) == ["run", "n", "run (hparam)", "m:last (hparam)", "m:last"]
    assert table["run"].tolist() == ["__init__|<b>", "b"]
    markdown = tmp_path / "t.md"
    assert invoke(root, "--results", "m:last:max", "-o", markdown, "-q").exit_code == 0
    rows = markdown_rows(markdown.read_text())
    assert rows[2][0] == "\\_\\_init\\_\\_\\|&lt;b&gt;"
    assert rows[2][-1] == "-1.910e+32" and rows[3][-1] == "**1.910e-28**"
    latex = tmp_path / "t.tex"
    assert invoke(root, "--results", "m:last:max", "-o", latex, "-q").exit_code == 0
    assert "$-1.910\\times10^{32}$" in latex.read_text()
    assert "\\textbf{\\boldmath $1.910\\times10^{-28}$}" in latex.read_text()


def test_groups_keep_true_and_one_apart_and_say_who_has_no_key(tmp_path: Path) -> None:
    root = odd_runs(
        tmp_path / "logs",
        {
            "a": ("flag: true\n", [(1, 1.0)]),
            "b": ("flag: 1\n", [(1, 2.0)]),
            "c": ("", [(1, 3.0)]),
        },
    )
    out = tmp_path / "t.csv"
    result = invoke(root, "--results", "m:last", "--group-by", "hparam:flag", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr == "note: 1 of 3 run has no flag: grouped as one, flag empty\n"
    assert out.read_text().splitlines() == [
        "flag,n,m:last mean,m:last std",
        "1,1,2.0,",
        "True,1,1.0,",
        ",1,3.0,",
    ]


def test_a_minimum_of_runs_no_step_reaches_is_an_error(sweep: Path, tmp_path: Path) -> None:
    result = invoke(sweep, "--reduce", "mean", "--min-runs", "5", "-o", tmp_path / "s.csv")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no tag and step has 5 runs with a value (4 runs were read): nothing to write\n"
    )
    assert not (tmp_path / "s.csv").exists()


def test_results_in_a_workbook_named_by_format_keep_the_points_shaped(
    sweep: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sweep.v2"  # a suffix of no format: --format says xlsx
    result = invoke(sweep, "--results", "val_acc:max", "-f", "xlsx", "-o", out, "--smooth", "0.5")
    assert result.exit_code == 0, result.output
    with out.open("rb") as handle:  # (openpyxl goes by the suffix)
        book = openpyxl.load_workbook(handle)
    assert book.sheetnames[0] == "results"
    assert [c.value for c in book["val_acc"][1]][-1] == "value_smoothed"
    assert "hparams" in book.sheetnames
