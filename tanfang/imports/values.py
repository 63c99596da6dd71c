"""Reading one cell of an import file: the value parsers the column definitions are made of.

A parser takes a non-blank cell (a string from a CSV file; a string, number, date or boolean
from an xlsx file) and returns the Python value of the fact, or raises ``CellError`` whose
message, in the active language, says what is wrong. Messages never repeat an identifier's
value (the error report is kept on the import run).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.registry.identity import IdentifierError, normalise_phone
from tanfang.registry.records import HouseholdRecord


class CellError(ValueError):
    """A cell that cannot be read; ``str(exc)`` is the reason shown to the user."""


Parser = Callable[[Any], Any]

EARLIEST_DATE = dt.date(1900, 1, 1)


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text_of(value: Any) -> str:
    """A cell as text; whole numbers from a spreadsheet lose their ``.0``."""
    if type(value) is str:
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_today_cache: list[Any] = [0.0, None]


def today() -> dt.date:
    """Today in Beijing, looked up at most once a second (a file has many date cells)."""
    now = time.monotonic()
    if now - _today_cache[0] > 1.0:
        _today_cache[:] = [now, timezone.localdate()]
    day: dt.date = _today_cache[1]
    return day


def text(max_length: int) -> Parser:
    def parse(value: Any) -> str:
        result = _text_of(value)
        if len(result) > max_length:
            raise CellError(
                _("at most %(max)d characters are allowed, this cell has %(length)d")
                % {"max": max_length, "length": len(result)}
            )
        return result

    return parse


_TRUE = {"是", "y", "yes", "1", "true", "t"}
_FALSE = {"否", "n", "no", "0", "false", "f"}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    token = _text_of(value).lower()
    if token in _TRUE:
        return True
    if token in _FALSE:
        return False
    raise CellError(
        _("“%(value)s” is not a yes/no value: write 是 or 否 (Y/N, 1/0, true/false also work)")
        % {"value": _shorten(token)}
    )


def choice(tokens: Mapping[str, str]) -> Parser:
    """One of a fixed set of values; ``tokens`` maps every accepted spelling to the code.

    The first spelling of each code is the one the template offers; English codes are
    accepted in any letter case.
    """
    lookup = {key.lower(): code for key, code in tokens.items()}
    shown = "、".join(dict.fromkeys(_first_token_of(tokens).values()))

    def parse(value: Any) -> str:
        token = _text_of(value)
        code = lookup.get(token.lower()) or lookup.get(token.replace(" ", "").lower())
        if code is None:
            raise CellError(
                _("“%(value)s” is not one of the allowed values: %(allowed)s")
                % {"value": _shorten(token), "allowed": shown}
            )
        return code

    return parse


def _first_token_of(tokens: Mapping[str, str]) -> dict[str, str]:
    first: dict[str, str] = {}
    for token, code in tokens.items():
        first.setdefault(code, token)
    return first


def offered_tokens(tokens: Mapping[str, str]) -> tuple[str, ...]:
    """The spelling of each value the template offers (in a drop-down list)."""
    return tuple(_first_token_of(tokens).values())


_CHINESE_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def integer(low: int, high: int, *, grades: bool = False) -> Parser:
    """A whole number in ``low..high``; with ``grades``, 一级/2级 spell a grade too."""

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise CellError(_("a whole number is expected here"))
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            token = _text_of(value)
            if grades:
                token = token.removesuffix("级")
                token = str(_CHINESE_DIGITS.get(token, token))
            if not re.fullmatch(r"[0-9]+", token):
                raise CellError(_("“%(value)s” is not a whole number") % {"value": _shorten(token)})
            number = int(token)
        if not low <= number <= high:
            raise CellError(
                _("%(value)d is out of range: allowed are %(low)d to %(high)d")
                % {"value": number, "low": low, "high": high}
            )
        return number

    return parse


def optional_grade(value: Any) -> int | None:
    """A disability grade, or 无 for none."""
    if _text_of(value) in ("无", "none", "-"):
        return None
    return _GRADE(value)


_GRADE = integer(1, 4, grades=True)


def year(value: Any) -> int:
    return integer(EARLIEST_DATE.year, today().year)(value)


_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def date(*, future: bool = False) -> Parser:
    """A date: 2024-06-30, 2024/6/30, 2024.6.30, 20240630, 2024年6月30日, or a date cell."""

    def parse(value: Any) -> dt.date:
        if isinstance(value, dt.datetime):
            day = value.date()
        elif isinstance(value, dt.date):
            day = value
        else:
            token = _text_of(value)
            match = _DATE_RE.match(token)
            if match is None and re.fullmatch(r"\d{8}", token):
                match = re.match(r"(\d{4})(\d{2})(\d{2})", token)
            if match is None:
                raise CellError(
                    _("“%(value)s” is not a date: write it as 2024-06-30")
                    % {"value": _shorten(token)}
                )
            try:
                day = dt.date(*(int(part) for part in match.groups()))
            except ValueError as exc:
                raise CellError(
                    _("“%(value)s” is not a date of the calendar") % {"value": _shorten(token)}
                ) from exc
        if day < EARLIEST_DATE:
            raise CellError(_("dates before 1900 are not accepted"))
        if not future and day > today():
            raise CellError(_("this date is in the future"))
        return day

    return parse


def identifier(value: Any) -> str:
    """An ID number as text. Excel turns long digit strings into rounded figures."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise CellError(
            _(
                "the number was stored as a figure, which Excel rounds after 15 digits: "
                "format the column as text and type the number again"
            )
        )
    return _text_of(value).replace(" ", "")


def phone(value: Any) -> str:
    try:
        return normalise_phone(_text_of(value))
    except IdentifierError as exc:
        raise CellError(str(exc)) from exc


def digits(length: int) -> Parser:
    def parse(value: Any) -> str:
        token = _text_of(value)
        if not re.fullmatch(rf"[0-9]{{{length}}}", token):
            raise CellError(_("a code of %(length)d digits is expected here") % {"length": length})
        return token

    return parse


def household(relations: Mapping[str, str]) -> Parser:
    """People living with the elder: ``配偶:78;孙子女:15`` (relation, optional age); 无 if none."""
    relation_of = choice(relations)
    age_of = integer(0, 130)

    def parse(value: Any) -> list[HouseholdRecord]:
        token = _text_of(value)
        if token in ("无", "none", "-"):
            return []
        members: list[HouseholdRecord] = []
        for item in re.split(r"[;；,，、]", token):
            item = item.strip()
            if not item:
                continue
            relation, _sep, age = re.sub(r"[:：]", ":", item).partition(":")
            members.append(
                HouseholdRecord(
                    relation=relation_of(relation),
                    age=age_of(age) if age.strip() else None,
                )
            )
        if not members:
            raise CellError(_("list the people as relation:age separated by ; or write 无"))
        return members

    return parse


def _shorten(token: str) -> str:
    return token if len(token) <= 20 else token[:19] + "…"
