"""The evaluation protocol of issue 4 on real meter data (docs/detection.md, "Evaluation").

1. Incidents are injected the way a real one happens: at a random daytime moment (local
   08:00-20:00) when the person had been active in the previous two hours and the meter keeps
   reporting, the home goes silent for 24 hours: the water register stays flat; electricity
   falls to the fridge plus every other circuit's own base load. Each incident is a separate
   copy of its home's data (one incident per copy), replayed tick by tick with the arrival lag.
2. An incident is detected when a person alert (inactivity, missed_routine, low_usage) is
   raised on that copy within 12 hours after the onset; time to detection = raised - onset.
3. False alerts: person alerts raised on the unmodified data, per household per month of data.
4. Tune on one part, report on the other: water splits households (seeded), electricity (one
   house) splits months (Feb, Apr, Jun, Aug, Oct to tune; Mar, May, Jul, Sep, Nov to report;
   January is the learning warm-up).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import PERSON_KINDS, RuleBook
from tanfang.monitoring.detection.datasets import ElectricityData, WaterData, liu_meter
from tanfang.monitoring.detection.tables import MeterTable, Readings

DETECT_WITHIN_S = 12 * 3600
INCIDENT_S = 24 * 3600
WARMUP_DAYS = 35
TICK_S = 900


@dataclass
class Outcome:
    incidents: int
    detected: int
    delays_h: list[float]
    false_alerts: int
    household_months: float

    @property
    def rate(self) -> float:
        return self.detected / self.incidents if self.incidents else float("nan")

    @property
    def median_h(self) -> float:
        return float(np.median(self.delays_h)) if self.delays_h else float("nan")

    @property
    def false_per_month(self) -> float:
        return self.false_alerts / self.household_months if self.household_months else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "detected_12h": round(self.rate, 4),
            "median_hours": round(self.median_h, 2),
            "false_alerts": self.false_alerts,
            "household_months": round(self.household_months, 1),
            "false_per_household_month": round(self.false_per_month, 3),
        }


@dataclass
class Trial:
    home: int  # meter row of the home
    onset: int  # epoch s


def _local_hour(ts: np.ndarray, tz: str) -> np.ndarray:
    import polars as pl

    series = pl.Series(ts * 1_000_000).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(tz)
    return series.dt.hour().to_numpy() + series.dt.minute().to_numpy() / 60.0


# -- water ---------------------------------------------------------------------------------
def water_onsets(
    data: WaterData, homes: list[int], per_home: int, rng: np.random.Generator
) -> list[Trial]:
    trials = []
    for home in homes:
        sel = data.readings.meter == home
        ts, reg = data.readings.ts[sel], data.readings.value[sel]
        if len(ts) < 500:
            continue
        start, end = ts[0] + WARMUP_DAYS * 86400, ts[-1] - INCIDENT_S
        if end <= start:
            continue
        cand = rng.integers(start, end, size=per_home * 40)
        hours = _local_hour(cand, data.meters.tz[home])
        cand = cand[(hours >= 8) & (hours < 20)]
        found = 0
        for onset in cand.tolist():
            if _water_ok(ts, reg, onset):
                trials.append(Trial(home, int(onset)))
                found += 1
                if found == per_home:
                    break
    return trials


def _water_ok(ts: np.ndarray, reg: np.ndarray, onset: int) -> bool:
    i = int(np.searchsorted(ts, onset, side="right"))  # first reading after the onset
    lo = int(np.searchsorted(ts, onset - 2 * 3600, side="right"))
    if i == 0 or i >= len(ts) or lo == 0:
        return False
    # Active in the previous two hours: the register rose in a reading that ended then.
    if not (np.diff(reg[lo - 1 : i]) >= 2).any():
        return False
    # The meter keeps reporting: no gap over two hours from before the onset to 24 h after.
    j = int(np.searchsorted(ts, onset + INCIDENT_S, side="right"))
    window = ts[max(lo - 1, 0) : min(j + 1, len(ts))]
    return bool(
        len(window) > 20 and np.diff(window).max() <= 2 * 3600 and window[-1] >= onset + INCIDENT_S
    )


def inject_water(ts: np.ndarray, reg: np.ndarray, onset: int) -> np.ndarray:
    """The register stays at its last value before the onset for 24 hours."""
    out = reg.copy()
    i = int(np.searchsorted(ts, onset, side="right"))
    j = int(np.searchsorted(ts, onset + INCIDENT_S, side="right"))
    if i > 0:
        flat = reg[i - 1]
        out[i:j] = flat
        out[j:] = reg[j:] - (reg[j - 1] - flat) if j > i else reg[j:]
    return out


# -- electricity ---------------------------------------------------------------------------
FRIDGE = "FridgeRange"


def electricity_onsets(
    data: ElectricityData, months: set[int], n: int, rng: np.random.Generator
) -> list[Trial]:
    others = data.total - data.circuits[FRIDGE]
    base = sum(np.quantile(c, 0.05) for k, c in data.circuits.items() if k != FRIDGE)
    month = np.array([dt.datetime.fromtimestamp(int(t), dt.UTC).month for t in data.ts])
    hours = _local_hour(data.ts, "UTC")
    ok = np.flatnonzero(np.isin(month, list(months)) & (hours >= 8) & (hours < 20))
    ok = ok[(ok >= 4) & (ok < len(data.ts) - 48)]
    active = np.array([(others[i - 3 : i + 1] - base > 0.03).any() for i in ok])
    pool = ok[active]
    pick = rng.choice(pool, size=min(n, len(pool)), replace=False)
    # The onset is the end of an active half hour, so the person was active in the 2 h before.
    return [Trial(0, int(data.ts[i])) for i in sorted(pick.tolist())]


def inject_electricity(data: ElectricityData, onset: int) -> np.ndarray:
    """Every circuit but the fridge at its own base load for 24 hours."""
    total = data.total.copy()
    inside = (data.ts > onset) & (data.ts <= onset + INCIDENT_S)
    base = sum(np.quantile(c, 0.05) for k, c in data.circuits.items() if k != FRIDGE)
    total[inside] = data.circuits[FRIDGE][inside] + base
    return total


# -- running -------------------------------------------------------------------------------
def _person_alerts(res: engine.Result) -> list[engine.Alert]:
    return [a for a in res.alerts if a.kind in PERSON_KINDS]


def run_trials(
    meters: MeterTable,
    series: Callable[[Trial], tuple[np.ndarray, np.ndarray]],
    trials: list[Trial],
    book: RuleBook,
    lag_s: int,
) -> list[float | None]:
    """Delay (hours) to the first person alert within 12 h of each onset, None if missed.

    Trials are replayed in weekly blocks: one batch of copies, one shared run of ticks.
    """
    delays: list[float | None] = [None] * len(trials)
    history = engine.history_seconds(book.for_district(None))
    blocks: dict[int, list[int]] = {}
    for i, trial in enumerate(trials):
        blocks.setdefault(trial.onset // (7 * 86400), []).append(i)
    for members in blocks.values():
        first = min(trials[i].onset for i in members)
        last = max(trials[i].onset for i in members)
        ticks = engine.ticks_between(
            first // TICK_S * TICK_S - 86400, last + DETECT_WITHIN_S + TICK_S, TICK_S
        )
        rows: list[dict[str, object]] = []
        m_idx, ts_all, val_all = [], [], []
        for n, i in enumerate(members):
            trial = trials[i]
            ts, values = series(trial)
            keep = (ts > ticks[0] - history - 86400) & (ts <= ticks[-1])
            row: dict[str, object] = {
                "meter_id": f"{meters.meter_id[trial.home]}#{i}",
                "elder_id": meters.elder_id[trial.home],
                "utility": meters.utility[trial.home],
                "register": meters.register[trial.home],
                "unit": "L" if meters.utility[trial.home] != "electricity" else "kWh",
                "tz": meters.tz[trial.home],
            }
            if not np.isnan(meters.interval_s[trial.home]):
                row["interval_minutes"] = meters.interval_s[trial.home] / 60
            rows.append(row)
            m_idx.append(np.full(int(keep.sum()), n, dtype=np.int32))
            ts_all.append(ts[keep])
            val_all.append(values[keep])
        batch = MeterTable.build(rows)
        readings = Readings(np.concatenate(m_idx), np.concatenate(ts_all), np.concatenate(val_all))
        res = engine.run(batch, readings, book, ticks, lag_s=lag_s)
        for alert in _person_alerts(res):
            i = members[alert.meter]
            onset = trials[i].onset
            if onset < alert.detected_at <= onset + DETECT_WITHIN_S:
                delay = (alert.detected_at - onset) / 3600
                current = delays[i]
                if current is None or delay < current:
                    delays[i] = delay
    return delays


def false_alerts(
    meters: MeterTable,
    readings: Readings,
    book: RuleBook,
    lag_s: int,
    counted: Callable[[int, int], bool],
) -> list[engine.Alert]:
    """Person alerts on the normal data, raised at moments ``counted(home, t)`` accepts."""
    start = int(readings.ts.min()) // TICK_S * TICK_S
    end = int(readings.ts.max())
    ticks = engine.ticks_between(start, end, TICK_S)
    res = engine.run(meters, readings, book, ticks, lag_s=lag_s)
    return [a for a in _person_alerts(res) if counted(a.meter, a.detected_at)]


def outcome(delays: list[float | None], false: int, months: float) -> Outcome:
    hits = [d for d in delays if d is not None]
    return Outcome(len(delays), len(hits), hits, false, months)


def electricity_readings(
    data: ElectricityData, total: np.ndarray | None = None
) -> tuple[MeterTable, Readings]:
    meters = MeterTable.build([liu_meter()])
    values = data.total if total is None else total
    return meters, Readings(np.zeros(len(data.ts), np.int32), data.ts.copy(), values.copy())


def months_of(ts: np.ndarray, months: set[int]) -> np.ndarray:
    return np.array([dt.datetime.fromtimestamp(int(t), dt.UTC).month in months for t in ts])


def books() -> Mapping[str, RuleBook]:
    from tanfang.monitoring.detection.config import FIXED_PRACTICE

    return {"routine": RuleBook(), "fixed_12h": RuleBook(FIXED_PRACTICE)}
