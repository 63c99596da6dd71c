"""China's statutory holidays, from the chinese-calendar package (never a hand-made table).

chinese-calendar carries the State Council's holiday arrangements year by year; it raises
``NotImplementedError`` for a year it has no data for (before 2004, and every year after the
last arrangement published when the installed version was released — 2027 for 1.11). Such a
year simply has no holiday windows here, and ``Calendar.unknown_years`` names it so the UI can
warn that holiday surges cannot be planned until the package is updated.

A holiday window is the span of days named after one holiday inside one run of consecutive
holiday days: in 2025 the National Day break (1–8 October) holds Mid-autumn Festival on
6 October, which gives a National Day window 1–8 October and a Mid-autumn window on 6 October.
Make-up working days (调休) carry a holiday's name but are working days, and are not in it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import chinese_calendar

ONE_DAY = dt.timedelta(days=1)
# The names chinese-calendar uses, e.g. "Spring Festival", "Mid-autumn Festival".
HOLIDAY_NAMES: frozenset[str] = frozenset(holiday.value for holiday in chinese_calendar.Holiday)
# How far a window is looked for across a year boundary (New Year's Day may start on 30 Dec).
_MARGIN = dt.timedelta(days=60)

HolidayDetail = Callable[[dt.date], tuple[bool, str | None]]


@dataclass(frozen=True, slots=True)
class HolidayWindow:
    """The days of one occurrence of a holiday: ``first`` to ``last`` inclusive."""

    name: str
    first: dt.date
    last: dt.date


class Calendar:
    """Holidays by year, computed once per year and kept for the life of the object.

    ``detail`` is ``chinese_calendar.get_holiday_detail`` unless a test passes its own
    function of the same shape (``day -> (is_holiday, name or None)``, raising
    ``NotImplementedError`` for unknown years). The instance is safe to share: it only ever
    adds a year's answer to its caches.
    """

    __slots__ = ("_detail", "_known", "_windows")

    def __init__(self, detail: HolidayDetail | None = None) -> None:
        self._detail: HolidayDetail = detail or chinese_calendar.get_holiday_detail
        self._known: dict[int, bool] = {}
        self._windows: dict[int, tuple[HolidayWindow, ...]] = {}

    def is_known(self, year: int) -> bool:
        """Whether the holiday data cover ``year``."""
        known = self._known.get(year)
        if known is None:
            try:
                self._detail(dt.date(year, 1, 1))
            except NotImplementedError:
                known = False
            else:
                known = True
            self._known[year] = known
        return known

    def unknown_years(self, start: dt.date, end: dt.date) -> tuple[int, ...]:
        """The years between ``start`` and ``end`` (inclusive) without holiday data."""
        return tuple(y for y in range(start.year, end.year + 1) if not self.is_known(y))

    def windows(self, year: int) -> tuple[HolidayWindow, ...]:
        """The holiday windows that begin in ``year``, in date order (empty if unknown)."""
        cached = self._windows.get(year)
        if cached is None:
            cached = self._compute_windows(year)
            self._windows[year] = cached
        return cached

    def windows_near(self, day: dt.date) -> tuple[HolidayWindow, ...]:
        """Windows beginning in the year before, of, or after ``day``."""
        return self.windows(day.year - 1) + self.windows(day.year) + self.windows(day.year + 1)

    def holidays(self, start: dt.date, end: dt.date) -> dict[str, list[dt.date]]:
        """Holiday name -> its holiday days between ``start`` and ``end`` inclusive."""
        out: dict[str, list[dt.date]] = {}
        for year in range(start.year - 1, end.year + 1):
            for window in self.windows(year):
                day = max(window.first, start)
                while day <= min(window.last, end):
                    out.setdefault(window.name, []).append(day)
                    day += ONE_DAY
        for days in out.values():
            days.sort()
        return out

    def _named_holiday(self, day: dt.date) -> str | None:
        if not self.is_known(day.year):
            return None
        try:
            is_holiday, name = self._detail(day)
        except NotImplementedError:
            return None
        return name if is_holiday and name else None

    def _compute_windows(self, year: int) -> tuple[HolidayWindow, ...]:
        if not self.is_known(year):
            return ()
        # Runs of consecutive named holiday days, scanned a little past both ends of the
        # year so a run crossing New Year belongs, whole, to the year it starts in.
        runs: list[list[tuple[dt.date, str]]] = []
        current: list[tuple[dt.date, str]] = []
        for day in chinese_calendar.get_dates(
            dt.date(year, 1, 1) - _MARGIN, dt.date(year, 12, 31) + _MARGIN
        ):
            name = self._named_holiday(day)
            if name is None:
                if current:
                    runs.append(current)
                    current = []
            else:
                current.append((day, name))
        if current:
            runs.append(current)
        windows: list[HolidayWindow] = []
        for run in runs:
            if run[0][0].year != year:
                continue
            spans: dict[str, tuple[dt.date, dt.date]] = {}
            for day, name in run:
                first, _ = spans.get(name, (day, day))
                spans[name] = (first, day)
            windows.extend(HolidayWindow(name, *span) for name, span in spans.items())
        windows.sort(key=lambda w: (w.first, w.last, w.name))
        return tuple(windows)
