"""A small streaming .xlsx writer: numbers exactly, rows streamed, nothing else.

Why not xlsxwriter or openpyxl: both write numbers with at most 16 significant
digits (``%.16G``), which changes the last bit of many doubles (a float32 loss
value stored as a double needs 17), and openpyxl is far too slow for millions of
cells. Here every number is written in Python's shortest round-trip form
(``repr``), so reading the workbook back gives the same double, bit for bit.

Supported: inline-string and number cells, a bold header row, a frozen header,
column widths, internal hyperlinks, date cells and one chart per sheet — what
tbexport's workbooks need.
"""

from __future__ import annotations

import contextlib
import re
import sys
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from xml.sax.saxutils import escape

import numpy as np

__all__ = [
    "DATE_STYLE",
    "MAX_COLUMNS",
    "MAX_ROWS",
    "Sheet",
    "Workbook",
    "bool_cell",
    "column_letter",
    "number_cell",
    "string_cell",
    "xml_text",
]

MAX_ROWS = 1_048_576
MAX_COLUMNS = 16_384  # A to XFD
_INVALID_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CHUNK_ROWS = 20_000


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def xml_text(text: str) -> str:
    """Escape for XML; encode characters XML cannot hold the way Excel does (``_xHHHH_``)."""
    text = _INVALID_XML.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    return escape(text)


DATE_STYLE = 3  # cell style of date-time cells (yyyy-mm-dd hh:mm:ss.000)
# Every entry of the archive carries this time stamp (the earliest a zip can hold), so
# the same workbook is the same bytes whenever it is written.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def number_cell(ref: str, value: float | np.integer[Any] | np.floating[Any], style: int = 0) -> str:
    """A number cell; integers as integers, floats in shortest round-trip form."""
    text = repr(int(value)) if isinstance(value, int | np.integer) else repr(float(value))
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s}><v>{text}</v></c>'


def bool_cell(ref: str, value: bool) -> str:
    """A TRUE/FALSE cell, as Excel holds a logical value."""
    return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'


def string_cell(ref: str, text: str, style: int = 0) -> str:
    space = ' xml:space="preserve"' if text != text.strip() else ""
    s = f' s="{style}"' if style else ""
    return f'<c r="{ref}"{s} t="inlineStr"><is><t{space}>{xml_text(text)}</t></is></c>'


class Sheet:
    """One worksheet being streamed into the archive; rows must come in order."""

    def __init__(self, stream: IO[bytes], widths: Sequence[float]) -> None:
        self._stream = stream
        self._links: list[tuple[str, str, str]] = []
        self.has_drawing = False
        cols = "".join(
            f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
            for i, w in enumerate(widths, 1)
        )
        self._write(
            f'{_HEAD}<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            '<sheetViews><sheetView workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            "</sheetView></sheetViews>"
            '<sheetFormatPr defaultRowHeight="15"/>'
            + (f"<cols>{cols}</cols>" if cols else "")
            + "<sheetData>"
        )

    def _write(self, text: str) -> None:
        self._stream.write(text.encode("utf-8"))

    def header(self, names: Sequence[str]) -> None:
        cells = "".join(string_cell(f"{column_letter(i)}1", n, 1) for i, n in enumerate(names))
        self._write(f'<row r="1">{cells}</row>')

    def raw_rows(self, rows: Iterable[str]) -> None:
        """Append pre-rendered ``<row>`` elements (see :func:`number_rows`)."""
        batch: list[str] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= _CHUNK_ROWS:
                self._write("".join(batch))
                batch.clear()
        if batch:
            self._write("".join(batch))

    def raw_bytes(self, rows: bytes) -> None:
        """Append ``<row>`` elements already rendered as UTF-8 XML."""
        self._stream.write(rows)

    def link(self, ref: str, sheet: str, display: str) -> None:
        """Make cell ``ref`` (already written as text) jump to cell A1 of ``sheet``."""
        self._links.append((ref, sheet, display))

    def close(self) -> None:
        """Finish the sheet (idempotent)."""
        if self._stream.closed:
            return
        tail = "</sheetData>"
        if self._links:
            links = "".join(
                f'<hyperlink ref="{ref}" location="{_xml_attr(_quote_sheet(sheet))}!A1" '
                f'display="{_xml_attr(display)}"/>'
                for ref, sheet, display in self._links
            )
            tail += f"<hyperlinks>{links}</hyperlinks>"
        tail += (
            '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" '
            'header="0.3" footer="0.3"/>'
            + ('<drawing r:id="rId1"/>' if self.has_drawing else "")
            + "</worksheet>"
        )
        self._write(tail)
        self._stream.close()


