"""Streaming the rows of an xlsx workbook's first sheet, fast.

openpyxl's read-only mode reads about a thousand rows a second here (every cell becomes an
object, every XML element an event), so a 100,000-row file would take minutes to read once.
This reader takes the sheet's XML straight from the zip archive in chunks of about a
megabyte and cuts rows and cells out of it with regular expressions (C speed); only the text
of one chunk is held at a time. The shared-strings table — the workbook's dictionary of
texts, which cells refer to by number — is read whole, as every xlsx reader must.

Cell values come back as openpyxl gives them: text, int or float, bool, and datetime for a
number whose style is a date format. A workbook this reader does not understand raises
``XlsxLayoutError`` before any row is read, and the caller falls back to openpyxl.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

CHUNK = 1 << 20
_NS = r"(?:[\w.-]+:)?"
_ROW = re.compile(rf"<{_NS}row\b([^>]*?)(?:/>|>(.*?)</{_NS}row>)", re.S)
# A cell: its column letters, type and style (attributes in any order), then a plain <v>
# or a plain inline string (the common cases, read directly) or any other content.
_CELL = re.compile(
    rf"<{_NS}c\b"
    r'(?:(?=[^>]*?\br="([A-Z]+)))?(?:(?=[^>]*?\bt="(\w+)"))?(?:(?=[^>]*?\bs="(\d+)"))?'
    rf"[^>]*?(?:/>|>(?:<{_NS}v>([^<]*)</{_NS}v>|<{_NS}is><{_NS}t(?:\s[^>]*)?>([^<]*)</{_NS}t>"
    rf"</{_NS}is>|(.*?))</{_NS}c>)",
    re.S,
)
_ATTR = re.compile(r'([\w:]+)="([^"]*)"')
_VALUE = re.compile(rf"<{_NS}v>(.*?)</{_NS}v>", re.S)
_TEXT = re.compile(rf"<{_NS}t(?:\s[^>]*)?>(.*?)</{_NS}t>", re.S)
_PHONETIC = re.compile(rf"<{_NS}rPh\b.*?</{_NS}rPh>", re.S)
_SI = re.compile(rf"<{_NS}si\b[^>]*?(?:/>|>(.*?)</{_NS}si>)", re.S)
_SHEET = re.compile(rf"<{_NS}sheet\b([^>]*?)/?>", re.S)
_RELATIONSHIP = re.compile(r"<(?:\w+:)?Relationship\b([^>]*?)/?>", re.S)
_DATE1904 = re.compile(r'date1904="(?:1|true)"')
_INTEGER = re.compile(r"-?\d+")


class XlsxLayoutError(ValueError):
    """The workbook is not laid out as this reader expects."""


def _text(raw: str) -> str:
    return unescape(raw) if "&" in raw else raw


def _column_index(letters: str, cache: dict[str, int]) -> int:
    index = cache.get(letters)
    if index is None:  # computed once per column
        index = 0
        for char in letters:
            index = index * 26 + ord(char) - 64
        index -= 1
        cache[letters] = index
    return index


class XlsxReader:
    """The first worksheet of a workbook; ``rows()`` streams it from the start each call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            workbook = self._read(archive, "xl/workbook.xml")
            self.epoch = CALENDAR_MAC_1904 if _DATE1904.search(workbook) else CALENDAR_WINDOWS_1900
            targets = self._relationships(archive)
            sheet = _SHEET.search(workbook)
            if sheet is None:
                raise XlsxLayoutError("no sheet in the workbook")
            rel_id = next((v for k, v in _ATTR.findall(sheet.group(1)) if k.endswith(":id")), None)
            if rel_id is None or rel_id not in targets:
                raise XlsxLayoutError("the first sheet has no part")
            self.sheet_part = targets[rel_id]
            if self.sheet_part not in names:
                raise XlsxLayoutError("the first sheet's part is missing")
            shared = next(
                (t for t in targets.values() if t.endswith("sharedStrings.xml")),
                "xl/sharedStrings.xml",
            )
            self.shared = self._shared_strings(archive, shared) if shared in names else []
            self.date_styles = (
                self._date_styles(archive) if "xl/styles.xml" in names else frozenset()
            )

    @staticmethod
    def _read(archive: zipfile.ZipFile, name: str) -> str:
        try:
            return archive.read(name).decode("utf-8")
        except KeyError as exc:
            raise XlsxLayoutError(f"{name} is missing") from exc

    def _relationships(self, archive: zipfile.ZipFile) -> dict[str, str]:
        targets: dict[str, str] = {}
        for match in _RELATIONSHIP.finditer(self._read(archive, "xl/_rels/workbook.xml.rels")):
            attrs = dict(_ATTR.findall(match.group(1)))
            if "Id" in attrs and "Target" in attrs:
                target = attrs["Target"]
                path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
                targets[attrs["Id"]] = posixpath.normpath(path)
        return targets

    @staticmethod
    def _shared_strings(archive: zipfile.ZipFile, name: str) -> list[str]:
        strings: list[str] = []
        with archive.open(name) as stream:
            for inner in _stream_matches(stream, _SI):
                body = inner.group(1) or ""
                if "<rPh" in body or "rPh>" in body:
                    body = _PHONETIC.sub("", body)
                strings.append(_text("".join(_TEXT.findall(body))))
        return strings

    @staticmethod
    def _date_styles(archive: zipfile.ZipFile) -> frozenset[int]:
        root = ElementTree.fromstring(archive.read("xl/styles.xml"))
        formats: dict[int, str] = dict(BUILTIN_FORMATS)
        xfs: list[int] = []
        for element in root:
            tag = element.tag.rsplit("}", 1)[-1]
            if tag == "numFmts":
                for fmt in element:
                    formats[int(fmt.get("numFmtId", "0"))] = fmt.get("formatCode", "")
            elif tag == "cellXfs":
                xfs = [int(xf.get("numFmtId", "0")) for xf in element]
        return frozenset(
            index for index, fmt_id in enumerate(xfs) if is_date_format(formats.get(fmt_id, ""))
        )

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        """(row number, cell values) of every row present, header included."""
        shared, date_styles, epoch = self.shared, self.date_styles, self.epoch
        columns: dict[str, int] = {}
        number = 0
        with zipfile.ZipFile(self.path) as archive, archive.open(self.sheet_part) as stream:
            for row in _stream_matches(stream, _ROW):
                attrs = row.group(1)
                found = re.search(r'\br="(\d+)"', attrs)
                number = int(found.group(1)) if found else number + 1
                cells: list[Any] = []
                for letters, style, kind, plain, inline, body in _cells_of(row.group(2) or ""):
                    position = _column_index(letters, columns) if letters else len(cells)
                    if kind == "s" and plain:
                        value: Any = shared[int(plain)]
                    elif kind == "inlineStr" and not body:
                        value = _text(inline)
                    else:
                        value = _value(
                            plain,
                            body,
                            kind or "n",
                            int(style) if style else -1,
                            shared,
                            date_styles,
                            epoch,
                        )
                    if position >= len(cells):
                        cells.extend([None] * (position - len(cells) + 1))
                    cells[position] = value
                yield number, cells


