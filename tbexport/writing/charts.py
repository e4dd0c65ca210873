"""A native Excel scatter-with-lines chart of a tag sheet (DrawingML ``chartSpace`` XML).

A line per series, step on x. A series with at most :data:`MARKER_POINTS` points
(``test_acc``, logged once; a metric logged per epoch over a few epochs) is drawn
with a marker on each point too: a single point makes no line at all. At most
:data:`MAX_SERIES` lines fit in a chart (Excel's limit): beyond them, whole runs
(their raw and smoothed lines together) are left out, and an :class:`OutputWarning`
says so. Series marked ``secondary`` (the ``count`` of ``--reduce``) are drawn
against a value axis of their own on the right.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from xml.sax.saxutils import escape

from tbexport.exceptions import OutputWarning

__all__ = ["MARKER_POINTS", "MAX_SERIES", "ChartSeries", "line_chart"]

MAX_SERIES = 255  # Excel's limit per chart
MARKER_POINTS = 10  # a series with at most this many points gets a marker on each
_C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


@dataclass(frozen=True)
class ChartSeries:
    """One line: its legend name and the sheet cells of its x and y values."""

    name: str
    x_column: str
    y_column: str
    first_row: int
    last_row: int
    faint: bool = False  # raw values under a smoothed line, as TensorBoard draws them
    key: str = ""  # series with the same key (a run's raw and smoothed lines) share a colour
    points: int | None = None  # cells holding a number; markers when at most MARKER_POINTS
    secondary: bool = False  # drawn against the secondary value axis (on the right)


def _text(text: str) -> str:
    return escape(text).replace('"', "&quot;")


# matplotlib's tab10, so a run has the same colour in charts and in --plot figures
PALETTE = (
    "1F77B4",
    "FF7F0E",
    "2CA02C",
    "D62728",
    "9467BD",
    "8C564B",
    "E377C2",
    "7F7F7F",
    "BCBD22",
    "17BECF",
)


def _series(index: int, sheet: str, series: ChartSeries, colour: str) -> str:
    quoted = "'" + sheet.replace("'", "''") + "'"
    rows = f"${series.first_row}:$"
    x = f"{quoted}!${series.x_column}{rows}{series.x_column}${series.last_row}"
    y = f"{quoted}!${series.y_column}{rows}{series.y_column}${series.last_row}"
    alpha = '<a:alpha val="35000"/>' if series.faint else ""
    fill = f'<a:solidFill><a:srgbClr val="{colour}">{alpha}</a:srgbClr></a:solidFill>'
    line = f'<a:ln w="{9525 if series.faint else 19050}">{fill}</a:ln>'
    if series.points is not None and series.points <= MARKER_POINTS:
        marker = (
            f'<c:marker><c:symbol val="circle"/><c:size val="{5 if series.faint else 7}"/>'
            f'<c:spPr>{fill}<a:ln w="9525">{fill}</a:ln></c:spPr></c:marker>'
        )
    else:
        marker = '<c:marker><c:symbol val="none"/></c:marker>'
    return (
        f'<c:ser><c:idx val="{index}"/><c:order val="{index}"/>'
        f"<c:tx><c:v>{_text(series.name)}</c:v></c:tx>"
        f"<c:spPr>{line}</c:spPr>"
        f"{marker}"
        f"<c:xVal><c:numRef><c:f>{_text(x)}</c:f></c:numRef></c:xVal>"
        f"<c:yVal><c:numRef><c:f>{_text(y)}</c:f></c:numRef></c:yVal>"
        '<c:smooth val="0"/></c:ser>'
    )


def _axis(
    axis_id: int,
    cross: int,
    position: str,
    title: str,
    *,
    secondary: bool = False,
    deleted: bool = False,
) -> str:
    """A value axis; a secondary one has no gridlines and crosses its x axis at its end."""
    heading = (
        f"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{_text(title)}</a:t></a:r></a:p>"
        '</c:rich></c:tx><c:overlay val="0"/></c:title>'
        if not deleted
        else ""
    )
    crosses = "max" if secondary and not deleted else "autoZero"  # (on the right)
    return (
        f'<c:valAx><c:axId val="{axis_id}"/><c:scaling><c:orientation val="minMax"/></c:scaling>'
        f'<c:delete val="{int(deleted)}"/><c:axPos val="{position}"/>'
        + ("" if secondary else "<c:majorGridlines/>")
        + heading
        + '<c:numFmt formatCode="General" sourceLinked="1"/>'
        + f'<c:tickLblPos val="{"nextTo" if secondary else "low"}"/>'
        + f'<c:crossAx val="{cross}"/><c:crosses val="{crosses}"/>'
        + '<c:crossBetween val="midCat"/></c:valAx>'
    )


def _capped(sheet: str, series: list[ChartSeries]) -> list[ChartSeries]:
    """At most :data:`MAX_SERIES` series, leaving out whole runs (keys) from the last."""
    if len(series) <= MAX_SERIES:
        return series
    sizes: dict[str, int] = {}
    for s in series:
        sizes[s.key or s.name] = sizes.get(s.key or s.name, 0) + 1
    kept: set[str] = set()
    total = 0
    for key, size in sizes.items():
        if total + size > MAX_SERIES:
            break
        kept.add(key)
        total += size
    drawn = [s for s in series if (s.key or s.name) in kept] or series[:MAX_SERIES]
    runs = len({s.key or s.name for s in drawn})
    warnings.warn(
        f"sheet {sheet!r}: its chart draws {len(drawn)} of {len(series)} lines (the first "
        f"{runs:,} of {len(sizes):,} runs); an Excel chart holds at most {MAX_SERIES} lines",
        OutputWarning,
        stacklevel=3,
    )
    return drawn


def line_chart(
    sheet: str,
    title: str,
    series: list[ChartSeries],
    y_title: str = "value",
    secondary_title: str = "count",
) -> str:
    """The chart part for ``sheet``: one line per series (at most 255), step on x.

    Series marked ``secondary`` get a value axis of their own (``secondary_title``),
    on the right, when there are others on the first one.
    """
    series = _capped(sheet, series)
    keys: dict[str, str] = {}
    for s in series:
        keys.setdefault(s.key or s.name, PALETTE[len(keys) % len(PALETTE)])
    split = any(s.secondary for s in series) and not all(s.secondary for s in series)
    groups = [[s for s in series if not (split and s.secondary)]]
    if split:
        groups.append([s for s in series if s.secondary])
    charts, axes, index = "", "", 0
    for number, group in enumerate(groups):
        lines = ""
        for s in group:
            lines += _series(index, sheet, s, keys[s.key or s.name])
            index += 1
        x_axis, y_axis = 2 * number + 1, 2 * number + 2
        charts += (
            '<c:scatterChart><c:scatterStyle val="lineMarker"/><c:varyColors val="0"/>'
            f'{lines}<c:axId val="{x_axis}"/><c:axId val="{y_axis}"/></c:scatterChart>'
        )
        if number == 0:
            axes += _axis(x_axis, y_axis, "b", "step") + _axis(y_axis, x_axis, "l", y_title)
        else:
            axes += _axis(x_axis, y_axis, "b", "step", secondary=True, deleted=True)
            axes += _axis(y_axis, x_axis, "r", secondary_title, secondary=True)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<c:chartSpace xmlns:c="{_C}" xmlns:a="{_A}" xmlns:r="{_R}">'
        "<c:chart>"
        f"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{_text(title)}</a:t></a:r></a:p>"
        '</c:rich></c:tx><c:overlay val="0"/></c:title><c:autoTitleDeleted val="0"/>'
        f"<c:plotArea><c:layout/>{charts}{axes}</c:plotArea>"
        '<c:legend><c:legendPos val="b"/><c:overlay val="0"/></c:legend>'
        # span: in the wide layout, runs logged at other steps leave every other cell
        # blank, and a line broken at each blank would draw nothing
        '<c:plotVisOnly val="1"/><c:dispBlanksAs val="span"/>'
        "</c:chart></c:chartSpace>"
    )
