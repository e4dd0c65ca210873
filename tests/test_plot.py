"""Figures: legend, colours, titles, files split, memory, log axes, statistics, options.

Frames are read back from event files (TensorBoard's own writer, or torch's
SummaryWriter), and the assertions look at what was drawn: axes, lines, legend
texts, titles and their extents, colours, files and their sizes, the notes.
"""

from __future__ import annotations

import gc
import math
import re
import warnings
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from PIL import Image

import tbexport
from tbexport import plot as plotting
from tbexport.exceptions import InvalidOptionError, OutputWarning

from .builders import simple, write_events

Points = dict[str, list[tuple[int, float]]]


def _logs(root: Path, runs: dict[str, Points], wall: Any = None) -> Path:
    """Event files of ``runs`` (run -> tag -> [(step, value)]) under ``root``;
    ``wall(run, tag, step)`` gives a point's wall time (default 1000 + step)."""
    for run, tags in runs.items():
        events = [
            simple(tag, step, value, None if wall is None else wall(run, tag, step))
            for tag, points in tags.items()
            for step, value in points
        ]
        write_events(root / run / "events.out.tfevents.1", events)
    return root


def _curve(n: int = 20, scale: float = 1.0, offset: float = 0.0) -> list[tuple[int, float]]:
    return [(s, offset + scale * math.exp(-s / 10)) for s in range(n)]


def _frame(tmp_path: Path, runs: int, tags: Iterable[str], points: int = 20) -> pd.DataFrame:
    tags = list(tags)
    logs = {
        f"version_{r}": {t: _curve(points, 1 + r / 10, r / 100) for t in tags} for r in range(runs)
    }
    return tbexport.read_scalars(_logs(tmp_path / "logs", logs))


def _notes(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, OutputWarning)]