# The cells as Excel, WPS and openpyxl write them (attributes r, then s and t in either
# order, no namespace prefix): five times faster than ``_CELL``, which takes any layout.
_PLAIN_CELL = re.compile(
    r'<c r="([A-Z]+)\d+"(?: s="(\d+)")?(?: t="(\w+)")?(?: s="(\d+)")?\s*'
    r"(?:/>|>(?:<v>([^<]*)</v>|<is><t(?:\s[^>]*)?>([^<]*)</t></is>|(.*?))</c>)",
    re.S,
)


def _cells_of(body: str) -> list[tuple[str, str, str, str, str, str]]:
    """(letters, style, type, <v> text, inline text, other content) of each cell of a row.

    The fast pattern is used when it finds every cell of the row; otherwise the general one.
    """
    found = _PLAIN_CELL.findall(body)
    if len(found) == body.count("<c ") + body.count("<c>") + body.count("<c/>"):
        return [(r, s1 or s2, t, v, i, b) for r, s1, t, s2, v, i, b in found]
    return [(r, s, t, v, i, b) for r, t, s, v, i, b in _CELL.findall(body)]


def _value(
    plain: str,
    body: str,
    kind: str,
    style: int,
    shared: list[str],
    date_styles: frozenset[int],
    epoch: dt.datetime,
) -> Any:
    """A cell's value from its <v> text (``plain``) or other content (``body``)."""
    if kind == "inlineStr":
        if "rPh" in body:
            body = _PHONETIC.sub("", body)
        return _text("".join(_TEXT.findall(body)))
    if not plain:
        found = _VALUE.search(body) if body else None
        if found is None:
            return None
        plain = found.group(1)
    if kind == "s":
        return shared[int(plain)]
    if kind in ("str", "e"):
        return _text(plain)
    if kind == "b":
        return plain.strip() in ("1", "true")
    if kind == "d":
        return dt.datetime.fromisoformat(plain.strip().rstrip("Z"))
    number: int | float = int(plain) if _INTEGER.fullmatch(plain) else float(plain)
    if style in date_styles:
        return from_excel(number, epoch)
    return number


def _stream_matches(stream: Any, pattern: re.Pattern[str]) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` over a UTF-8 XML stream, read a chunk at a time; a match is
    never cut, because the text after the last complete match is carried to the next
    chunk."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    pending = ""
    while True:
        block = stream.read(CHUNK)
        pending += decoder.decode(block, final=not block)
        end = 0
        for match in pattern.finditer(pending):
            end = match.end()
            yield match
        pending = pending[end:]
        if not block:
            return
