"""Each rule on synthetic homes: thresholds, episodes, resolution, silence, devices, config."""

from __future__ import annotations

import numpy as np
import pytest

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import FIXED_PRACTICE, RuleBook, RuleBookError
from tanfang.monitoring.detection.tables import MeterTable, Readings

DAY = 86400
H = 3600
T0 = 1_704_038_400  # 2024-01-01T00:00+08:00 (Asia/Shanghai, the default time zone)
DAYS = 40


def water_home(
    quiet_from: int | None = None, quiet_hours: float = 24, silent_from: int | None = None
):
    """A cumulative water meter, read every 15 min; water used at 07:00, 12:00, 19:00, 21:00."""
    ts = T0 + np.arange(1, DAYS * 96 + 1, dtype=np.int64) * 900
    hour = ((ts - 900 - T0) % DAY) / H
    use = np.isin(np.floor(hour * 4) / 4, [7.0, 12.0, 19.0, 21.0]) * 20.0
    if quiet_from is not None:
        use[(ts > quiet_from) & (ts <= quiet_from + quiet_hours * H)] = 0
    register = 1000 + np.cumsum(use)
    keep = np.ones(len(ts), dtype=bool) if silent_from is None else ts <= silent_from
    return ts[keep], register[keep]


def table(**extra: object) -> MeterTable:
    row = {
        "meter_id": "W",
        "elder_id": "E",
        "utility": "water",
        "register": "cumulative",
        "unit": "L",
    }
    row.update(extra)
    return MeterTable.build([row])


def replay(ts, values, start, end, book=None, meters=None, lag=3600):
    readings = Readings(np.zeros(len(ts), np.int32), ts, values)
    ticks = engine.ticks_between(start, end, 900)
    return engine.run(meters or table(), readings, book or RuleBook(), ticks, lag_s=lag).alerts


def person(alerts):
    return [a for a in alerts if a.kind in ("inactivity", "missed_routine", "low_usage")]


def test_a_normal_day_raises_nothing() -> None:
    ts, reg = water_home()
    found = replay(ts, reg, T0 + 35 * DAY, T0 + 37 * DAY)
    assert found == []


def test_a_missed_morning_raises_one_alert_within_hours_and_resolves_on_activity() -> None:
    onset = T0 + 35 * DAY + 21 * H + 1800  # after the evening's last use
    ts, reg = water_home(quiet_from=onset, quiet_hours=20)
    found = person(replay(ts, reg, T0 + 35 * DAY, T0 + 37 * DAY))
    assert len(found) == 1  # one episode, one alert, however many ticks it lasts
    alert = found[0]
    assert alert.kind == "missed_routine"
    morning = T0 + 36 * DAY + 7 * H
    assert morning < alert.detected_at < morning + 4 * H
    assert alert.started_at is not None and alert.started_at <= onset
    assert alert.resolved_at is not None and alert.resolved_at > onset + 20 * H


def test_missing_data_is_never_inactivity() -> None:
    silent = T0 + 35 * DAY + 21 * H + 1800
    ts, reg = water_home(silent_from=silent)
    found = replay(ts, reg, T0 + 35 * DAY, T0 + 38 * DAY)
    assert person(found) == []
    assert [a.kind for a in found] == ["data_silence"]
    assert found[0].started_at == silent // 900 * 900
    assert found[0].detected_at > silent + 6 * H


def test_fixed_practice_rule_needs_twelve_hours() -> None:
    onset = T0 + 35 * DAY + 21 * H + 1800
    ts, reg = water_home(quiet_from=onset, quiet_hours=20)
    found = person(replay(ts, reg, T0 + 35 * DAY, T0 + 37 * DAY, book=RuleBook(FIXED_PRACTICE)))
    assert [a.rule for a in found] == ["water_fixed_12h"]
    assert found[0].detected_at >= onset + 12 * H


def test_away_elders_get_no_person_alerts() -> None:
    onset = T0 + 35 * DAY + 21 * H + 1800
    ts, reg = water_home(quiet_from=onset, quiet_hours=20)
    found = replay(ts, reg, T0 + 35 * DAY, T0 + 37 * DAY, meters=table(status="hospital"))
    assert person(found) == []


def test_gas_flowing_without_a_break_raises_continuous_use() -> None:
    ts = T0 + np.arange(1, 4 * 96 + 1, dtype=np.int64) * 900
    flow = np.where(ts > T0 + DAY + 10 * H, 30.0, 0.0)
    meters = MeterTable.build(
        [
            {
                "meter_id": "G",
                "elder_id": "E",
                "utility": "gas",
                "register": "cumulative",
                "unit": "L",
                "interval_minutes": 15,
            }
        ]
    )
    found = replay(ts, 100 + np.cumsum(flow), T0 + DAY, T0 + DAY + 16 * H, meters=meters)
    cont = [a for a in found if a.kind == "continuous_use"]
    assert len(cont) == 1
    assert cont[0].severity == "critical"
    assert cont[0].detected_at - (T0 + DAY + 10 * H) <= 3 * H + 2 * H


def test_device_event_is_raised_at_once_and_cleared() -> None:
    meters = MeterTable.build(
        [
            {
                "meter_id": "S",
                "elder_id": "E",
                "utility": "device",
                "register": "",
                "unit": "",
                "device_kind": "sos",
            }
        ]
    )
    ts = np.array([T0 + 100, T0 + 4000], np.int64)
    found = replay(ts, np.array([1.0, 0.0]), T0, T0 + 3 * H, meters=meters)
    assert len(found) == 1
    assert found[0].kind == "device" and found[0].evidence["device_kind"] == "sos"
    assert found[0].detected_at == T0 + 900
    assert found[0].resolved_at == T0 + 4500


def test_district_rules_override_the_defaults() -> None:
    book = RuleBook({"districts": {"110105": {"rules": {"silence": {"params": {"hours": 48}}}}}})
    assert book.for_district("110105001002").of_kind("data_silence")[0].params["hours"] == 48
    assert book.for_district("110101").of_kind("data_silence")[0].params["hours"] == 6


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"rules": {"silence": {"params": {"hour": 3}}}}, "rules.silence.params.hour"),
        ({"rules": {"x": {"kind": "sleep"}}}, "rules.x.kind"),
        ({"rules": {"silence": {"severity": "urgent"}}}, "rules.silence.severity"),
        ({"activity": {"steam": {}}}, "activity.steam"),
        ({"rules": {"silence": {"params": {"hours": "6"}}}}, "rules.silence.params.hours"),
    ],
)
def test_rule_book_rejects_nonsense(data: dict, where: str) -> None:
    with pytest.raises(RuleBookError, match=where.replace(".", r"\.")):
        RuleBook(data)
