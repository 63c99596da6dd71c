"""Synthetic resident ID numbers for demos and tests: valid check digits, never a real person.

The sequence code (digits 15–17) of synthetic numbers is drawn from 900–999 on dates chosen by
a seeded generator; together with the demo's made-up names this keeps them synthetic.
"""

from __future__ import annotations

import datetime as dt

from stdnum.cn import ric


def synthetic_id_number(place: str, birth_date: dt.date, serial: int, gender: str) -> str:
    """An 18-character ID: ``place`` (6 digits), birth date, a sequence code, check digit.

    ``serial`` picks the sequence code within 900–999 (its last digit is odd for men, even for
    women, as GB 11643 requires).
    """
    base = 900 + (serial % 50) * 2  # even
    sequence = base + 1 if gender == "male" else base
    body = f"{place}{birth_date:%Y%m%d}{sequence:03d}"
    return body + ric.calc_check_digit(body + "0")
