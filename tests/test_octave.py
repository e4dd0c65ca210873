"""The MATLAB outputs where they are used: every kind of generated ``.m`` run in GNU
Octave (headless, gnuplot) and its figure read back (titles, lines, legends); every
kind of ``.mat`` loaded in Octave and compared with the CSV export of the same runs.
Plus what needs no Octave: the same input gives the same ``.mat`` bytes.

Names are hostile on purpose: a run directory with a quote, a ``%`` and a newline,
a non-ASCII tag (and one beyond the BMP), tags and runs named like MATLAB functions.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.io

import tbexport
from tbexport.writing.matlab import BUILTINS
from tbexport.writing.matlab_script import literal

from .builders import simple, write_events
from .programs import require

NAN = math.nan
HOSTILE = "it's 50%\nrun"  # a run directory: quote, percent, newline
UNICODE = "ünïcødé/损失"
ASTRAL = "reward 😀"  # a character beyond the BMP: two UTF-16 code units
# run -> tag -> points; "lone" has one point; "gappy" has points between NaNs
RUNS: dict[str, dict[str, list[tuple[int, float]]]] = {
    "alpha_run": {
        "loss": [(s, 1.0 / (s + 1) if s != 4 else NAN) for s in range(10)],
        UNICODE: [(0, 0.5), (1, 0.25), (2, 0.125)],
        "lone": [(5, 2.5)],
        "max": [(s, float(s) ** 0.5) for s in range(5)],  # a tag named like a function
    },
    HOSTILE: {
        "loss": [(s, 0.3 + 0.1 * s) for s in range(0, 10, 2)],
        "gappy": [(0, 1.0), (1, NAN), (2, 2.0), (3, NAN), (4, 3.0), (5, 4.0)],
        ASTRAL: [(0, 1.0), (1, 2.0)],
    },
    "mean": {  # a run named like a function
        "loss": [(s, 0.9 - 0.05 * s) for s in range(8)],
        "lone": [(3, 1.5)],
    },
}
LRS = {"alpha_run": 0.1, HOSTILE: 0.01, "mean": 0.001}


@pytest.fixture(scope="module")
def octave() -> str:
    require("gnuplot")  # Octave's headless graphics toolkit (a package Octave recommends)
    return require("octave-cli")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("octave") / "logs"
    for run, tags in RUNS.items():
        events = [simple(tag, s, v) for tag, points in tags.items() for s, v in points]
        write_events(root / run / "events.out.tfevents.1", events)
        (root / run / "hparams.yaml").write_text(f"lr: {LRS[run]}\nopt: adam\n")
    return root


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Octave functions that print what a figure or a .mat holds, one fact a line
    (text as the numbers of its UTF-8 bytes: newlines and tabs survive)."""
    folder = tmp_path_factory.mktemp("probes")
    (folder / "codes.m").write_text(
        "function t = codes(s)\n  t = sprintf('%d ', double(s));\nend\n"
    )
    (folder / "shadows.m").write_text(  # (a function's own workspace: no variables of its own)
        "function r = shadows(varargin)\n  r = exist(varargin{1});\nend\n"
    )
    (folder / "figure_report.m").write_text(
        """\
function figure_report(f)
  axs = findall(f, 'type', 'axes');
  for a = axs(end:-1:1)'
    if strcmp(get(a, 'tag'), 'legend'), continue; end
    t = get(a, 'title');
    printf('AXES\\t%s\\t%s\\n', codes(get(t, 'string')), get(t, 'interpreter'));
    lines = findall(a, 'type', 'line');
    for l = lines(end:-1:1)'
      printf('LINE\\t%s\\t%s\\t%s\\t%g\\t%s\\t%d\\n', codes(get(l, 'displayname')), ...
             get(l, 'handlevisibility'), get(l, 'marker'), get(l, 'linewidth'), ...
             sprintf('%.6f ', get(l, 'color')), numel(get(l, 'xdata')));
    end
    lh = [];
    try, lh = get(a, '__legend_handle__'); end  % (a property once there is a legend)
    if ~isempty(lh) && ishghandle(lh)
      s = get(lh, 'string');
      if ischar(s), s = {s}; end
      printf('LEGEND\\t%s', get(lh, 'interpreter'));
      for i = 1:numel(s), printf('\\t%s', codes(s{i})); end
      printf('\\n');
    end
  end
  names = evalin('base', 'who');
  for i = 1:numel(names), printf('SCRIPTVAR\\t%s\\t%d\\n', names{i}, shadows(names{i})); end
end
"""
    )
    (folder / "mat_report.m").write_text(
        """\
function mat_report(file)
  vars = who('-file', file);
  for i = 1:numel(vars), printf('VAR\\t%s\\t%d\\n', vars{i}, shadows(vars{i})); end
  data = load(file);
  for i = 1:numel(vars), dump(data.(vars{i}), vars{i}); end
end
function dump(x, path)
  if isstruct(x)
    f = fieldnames(x);
    printf('S\\t%s\\t%s\\n', path, strjoin(f', ' '));
    for j = 1:numel(f), dump(x.(f{j}), [path '.' f{j}]); end
  elseif iscell(x)
    printf('C\\t%s\\t%s\\n', path, sprintf('%d ', size(x)));
    for j = 1:numel(x), dump(x{j}, sprintf('%s{%d}', path, j)); end
  elseif ischar(x)
    printf('T\\t%s\\t%s\\n', path, codes(x));
  else
    printf('N\\t%s\\t%s\\t%s\\t%s\\n', path, class(x), sprintf('%d ', size(x)), ...
           sprintf('%.17g ', double(x)));
  end
end
"""
    )
    return folder


