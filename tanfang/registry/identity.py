"""Resident ID numbers (GB 11643) and phone numbers: validation, normalisation, masking.

Pure functions; errors carry a translatable message that names what is wrong.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache

from django.utils.translation import gettext_lazy as _
from stdnum import numdb
from stdnum.cn import ric
from stdnum.exceptions import InvalidComponent


class IdentifierError(ValueError):
    """An identifier failed validation; ``str(exc)`` is the user-facing reason."""


def normalise_id_number(raw: str, *, birth_date: dt.date | None = None) -> str:
    """Validate a resident ID number and return it in its 18-character compact form.

    Checks the length, the GB 11643 check digit, that the embedded birth date is a real date
    and that the place code is one python-stdnum knows, and that the embedded birth date
    equals ``birth_date`` when given.

    The place code is not required to have existed in the birth year (python-stdnum's own
    ``validate`` does require it): an elder born in 1940 in 房山 carries 110111, the code of
    房山区 since 1986, because the number was issued long after the birth.
    """
    number = ric.compact(raw or "").upper()
    if len(number) != 18:
        raise IdentifierError(_("a resident ID number has 18 characters"))
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise IdentifierError(_("the resident ID number is not well formed"))
    if number[-1] != ric.calc_check_digit(number):
        raise IdentifierError(_("the check digit of the resident ID number is wrong"))
    try:
        embedded = ric.get_birth_date(number)
    except InvalidComponent as exc:
        raise IdentifierError(
            _("the resident ID number holds an impossible birth date or place code")
        ) from exc
    if not _place_known(number[:6]):
        raise IdentifierError(
            _("the resident ID number holds an impossible birth date or place code")
        )
    if birth_date is not None and embedded != birth_date:
        raise IdentifierError(
            _("the birth date in the resident ID number does not match the birth date")
        )
    return number


@lru_cache(maxsize=4096)
def _place_known(code: str) -> bool:
    """Whether a six-digit place code is in python-stdnum's table, in any period."""
    return any(props for _part, props in numdb.get("cn/loc").info(code))


def birth_date_of(number: str) -> dt.date:
    return ric.get_birth_date(number)


def gender_of(number: str) -> str:
    """GB 11643: the 17th digit is odd for men, even for women."""
    return "male" if int(number[16]) % 2 else "female"


def mask_id_number(number: str) -> str:
    """Keep the place code and the last four characters: ``110105********123X``."""
    return f"{number[:6]}{'*' * 8}{number[-4:]}" if len(number) == 18 else "*" * len(number)


_PHONE_RE = re.compile(r"^(?:1\d{10}|0\d{2,3}\d{7,8})$")


def normalise_phone(raw: str) -> str:
    """A mainland mobile (11 digits) or landline with area code; separators removed."""
    digits = re.sub(r"[\s\-()]", "", raw or "")
    if digits.startswith("+86"):
        digits = digits[3:]
    if not _PHONE_RE.match(digits):
        raise IdentifierError(
            _("a phone number is an 11-digit mobile number or a landline with its area code")
        )
    return digits


def mask_phone(number: str) -> str:
    """``138****5678``: the carrier prefix and the last four digits."""
    if len(number) < 8:
        return "*" * len(number)
    return f"{number[:3]}{'*' * (len(number) - 7)}{number[-4:]}"
