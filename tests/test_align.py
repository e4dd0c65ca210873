"""reduce_runs(align=..., min_runs=...) against a plain computation written out here.

The expected values are computed with Python loops and the ``statistics`` module over
hand-made points, never with tbexport's helpers, so a bug in the alignment cannot
hide itself.
"""

from __future__ import annotations

import math
import statistics as stats
from collections import defaultdict
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest

import tbexport
from tbexport.align import ALIGN_MODES, align_runs, check_align, parse_align
from tbexport.exceptions import InvalidOptionError
from tbexport.shaping import reduce_runs

NAN = math.nan
ALL = ["mean", "std", "min", "max", "median", "count"]


class P(NamedTuple):
    """One logged point: step, wall time, value and (optionally) a smoothed value."""

    step: int
    wall: float
    value: float
    smoothed: float = NAN


Points = dict[str, dict[str, list[P]]]  # run -> tag -> points in logging order
# (tag, step) -> one (run, wall_time, value, smoothed) per aligned point
Cells = dict[tuple[str, int], list[tuple[str, float, float, float]]]

# Unequal, interleaved and partly overlapping steps; NaN values; run b has no "acc";
# run d is a single point.
POINTS: Points = {
    "a": {
        "loss": [P(s, 100.0 + s, 10.0 - s * 0.5, 1.0 + s) for s in (0, 2, 4, 6, 8, 10)],
        "acc": [P(0, 100.0, 0.25), P(5, 105.0, 0.5), P(10, 110.0, 0.75)],
    },
    "b": {
        "loss": [
            P(1, 201.0, 9.0, 2.0),
            P(3, 203.0, 8.0, 3.0),
            P(5, 215.0, NAN, NAN),  # a late wall time, with no value
            P(7, 207.0, 6.5, 4.0),
            P(9, 209.0, 5.0, 5.5),
            P(11, 230.0, NAN, NAN),  # its last point has no value
        ],
    },
    "c": {
        # no smoothed value at its first step: the smoothed series starts later
        "loss": [P(6, 312.0, 5.5, NAN)]
        + [P(s, 300.0 + 2 * s, 4.0 + s * 0.25, 0.5 * s) for s in (8, 10, 12, 14, 16)],
        "acc": [P(5, 305.0, 0.375), P(15, 315.0, 0.875)],
    },
    "d": {"loss": [P(12, 412.0, 3.0, 7.0)]},
}
RUNS = ["a", "b", "c", "d"]
TAGS = ["acc", "loss"]


def frame_of(points: Points, *, smoothed: bool = False) -> pd.DataFrame:
    """The long frame read_scalars would give: categorical run and tag, sorted by them."""
    runs = list(points)
    tags = sorted({t for by_tag in points.values() for t in by_tag})
    rows = [
        (run, tag, p.step, p.wall, p.value, p.smoothed)
        for run in runs
        for tag in tags
        for p in points[run].get(tag, [])
    ]
    frame = pd.DataFrame(rows, columns=["run", "tag", "step", "wall_time", "value", "sm"])
    frame["run"] = pd.Categorical(frame["run"], categories=runs)
    frame["tag"] = pd.Categorical(frame["tag"], categories=tags)
    frame["step"] = frame["step"].astype(np.int64)
    frame = frame.rename(columns={"sm": "value_smoothed"})
    if not smoothed:
        frame = frame.drop(columns="value_smoothed")
    return frame


# ---- the plain computation ---------------------------------------------------------


def steps_cells(points: Points) -> Cells:
    cells: Cells = defaultdict(list)
    for run, by_tag in points.items():
        for tag, ps in by_tag.items():
            for p in ps:
                cells[(tag, p.step)].append((run, p.wall, p.value, p.smoothed))
    return cells


def mean_of(xs: list[float]) -> float:
    kept = [x for x in xs if not math.isnan(x)]
    return stats.mean(kept) if kept else NAN