def _fonts(folder: Path) -> dict[str, str]:
    """Octave draws text with FreeSans from fonts-freefont-otf (a package it only
    recommends): where it is missing, stand DejaVu Sans in for it."""
    if Path("/usr/share/fonts/opentype/freefont/FreeSans.otf").exists():
        return {}
    found = sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf"))
    if not found:
        return {}
    folder.mkdir(exist_ok=True)
    for style in ("", "Bold", "Oblique", "BoldOblique"):
        target = found[0].with_name(f"DejaVuSans{'-' + style if style else ''}.ttf")
        link = folder / f"FreeSans{style}.otf"
        if target.exists() and not link.exists():
            link.symlink_to(target)
    return {"OCTAVE_FONTS_DIR": f"{folder}/"}


def _run_octave(octave: str, code: str, where: Path, probes: Path) -> str:
    """Run ``code`` in a fresh headless Octave; its standard output."""
    driver = where / "tbexport_driver.m"
    driver.write_text(
        f"addpath('{probes}');\n"
        "graphics_toolkit('gnuplot');\n"
        "set(0, 'defaultfigurevisible', 'off');\n" + code,
        encoding="utf-8",
    )
    env = {**os.environ, **_fonts(probes / "fonts")}
    done = subprocess.run(
        [octave, "--no-gui", "--quiet", "--norc", "--no-window-system", str(driver)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=where,
        env=env,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def _text(codes: str) -> str:
    return bytes(int(c) for c in codes.split()).decode("utf-8")


def _source(path: Path) -> str:
    """Octave code that runs the script ``path`` (``run`` cannot take a quote)."""
    return f"source({literal(str(path))});\n"


# -- figures ---------------------------------------------------------------------------


@dataclass
class Line:
    name: str
    visible: str
    marker: str
    width: float
    colour: tuple[float, ...]
    points: int


@dataclass
class Axes:
    title: str
    interpreter: str
    lines: list[Line] = field(default_factory=list)
    legend: list[str] | None = None
    legend_interpreter: str | None = None


def _figure(report: str) -> tuple[dict[str, Axes], dict[str, int]]:
    panels: dict[str, Axes] = {}
    script_vars: dict[str, int] = {}
    current: Axes | None = None
    for row in report.splitlines():
        kind, *cells = row.split("\t")
        if kind == "AXES":
            current = Axes(_text(cells[0]), cells[1])
            panels[current.title] = current
        elif kind == "LINE" and current is not None:
            name, visible, marker, width, colour, points = cells
            colours = tuple(round(float(c), 4) for c in colour.split())
            current.lines.append(
                Line(_text(name), visible, marker, float(width), colours, int(points))
            )
        elif kind == "LEGEND" and current is not None:
            current.legend_interpreter = cells[0]
            current.legend = [_text(c) for c in cells[1:]]
        elif kind == "SCRIPTVAR":
            script_vars[cells[0]] = int(cells[1])
    return panels, script_vars


def _lone(values: list[float]) -> list[bool]:
    """Points with no finite neighbour: no line reaches them."""
    fin = [math.isfinite(v) for v in values]
    return [
        f and not (i > 0 and fin[i - 1]) and not (i + 1 < len(fin) and fin[i + 1])
        for i, f in enumerate(fin)
    ]


def _expected_lines(values: list[float], name: str, solid: bool) -> list[tuple[str, str, str, int]]:
    """(name, handle visibility, marker, points) of the lines drawn for one layer:
    the line, and the points no line reaches marked alone, or on the line if no two
    points are neighbours."""
    lone = _lone(values)
    finite = sum(math.isfinite(v) for v in values)
    visible = "on" if solid else "off"
    label = name if solid else ""
    if any(lone) and sum(lone) == finite:
        return [(label, visible, "o", len(values))]
    if any(lone):
        return [(label, visible, "none", len(values)), ("", "off", "o", sum(lone))]
    return [(label, visible, "none", len(values))]


def _csv(logs: Path | list[Path], where: Path, **options: Any) -> pd.DataFrame:
    out = tbexport.export(logs, where / "expected.csv", **options).output
    assert out is not None
    table = pd.read_csv(out, dtype=str, keep_default_na=False)  # (numbers parsed here: exact)
    for column in table.columns.drop(["run", "tag"]):
        table[column] = [float(v) if v else NAN for v in table[column]]
    return table


def _expected_figure(table: pd.DataFrame, several: bool) -> dict[str, Any]:
    """Per tag: the lines each run draws, in the order of runs, each with its run and
    line width (None: markers alone); the legend."""
    smoothed = "value_smoothed" in table
    runs = list(dict.fromkeys(table["run"]))
    expected: dict[str, Any] = {}
    for tag in dict.fromkeys(table["tag"]):
        lines: list[tuple[str, str, str, int]] = []
        styles: list[tuple[str, float | None, bool]] = []  # (run, width, faint)
        legend = []
        for run in runs:
            rows = table[(table["tag"] == tag) & (table["run"] == run)]
            if rows.empty:
                continue
            name = run if several else "value"
            layers = [(rows["value"].tolist(), not smoothed, 0.5 if smoothed else 1.0)]
            if smoothed:
                layers.append((rows["value_smoothed"].tolist(), True, 1.5))
            for values, solid, width in layers:
                drawn = _expected_lines(values, name, solid)
                lines += drawn
                # (a line of markers alone keeps the default width)
                styles += [(run, width if i == 0 else None, not solid) for i in range(len(drawn))]
            legend.append(run)
        expected[tag] = (lines, styles, legend if several else None)
    return expected


def _faint(colour: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(1 - 0.4 * (1 - c), 4) for c in colour)


KINDS: dict[str, tuple[dict[str, Any], bool]] = {
    "one run": ({"paths": ["alpha_run"]}, False),
    "one run, smoothed": ({"paths": ["alpha_run"], "smoothing": 0.6}, False),
    "runs": ({}, True),
    "runs, smoothed": ({"smoothing": 0.6}, True),
    "wide": ({"layout": "wide"}, True),
    "wide, smoothed": ({"layout": "wide", "smoothing": 0.6}, True),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_scripts_draw_every_run_in_octave(
    kind: str, octave: str, logs: Path, probes: Path, tmp_path: Path
) -> None:
    options, several = KINDS[kind]
    options = dict(options)
    paths = [logs / p for p in options.pop("paths", [])] or logs
    # the output named like the hostile run: the script must quote it
    mat = tmp_path / f"{HOSTILE}.mat"
    tbexport.export(paths, mat, matlab_script=True, **options)
    report = _run_octave(
        octave, _source(mat.with_suffix(".m")) + "figure_report(gcf);\n", tmp_path, probes
    )
    panels, script_vars = _figure(report)
    layout = {k: v for k, v in options.items() if k != "layout"}
    table = _csv(paths, tmp_path, **layout)
    expected = _expected_figure(table, several)
    assert sorted(panels) == sorted(expected)  # one panel per tag, titled as logged
    colours: dict[str, tuple[float, ...]] = {}  # run -> the colour of its solid lines
    shown: set[str] = set()
    for tag, (lines, styles, legend) in expected.items():
        panel = panels[tag]
        assert panel.interpreter == "none"
        drawn = [(line.name, line.visible, line.marker, line.points) for line in panel.lines]
        assert drawn == lines, tag
        # one legend for the figure: on the first panel, and on any other with a run the
        # legends so far lack (not on every panel, where it covered the lines)
        assert panel.legend in (None, legend), tag
        if panel.legend is not None:
            assert panel.legend_interpreter == "none"
            shown.update(panel.legend)
        for line, (run, _, _) in zip(panel.lines, styles, strict=True):
            if line.visible == "on":  # one colour per run, the same in every panel
                assert colours.setdefault(run, line.colour) == line.colour, (tag, run)
        for line, (run, width, faint) in zip(panel.lines, styles, strict=True):
            assert line.colour == (_faint(colours[run]) if faint else colours[run]), (tag, run)
            if width is not None:
                assert line.width == width, (tag, run)
    assert len(set(colours.values())) == len(colours)  # runs told apart
    if several:
        assert shown == {run for _, _, legend in expected.values() for run in legend or []}
        assert sum(panels[tag].legend is not None for tag in expected) < len(expected)
    # the script leaves no variable that hides a function (run, rows, width...)
    assert script_vars and {n: e for n, e in script_vars.items() if e} == {}


def test_a_figure_renders_to_png(octave: str, logs: Path, probes: Path, tmp_path: Path) -> None:
    """One figure drawn to a PNG file (looked at by eye when this test was written:
    titles literal, one legend entry per run, faint raw lines under smoothed ones).
    Not the hostile run, not the Chinese tag: a newline in a legend entry breaks
    Octave's pipe to gnuplot, and glyphs missing from every font draw black boxes."""
    mat = tmp_path / "sweep.mat"
    runs = [logs / "alpha_run", logs / "mean"]
    tbexport.export(runs, mat, matlab_script=True, smooth=0.6, tags=["loss", "lone", "max"])
    png = tmp_path / "sweep.png"
    code = (
        _source(mat.with_suffix(".m"))
        + f"print(gcf, '-dpngcairo', '-S900,700', '-F:7', '{png}');\n"
    )
    _run_octave(octave, code, tmp_path, probes)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


# -- .mat files ------------------------------------------------------------------------


@dataclass
class Mat:
    variables: dict[str, int]  # name -> exist(name) before loading
    values: dict[str, Any]  # path -> str | np.ndarray | list of fields

    def text(self, path: str) -> str:
        value = self.values[path]
        assert isinstance(value, str), path
        return value

    def cell(self, path: str, rows: int, cols: int) -> list[list[str]]:
        return [
            [self.text(f"{path}{{{r + c * rows + 1}}}") for c in range(cols)] for r in range(rows)
        ]

    def array(self, path: str) -> np.ndarray:
        value = self.values[path]
        assert isinstance(value, np.ndarray), path
        return value


def _mat(octave: str, path: Path, probes: Path) -> Mat:
    report = _run_octave(octave, f"mat_report({literal(str(path))});\n", path.parent, probes)
    variables: dict[str, int] = {}
    values: dict[str, Any] = {}
    for row in report.splitlines():
        kind, *cells = row.split("\t")
        if kind == "VAR":
            variables[cells[0]] = int(cells[1])
        elif kind == "S":
            values[cells[0]] = cells[1].split()
        elif kind == "C":
            values[cells[0]] = tuple(int(n) for n in cells[1].split())
        elif kind == "T":
            values[cells[0]] = _text(cells[1])
        elif kind == "N":
            shape = tuple(int(n) for n in cells[2].split())
            numbers = np.array([float(v) for v in cells[3].split()], dtype=np.float64)
            values[cells[0]] = numbers.reshape(shape, order="F")
            values[cells[0] + ":class"] = cells[1]
    return Mat(variables, values)


def _same(actual: np.ndarray, expected: Any) -> bool:
    wanted = np.asarray(expected, dtype=np.float64)
    return actual.shape == wanted.shape and bool(
        np.all((actual == wanted) | (np.isnan(actual) & np.isnan(wanted)))
    )


def _column(values: list[float] | pd.Series) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, 1)


def _check_variables(mat: Mat) -> None:
    """No variable hides a MATLAB or Octave function once loaded."""
    assert mat.variables
    assert {n: e for n, e in mat.variables.items() if e} == {}
    assert not set(mat.variables) & BUILTINS


def _tag_map(mat: Mat, tags: list[str]) -> dict[str, str]:
    rows = mat.values["tbexport_tags"]
    assert rows == (len(tags), 2)
    pairs = dict(mat.cell("tbexport_tags", len(tags), 2))
    assert sorted(pairs) == sorted(tags)  # every tag, whole (UTF-16 read back)
    return pairs


def _check_tag_struct(mat: Mat, path: str, rows: pd.DataFrame) -> None:
    for column in ("step", "wall_time", "value", "value_smoothed"):
        if column in rows:
            assert _same(mat.array(f"{path}.{column}"), _column(rows[column])), (path, column)
            assert mat.values[f"{path}.{column}:class"] == "double"


def test_mat_of_one_run_in_octave(octave: str, logs: Path, probes: Path, tmp_path: Path) -> None:
    out = tbexport.export(logs / "alpha_run", tmp_path / "one.mat", smooth=0.6).output
    assert out is not None
    mat = _mat(octave, out, probes)
    _check_variables(mat)
    table = _csv(logs / "alpha_run", tmp_path, smooth=0.6)
    tags = list(dict.fromkeys(table["tag"]))
    names = _tag_map(mat, tags)
    assert names["max"] == "max_"  # not max(): a variable would hide it
    assert set(mat.variables) == {*names.values(), "tbexport_tags", "hparams"}
    for tag in tags:
        _check_tag_struct(mat, names[tag], table[table["tag"] == tag])
    assert _same(mat.array("hparams.lr"), [[0.1]]) and mat.text("hparams.opt") == "adam"


def test_mat_of_several_runs_in_octave(
    octave: str, logs: Path, probes: Path, tmp_path: Path
) -> None:
    out = tbexport.export(logs, tmp_path / "runs.mat").output
    assert out is not None
    mat = _mat(octave, out, probes)
    _check_variables(mat)
    table = _csv(logs, tmp_path)
    runs, tags = list(dict.fromkeys(table["run"])), list(dict.fromkeys(table["tag"]))
    names = _tag_map(mat, tags)
    assert names["max"] == "max"  # a field: hides nothing
    assert mat.values["tbexport_runs"] == (3, 3)
    run_rows = mat.cell("tbexport_runs", 3, 3)
    assert [r[0] for r in run_rows] == runs and [r[2] for r in run_rows] == runs
    run_vars = {r[0]: r[1] for r in run_rows}
    assert run_vars["mean"] == "mean_"
    assert set(mat.variables) == {*run_vars.values(), "tbexport_tags", "tbexport_runs", "hparams"}
    for run in runs:
        mine = table[table["run"] == run]
        assert sorted(mat.values[run_vars[run]]) == sorted(names[t] for t in set(mine["tag"]))
        for tag in set(mine["tag"]):
            _check_tag_struct(mat, f"{run_vars[run]}.{names[tag]}", mine[mine["tag"] == tag])
        assert _same(mat.array(f"hparams.{run_vars[run]}.lr"), [[LRS[run]]])


def test_mat_wide_in_octave(octave: str, logs: Path, probes: Path, tmp_path: Path) -> None:
    out = tbexport.export(logs, tmp_path / "wide.mat", layout="wide", smooth=0.6).output
    assert out is not None
    mat = _mat(octave, out, probes)
    _check_variables(mat)
    table = _csv(logs, tmp_path, smooth=0.6)
    runs, tags = list(dict.fromkeys(table["run"])), list(dict.fromkeys(table["tag"]))
    names = _tag_map(mat, tags)
    assert names["max"] == "max_"
    assert [r[0] for r in mat.cell("tbexport_runs", 3, 3)] == runs
    for tag in tags:
        rows = table[table["tag"] == tag]
        mine = [r for r in runs if r in set(rows["run"])]
        steps = sorted(set(rows["step"]))
        assert mat.values[f"{names[tag]}.runs"] == (1, len(mine))
        assert mat.cell(f"{names[tag]}.runs", 1, len(mine)) == [mine]
        assert _same(mat.array(f"{names[tag]}.step"), _column(steps))
        for column in ("value", "value_smoothed"):
            wanted = np.full((len(steps), len(mine)), NAN)
            logged = np.zeros((len(steps), len(mine)))
            for j, run in enumerate(mine):
                for _, row in rows[rows["run"] == run].iterrows():
                    wanted[steps.index(row["step"]), j] = row[column]
                    logged[steps.index(row["step"]), j] = 1
            assert _same(mat.array(f"{names[tag]}.{column}"), wanted), (tag, column)
            assert _same(mat.array(f"{names[tag]}.logged"), logged)
        assert mat.values[f"{names[tag]}.logged:class"] == "logical"


def test_mat_reduced_in_octave(octave: str, logs: Path, probes: Path, tmp_path: Path) -> None:
    """Statistics go in one struct, stats: load('stats.mat') leaves mean() alone."""
    statistics = "mean,std,min,max,median,count"
    out = tbexport.export(logs, tmp_path / "stats.mat", reduce=statistics).output
    assert out is not None
    mat = _mat(octave, out, probes)
    _check_variables(mat)
    assert set(mat.variables) == {"stats", "tbexport_tags", "tbexport_runs"}
    table = _csv(logs, tmp_path, reduce=statistics)
    tags = list(dict.fromkeys(table["tag"]))
    names = _tag_map(mat, tags)
    assert mat.values["stats"] == statistics.split(",")
    assert mat.cell("tbexport_runs", 6, 3) == [[s, s, ""] for s in statistics.split(",")]
    for statistic in statistics.split(","):
        mine = table[table["run"] == statistic]
        for tag in set(mine["tag"]):
            _check_tag_struct(mat, f"stats.{statistic}.{names[tag]}", mine[mine["tag"] == tag])
    # mean() still works once the file is loaded into the workspace
    code = f"load({literal(str(out))});\nprintf('%.17g\\n', mean([1 2 4]), max([1 5]));\n"
    assert _run_octave(octave, code, tmp_path, probes).split() == ["2.3333333333333335", "5"]


def test_mat_keeps_directories_of_relabelled_runs_in_octave(
    octave: str, logs: Path, probes: Path, tmp_path: Path
) -> None:
    out = tbexport.export(logs, tmp_path / "lr.mat", name_by="hparam:lr").output
    assert out is not None
    mat = _mat(octave, out, probes)
    _check_variables(mat)
    labels = {run: f"lr={lr}" for run, lr in LRS.items()}
    rows = mat.cell("tbexport_runs", 3, 3)
    assert {r[0]: r[2] for r in rows} == {label: run for run, label in labels.items()}
    for label, variable, directory in rows:
        assert mat.text(f"hparams.{variable}.tbexport_directory") == directory
        assert _same(mat.array(f"hparams.{variable}.lr"), [[float(label[3:])]])
    # one run: its hyperparameters are the struct, the directory among them
    one = tbexport.export(logs / HOSTILE, tmp_path / "lr1.mat", name_by="hparam:lr").output
    assert one is not None
    assert _mat(octave, one, probes).text("hparams.tbexport_directory") == HOSTILE


# -- what needs no Octave ----------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "options",
    [{}, {"layout": "wide", "smoothing": 0.5}, {"reduce": "mean,std"}, {"time": "datetime"}],
)
def test_mat_bytes_depend_on_the_data_alone(
    logs: Path, tmp_path: Path, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tbexport.export(logs, tmp_path / "a.mat", **options).output
    import time

    clock = time.time()
    monkeypatch.setattr(time, "time", lambda: clock + 86400 * 400)  # another day
    monkeypatch.setattr(time, "asctime", lambda *_: "Thu Jan  1 00:00:00 2099")
    second = tbexport.export(logs, tmp_path / "b.mat", **options).output
    assert first is not None and second is not None
    assert _digest(first) == _digest(second)
    assert first.read_bytes()[:19] == b"MATLAB 5.0 MAT-file"
    assert b"Created on" not in first.read_bytes()[:116]


def test_mat_reads_back_in_scipy(logs: Path, tmp_path: Path) -> None:
    """scipy reads tbexport's UTF-16 text whole (except beyond the BMP, as it reads
    MATLAB's own files): the non-ASCII tag, the hostile run name."""
    out = tbexport.export([logs / "alpha_run", logs / "mean"], tmp_path / "s.mat").output
    assert out is not None
    mat = scipy.io.loadmat(out, simplify_cells=True)
    assert UNICODE in [r[0] for r in mat["tbexport_tags"]]
    assert mat["mean_"]["loss"]["step"].tolist() == list(range(8))
    assert mat["hparams"]["mean_"] == {"lr": 0.001, "opt": "adam"}
    reduced = tbexport.export(
        [logs / "alpha_run", logs / "mean"], tmp_path / "r.mat", reduce="mean,count"
    ).output
    stats = scipy.io.loadmat(reduced, simplify_cells=True)
    assert sorted(k for k in stats if not k.startswith("__")) == [
        "stats",
        "tbexport_runs",
        "tbexport_tags",
    ]
    assert sorted(stats["stats"]) == ["count", "mean"]
    assert stats["stats"]["count"]["loss"]["value"][0] == 2.0


def test_script_literals() -> None:
    assert literal("plain") == "'plain'"
    assert literal("it's") == "'it''s'"
    assert literal("a\nb") == "['a' char(10) 'b']"
    assert literal("\t\r") == "char([9 13])"
    assert literal("") == "''"
    assert literal("50% ü") == "'50% ü'"


def test_statistics_are_drawn_as_a_mean_over_its_band(
    octave: str, logs: Path, probes: Path, tmp_path: Path
) -> None:
    mat = tmp_path / "stats.mat"
    tbexport.export(logs, mat, matlab_script=True, reduce="mean,std,median,count")
    report = _run_octave(
        octave, _source(mat.with_suffix(".m")) + "figure_report(gcf);\n", tmp_path, probes
    )
    panels, _ = _figure(report)
    stats = tbexport.reduce_runs(tbexport.read_scalars(logs), "mean,std")
    loss = stats[stats["tag"] == "loss"]
    spread = loss[loss["run"] == "std"]["value"].notna().sum()  # steps two runs or more log
    shown = [line for line in panels["loss"].lines if line.visible == "on"]
    # the band first (a bar at each of its few steps, one legend entry), then the lines;
    # count is no value, and std is the band: neither drawn as a curve
    assert [line.name for line in shown] == ["mean +/- std", "mean", "median"]
    bars = [line for line in panels["loss"].lines if line.points == 2 and line.width == 3]
    assert len(bars) == spread
    assert all(
        line.name != "count" and line.name != "std" for p in panels.values() for line in p.lines
    )
    # one point logged by one run: a mean, no spread to show
    assert [line.name for line in panels["lone"].lines if line.visible == "on"] == [
        "mean",
        "median",
    ]


def test_a_double_quote_in_a_run_name_reaches_gnuplot_as_a_quote(
    octave: str, probes: Path, tmp_path: Path
) -> None:
    for run in ("a", 'run "q"'):
        write_events(tmp_path / "logs" / run / "events.out.tfevents.1", [simple("x", 1, 1.0)])
    mat = tmp_path / "q.mat"
    tbexport.export(tmp_path / "logs", mat, matlab_script=True)
    report = _run_octave(
        octave, _source(mat.with_suffix(".m")) + "figure_report(gcf);\n", tmp_path, probes
    )
    panels, _ = _figure(report)
    assert panels["x"].legend == ["a", "run 'q'"]  # (gnuplot ends its string at a ")