def _quote_sheet(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _xml_attr(text: str) -> str:
    return xml_text(text).replace('"', "&quot;")


class Workbook:
    """Writes sheets one after another into an .xlsx (zip) file."""

    def __init__(self, path: str | Path, *, compresslevel: int = 1) -> None:
        self._zip = zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
        )
        self._compresslevel = compresslevel
        self._names: list[str] = []
        self._open: Sheet | None = None
        self._charts: dict[int, tuple[str, int]] = {}  # sheet number -> (chart XML, column)

    def add_sheet(self, name: str, widths: Sequence[float] = ()) -> Sheet:
        if self._open is not None:
            self._open.close()
        self._names.append(name)
        entry = self._entry(f"xl/worksheets/sheet{len(self._names)}.xml")
        stream = self._zip.open(entry, "w", force_zip64=True)
        self._open = Sheet(stream, widths)
        return self._open

    def add_chart(self, chart_xml: str, column: int = 6) -> None:
        """Give the sheet being written (not yet closed) a chart, from ``column`` (0-based)."""
        if self._open is None or self._open._stream.closed:
            raise ValueError("add_chart needs the sheet still open")
        self._open.has_drawing = True
        self._charts[len(self._names)] = (chart_xml, column)

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None
        for name, text in self._chart_parts().items():
            self._zip.writestr(self._entry(name), text)
        for name, text in self._package_parts().items():
            self._zip.writestr(self._entry(name), text)
        self._zip.close()

    def _entry(self, name: str) -> zipfile.ZipInfo:
        """A zip entry stamped with :data:`ZIP_TIME` (not the clock), deflated."""
        entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o600 << 16  # (as ZipFile gives the entries it names itself)
        # the level ZipFile gives an entry named by a string (public from Python 3.13)
        level = "compress_level" if sys.version_info >= (3, 13) else "_compresslevel"
        setattr(entry, level, self._compresslevel)
        return entry

    def __enter__(self) -> Workbook:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            try:
                self.close()
            except BaseException:
                self._abandon()
                raise
            return
        self._abandon()

    def _abandon(self) -> None:
        """Close the archive unfinished, raising nothing: the (temporary) file is left
        to the caller to remove, and the error that stopped the writing goes on
        (finishing the archive now, the disk full or on Ctrl-C, could only raise again)."""
        with contextlib.suppress(Exception):
            if self._open is not None:
                self._open._stream.close()
        with contextlib.suppress(Exception):
            self._zip.close()
        if self._zip.fp is not None:  # closing failed: close the file all the same
            with contextlib.suppress(Exception):
                self._zip.fp.close()
            self._zip.fp = None  # (and make ZipFile.__del__'s close a no-op)

    def _chart_parts(self) -> dict[str, str]:
        parts = {}
        for k, (sheet, (chart, column)) in enumerate(sorted(self._charts.items()), 1):
            parts[f"xl/charts/chart{k}.xml"] = chart
            parts[f"xl/drawings/drawing{k}.xml"] = _DRAWING.format(
                head=_HEAD, first=column, last=column + 10
            )
            parts[f"xl/drawings/_rels/drawing{k}.xml.rels"] = _rels(
                f"{_REL}/chart", f"../charts/chart{k}.xml"
            )
            parts[f"xl/worksheets/_rels/sheet{sheet}.xml.rels"] = _rels(
                f"{_REL}/drawing", f"../drawings/drawing{k}.xml"
            )
        return parts

    def _package_parts(self) -> dict[str, str]:
        n = len(self._names)
        sheets = "".join(
            f'<sheet name="{_xml_attr(name)}" sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(self._names, 1)
        )
        sheet_rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            for i in range(1, n + 1)
        )
        for k in range(1, len(self._charts) + 1):
            overrides += (
                f'<Override PartName="/xl/charts/chart{k}.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.drawingml.chart+xml"/>'
                f'<Override PartName="/xl/drawings/drawing{k}.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.drawing+xml"/>'
            )
        return {
            "[Content_Types].xml": (
                f'{_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels" ContentType="application/'
                'vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                '<Override PartName="/xl/styles.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
                f"{overrides}</Types>"
            ),
            "_rels/.rels": (
                f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
                "</Relationships>"
            ),
            "xl/workbook.xml": (
                f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
                '<bookViews><workbookView activeTab="0"/></bookViews>'
                f"<sheets>{sheets}</sheets></workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                f'{_HEAD}<Relationships xmlns="{_PKG_REL}">{sheet_rels}'
                f'<Relationship Id="rId{n + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
                "</Relationships>"
            ),
            "xl/styles.xml": _STYLES,
        }


def _rels(kind: str, target: str) -> str:
    return (
        f'{_HEAD}<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{kind}" Target="{target}"/></Relationships>'
    )


_DRAWING = (
    "{head}"
    '<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
    "<xdr:twoCellAnchor>"
    "<xdr:from><xdr:col>{first}</xdr:col><xdr:colOff>0</xdr:colOff>"
    "<xdr:row>1</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
    "<xdr:to><xdr:col>{last}</xdr:col><xdr:colOff>0</xdr:colOff>"
    "<xdr:row>24</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>"
    '<xdr:graphicFrame macro=""><xdr:nvGraphicFramePr><xdr:cNvPr id="2" name="Chart 1"/>'
    "<xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>"
    '<xdr:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/></xdr:xfrm>'
    '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart">'
    '<c:chart xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" '
    f'xmlns:r="{_REL}" r:id="rId1"/>'
    "</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/></xdr:twoCellAnchor>"
    "</xdr:wsDr>"
)

# Style 0: default; 1: bold (headers); 2: blue underlined (hyperlinks); 3: date-time
# to the millisecond (wall times are logged to the microsecond).
_STYLES = (
    f'{_HEAD}<styleSheet xmlns="{_MAIN}">'
    r'<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy\-mm\-dd\ hh:mm:ss.000"/></numFmts>'
    '<fonts count="3">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><u/><sz val="11"/><color rgb="FF0000FF"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="0" fontId="2" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