def bins_cells(points: Points, n: int) -> Cells:
    cells: Cells = defaultdict(list)
    for tag in TAGS:
        steps = [p.step for by_tag in points.values() for p in by_tag.get(tag, [])]
        if not steps:
            continue
        lo, hi = min(steps), max(steps)
        count = min(n, max(1, hi - lo))
        width = Fraction(hi - lo, count)  # exact: a step on a bin edge opens the next bin
        for run, by_tag in points.items():
            in_bin: dict[int, list[P]] = defaultdict(list)
            for p in by_tag.get(tag, []):
                i = count - 1 if p.step == hi else int((p.step - lo) // width)
                in_bin[i].append(p)
            for i, ps in in_bin.items():
                if all(math.isnan(p.value) for p in ps):
                    continue
                centre = math.floor(lo + Fraction(2 * i + 1, 2) * width + Fraction(1, 2))
                cells[(tag, centre)].append(
                    (
                        run,
                        stats.mean(p.wall for p in ps),
                        mean_of([p.value for p in ps]),
                        mean_of([p.smoothed for p in ps]),
                    )
                )
    return cells


def interp(x: int, pairs: list[tuple[int, float]]) -> float:
    """Linear interpolation through ``pairs`` (sorted by step); NaN outside their range."""
    for (x0, y0), (x1, y1) in zip(pairs, [*pairs[1:], pairs[-1]], strict=True):
        if x == x0:
            return y0
        if x0 < x < x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return NAN


def grid_cells(points: Points, step: int) -> Cells:
    cells: Cells = defaultdict(list)
    for run, by_tag in points.items():
        for tag, ps in by_tag.items():
            last: dict[int, P] = {}
            for p in ps:
                last[p.step] = p  # the last one logged at each step wins
            kept = sorted(last.values())
            valid = [p for p in kept if not math.isnan(p.value)]
            if not valid:
                continue
            smooth = [(p.step, p.smoothed) for p in kept if not math.isnan(p.smoothed)]
            g = valid[0].step + (-valid[0].step) % step  # first multiple of step in range
            while g <= valid[-1].step:
                cells[(tag, g)].append(
                    (
                        run,
                        interp(g, [(p.step, p.wall) for p in valid]),
                        interp(g, [(p.step, p.value) for p in valid]),
                        interp(g, smooth) if smooth else NAN,
                    )
                )
                g += step
    return cells


def statistic(name: str, xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    if name == "count":
        return float(len(xs))
    if not xs or (name == "std" and len(xs) < 2):
        return NAN
    return float(
        {"mean": stats.mean, "std": stats.stdev, "min": min, "max": max, "median": stats.median}[
            name
        ](xs)
    )


def expected(
    cells: Cells, names: list[str], *, min_runs: int = 1, smoothed: bool = False
) -> list[tuple[Any, ...]]:
    rows = []
    for name in names:
        for tag, step in sorted(cells, key=lambda key: (TAGS.index(key[0]), key[1])):
            points = cells[(tag, step)]
            covering = {run for run, _, value, _ in points if not math.isnan(value)}
            if min_runs > 1 and len(covering) < min_runs:
                continue
            row = [
                name,
                tag,
                step,
                stats.median(wall for _, wall, _, _ in points),
                statistic(name, [value for _, _, value, _ in points]),
            ]
            if smoothed:
                row.append(statistic(name, [s for _, _, _, s in points]))
            rows.append(tuple(row))
    return rows


def rows_of(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        (str(row[0]), str(row[1]), int(row[2]), *row[3:])
        for row in frame.itertuples(index=False, name=None)
    ]


def assert_rows(frame: pd.DataFrame, rows: list[tuple[Any, ...]]) -> None:
    got = rows_of(frame)
    assert [r[:3] for r in got] == [r[:3] for r in rows]
    for actual, wanted in zip(got, rows, strict=True):
        assert actual[3:] == pytest.approx(wanted[3:], rel=1e-12, abs=1e-12, nan_ok=True), wanted


# ---- steps ---------------------------------------------------------------------------


def test_steps_is_todays_reduction() -> None:
    frame = frame_of(POINTS)
    reduced = reduce_runs(frame, ALL)
    assert reduced.equals(reduce_runs(frame, ALL, align="steps", min_runs=1))
    assert list(reduced.columns) == ["run", "tag", "step", "wall_time", "value"]
    assert reduced["step"].dtype == np.int64
    assert list(reduced["run"].cat.categories) == ALL
    assert_rows(reduced, expected(steps_cells(POINTS), ALL))
    # run b's NaN at step 5 is the only point there: kept, with count 0
    loss5 = reduced[(reduced["tag"] == "loss") & (reduced["step"] == 5)]
    assert loss5["value"].tolist()[-1] == 0.0
    assert loss5["wall_time"].tolist() == [215.0] * len(ALL)


def test_align_runs_steps_returns_the_frame() -> None:
    frame = frame_of(POINTS)
    assert align_runs(frame, "steps") is frame


# ---- bins ----------------------------------------------------------------------------


def test_bins_match_the_plain_computation() -> None:
    frame = frame_of(POINTS)
    for n in (1, 3, 4, 7, 16, 1000):
        reduced = reduce_runs(frame, ALL, align=f"bins:{n}")
        assert reduced["step"].dtype == np.int64
        assert_rows(reduced, expected(bins_cells(POINTS, n), ALL))


def test_bins_by_hand() -> None:
    # loss spans steps 0..16 over all runs: bins:4 is 4 bins of width 4,
    # [0,4) [4,8) [8,12) [12,16], centres 2, 6, 10, 14
    reduced = reduce_runs(frame_of(POINTS), ["mean", "count"], align="bins:4")
    loss = reduced[reduced["tag"] == "loss"]
    mean = loss[loss["run"] == "mean"]
    count = loss[loss["run"] == "count"]
    assert mean["step"].tolist() == [2, 6, 10, 14]
    assert count["value"].tolist() == [2.0, 3.0, 3.0, 2.0]
    # bin [4,8): a's 4, 6 -> mean 7.5; b's 5 (NaN) and 7 -> 6.5; c's 6 -> 5.5
    assert mean["value"].tolist()[1] == (7.5 + 6.5 + 5.5) / 3
    # bin [12,16]: c's 12, 14, 16 (16 is the last step: closed bin) -> 7.5; d's 12 -> 3
    assert mean["value"].tolist()[3] == (7.5 + 3.0) / 2
    # wall_time: median of the runs' mean wall times, a: (104+106)/2, b: (215+207)/2, c: 312
    assert mean["wall_time"].tolist()[1] == 211.0
    # acc spans 0..15 (run b has none): 4 bins of width 3.75, centres 1.875 -> 2,
    # 5.625 -> 6, 9.375 -> 9, 13.125 -> 13
    acc = reduced[(reduced["tag"] == "acc") & (reduced["run"] == "mean")]
    assert acc["step"].tolist() == [2, 6, 9, 13]
    assert acc["value"].tolist() == [0.25, (0.5 + 0.375) / 2, 0.75, 0.875]
    # bins:9 on acc: width 15/9, so step 5 sits exactly on the edge of bin 3
    # [5, 6.67), centre 5.83 -> 6, and step 10 on the edge of bin 6, centre 10.83 -> 11
    nine = reduce_runs(frame_of(POINTS), ["mean"], align="bins:9")
    acc9 = nine[nine["tag"] == "acc"]
    assert acc9["step"].tolist() == [1, 6, 11, 14]
    assert acc9["value"].tolist() == [0.25, (0.5 + 0.375) / 2, 0.75, 0.875]


def test_the_last_bin_is_closed_on_the_right() -> None:
    points: Points = {"x": {"loss": [P(s, float(s), float(s)) for s in range(11)]}}
    aligned = align_runs(frame_of(points), "bins:5")  # width 2: [0,2) ... [8,10]
    assert aligned["step"].tolist() == [1, 3, 5, 7, 9]
    assert aligned["value"].tolist() == [0.5, 2.5, 4.5, 6.5, 9.0]  # 8, 9, 10 together
    assert aligned["wall_time"].tolist() == [0.5, 2.5, 4.5, 6.5, 9.0]


def test_the_bin_count_is_capped_so_bins_are_a_step_wide() -> None:
    points: Points = {
        "x": {"loss": [P(s, 10.0 + s, 2.0 * s) for s in (0, 1, 2, 3)], "one": [P(7, 1.0, 4.0)]},
        "y": {"loss": [P(3, 20.0, 1.0)], "one": [P(7, 3.0, 6.0)]},
    }
    reduced = reduce_runs(frame_of(points), ["mean", "count"], align="bins:10")
    mean = reduced[reduced["run"] == "mean"]
    # loss: 3 bins of width 1, centres 0.5 -> 1, 1.5 -> 2, 2.5 -> 3; 3 is in the last bin
    loss = mean[mean["tag"] == "loss"]
    assert loss["step"].tolist() == [1, 2, 3]
    assert loss["value"].tolist() == [0.0, 2.0, (5.0 + 1.0) / 2]
    assert loss["wall_time"].tolist() == [10.0, 11.0, (12.5 + 20.0) / 2]
    # a tag logged at one step only gets one bin, at that step
    one = mean[mean["tag"] == "one"]
    assert one["step"].tolist() == [7]
    assert one["value"].tolist() == [5.0]
    assert one["wall_time"].tolist() == [2.0]
    counts = reduced[reduced["run"] == "count"]["value"].tolist()
    assert counts == [1.0, 1.0, 2.0, 2.0]


def test_a_run_with_only_nan_in_a_bin_does_not_have_it() -> None:
    points: Points = {
        "x": {"loss": [P(0, 0.0, 1.0), P(1, 1.0, NAN), P(2, 2.0, NAN), P(4, 4.0, 3.0)]},
        "y": {"loss": [P(1, 5.0, NAN), P(4, 9.0, 5.0)]},
    }
    aligned = align_runs(frame_of(points), "bins:2")  # [0,2) [2,4]
    assert rows_of(aligned) == [
        ("x", "loss", 1, 0.5, 1.0),
        ("x", "loss", 3, 3.0, 3.0),
        ("y", "loss", 3, 9.0, 5.0),
    ]
    points["x"]["loss"][0] = P(0, 0.0, NAN)  # now no run has the first bin
    reduced = reduce_runs(frame_of(points), ["count"], align="bins:2")
    assert rows_of(reduced) == [("count", "loss", 3, 6.0, 2.0)]


def test_bins_stay_exact_for_huge_steps() -> None:
    top = 2**61 + 7
    steps = [0, top // 3, top // 3 + 1, 2 * top // 3 + 1, top]
    points: Points = {"x": {"t": [P(s, 1.0, float(i)) for i, s in enumerate(steps)]}}
    aligned = align_runs(frame_of(points), "bins:3")
    width = Fraction(top, 3)
    index = [min(2, math.floor(Fraction(s) / width)) for s in steps]
    centres = sorted({math.floor((i + Fraction(1, 2)) * width + Fraction(1, 2)) for i in index})
    assert aligned["step"].tolist() == centres
    assert len(centres) == 3


# ---- grid ----------------------------------------------------------------------------


def test_grid_matches_the_plain_computation() -> None:
    frame = frame_of(POINTS)
    for step in (1, 2, 3, 4, 5, 12, 17):
        reduced = reduce_runs(frame, ALL, align=f"grid:{step}")
        assert reduced["step"].dtype == np.int64
        assert_rows(reduced, expected(grid_cells(POINTS, step), ALL))


def test_grid_by_hand_interpolates_and_never_extrapolates() -> None:
    aligned = align_runs(frame_of(POINTS), "grid:4")
    loss = aligned[aligned["tag"] == "loss"]
    by_run = {r: part for r, part in loss.groupby("run", observed=True)}
    assert by_run["a"]["step"].tolist() == [0, 4, 8]  # a: 0..10
    assert by_run["a"]["value"].tolist() == [10.0, 8.0, 6.0]
    # b: 1..9, its NaN at 5 (and that point's wall time) skipped: 4 is between 3 (8.0)
    # and 7 (6.5), 8 between 7 and 9
    assert by_run["b"]["step"].tolist() == [4, 8]
    assert by_run["b"]["value"].tolist() == [8.0 - 1.5 / 4, 5.75]
    assert by_run["b"]["wall_time"].tolist() == [204.0, 208.0]
    assert by_run["c"]["step"].tolist() == [8, 12, 16]  # c: 6..16, nothing at 4
    assert by_run["d"]["step"].tolist() == [12]  # a single point on the grid
    assert by_run["d"]["value"].tolist() == [3.0]
    # acc at grid:4 interpolates a between 0.25 (0) and 0.5 (5): 0.25 + 0.25 * 4/5
    acc = aligned[(aligned["tag"] == "acc") & (aligned["run"] == "a")]
    assert acc["value"].tolist()[1] == pytest.approx(0.45, rel=1e-15)
    # a single point off the grid contributes nothing
    off = align_runs(frame_of(POINTS), "grid:5")
    assert "d" not in set(off.loc[off["tag"] == "loss", "run"].astype(str))


def test_grid_uses_the_last_point_logged_at_a_step() -> None:
    # as with keep_duplicates after a resume: 0, 2, 4, then again 2, 4, 6
    points: Points = {
        "x": {
            "loss": [
                P(0, 0.0, 0.0),
                P(2, 2.0, 100.0),
                P(4, 4.0, 100.0),
                P(2, 12.0, 2.0),
                P(4, 14.0, 4.0),
                P(6, 16.0, 6.0),
            ]
        }
    }
    aligned = align_runs(frame_of(points), "grid:1")
    assert aligned["step"].tolist() == list(range(7))
    assert aligned["value"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert aligned["wall_time"].tolist() == [0.0, 6.0, 12.0, 13.0, 14.0, 15.0, 16.0]


def test_a_long_resumed_run_keeps_its_last_points() -> None:
    # logged 0..99, then resumed from a checkpoint at 40 and logged 40..139
    first = [P(s, float(s), 1000.0 + s) for s in range(100)]
    again = [P(s, 500.0 + s, float(s)) for s in range(40, 140)]
    points: Points = {"x": {"loss": first + again}, "y": {"loss": [P(70, 1.0, 2.0)]}}
    aligned = align_runs(frame_of(points), "grid:10")
    x = aligned[aligned["run"] == "x"]
    assert x["step"].tolist() == list(range(0, 140, 10))
    assert x["value"].tolist() == [1000.0 + s for s in range(0, 40, 10)] + [
        float(s) for s in range(40, 140, 10)
    ]
    assert x["wall_time"].tolist() == [float(s) for s in range(0, 40, 10)] + [
        500.0 + s for s in range(40, 140, 10)
    ]
    # steps: x counts once at 70, with its last point (wall time 570), as y does (1.0)
    reduced = reduce_runs(frame_of(points), ["count"], min_runs=2)
    assert rows_of(reduced) == [("count", "loss", 70, (570.0 + 1.0) / 2, 2.0)]


def test_unsorted_rows_give_the_same_alignment() -> None:
    frame = frame_of(POINTS, smoothed=True)
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    for align in ("bins:4", "grid:3"):
        assert align_runs(shuffled, align).equals(align_runs(frame, align))
    for align in ("steps", "bins:4", "grid:3"):
        for k in (1, 2, 3):
            assert reduce_runs(shuffled, ALL, align=align, min_runs=k).equals(
                reduce_runs(frame, ALL, align=align, min_runs=k)
            )


# ---- every value column --------------------------------------------------------------


def test_value_smoothed_is_aligned_too() -> None:
    frame = frame_of(POINTS, smoothed=True)
    for align, cells in (
        ("steps", steps_cells(POINTS)),
        ("bins:4", bins_cells(POINTS, 4)),
        ("bins:9", bins_cells(POINTS, 9)),
        ("grid:3", grid_cells(POINTS, 3)),
        ("grid:4", grid_cells(POINTS, 4)),
    ):
        reduced = reduce_runs(frame, ALL, align=align)
        assert list(reduced.columns) == [
            "run",
            "tag",
            "step",
            "wall_time",
            "value",
            "value_smoothed",
        ]
        assert_rows(reduced, expected(cells, ALL, smoothed=True))
    # by hand: bins:4 loss bin [4,8) smoothed means a: (5+7)/2, b: 4 (NaN skipped),
    # c: none (its only point there has no smoothed value)
    mean = reduce_runs(frame, ["mean"], align="bins:4")
    row = mean[(mean["tag"] == "loss") & (mean["step"] == 6)]
    assert row["value_smoothed"].tolist() == [(6.0 + 4.0) / 2]
    # grid:2: c's smoothed series starts at 8, so at 6 it is NaN, not extrapolated
    aligned = align_runs(frame, "grid:2")
    c = aligned[(aligned["run"] == "c") & (aligned["tag"] == "loss")]
    assert c["step"].tolist() == [6, 8, 10, 12, 14, 16]
    assert c["value"].tolist() == [5.5, 6.0, 6.5, 7.0, 7.5, 8.0]
    assert c["value_smoothed"].tolist()[1:] == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert math.isnan(c["value_smoothed"].tolist()[0])


def test_align_runs_keeps_the_frame_layout() -> None:
    frame = frame_of(POINTS, smoothed=True)
    for align in ("bins:4", "grid:2"):
        aligned = align_runs(frame, align)
        assert list(aligned.columns) == list(frame.columns)
        assert aligned.dtypes.equals(frame.dtypes)
        assert list(aligned["run"].cat.categories) == RUNS
        assert list(aligned["tag"].cat.categories) == TAGS
        # one point per run per (tag, step)
        assert not aligned.duplicated(["run", "tag", "step"]).any()


# ---- min_runs ------------------------------------------------------------------------


def test_min_runs_drops_rows_too_few_runs_cover() -> None:
    frame = frame_of(POINTS, smoothed=True)
    for align, cells in (
        ("steps", steps_cells(POINTS)),
        ("bins:4", bins_cells(POINTS, 4)),
        ("grid:2", grid_cells(POINTS, 2)),
    ):
        for k in (1, 2, 3, 4):
            reduced = reduce_runs(frame, ALL, align=align, min_runs=k)
            rows = expected(cells, ALL, min_runs=k, smoothed=True)
            assert_rows(reduced, rows)
            counts = reduced.loc[reduced["run"] == "count", "value"]
            assert (counts >= k).all() or k == 1  # 1 keeps steps with only NaN values
    # steps: only steps 6, 8, 10 (a, c) and 12 (c, d) have two runs' values
    two = reduce_runs(frame, ["count"], align="steps", min_runs=2)
    assert rows_of(two)[0][:3] == ("count", "acc", 5)
    assert two.loc[two["tag"] == "loss", "step"].tolist() == [6, 8, 10, 12]
    # bins:4: only the bins [4,8) and [8,12) of loss have 3 runs
    three = reduce_runs(frame, ["mean", "count"], align="bins:4", min_runs=3)
    assert [r[:3] for r in rows_of(three)] == [
        ("mean", "loss", 6),
        ("mean", "loss", 10),
        ("count", "loss", 6),
        ("count", "loss", 10),
    ]


def test_min_runs_counts_runs_with_a_value_not_nan_points() -> None:
    points: Points = {
        "x": {"t": [P(1, 1.0, 1.0)]},
        "y": {"t": [P(1, 2.0, NAN), P(2, 5.0, NAN)]},
        # two points at step 3 (keep_duplicates) are still one run
        "z": {"t": [P(1, 3.0, 3.0), P(2, 4.0, 4.0), P(3, 6.0, 1.0), P(3, 7.0, 2.0)]},
    }
    reduced = reduce_runs(frame_of(points), ["mean", "count"], min_runs=2)
    # step 1: x and z (y's NaN keeps its wall time in the median, as without min_runs)
    assert rows_of(reduced) == [("mean", "t", 1, 2.0, 2.0), ("count", "t", 1, 2.0, 2.0)]
    # the same when the rows come in another order
    frame = frame_of(points)
    for seed in range(5):
        shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
        assert reduce_runs(shuffled, ["mean", "count"], min_runs=2).equals(reduced)


def test_min_runs_above_every_row_leaves_an_empty_frame() -> None:
    reduced = reduce_runs(frame_of(POINTS), ["mean"], align="grid:2", min_runs=5)
    assert reduced.empty
    assert list(reduced.columns) == ["run", "tag", "step", "wall_time", "value"]


def test_an_empty_frame_stays_empty() -> None:
    empty = frame_of(POINTS).iloc[:0]
    for align in ("steps", "bins:3", "grid:2"):
        aligned = align_runs(empty, align)
        assert aligned.empty
        assert aligned.dtypes.equals(empty.dtypes)
        for k in (1, 2):
            reduced = reduce_runs(empty, ALL, align=align, min_runs=k)
            assert reduced.empty
            assert list(reduced.columns) == ["run", "tag", "step", "wall_time", "value"]


# ---- bad options ---------------------------------------------------------------------


USE = "use steps, bins:N or grid:STEP (N, STEP positive integers)"


@pytest.mark.parametrize(
    ("align", "message"),
    [
        ("foo", f"unknown alignment 'foo'; {USE}"),
        ("", f"unknown alignment ''; {USE}"),
        ("bin:3", f"unknown alignment 'bin:3'; {USE}"),
        ("bins", "invalid alignment 'bins': N in bins:N must be a positive integer"),
        ("bins:0", "invalid alignment 'bins:0': N in bins:N must be a positive integer"),
        ("bins:x", "invalid alignment 'bins:x': N in bins:N must be a positive integer"),
        ("bins:2.5", "invalid alignment 'bins:2.5': N in bins:N must be a positive integer"),
        ("grid:-5", "invalid alignment 'grid:-5': STEP in grid:STEP must be a positive integer"),
        ("grid:", "invalid alignment 'grid:': STEP in grid:STEP must be a positive integer"),
    ],
)
def test_bad_alignments_raise_invalid_option_error(align: str, message: str) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        check_align(align)
    assert str(caught.value) == message
    with pytest.raises(InvalidOptionError) as caught:
        reduce_runs(frame_of(POINTS), "mean", align=align)
    assert str(caught.value) == message
    with pytest.raises(InvalidOptionError):
        align_runs(frame_of(POINTS), align)


def test_good_alignments_parse() -> None:
    assert ALIGN_MODES == ("steps", "bins", "grid")
    assert parse_align("steps") == ("steps", None)
    assert parse_align("bins:20") == ("bins", 20)
    assert parse_align("grid:500") == ("grid", 500)


@pytest.mark.parametrize("min_runs", [0, -1, 1.5, True])
def test_bad_min_runs_raise_invalid_option_error(min_runs: Any) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        reduce_runs(frame_of(POINTS), "mean", min_runs=min_runs)
    assert str(caught.value) == f"min_runs must be an integer >= 1, not {min_runs!r}"


# ---- real event files ----------------------------------------------------------------


def test_runs_written_by_summary_writer(tmp_path: Path) -> None:
    torch_tb = pytest.importorskip("torch.utils.tensorboard", reason="needs torch (test extra)")
    # values multiples of 1/8 and small: exact in float32
    logged: Points = {
        "seed_0": {"loss": [P(s, 1_700_000_000.0 + s, 20.0 - s * 0.25) for s in range(0, 31, 3)]},
        "seed_1": {"loss": [P(s, 1_700_000_500.0 + s, 15.0 - s * 0.125) for s in range(2, 41, 5)]},
        "seed_2": {"loss": [P(25, 1_700_001_000.0, 1.5)]},
    }
    for run, by_tag in logged.items():
        with torch_tb.SummaryWriter(tmp_path / run) as writer:
            for tag, ps in by_tag.items():
                for p in ps:
                    writer.add_scalar(tag, p.value, p.step, walltime=p.wall)
    frame = tbexport.read_scalars(tmp_path)
    assert list(frame["run"].cat.categories) == list(logged)
    for align, cells in (
        ("steps", steps_cells(logged)),
        ("bins:5", bins_cells(logged, 5)),
        ("grid:5", grid_cells(logged, 5)),
        ("grid:10", grid_cells(logged, 10)),
    ):
        for k in (1, 2):
            reduced = tbexport.reduce_runs(frame, ALL, align=align, min_runs=k)
            assert_rows(reduced, expected(cells, ALL, min_runs=k))
    # by hand, grid:10: seed_0 spans 0..30, seed_1 2..37, seed_2 (25) is off the grid
    mean = tbexport.reduce_runs(frame, ["mean", "count"], align="grid:10")
    assert mean.loc[mean["run"] == "mean", "step"].tolist() == [0, 10, 20, 30]
    assert mean.loc[mean["run"] == "count", "value"].tolist() == [1.0, 2.0, 2.0, 2.0]
    # step 10: seed_0 between 9 (17.75) and 12 (17.0) -> 17.5; seed_1 between 7 (14.125)
    # and 12 (13.5) -> 13.75
    assert mean.loc[mean["run"] == "mean", "value"].tolist()[1] == (17.5 + 13.75) / 2