def _drawn(frame: pd.DataFrame, **options: Any) -> tuple[Figure, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        drawn = tbexport.plot_scalars(frame, **options)
    # matplotlib's own are suppressed (a ResourceWarning is another test's file, closed
    # by the garbage collector while this one ran)
    others = [w for w in caught if not issubclass(w.category, OutputWarning | ResourceWarning)]
    assert not others, [str(w.message) for w in others]
    return drawn, _notes(caught)


def _written(frame: pd.DataFrame, output: Path, **options: Any) -> tuple[list[Path], list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = tbexport.plot_scalars(frame, output, **options)
    others = [w for w in caught if not issubclass(w.category, OutputWarning)]
    assert not others, [str(w.message) for w in others]
    return files, _notes(caught)


def _solid_lines(ax: Any) -> list[Any]:
    return [line for line in ax.get_lines() if line.get_alpha() in (None, 1.0)]


# -- many runs and tags ------------------------------------------------------------


def test_one_legend_below_the_panels_not_over_them(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 3, ["loss", "acc"])
    drawn, notes = _drawn(frame)
    assert notes == []
    assert len(drawn.axes) == 2
    assert all(ax.get_legend() is None for ax in drawn.axes)  # no legend inside a panel
    [legend] = drawn.legends
    assert [t.get_text() for t in legend.get_texts()] == ["version_0", "version_1", "version_2"]
    box = legend.get_window_extent()
    for ax in drawn.axes:  # below every panel, its axis labels included
        assert box.y1 <= ax.get_tightbbox().y0
    assert legend._ncols == 3  # one row: the figure is wide enough


def test_thirty_runs_have_thirty_distinct_colours_and_a_legend_that_fits(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 30, ["loss", "acc"], points=5)
    drawn, notes = _drawn(frame)
    assert notes == []
    for ax in drawn.axes:
        colours = {tuple(line.get_color()) for line in ax.get_lines()}
        assert len(colours) == 30  # tab10 repeated every 10 runs before
    [legend] = drawn.legends
    assert len(legend.get_texts()) == 30
    box, width = legend.get_window_extent(), drawn.bbox.width
    assert box.x0 >= 0 and box.x1 <= width  # its columns fit across the figure
    assert legend._ncols > 1


def test_three_hundred_runs_get_a_colour_bar_of_their_order_instead_of_a_legend(
    tmp_path: Path,
) -> None:
    frame = _frame(tmp_path, 300, ["loss", "acc"], points=4)
    drawn, notes = _drawn(frame)
    assert notes == [
        "300 runs are too many for a legend (more than 40): a colour bar shows their order "
        "instead, 'version_0' to 'version_299'"
    ]
    assert drawn.legends == []
    panels, [bar] = drawn.axes[:2], drawn.axes[2:]
    for ax in panels:
        assert len({tuple(line.get_color()) for line in ax.get_lines()}) == 300
    labels = [t.get_text() for t in bar.get_xticklabels()]
    assert labels[0] == "version_0" and labels[-1] == "version_299"
    assert bar.get_xlabel() == "300 runs, in order"
    for ax in panels:  # the bar is below the panels
        assert bar.get_tightbbox().y1 <= ax.get_tightbbox().y0


def test_long_titles_are_wrapped_or_shortened_and_never_overlap(tmp_path: Path) -> None:
    huge = "a_very_long_namespace/" + "with_many_levels_" * 8 + "final_leaf_metric"
    tags = [huge, "val_metrics/precision_macro_averaged_over_all_the_classes_xyz", "short"]
    frame = _frame(tmp_path, 2, tags)
    drawn, notes = _drawn(frame)
    titles = {ax.get_title(): ax for ax in drawn.axes}
    # no / in reach: broken at a _, where the two lines come out most even
    assert "val_metrics/precision_macro_\naveraged_over_all_the_classes_xyz" in titles
    assert "short" in titles
    [shortened] = [t for t in titles if "…" in t]
    first, second = shortened.split("\n")
    assert huge.startswith(first) and second.startswith("…") and huge.endswith(second[1:])
    assert titles[shortened].title.get_gid() == huge  # in an SVG, the title's id
    assert notes == [
        f"1 tag: '{huge[:29]}…{huge[-30:]}' too long for a title shortened with … in the "
        "middle (in an SVG, the title's id is the whole tag)"
    ]
    boxes = [ax.title.get_window_extent() for ax in drawn.axes]
    for i, box in enumerate(boxes):
        assert box.y1 <= drawn.bbox.height
        for other in boxes[i + 1 :]:
            assert not box.overlaps(other)
    for ax in drawn.axes:  # a title stays over its own panel, its axes' labels below it
        assert not ax.title.get_window_extent().overlaps(ax.get_window_extent())
    svg = tmp_path / "titles.svg"
    _written(frame, svg)
    assert f'id="{huge}"' in svg.read_text()


def test_many_tags_are_split_into_numbered_files_of_at_most_48_panels(tmp_path: Path) -> None:
    tags = [f"group/metric_{i:03d}" for i in range(100)]
    frame = _frame(tmp_path, 2, tags, points=3)
    counts: list[int] = []
    totals: list[int] = []
    output = tmp_path / "curves.svg"
    files, notes = _written(frame, output, progress=counts.append, progress_total=totals.append)
    assert [p.name for p in files] == ["curves-1.svg", "curves-2.svg", "curves-3.svg"]
    assert not output.exists()
    assert notes == [
        "100 tags are drawn in 3 figures of at most 48 panels: curves-1.svg to curves-3.svg"
    ]
    panels = [p.read_text().count('id="axes_') for p in files]
    assert panels == [34, 33, 33]  # evenly, in the frame's tag order
    assert "group/metric_000" in files[0].read_text()
    assert "group/metric_099" in files[2].read_text()
    assert totals == [100] and counts == [1] * 100  # a bar can follow every panel


def test_ten_or_more_files_sort_by_name(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 1, [f"m{i}" for i in range(21)], points=2)
    files, _ = _written(frame, tmp_path / "c.png", max_panels=2)
    assert [p.name for p in files] == [f"c-{i:02d}.png" for i in range(1, 12)]
    assert sorted(files) == files
    with Image.open(files[0]) as first, Image.open(files[-1]) as last:
        assert first.size == (int(2 * 4.2 * 120), int(3.2 * 120))  # 2 panels, 1 run: no legend
        assert last.size == (int(4.2 * 120), int(3.2 * 120))  # the 21st tag alone


def test_each_figure_is_let_go_before_the_next_is_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _frame(tmp_path, 2, [f"m{i:02d}" for i in range(50)], points=3)
    made: list[weakref.ref[Figure]] = []
    alive: list[int] = []
    real_save = Figure.savefig

    def save(drawn: Figure, *args: Any, **kwargs: Any) -> None:
        gc.collect()
        alive.append(sum(ref() is not None for ref in made))
        made.append(weakref.ref(drawn))
        assert len(drawn.axes) <= 48
        real_save(drawn, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", save)
    grid, _ = _written(frame, tmp_path / "f.png")
    few = frame[frame["tag"].isin(["m00", "m01", "m02", "m03"])]
    per_tag, _ = _written(few, tmp_path / "each", per_tag=True)
    assert len(grid) == 2 and len(per_tag) == 4
    assert alive == [0] * 6  # none of the earlier figures is still held
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # pyplot never held one


# -- log axis, shapes of frames, statistics ------------------------------------------


def test_log_y_says_how_many_values_it_left_out(tmp_path: Path) -> None:
    logs = {
        "a": {
            "loss": [(s, (-1.0 if s % 4 == 0 else 0.5 + s)) for s in range(12)],
            "margin": [(s, -1.0 - s) for s in range(5)],
            "lr": [(s, 0.1) for s in range(5)],
        },
        "b": {"loss": [(s, 0.0 if s == 3 else 1.0 + s) for s in range(6)]},
    }
    frame = tbexport.read_scalars(_logs(tmp_path / "logs", logs))
    drawn, notes = _drawn(frame, log_y=True)
    scales = {ax.get_title(): ax.get_yscale() for ax in drawn.axes}
    assert scales == {"loss": "log", "margin": "linear", "lr": "log"}
    assert notes == [
        "log y axis: 4 values <= 0 left out (in 1 tag: 'loss')",
        "log y axis: 1 tag: 'margin' without a value > 0 drawn on a linear axis",
    ]
    [loss] = [ax for ax in drawn.axes if ax.get_title() == "loss"]
    for line in loss.get_lines():  # gaps where the values were
        ys = np.asarray(line.get_ydata(), dtype=float)
        assert np.isnan(ys).sum() == (3 if len(ys) == 12 else 1)


def test_a_wide_frame_is_an_invalid_option_that_says_what_is_needed(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 2, ["loss", "acc"])
    with pytest.raises(InvalidOptionError) as raised:
        tbexport.plot_scalars(tbexport.to_wide(frame), tmp_path / "f.png")
    text = str(raised.value)
    assert "long frame, one row per point with the columns run, tag, step and value" in text
    assert "this frame has no tag or value column (its columns: run, step, " in text
    assert "to_wide" in text
    assert not (tmp_path / "f.png").exists()
    with pytest.raises(
        InvalidOptionError, match=r"and wall_time \(for x='relative'\).* no wall_time column"
    ):
        tbexport.plot_scalars(frame.drop(columns="wall_time"), x="relative")
    with pytest.raises(tbexport.NoScalarsError, match="no points to draw"):
        tbexport.plot_scalars(frame.iloc[:0])


def _band(ax: Any) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper edges of a panel's one shaded band, in step order."""
    [band] = [c for c in ax.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    n = (len(vertices) - 3) // 2  # a start, along the lower edge, back along the upper one
    return vertices[1 : n + 1, 1], vertices[n + 2 : 2 * n + 2, 1][::-1]


def test_statistics_are_drawn_as_a_mean_with_a_std_band(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 4, ["loss", "acc"])
    stats = tbexport.reduce_runs(frame, "mean,std,count,median")
    drawn, notes = _drawn(stats)
    assert notes == ["count is not drawn: it counts runs, not values of the tags"]
    [legend] = drawn.legends
    assert [t.get_text() for t in legend.get_texts()] == ["mean", "mean ± std", "median"]
    for ax in drawn.axes:
        rows = stats[stats["tag"] == ax.get_title()]
        mean = rows[rows["run"] == "mean"]["value"].to_numpy()
        std = rows[rows["run"] == "std"]["value"].to_numpy()
        lines = ax.get_lines()
        assert [line.get_label() for line in lines] == ["mean", "median"]  # no std, no count
        assert [line.get_linestyle() for line in lines] == ["-", "--"]
        np.testing.assert_allclose(lines[0].get_ydata(), mean)
        lower, upper = _band(ax)
        np.testing.assert_allclose(lower, mean - std)
        np.testing.assert_allclose(upper, mean + std)
        assert len({tuple(line.get_color()) for line in lines}) == 1  # one group, one colour


def test_min_max_band_and_smoothed_statistics(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 4, ["loss"])
    stats = tbexport.smooth(tbexport.reduce_runs(frame, "mean,std,min,max"), 0.6)
    drawn, notes = _drawn(stats, band="minmax")
    assert notes == ["std is not drawn: band='minmax' shades min to max"]
    [ax] = drawn.axes
    assert [t.get_text() for t in drawn.legends[0].get_texts()] == ["mean", "min to max"]
    lower, upper = _band(ax)
    smoothed = {r: g["value_smoothed"].to_numpy() for r, g in stats.groupby("run", observed=True)}
    np.testing.assert_allclose(lower, smoothed["min"])
    np.testing.assert_allclose(upper, smoothed["max"])
    raw, solid = ax.get_lines()  # the mean: raw faint, smoothed solid
    assert raw.get_alpha() == 0.3
    np.testing.assert_allclose(solid.get_ydata(), smoothed["mean"])
    drawn, notes = _drawn(tbexport.reduce_runs(frame, "mean,min,max"))  # band="std": no std
    assert notes == []
    [ax] = drawn.axes
    assert [line.get_linestyle() for line in ax.get_lines()] == ["-", ":", ":"]
    assert [t.get_text() for t in drawn.legends[0].get_texts()] == ["mean", "min, max"]
    _, notes = _drawn(tbexport.reduce_runs(frame, "mean,std"), band="minmax")
    assert notes[-1].startswith("band='minmax' needs the min and max statistics")


# -- a figure object, sizes, formats, axes ------------------------------------------


def test_no_output_returns_the_figure_and_writes_nothing(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 2, ["loss", "acc", "lr"])
    before = set(tmp_path.rglob("*"))
    drawn, _ = _drawn(frame)
    assert isinstance(drawn, Figure)
    assert [ax.get_title() for ax in drawn.axes] == ["acc", "loss", "lr"]
    assert set(tmp_path.rglob("*")) == before
    again = plotting.figure(frame, cols=1)
    assert len({round(ax.get_position().x0, 6) for ax in again.axes}) == 1  # one column
    again.savefig(tmp_path / "adjusted.png")  # a Figure like any other
    with pytest.raises(InvalidOptionError, match="per_tag and format name the files"):
        tbexport.plot_scalars(frame, per_tag=True)


def test_figsize_cols_and_dpi_shape_the_figure(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 3, ["a", "b", "c", "d", "e"])
    [png] = tbexport.plot_scalars(frame, tmp_path / "f.png", figsize=(8, 6), dpi=50)
    with Image.open(png) as image:
        assert image.size == (400, 300)  # the whole figure, legend included
    drawn = tbexport.plot_scalars(frame, cols=2)
    rows = sorted({round(ax.get_position().y0, 4) for ax in drawn.axes}, reverse=True)
    columns = sorted({round(ax.get_position().x0, 4) for ax in drawn.axes})
    assert len(rows) == 3 and len(columns) == 2
    assert drawn.get_size_inches().tolist() == pytest.approx([2 * 4.2, 3 * 3.2 + 0.35])
    for bad, message in [
        ({"cols": 0}, "cols"),
        ({"dpi": 0}, "dpi"),
        ({"figsize": (0, 3)}, "figsize"),
        ({"figsize": "big"}, "figsize"),
        ({"band": "iqr"}, "unknown band 'iqr'; choose from std, minmax"),
        ({"x": "epoch"}, "unknown x axis 'epoch'"),
        ({"max_panels": 0}, "max_panels"),
    ]:
        with pytest.raises(InvalidOptionError, match=re.escape(message)):
            tbexport.plot_scalars(frame, tmp_path / "g.png", **bad)


@pytest.mark.parametrize("format", ["png", "pdf", "svg"])
def test_per_tag_figures_in_any_format(tmp_path: Path, format: str) -> None:
    frame = _frame(tmp_path, 2, ["train/loss", "val/loss"])
    files, _ = _written(frame, tmp_path / "each", per_tag=True, format=format)
    assert sorted(p.name for p in files) == [f"train_loss.{format}", f"val_loss.{format}"]
    start = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}[format]
    assert all(p.read_bytes().startswith(start) for p in files)
    if format == "png":
        with Image.open(files[0]) as image:  # 6 x 4 in, and the legend below
            assert image.size == (720, int((4 + 0.35) * 120))


def test_format_names_per_tag_files_only(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 1, ["loss"])
    with pytest.raises(tbexport.UnknownFormatError, match="unknown plot format 'gif'"):
        tbexport.plot_scalars(frame, tmp_path / "d", per_tag=True, format="gif")
    with pytest.raises(InvalidOptionError, match="conflicts with the figure's suffix"):
        tbexport.plot_scalars(frame, tmp_path / "f.png", format="svg")
    [same] = tbexport.plot_scalars(frame, tmp_path / "f.svg", format="svg")
    assert same.name == "f.svg"


@pytest.mark.parametrize(
    ("seconds", "unit"),
    [(90, "seconds"), (50 * 60, "minutes"), (10 * 3600, "hours"), (5 * 86400, "days")],
)
def test_relative_time_in_a_unit_that_fits_the_runs(
    tmp_path: Path, seconds: int, unit: str
) -> None:
    factor = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[unit]
    logs = {
        "a": {"loss": [(s, 1.0 / (s + 1)) for s in range(11)], "val": [(10, 0.5)]},
        "b": {"loss": [(s, 2.0 / (s + 1)) for s in range(6)]},
    }
    start = {"a": 5000.0, "b": 9000.0}
    wall = lambda run, tag, step: start[run] + step * seconds / 10  # noqa: E731
    frame = tbexport.read_scalars(_logs(tmp_path / "logs", logs, wall))
    drawn, _ = _drawn(frame, x="relative")
    assert {ax.get_xlabel() for ax in drawn.axes} == {f"{unit} since start"}
    [loss] = [ax for ax in drawn.axes if ax.get_title() == "loss"]
    ends = sorted(float(line.get_xdata()[-1]) for line in loss.get_lines())
    assert ends == pytest.approx([seconds / 2 / factor, seconds / factor])
    [val] = [ax for ax in drawn.axes if ax.get_title() == "val"]
    # since the run's first point (of any tag), as --time relative counts
    assert float(val.get_lines()[0].get_xdata()[0]) == pytest.approx(seconds / factor)


def test_wall_time_axis_shows_dates(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 2, ["loss"])
    drawn, notes = _drawn(frame, x="wall_time")
    assert notes == []
    [ax] = drawn.axes
    assert ax.get_xlabel() == "wall time (UTC)"
    assert type(ax.xaxis.get_major_formatter()).__name__ == "ConciseDateFormatter"


def test_characters_the_font_lacks_are_a_note_not_matplotlib_warnings(tmp_path: Path) -> None:
    frame = _frame(tmp_path, 1, ["損失/loss"])
    files, notes = _written(frame, tmp_path / "f.png")
    assert len(files) == 1
    assert notes == ["2 characters of the tags or runs missing from the font, drawn as boxes: 失損"]


# -- real logs, and through export -------------------------------------------------------


def test_summary_writer_logs_smoothed_raw_faint_and_smoothed_solid(tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")
    for seed in range(3):
        with torch_tb.SummaryWriter(tmp_path / "runs" / f"seed_{seed}") as writer:
            for step in range(50):
                writer.add_scalar("train/loss", 2.0 / (1 + step) + 0.01 * seed, step)
                if step % 10 == 0:
                    writer.add_scalar("val/acc", 0.5 + step / 100, step)
    frame = tbexport.smooth(tbexport.read_scalars(tmp_path / "runs"), 0.6)
    drawn, notes = _drawn(frame)
    assert notes == []
    assert [ax.get_title() for ax in drawn.axes] == ["train/loss", "val/acc"]
    for ax in drawn.axes:
        assert len(ax.get_lines()) == 6  # raw and smoothed for each of three runs
        assert len(_solid_lines(ax)) == 3
    assert [t.get_text() for t in drawn.legends[0].get_texts()] == ["seed_0", "seed_1", "seed_2"]


def test_export_gathers_the_figures_notes(tmp_path: Path) -> None:
    logs = {"v0": {f"m{i}": _curve(3) for i in range(50)}}
    _logs(tmp_path / "logs", logs)
    result = tbexport.export(tmp_path / "logs", plot=tmp_path / "p.png", write_table=False)
    assert [p.name for p in result.plots] == ["p-1.png", "p-2.png"]
    assert "50 tags are drawn in 2 figures of at most 48 panels: p-1.png to p-2.png" in result.notes


def test_the_spread_of_a_tag_logged_once_shows_as_a_bar(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection

    for run, value in (("a", 0.90), ("b", 0.94), ("c", 0.98)):
        write_events(tmp_path / run / "events.out.tfevents.1", [simple("test_acc", 7, value)])
    stats = tbexport.reduce_runs(tbexport.read_scalars(tmp_path), "mean,std")
    drawn = tbexport.plot_scalars(stats)
    [ax] = [a for a in drawn.axes if a.get_title() == "test_acc"]
    [bar] = [c for c in ax.collections if isinstance(c, LineCollection)]
    [[(x0, low), (x1, high)]] = bar.get_segments()
    mean = stats[stats["run"] == "mean"]["value"].item()
    std = stats[stats["run"] == "std"]["value"].item()
    assert (x0, x1) == (7, 7)
    assert (low, high) == pytest.approx((mean - std, mean + std), rel=1e-12)


def test_figures_of_a_plot_dir_are_written_all_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.figure

    frame = _frame(tmp_path / "logs", 1, [f"tag_{i}" for i in range(5)])
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "tag_0.png").write_bytes(b"an earlier figure")
    saved: list[str] = []
    real = matplotlib.figure.Figure.savefig

    def full_disk(self: Any, fname: Any, *args: Any, **kwargs: Any) -> None:
        saved.append(str(fname))
        if len(saved) == 4:
            raise OSError(28, "No space left on device")
        real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    with pytest.raises(tbexport.OutputWriteError) as raised:
        tbexport.plot_scalars(frame, figures, per_tag=True)
    assert str(raised.value) == f"cannot write {figures / 'tag_3.png'}: No space left on device"
    assert len(saved) == 4
    assert sorted(p.name for p in figures.iterdir()) == ["tag_0.png"]  # none of the three
    assert (figures / "tag_0.png").read_bytes() == b"an earlier figure"
