"""The downloadable xlsx template of the elders file, made from ``columns.py`` (the visits
file's is made by the same ``write_template``).

The first sheet holds the Chinese header row, drop-down lists where a column takes fixed
values, and text format on identifier columns (Excel would otherwise round an 18-digit ID
number). The second sheet explains every column in the active language. ``columns_markdown``
renders the same explanation for docs/import.md.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from typing import BinaryIO

from django.utils.translation import gettext as _

from tanfang.imports.columns import TEMPLATE_CHILD_GROUPS, Column, template_columns
from tanfang.imports.readers import column_letter

TEMPLATE_ROWS = 5000  # rows covered by the drop-down lists and text format
DATA_SHEET = "老年人"
NOTES_SHEET = "填写说明"


def write_elders_template(stream: BinaryIO) -> None:
    columns = template_columns()
    write_template(
        stream,
        data_sheet=DATA_SHEET,
        columns=columns,
        documented=documented_columns(columns),
        note_widths=(18, 26, 18, 60, 40, 24),
        general_notes=_general_notes(),
        list_error=_("Choose one of the listed values."),
    )


def write_template(
    stream: BinaryIO,
    *,
    data_sheet: str,
    columns: Sequence[Column],
    documented: Sequence[Column],
    note_widths: tuple[int, int, int, int, int, int],
    general_notes: Sequence[str] = (),
    list_error: str | None = None,
) -> None:
    """An xlsx template of any kind of file: the header row of ``columns`` with drop-down
    lists and text format, then a sheet explaining the ``documented`` columns, one a row, and
    the ``general_notes`` below them. ``list_error``: what Excel says when a cell of a
    drop-down list gets another value (without it, Excel accepts the value)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.worksheet.datavalidation import DataValidation

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = data_sheet
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDEBF7")
    for index, column in enumerate(columns):
        letter = column_letter(index)
        cell = sheet.cell(row=1, column=index + 1, value=column.header)
        cell.font, cell.fill = bold, fill
        sheet.column_dimensions[letter].width = max(column.width, len(column.header) * 2 + 2)
        if column.as_text:
            sheet.column_dimensions[letter].number_format = "@"
        if column.offered:
            validation = DataValidation(
                type="list",
                formula1='"' + ",".join(column.offered) + '"',
                allow_blank=True,
                showErrorMessage=list_error is not None,
            )
            if list_error is not None:
                validation.error = list_error
            validation.add(f"{letter}2:{letter}{TEMPLATE_ROWS + 1}")
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "A2"

    notes = workbook.create_sheet(NOTES_SHEET)
    titles = [_("Column"), _("Code"), _("Part"), _("Meaning"), _("Allowed values"), _("Example")]
    notes.append(titles)
    for cell in notes[1]:
        cell.font, cell.fill = bold, fill
    for column in documented:
        notes.append(_note_row(column))
    for letter, width in zip("ABCDEF", note_widths, strict=True):
        notes.column_dimensions[letter].width = width
    for row in notes.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    if general_notes:
        notes.append([])
        for line in general_notes:
            notes.append([line])
    workbook.save(stream)


def documented_columns(columns: list[Column] | None = None) -> list[Column]:
    """Every column once; the children's groups only for child 1, spelled 子女N…."""
    out: list[Column] = []
    for column in columns if columns is not None else template_columns():
        if column.child_group > 1:
            continue
        if column.child_group == 1:
            column = _generic_child(column)
        out.append(column)
    return out


def _generic_child(column: Column) -> Column:
    return replace(
        column,
        header=column.header.replace("子女1", "子女N"),
        code=column.code.replace("child1", "childN"),
    )


def _note_row(column: Column) -> list[str]:
    return [
        column.header,
        column.code,
        str(column.section),
        str(column.meaning),
        str(column.allowed),
        column.example,
    ]


def _general_notes() -> list[str]:
    return [
        _(
            "Row 1 holds the headers; each further row is one elder. Chinese headers or the "
            "English codes may be used, in any order."
        ),
        _("A blank cell says nothing about that fact: what the registry holds is kept."),
        _("Rows with the same resident ID number are the same elder and are merged."),
        _(
            "The template has %(n)d groups of children's columns (子女1… to 子女%(n)d…); add "
            "子女%(next)d姓名 … for more children."
        )
        % {"n": TEMPLATE_CHILD_GROUPS, "next": TEMPLATE_CHILD_GROUPS + 1},
        _(
            "The file is checked as a whole before anything is written: if any row has an "
            "error, nothing is imported."
        ),
    ]


def columns_markdown() -> str:
    """The column table of docs/import.md (English; the test keeps the two equal)."""
    return columns_table(documented_columns(template_columns()))


def columns_table(columns: Iterable[Column], *, required: Collection[str] = ()) -> str:
    """A Markdown table of ``columns`` under their sections; ``required`` ones marked *."""
    lines = [
        "| Header | Code | Meaning | Allowed values | Example |",
        "| --- | --- | --- | --- | --- |",
    ]
    section = ""
    for column in columns:
        if str(column.section) != section:
            section = str(column.section)
            lines.append(f"| **{section}** | | | | |")
        cells = [
            column.header + (" *" if column.code in required else ""),
            f"`{column.code}`",
            str(column.meaning),
            str(column.allowed),
            column.example,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
