"""The chart of an alert: a home's last 48 hours of usage against its usual pattern.

Stored in the alert's evidence when the alert is raised (``evidence["series"]``), so that the
alert page can draw "the last two days against his usual day" for years, long after the raw
readings have expired from the store::

    {"start": <epoch s of the first hour>, "step_s": 3600, "unit": "L" | "Wh",
     "usage": [48 numbers or null], "usual": [48 numbers or null], "weeks": 8}

Steps:
1. the readings of the window (48 hours plus the ``weeks`` weeks before, plus a day for
   cumulative registers to have a reading to start from) are normalised exactly as the
   engines do (``detection/normalise.py``: resets, rollovers, bad readings set aside);
2. usage is spread over hours; an hour not fully covered by readings is null, never zero;
3. ``usual`` for each hour is the median of the same hour 1, 2, ... ``weeks`` weeks earlier
   (the same hour of the week, so Saturday is compared with Saturdays), over the weeks that
   have data; null when fewer than two weeks do.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import numpy as np

from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.engine import UNITS as CANONICAL_UNITS
from tanfang.monitoring.detection.grid import Grid, spread
from tanfang.monitoring.detection.normalise import normalise
from tanfang.monitoring.detection.tables import MeterTable, Readings

HOURS = 48
WEEKS = 8
STEP_S = 3600
WEEK_S = 7 * 86400


def window_start(end: int, *, hours: int = HOURS, weeks: int = WEEKS) -> int:
    """The first reading time the series of an hour grid ending at ``end`` needs."""
    return end - hours * STEP_S - weeks * WEEK_S - 86400


def hour_end(moment: int) -> int:
    """The end of the last whole hour at ``moment`` (epoch s)."""
    return moment - moment % STEP_S


def series_for(
    table: MeterTable,
    readings: Readings,
    book: RuleBook,
    rows: list[int],
    *,
    end: int,
    hours: int = HOURS,
    weeks: int = WEEKS,
) -> dict[int, dict[str, Any]]:
    """The series of each meter row in ``rows`` (readings of the whole table, as the engine
    takes them), for the ``hours`` hours up to ``end`` (a whole hour, epoch s)."""
    if not rows:
        return {}
    sub = table.take(rows)
    remap = np.full(len(table), -1, dtype=np.int64)
    remap[np.asarray(rows, dtype=np.int64)] = np.arange(len(rows))
    first = window_start(end, hours=hours, weeks=weeks)
    pick = (remap[readings.meter] >= 0) & (readings.ts > first) & (readings.ts <= end)
    part = Readings(
        remap[readings.meter[pick]].astype(np.int32),
        readings.ts[pick],
        readings.value[pick],
    )
    limits = [
        book.for_district(d).limits.get(u, {})
        for d, u in zip(sub.district, sub.utility, strict=True)
    ]
    norm = normalise(
        part,
        sub,
        max_per_hour=np.array([float(lim.get("max_per_hour", np.inf)) for lim in limits]),
        max_gap_s=np.array([float(lim.get("max_gap_hours", np.inf)) * 3600 for lim in limits]),
        future_cutoff=None,
    )
    g0 = end - hours * STEP_S - weeks * WEEK_S
    grid = Grid(g0, STEP_S, hours + weeks * 7 * 24)
    usage, _peak = spread(norm, grid, len(rows))
    recent = usage[:, -hours:]
    week = 7 * 24
    past = np.stack(
        [
            usage[:, grid.slots - hours - k * week : grid.slots - k * week]
            for k in range(1, weeks + 1)
        ]
    )  # (weeks, meters, hours)
    known = np.sum(~np.isnan(past), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN hours are null
        usual = np.nanmedian(past, axis=0)
    usual[known < 2] = np.nan
    out = {}
    for i, row in enumerate(rows):
        out[row] = {
            "start": end - hours * STEP_S,
            "step_s": STEP_S,
            "unit": CANONICAL_UNITS.get(sub.utility[i], ""),
            "usage": _plain(recent[i]),
            "usual": _plain(usual[i]),
            "weeks": weeks,
        }
    return out


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), 3) for v in values.tolist()]


def chart_series(meter: Any, *, end: dt.datetime) -> dict[str, Any] | None:
    """A meter's series up to ``end``, read from the reading store (for an alert raised
    without one, or a meter's page). None without a meter (a device alarm) or when the
    store has no readings of the meter."""
    if meter is None:
        return None
    from tanfang.monitoring.detection.tables import readings_from_frame
    from tanfang.monitoring.tick import meter_rows, read_store, rule_book_from_db

    table = MeterTable.build(meter_rows([meter], {}))
    stop = hour_end(int(end.timestamp()))
    frame = read_store(since=window_start(stop), until=stop, meter_ids=[meter.meter_id])
    if frame.height == 0:
        return None
    readings = readings_from_frame(frame, table)
    return series_for(table, readings, rule_book_from_db(), [0], end=stop)[0]
