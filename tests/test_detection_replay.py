"""Replay never uses the future: what is raised by t does not depend on readings after t."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.tables import MeterTable, Readings

H = 3600
T0 = 1_704_038_400
BOOK = RuleBook({"learning": {"days": 3, "min_days": 1}})
METERS = MeterTable.build(
    [
        {
            "meter_id": "W",
            "elder_id": "E",
            "utility": "water",
            "register": "cumulative",
            "unit": "L",
            "interval_minutes": 60,
        },
        {
            "meter_id": "P",
            "elder_id": "E",
            "utility": "electricity",
            "register": "interval",
            "unit": "Wh",
            "interval_minutes": 30,
        },
    ]
)


def readings(data: st.DataObject) -> Readings:
    n_w = data.draw(st.integers(20, 140))
    n_p = data.draw(st.integers(20, 260))
    hours = np.array(data.draw(st.lists(st.integers(0, 20), min_size=n_w, max_size=n_w)))
    w_ts = T0 + np.cumsum(
        data.draw(
            st.lists(st.sampled_from([3600, 3600, 3600, 7200, 20000]), min_size=n_w, max_size=n_w)
        )
    )
    w_val = 1000 + np.cumsum(hours * (hours > 12))
    p_ts = T0 + 1800 * np.array(
        sorted(set(data.draw(st.lists(st.integers(1, 300), min_size=n_p, max_size=n_p))))
    )
    p_val = np.array(
        data.draw(
            st.lists(
                st.sampled_from([20.0, 25.0, 400.0, 0.0]), min_size=len(p_ts), max_size=len(p_ts)
            )
        )
    )
    meter = np.concatenate([np.zeros(len(w_ts), np.int32), np.ones(len(p_ts), np.int32)])
    ts = np.concatenate([w_ts, p_ts]).astype(np.int64)
    values = np.concatenate([w_val, p_val]).astype(np.float64)
    order = np.array(data.draw(st.permutations(range(len(ts)))), dtype=np.int64)
    return Readings(meter[order], ts[order], values[order])


def raised_by(alerts, t):
    return sorted(
        (a.meter, a.rule, a.detected_at, a.started_at, tuple(sorted(map(str, a.evidence.items()))))
        for a in alerts
        if a.detected_at <= t
    )


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_alerts_raised_by_t_ignore_readings_after_t(data: st.DataObject) -> None:
    full = readings(data)
    lag = data.draw(st.sampled_from([0, 1800, 3600]))
    ticks = engine.ticks_between(T0 + 4 * 86400, T0 + 6 * 86400, 900)
    cut = int(data.draw(st.sampled_from(ticks.tolist())))
    before = full.ts <= cut - lag
    part = Readings(full.meter[before], full.ts[before], full.value[before])
    a = engine.run(METERS, full, BOOK, ticks, lag_s=lag).alerts
    b = engine.run(METERS, part, BOOK, ticks, lag_s=lag).alerts
    assert raised_by(a, cut) == raised_by(b, cut)


def test_per_meter_function_equals_the_batch() -> None:
    rng = np.random.default_rng(7)
    ts = T0 + np.arange(1, 8 * 48, dtype=np.int64) * 1800
    values = rng.choice([20.0, 25.0, 500.0], size=len(ts), p=[0.5, 0.3, 0.2])
    values[250:300] = 20.0
    w_ts = T0 + np.arange(1, 8 * 24, dtype=np.int64) * 3600
    w_val = 1000 + np.cumsum(rng.choice([0, 0, 30], size=len(w_ts)))
    batch = Readings(
        np.concatenate([np.zeros(len(w_ts), np.int32), np.ones(len(ts), np.int32)]),
        np.concatenate([w_ts, ts]),
        np.concatenate([w_val, values]).astype(np.float64),
    )
    ticks = engine.ticks_between(T0 + 4 * 86400, T0 + 8 * 86400, 900)
    together = engine.run(METERS, batch, BOOK, ticks).alerts
    alone = []
    for row, (t, v) in enumerate([(w_ts, w_val), (ts, values)]):
        meter = {
            k: getattr(METERS, k)[row] for k in ("meter_id", "elder_id", "utility", "register")
        }
        meter.update(unit=["L", "Wh"][row], interval_minutes=[60, 30][row])
        for alert in engine.detect_meter(meter, t, v.astype(np.float64), BOOK, ticks):
            alert.meter = row
            alone.append(alert)
    key = lambda a: (a.meter, a.rule, a.detected_at, a.resolved_at)  # noqa: E731
    assert sorted(map(key, together)) == sorted(map(key, alone))
    assert together  # the data do raise something
