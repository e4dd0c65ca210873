"""A native Excel scatter-with-lines chart of a tag sheet (DrawingML ``chartSpace`` XML)."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = ["MAX_SERIES", "ChartSeries", "line_chart"]

MAX_SERIES = 255  # Excel's limit per chart
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
    return (
        f'<c:ser><c:idx val="{index}"/><c:order val="{index}"/>'
        f"<c:tx><c:v>{_text(series.name)}</c:v></c:tx>"
        f"<c:spPr>{line}</c:spPr>"
        '<c:marker><c:symbol val="none"/></c:marker>'
        f"<c:xVal><c:numRef><c:f>{_text(x)}</c:f></c:numRef></c:xVal>"
        f"<c:yVal><c:numRef><c:f>{_text(y)}</c:f></c:numRef></c:yVal>"
        '<c:smooth val="0"/></c:ser>'
    )


def _axis(axis_id: int, cross: int, position: str, title: str) -> str:
    return (
        f'<c:valAx><c:axId val="{axis_id}"/><c:scaling><c:orientation val="minMax"/></c:scaling>'
        f'<c:delete val="0"/><c:axPos val="{position}"/>'
        "<c:majorGridlines/>"
        f"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{_text(title)}</a:t></a:r></a:p>"
        '</c:rich></c:tx><c:overlay val="0"/></c:title>'
        '<c:numFmt formatCode="General" sourceLinked="1"/><c:tickLblPos val="low"/>'
        f'<c:crossAx val="{cross}"/><c:crosses val="autoZero"/>'
        '<c:crossBetween val="midCat"/></c:valAx>'
    )


def line_chart(sheet: str, title: str, series: list[ChartSeries], y_title: str = "value") -> str:
    """The chart part for ``sheet``: one line per series (at most 255), step on x."""
    keys: dict[str, str] = {}
    for s in series:
        keys.setdefault(s.key or s.name, PALETTE[len(keys) % len(PALETTE)])
    lines = "".join(
        _series(i, sheet, s, keys[s.key or s.name]) for i, s in enumerate(series[:MAX_SERIES])
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<c:chartSpace xmlns:c="{_C}" xmlns:a="{_A}" xmlns:r="{_R}">'
        "<c:chart>"
        f"<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{_text(title)}</a:t></a:r></a:p>"
        '</c:rich></c:tx><c:overlay val="0"/></c:title><c:autoTitleDeleted val="0"/>'
        "<c:plotArea><c:layout/>"
        '<c:scatterChart><c:scatterStyle val="lineMarker"/><c:varyColors val="0"/>'
        f'{lines}<c:axId val="1"/><c:axId val="2"/></c:scatterChart>'
        f"{_axis(1, 2, 'b', 'step')}{_axis(2, 1, 'l', y_title)}"
        "</c:plotArea>"
        '<c:legend><c:legendPos val="b"/><c:overlay val="0"/></c:legend>'
        # span: in the wide layout, runs logged at other steps leave every other cell
        # blank, and a line broken at each blank would draw nothing
        '<c:plotVisOnly val="1"/><c:dispBlanksAs val="span"/>'
        "</c:chart></c:chartSpace>"
    )
