"""Periods of a frequency and local dates: the time arithmetic of obligations and rates.

Dates are Asia/Shanghai calendar dates: a visit at 2026-03-08T16:30Z happened on Monday
2026-03-09 there, in ISO week 2026-W11. Weeks are ISO weeks (Monday to Sunday; week 1 holds
the year's first Thursday, so 2025-12-29..2026-01-04 is 2026-W01). Keys name periods the way
the ``rates`` command and the UI write them: "2026-03-05", "2026-W10", "2026-03", "2026-Q1".
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from tanfang.visits.obligations.types import Frequency

SHANGHAI = ZoneInfo("Asia/Shanghai")
ONE_DAY = dt.timedelta(days=1)

Period = tuple[dt.date, dt.date, str]  # (first day, last day inclusive, key)

_KEY_PATTERNS: tuple[tuple[re.Pattern[str], Frequency], ...] = (
    (re.compile(r"(\d{4})-(\d{2})-(\d{2})"), Frequency.DAY),
    (re.compile(r"(\d{4})-W(\d{2})"), Frequency.WEEK),
    (re.compile(r"(\d{4})-(\d{2})"), Frequency.MONTH),
    (re.compile(r"(\d{4})-Q([1-4])"), Frequency.QUARTER),
)


def local_date(at: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar date of an aware datetime (naive ones are refused)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at.isoformat()}: visits need a timezone")
    return at.astimezone(SHANGHAI).date()


def _month_end(year: int, month: int) -> dt.date:
    if month == 12:
        return dt.date(year, 12, 31)
    return dt.date(year, month + 1, 1) - ONE_DAY


@lru_cache(maxsize=16384)
def period_of(day: dt.date, frequency: Frequency | str) -> Period:
    """The period of ``frequency`` containing ``day``: (start, end inclusive, key)."""
    if frequency == "day":
        return day, day, day.isoformat()
    if frequency == "week":
        year, week, weekday = day.isocalendar()
        start = day - dt.timedelta(days=weekday - 1)
        return start, start + dt.timedelta(days=6), f"{year}-W{week:02d}"
    if frequency == "month":
        return (
            day.replace(day=1),
            _month_end(day.year, day.month),
            f"{day.year}-{day.month:02d}",
        )
    if frequency == "quarter":
        quarter = (day.month - 1) // 3 + 1
        first_month = 3 * quarter - 2
        return (
            dt.date(day.year, first_month, 1),
            _month_end(day.year, first_month + 2),
            f"{day.year}-Q{quarter}",
        )
    raise ValueError(f"unknown frequency {frequency!r}")


@lru_cache(maxsize=1024)
def period_from_key(key: str) -> tuple[dt.date, dt.date, Frequency]:
    """Parse a period key ("2026-W10", "2026-03", "2026-Q1", "2026-03-05") to its days.

    Raises ``ValueError`` for anything else, including weeks a year does not have.
    """
    for pattern, frequency in _KEY_PATTERNS:
        match = pattern.fullmatch(key.strip())
        if match is None:
            continue
        numbers = [int(group) for group in match.groups()]
        if frequency is Frequency.DAY:
            day = dt.date(*numbers)
        elif frequency is Frequency.WEEK:
            day = dt.date.fromisocalendar(numbers[0], numbers[1], 1)
        elif frequency is Frequency.MONTH:
            day = dt.date(numbers[0], numbers[1], 1)
        else:
            day = dt.date(numbers[0], 3 * numbers[1] - 2, 1)
        start, end, canonical = period_of(day, frequency)
        if canonical != key.strip():
            raise ValueError(f"not a period key: {key!r}")
        return start, end, frequency
    raise ValueError(f"not a period key: {key!r} (expected 2026-W10, 2026-03, 2026-Q1 or a date)")


def periods_back(day: dt.date, frequency: Frequency | str, count: int) -> list[Period]:
    """The period containing ``day`` and the ``count - 1`` before it, newest first (trends)."""
    out: list[Period] = []
    cursor = day
    for _ in range(count):
        period = period_of(cursor, frequency)
        out.append(period)
        cursor = period[0] - ONE_DAY
    return out
