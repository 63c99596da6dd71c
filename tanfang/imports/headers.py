"""Reading the header row of an import file, the same way for every kind of file.

Each header is looked up among the kind's columns (``find``). A blank header leaves the
column unnamed: a cell below it is an error of its row. A header that names no column is an
error unless partners' sheets often carry it (``ignored``); a column named twice is an error
at its second place. Which columns a file must have is the kind's own check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from tanfang.imports import values as v
from tanfang.imports.base import ErrorList, RowError
from tanfang.imports.columns import Column, _normal
from tanfang.imports.readers import column_letter


@dataclass(frozen=True, slots=True)
class Placed:
    """A column of the file: where it is, what it is, and how the file heads it."""

    index: int
    column: Column
    header: str
    letter: str


@dataclass(frozen=True, slots=True)
class HeaderRow:
    """The columns a header row names, and the indexes of its blank headers."""

    placed: list[Placed]
    unnamed: list[int]

    @property
    def codes(self) -> set[str]:
        return {p.column.code for p in self.placed}


def read_header_row(
    header: list[str],
    errors: ErrorList,
    *,
    find: Callable[[str], Column | None],
    ignored: frozenset[str],
) -> HeaderRow:
    """Place the columns of ``header``; unknown and repeated headers go to ``errors``."""
    placed: list[Placed] = []
    unnamed: list[int] = []
    where: dict[str, str] = {}
    for index, text in enumerate(header):
        letter = column_letter(index)
        if not text:
            unnamed.append(index)
            continue
        column = find(text)
        if column is None:
            if _normal(text) not in ignored:
                errors.add(1, text, _("unknown column: the template lists the columns"), letter)
            continue
        if column.code in where:
            errors.add(
                1,
                text,
                _("this column appears twice (also column %(letter)s)")
                % {"letter": where[column.code]},
                letter,
            )
            continue
        where[column.code] = letter
        placed.append(Placed(index, column, text, letter))
    return HeaderRow(placed, unnamed)


def unnamed_cell_errors(row: int, cells: Sequence[Any], unnamed: list[int]) -> list[RowError]:
    """An error for each filled cell of ``row`` under a blank header."""
    return [
        RowError(row, "", _("this column has no header"), column_letter(index))
        for index in unnamed
        if index < len(cells) and not v.is_blank(cells[index])
    ]
