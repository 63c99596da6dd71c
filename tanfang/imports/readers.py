"""Reading a table from a CSV or xlsx file, one row at a time, as often as needed.

``open_table(path)`` recognises the format by content (an xlsx file is a zip archive) and gives
a ``Table`` whose ``rows()`` streams the data rows from the start of the file each time it is
called, so an import can read the file twice without holding it in memory. Rows are numbered
as a spreadsheet shows them: the header is row 1.

CSV text may be UTF-8 (with or without the byte-order mark Excel writes) or GB18030 (what
Excel in China saves as "CSV"; GBK and GB2312 are subsets of it). The file is scanned once for
UTF-8; if any byte sequence is not UTF-8 it is read as GB18030.
"""

from __future__ import annotations

import codecs
import csv
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.utils.translation import gettext as _

_SCAN_BLOCK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"


class TableError(ValueError):
    """The file cannot be read as a table at all; ``str(exc)`` is for the user."""


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` for UTF-8 with or without BOM, else ``gb18030``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as stream:
        try:
            while block := stream.read(_SCAN_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "gb18030"
    return "utf-8-sig"


@dataclass
class Table:
    """A table in a file: the header row and a fresh stream of data rows on each call."""

    path: Path
    format: str  # "csv" | "xlsx"
    encoding: str = ""
    delimiter: str = ","
    header: list[str] = field(default_factory=list)

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cells) of every row after the header, blank rows included."""
        if self.format == "xlsx":
            yield from self._xlsx_rows(skip_header=True)
        else:
            yield from self._csv_rows(skip_header=True)

    def _csv_rows(self, *, skip_header: bool) -> Generator[tuple[int, list[Any]], None, None]:
        try:
            with self.path.open(encoding=self.encoding, newline="") as stream:
                reader = csv.reader(stream, delimiter=self.delimiter)
                for number, cells in enumerate(reader, start=1):
                    if skip_header and number == 1:
                        continue
                    yield number, cells
        except UnicodeDecodeError as exc:
            raise TableError(
                _("the file is neither UTF-8 nor GB18030 text; save it again as CSV or xlsx")
            ) from exc
        except csv.Error as exc:
            raise TableError(_("the CSV file is malformed: %(error)s") % {"error": exc}) from exc

    def _xlsx_rows(self, *, skip_header: bool) -> Generator[tuple[int, list[Any]], None, None]:
        from tanfang.imports.xlsx import XlsxLayoutError, XlsxReader

        try:
            reader = XlsxReader(self.path)
        except XlsxLayoutError:
            yield from self._openpyxl_rows(skip_header=skip_header)
            return
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise TableError(_("the xlsx file cannot be opened: it may be damaged")) from exc
        first = True
        for number, cells in reader.rows():
            if first:
                first = False
                if skip_header:
                    continue
            yield number, cells

    def _openpyxl_rows(self, *, skip_header: bool) -> Iterator[tuple[int, list[Any]]]:
        """The slow, general way: openpyxl's read-only streaming."""
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds on a damaged archive
            raise TableError(_("the xlsx file cannot be opened: it may be damaged")) from exc
        try:
            sheet = workbook.worksheets[0]
            # Some programs write a wrong sheet size; reading without it never cuts rows short.
            sheet.reset_dimensions()
            for number, cells in enumerate(sheet.iter_rows(values_only=True), start=1):
                if skip_header and number == 1:
                    continue
                yield number, list(cells)
        finally:
            workbook.close()


def open_table(path: Path) -> Table:
    """Recognise the file's format and read its header row."""
    with path.open("rb") as stream:
        magic = stream.read(4)
    if magic == _OLE_MAGIC:
        raise TableError(_("old .xls workbooks are not read: save the file as .xlsx or CSV"))
    rows: Generator[tuple[int, list[Any]], None, None]
    if magic == _ZIP_MAGIC:
        table = Table(path=path, format="xlsx")
        rows = table._xlsx_rows(skip_header=False)
    else:
        table = Table(path=path, format="csv", encoding=detect_encoding(path))
        with path.open(encoding=table.encoding, newline="") as stream:
            line = stream.readline()
        if "\t" in line and "," not in line:
            table.delimiter = "\t"
        rows = table._csv_rows(skip_header=False)
    first = next(rows, None)
    rows.close()
    if first is None or not any(_filled(cell) for cell in first[1]):
        raise TableError(_("the first row must hold the column headers, and it is empty"))
    table.header = ["" if cell is None else str(cell).strip() for cell in first[1]]
    return table


def _filled(cell: Any) -> bool:
    return cell is not None and str(cell).strip() != ""


def column_letter(index: int) -> str:
    """Spreadsheet column letters of a 0-based index: 0 → A, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters
