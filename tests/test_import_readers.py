"""Reading the file: the fast xlsx reader agrees with openpyxl, encodings, headers, cells;
docs/import.md shows the columns the code defines."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import translation
from openpyxl import Workbook, load_workbook
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

from tanfang.imports.base import ErrorList
from tanfang.imports.readers import Table, TableError, detect_encoding, open_table
from tanfang.imports.rows import Layout
from tanfang.imports.synthetic import synthetic_id
from tanfang.imports.template import columns_markdown

ROOT = Path(__file__).resolve().parents[1]


def _excel_like(path: Path) -> Path:
    """A workbook as Excel writes one: shared strings, styles, dates, gaps, rich text."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "公民身份号码", "出生日期", "子女数", "与配偶同住", "居住地址"])
    sheet.append(["王秀兰", synthetic_id(1)[0], dt.date(1940, 5, 1), 2, True, "A & B <1>"])
    sheet.append([None, None, None, None, None, None])
    sheet["A4"] = CellRichText(["李", TextBlock(InlineFont(b=True), "桂英")])
    sheet["C4"] = 1.5
    sheet["F4"] = "=1+1"
    sheet["H4"] = "远处的列"
    sheet["A6"] = "隔行"
    workbook.save(path)
    return path


def test_fast_xlsx_reader_agrees_with_openpyxl(tmp_path: Path) -> None:
    path = _excel_like(tmp_path / "excel.xlsx")
    table = open_table(path)
    fast = list(table.rows())
    slow = list(Table(path=path, format="xlsx")._openpyxl_rows(skip_header=True))

    def trim(cells: list[object]) -> list[object]:
        while cells and cells[-1] is None:
            cells = cells[:-1]
        return cells

    slow_rows = {n: trim(c) for n, c in slow if any(v is not None for v in c)}
    fast_rows = {n: trim(c) for n, c in fast if any(v is not None for v in c)}
    assert fast_rows == slow_rows
    assert fast_rows[2][2].date() == dt.date(1940, 5, 1) and fast_rows[2][5] == "A & B <1>"
    assert fast_rows[4][0] == "李桂英" and fast_rows[6] == ["隔行"]
    assert table.header[:2] == ["姓名", "公民身份号码"]


def test_encodings_are_recognised(tmp_path: Path) -> None:
    text = "姓名,公民身份号码\n王秀兰,110101194005019006\n"
    for encoding, expected in (
        ("utf-8", "utf-8-sig"),
        ("utf-8-sig", "utf-8-sig"),
        ("gb18030", "gb18030"),
        ("gbk", "gb18030"),
    ):
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(text.encode(encoding))
        assert detect_encoding(path) == expected
        assert open_table(path).header == ["姓名", "公民身份号码"]


def test_empty_and_old_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(TableError):
        open_table(empty)
    damaged = tmp_path / "damaged.xlsx"
    damaged.write_bytes(b"PK\x03\x04broken")
    with pytest.raises(TableError):
        list(open_table(damaged).rows())


def test_headers_unknown_twice_and_aliases() -> None:
    errors = ErrorList()
    with translation.override("en"):
        layout = Layout.read(["序号", "身份证号", "姓名", "籍贯", "姓名", "child5_name"], errors)
    assert layout is not None
    assert [(e.row, e.column, e.letter) for e in errors.kept] == [
        (1, "籍贯", "D"),
        (1, "姓名", "E"),
    ]
    assert layout.by_code["id_number"].header == "身份证号"
    assert layout.child_groups == [5]
    assert Layout.read(["姓名"], ErrorList()) is None


def test_id_number_typed_as_a_figure_is_an_error(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["姓名", "公民身份号码"])
    sheet.append(["王秀兰", 110101194005019006])
    path = tmp_path / "figure.xlsx"
    workbook.save(path)
    table = open_table(path)
    errors = ErrorList()
    layout = Layout.read(table.header, errors)
    assert layout is not None
    with translation.override("en"):
        record, _key, row_errors = layout.parse_row(*next(table.rows()))
    assert record is None
    assert "format the column as text" in row_errors[0].message


def test_cells_and_rows_are_read_as_documented() -> None:
    header = [
        "公民身份号码",
        "出生日期",
        "与配偶同住",
        "同住人员",
        "残疾等级",
        "子女数",
        "子女1姓名",
        "子女2姓名",
        "能力评估等级",
    ]
    layout = Layout.read(header, ErrorList())
    assert layout is not None
    number, born, _gender = synthetic_id(1)
    record, _key, errors = layout.parse_row(
        2,
        [
            number,
            f"{born.year}年{born.month}月{born.day}日",
            "Y",
            "配偶:78；孙子女",
            "二级",
            "2",
            "甲",
            "乙",
            "",
        ],
    )
    assert errors == [] and record is not None
    assert record.spouse_lives_with is True
    assert [(m.relation, m.age) for m in record.household] == [("spouse", 78), ("grandchild", None)]
    assert record.disability_grade == 2
    assert [c.name for c in record.children] == ["甲", "乙"]
    with translation.override("en"):
        _r, _k, errors = layout.parse_row(2, [number, "", "", "", "", "3", "甲", "", "2"])
    assert {e.column for e in errors} == {"子女数", "评估标准", "评估日期"}


def test_docs_show_the_columns_of_the_code() -> None:
    text = (ROOT / "docs" / "import.md").read_text(encoding="utf-8")
    documented = re.search(r"<!-- columns:start -->\n(.*)<!-- columns:end -->", text, re.S)
    assert documented is not None
    with translation.override("en"):
        assert documented.group(1) == columns_markdown()


def test_template_headers_are_all_understood(tmp_path: Path) -> None:
    from tanfang.imports.template import write_elders_template

    path = tmp_path / "t.xlsx"
    with path.open("wb") as stream:
        write_elders_template(stream)
    headers = [cell.value for cell in load_workbook(path).worksheets[0][1]]
    errors = ErrorList()
    layout = Layout.read([str(h) for h in headers], errors)
    assert layout is not None and not errors
    assert len(layout.placed) == len(headers)


def test_cells_in_any_layout_are_read() -> None:
    from tanfang.imports.xlsx import _cells_of

    plain = '<c r="A2" t="s"><v>3</v></c><c r="C2" s="4"><v>1.5</v></c>'
    assert _cells_of(plain) == [("A", "", "s", "3", "", ""), ("C", "4", "", "1.5", "", "")]
    # Another attribute order, an extra attribute: the general pattern takes over.
    odd = '<c t="s" r="A2" cm="1"><v>3</v></c><c s="4" r="C2"><v>1.5</v></c>'
    assert _cells_of(odd) == [("A", "", "s", "3", "", ""), ("C", "4", "", "1.5", "", "")]
