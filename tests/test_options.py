"""The option dataclasses: each checks itself once, the CLI builds them, old names warn."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import tbexport
from tbexport.cli import cli
from tbexport.export import shape
from tbexport.options import FigureOptions, OutputOptions, ReadOptions, ShapeOptions
from tbexport.results import Metric

from .builders import simple, write_events


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    for index, run in enumerate(("version_0", "version_1")):
        events = [simple("loss", step, 1.0 / (step + 1) + index) for step in range(6)]
        write_events(tmp_path / "logs" / run / "events.out.tfevents.1", events)
    return tmp_path / "logs"


def test_valid_options_are_parsed_once() -> None:
    read = ReadOptions(tags="val_*", jobs=2)
    assert read.tags == ("val_*",) and read.patterns == ("val_*",)
    assert read.keywords()["tags"] == ("val_*",)
    assert ReadOptions().patterns == ()
    shape = ShapeOptions(reduce="mean, std", align="bins:20", min_runs=2, smooth=0.6)
    assert shape.reduce == ("mean", "std") and shape.statistics == ("mean", "std")
    assert shape.alignment == ("bins", 20)
    assert ShapeOptions().alignment == ("steps", None) and ShapeOptions().statistics == ()
    assert ShapeOptions(reduce=["mean", "std"]) == shape.__class__(reduce="mean,std")
    table = OutputOptions(results="val_acc:max,val_loss:last:min", group_by="hparam:lr")
    assert table.metrics == (Metric("val_acc", "max"), Metric("val_loss", "last", "min"))
    assert table.group_keys == ("lr",)
    figure = FigureOptions(plot="a.png", x="relative", figsize=(8, 6), dpi=100)
    assert figure.figsize == (8.0, 6.0) and figure.figures
    assert figure.given() == ["x", "figsize", "dpi"]
    assert not FigureOptions().figures and FigureOptions().given() == []


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ReadOptions(jobs=0), tbexport.InvalidOptionError, "jobs must be 1 or more, not 0"),
        (
            lambda: ShapeOptions(reduce="avg"),
            tbexport.InvalidOptionError,
            "unknown statistic 'avg'; choose from mean, std, min, max, median, count",
        ),
        (
            lambda: ShapeOptions(reduce=""),
            tbexport.InvalidOptionError,
            "unknown statistic (none); choose from mean, std, min, max, median, count",
        ),
        (
            lambda: ShapeOptions(align="bins:0"),
            tbexport.InvalidOptionError,
            "invalid alignment 'bins:0': N in bins:N must be a positive integer",
        ),
        (
            lambda: ShapeOptions(min_runs=0),
            tbexport.InvalidOptionError,
            "min_runs must be an integer >= 1, not 0",
        ),
        (
            lambda: ShapeOptions(smooth=1.0),
            tbexport.InvalidOptionError,
            "smoothing weight must be in [0, 1), not 1",
        ),
        (
            lambda: ShapeOptions(time="epoch"),  # type: ignore[arg-type]
            tbexport.InvalidOptionError,
            "unknown time mode 'epoch'; choose from unix, datetime, relative",
        ),
        (
            lambda: ShapeOptions(name_by="lr"),
            tbexport.InvalidOptionError,
            "use 'dir' or 'hparam:KEY' (e.g. hparam:lr), not 'lr'",
        ),
        (
            lambda: OutputOptions(layout="tall"),  # type: ignore[arg-type]
            tbexport.InvalidOptionError,
            "unknown layout 'tall'; choose from long, wide",
        ),
        (
            lambda: OutputOptions(digits=0),
            tbexport.InvalidOptionError,
            "digits must be 1 to 17, not 0",
        ),
        (
            lambda: OutputOptions(results="val_acc:best"),
            tbexport.InvalidOptionError,
            "cannot read 'val_acc:best' as METRIC:AGG[:max|min]; AGG is one of last, first, "
            "max, min, mean (e.g. val_acc:max)",
        ),
        (
            lambda: OutputOptions(group_by="lr,lr"),
            tbexport.InvalidOptionError,
            "group by each hyperparameter once, not lr twice",
        ),
        (
            lambda: OutputOptions(format="json"),
            tbexport.UnknownFormatError,
            "unknown format 'json'; known formats: .xlsx, .mat, .csv, .md, .tex, "
            ".tfevents (a directory)",
        ),
        (
            lambda: FigureOptions(x="epoch"),  # type: ignore[arg-type]
            tbexport.InvalidOptionError,
            "unknown x axis 'epoch'; choose from step, wall_time, relative",
        ),
        (
            lambda: FigureOptions(band="iqr"),  # type: ignore[arg-type]
            tbexport.InvalidOptionError,
            "unknown band 'iqr'; choose from std, minmax",
        ),
        (
            lambda: FigureOptions(figsize=(0, 6)),
            tbexport.InvalidOptionError,
            "figsize is (width, height) in inches, each above 0 and at most 1000, not (0, 6)",
        ),
        (
            lambda: FigureOptions(cols=0),
            tbexport.InvalidOptionError,
            "cols (panels per row) must be a whole number >= 1, not 0",
        ),
        (
            lambda: FigureOptions(dpi=0),
            tbexport.InvalidOptionError,
            "dpi must be a whole number from 1 to 2400, not 0",
        ),
        (
            lambda: FigureOptions(plot="curves.txt"),
            tbexport.UnknownFormatError,
            "unknown plot suffix '.txt'; known: .png, .pdf, .svg",
        ),
        (
            lambda: FigureOptions(format="gif"),
            tbexport.UnknownFormatError,
            "unknown plot format 'gif'; known: png, pdf, svg",
        ),
    ],
)
def test_invalid_options_raise_their_exact_message(
    make: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        make()
    assert str(raised.value) == message


def test_a_refused_value_names_its_option() -> None:
    with pytest.raises(tbexport.InvalidOptionError) as raised:
        ShapeOptions(align="every:3")
    assert raised.value.parameter == "align"
    with pytest.raises(tbexport.InvalidOptionError) as raised:
        FigureOptions(dpi=0)
    assert raised.value.parameter == "dpi"


@pytest.mark.parametrize(
    "options",
    [ReadOptions(), ShapeOptions(smooth=0.5), OutputOptions(), FigureOptions(x="step")],
)
def test_options_are_frozen(options: Any) -> None:
    name = dataclasses.fields(options)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, None)


def test_dataclasses_and_keywords_export_the_same(runs: Path, tmp_path: Path) -> None:
    by_keywords = tbexport.export(runs, tmp_path / "k.csv", reduce="mean,std", smooth=0.6)
    by_options = tbexport.export(
        runs, tmp_path / "o.csv", shape=ShapeOptions(reduce="mean,std", smooth=0.6)
    )
    assert by_keywords.output is not None and by_options.output is not None
    assert by_keywords.output.read_bytes() == by_options.output.read_bytes()
    mixed = tbexport.export(
        runs, tmp_path / "m.csv", shape=ShapeOptions(reduce="mean,std"), smooth=0.6
    )
    assert mixed.output is not None
    assert mixed.output.read_bytes() == by_keywords.output.read_bytes()
    with pytest.raises(tbexport.InvalidOptionError) as raised:
        tbexport.export(runs, tmp_path / "t.csv", shape=ShapeOptions(smooth=0.5), smooth=0.6)
    assert str(raised.value) == "smooth given both as a keyword and in shape=: give one"


@pytest.mark.parametrize(
    ("old", "new", "value", "figures"),
    [
        ("smoothing", "smooth", 0.6, False),
        ("plot_x", "x", "relative", True),
        ("plot_log_y", "log_y", True, True),
    ],
)
def test_renamed_export_keywords_warn_and_do_the_same(
    runs: Path, tmp_path: Path, old: str, new: str, value: object, figures: bool
) -> None:
    def files(name: str, **keywords: Any) -> list[bytes]:
        plot = {"plot": tmp_path / f"{name}.png"} if figures else {}
        result = tbexport.export(runs, tmp_path / f"{name}.csv", **plot, **keywords)
        return [p.read_bytes() for p in [result.output, *result.plots] if p is not None]

    with pytest.warns(DeprecationWarning, match=rf"export\({old}=\.\.\.\) .* use {new}=") as w:
        old_files = files("old", **{old: value})
    assert w[0].filename == __file__  # (pointing at the caller)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new_files = files("new", **{new: value})
    assert len(old_files) == (2 if figures else 1)
    assert old_files == new_files


def test_renamed_keyword_and_new_one_together_is_a_type_error(runs: Path, tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="both smoothing= and"):
        tbexport.export(runs, tmp_path / "a.csv", smoothing=0.5, smooth=0.6)
    with pytest.raises(TypeError, match="unexpected keyword argument 'smoothed'"):
        tbexport.export(runs, tmp_path / "a.csv", smoothed=0.5)


def test_shape_renamed_keyword(runs: Path) -> None:
    data = tbexport.load_scalars(runs)
    with pytest.warns(DeprecationWarning, match=r"shape\(smoothing=\.\.\.\) .* use smooth="):
        old, _ = shape(data, smoothing=0.6)
    new, _ = shape(data, smooth=0.6)
    assert old.equals(new)


def test_the_cli_builds_the_options_the_api_would(
    runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def capture(paths: Any, output: Any, **options: Any) -> Any:
        seen.update(options)
        raise tbexport.NoScalarsError("captured")

    monkeypatch.setattr("tbexport.cli.export", capture)
    result = CliRunner().invoke(
        cli,
        [
            str(runs),
            *("-o", str(tmp_path / "o.xlsx"), "-t", "loss", "--reduce", "mean,std"),
            *("--align", "bins:3", "--smooth", "0.6", "--time", "relative", "--charts"),
            *("--plot", str(tmp_path / "p.png"), "--x", "relative", "--log-y"),
            *("--figsize", "8,6", "--dpi", "90", "-j", "2", "--no-verify"),
        ],
    )
    assert result.exit_code == 1 and "captured" in result.output
    assert seen["read"] == ReadOptions(tags=["loss"], verify=False, jobs=2)
    assert seen["shape"] == ShapeOptions(
        reduce=["mean", "std"], align="bins:3", smooth=0.6, time="relative"
    )
    assert seen["write"] == OutputOptions(charts=True)
    assert seen["figure"] == FigureOptions(
        plot=tmp_path / "p.png", x="relative", log_y=True, figsize=(8, 6), dpi=90
    )


def test_a_bad_value_reads_as_click_reports_one(runs: Path) -> None:
    result = CliRunner().invoke(cli, [str(runs), "--csv", "--align", "every:3"])
    assert result.exit_code == 2
    assert result.output.endswith(
        "Error: Invalid value for '--align': unknown alignment 'every:3'; use steps, bins:N "
        "or grid:STEP (N, STEP positive integers)\n"
    )


def test_the_help_says_the_units_of_relative() -> None:
    help_text = " ".join(CliRunner().invoke(cli, ["--help"]).output.split())
    assert "relative: seconds since the run's first exported point" in help_text
    assert "in seconds, minutes, hours or days as the longest run suits" in help_text
    assert "--time relative is always seconds" in help_text


def test_tag_stats_is_summarize_and_says_it_is_deprecated(sample_runs: Path) -> None:
    frame = tbexport.read_scalars(sample_runs / "lightning_logs" / "version_0")
    with pytest.warns(DeprecationWarning, match=r"tag_stats\(\) is deprecated.*summarize"):
        stats = tbexport.tag_stats(frame)
    expected = tbexport.summarize(frame)[tbexport.shaping.LIST_COLUMNS]
    pd.testing.assert_frame_equal(stats, expected)
    assert list(stats.columns)[:3] == ["run", "tag", "points"]
