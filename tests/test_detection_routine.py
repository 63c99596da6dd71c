"""The home's own routine (``basis: days``): long spells it usually has are no alarm, a missed
return or a quiet afternoon it never has is; a routinely longer absence leaves it to the
backstop."""

from __future__ import annotations

import numpy as np

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.tables import MeterTable, Readings

DAY = 86400
H = 3600
T0 = 1_704_038_400  # Monday 2024-01-01T00:00+08:00 (Asia/Shanghai, the default time zone)
DAYS = 70
METERS = MeterTable.build(
    [{"meter_id": "W", "elder_id": "E", "utility": "water", "register": "cumulative", "unit": "L"}]
)


def household(
    back: float, *, stop: int | None = None, resume: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read every 15 min. Weekdays: water at 07:00 and 07:30, out, back at ``back`` o'clock,
    then 19:00 and 21:00 (``back`` is at most 19). Weekends at home: 08:30, 12:00, 15:00,
    19:00, 21:00. From ``stop`` (epoch s) to ``resume`` (or the end), nothing flows; at
    ``resume`` 15 L."""
    ts = T0 + np.arange(1, DAYS * 96 + 1, dtype=np.int64) * 900
    start = ts - 900
    hour = ((start - T0) % DAY) / H
    weekend = ((start - T0) // DAY) % 7 >= 5
    weekday_uses = sorted({7.0, 7.5, back, 19.0, 21.0})
    use = (
        np.where(weekend, np.isin(hour, [8.5, 12.0, 15.0, 19.0, 21.0]), np.isin(hour, weekday_uses))
        * 15.0
    )
    if stop is not None:
        use[(start >= stop) & (start < (resume or ts[-1]))] = 0
        use[start == resume] = 15.0
    return ts, 1000 + np.cumsum(use)


def person_alerts(ts: np.ndarray, reg: np.ndarray, start: int, end: int) -> list[engine.Alert]:
    readings = Readings(np.zeros(len(ts), np.int32), ts, reg)
    ticks = engine.ticks_between(start, end, 900)
    alerts = engine.run(METERS, readings, RuleBook(), ticks).alerts
    return [a for a in alerts if a.kind in ("inactivity", "missed_routine", "low_usage")]


WEDNESDAY = T0 + 9 * 7 * DAY + 2 * DAY  # day 65, with eight weeks learned before it
SATURDAY = WEDNESDAY + 3 * DAY


def test_a_usual_working_day_raises_nothing_but_no_return_does_by_evening() -> None:
    ts, reg = household(17.5)
    assert person_alerts(ts, reg, WEDNESDAY, WEDNESDAY + DAY) == []
    left = WEDNESDAY + 7 * H + 45 * 60  # the end of the 07:30 quarter-hour of use
    ts, reg = household(17.5, stop=left)
    found = person_alerts(ts, reg, WEDNESDAY, WEDNESDAY + DAY)
    assert [a.rule for a in found] == ["routine_missed"]
    # Usually back after 9.75 h: the alert waits past the usual return, within 12 h.
    assert left + 10.25 * H < found[0].detected_at <= left + 12 * H
    assert found[0].started_at == left


def test_a_quiet_afternoon_at_home_is_noticed_sooner_than_the_workday() -> None:
    last = SATURDAY + 12 * H + 15 * 60  # after the noon use on a day at home
    ts, reg = household(17.5, stop=last)
    found = person_alerts(ts, reg, SATURDAY, SATURDAY + DAY)
    assert [a.rule for a in found] == ["routine_missed"]
    # The home is never quiet that long from noon on weekends: the floor (6.75 h) applies.
    assert last + 6.75 * H < found[0].detected_at <= last + 9 * H


def test_a_home_routinely_out_longer_than_the_cap_is_left_to_the_backstop() -> None:
    # Out 07:45-19:00 every weekday (11.25 h): an alert at 10.25 h would fire every weekday.
    ts, reg = household(19.0)
    assert person_alerts(ts, reg, WEDNESDAY, WEDNESDAY + DAY) == []
    left = WEDNESDAY + 7 * H + 45 * 60
    ts, reg = household(19.0, stop=left)
    found = person_alerts(ts, reg, WEDNESDAY, WEDNESDAY + 2 * DAY)
    assert [a.rule for a in found] == ["water_fixed_24h"]
    assert found[0].detected_at >= left + 24 * H


def test_what_is_raised_by_t_does_not_depend_on_readings_after_t() -> None:
    # Out from 12:15 to 21:00 on a Saturday at home: alerted at about 19:30. Had the learning
    # seen that day's own spell (in the readings after t), the threshold would have moved.
    last, back = SATURDAY + 12 * H + 15 * 60, SATURDAY + 21 * H
    ts, reg = household(17.5, stop=last, resume=back)
    ticks = engine.ticks_between(SATURDAY, SATURDAY + DAY, 900)
    full = Readings(np.zeros(len(ts), np.int32), ts, reg)
    every = engine.run(METERS, full, RuleBook(), ticks).alerts
    assert [(a.rule, a.resolved_at is not None) for a in every] == [("routine_missed", True)]
    for cut in (last + 6 * H, every[0].detected_at, back + 2 * H):
        seen = ts <= cut - engine.DEFAULT_LAG_S
        part = Readings(np.zeros(int(seen.sum()), np.int32), ts[seen], reg[seen])
        early = engine.run(METERS, part, RuleBook(), ticks).alerts

        def raised(alerts: list[engine.Alert], cut: int = cut) -> list[tuple]:
            return [(a.rule, a.detected_at, a.started_at) for a in alerts if a.detected_at <= cut]

        assert raised(early) == raised(every)
