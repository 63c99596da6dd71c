"""Runs the evaluation protocol (evaluation.py) on both data sets for several rule books."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tanfang.monitoring.detection import evaluation as ev
from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.datasets import ElectricityData, WaterData, load_daiad, load_liu

TUNE_MONTHS = {2, 4, 6, 8, 10}
REPORT_MONTHS = {3, 5, 7, 9, 11}
# The water split is fixed (it does not follow --seed, which only draws the incidents): the
# households were permuted once with this seed, the first half tunes, the second reports.
SPLIT_SEED = 2024
PARTS = ("tune", "report")


def water_split(data: WaterData, seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    homes = rng.permutation(len(data.meters)).tolist()
    half = len(homes) // 2
    return {"tune": sorted(homes[:half]), "report": sorted(homes[half:])}


def _water_months(data: WaterData, homes: list[int]) -> tuple[float, dict[int, int]]:
    """Household-months of data after the warm-up (days with at least 12 readings)."""
    total_days = 0
    starts: dict[int, int] = {}
    for home in homes:
        ts = data.readings.ts[data.readings.meter == home]
        if not len(ts):
            continue
        starts[home] = int(ts[0]) + ev.WARMUP_DAYS * 86400
        later = ts[ts >= starts[home]]
        _days, counts = np.unique(later // 86400, return_counts=True)
        total_days += int((counts >= 12).sum())
    return total_days / 30.44, starts


def evaluate_water(
    data: WaterData,
    homes: list[int],
    books: Mapping[str, RuleBook],
    *,
    per_home: int,
    seed: int,
    lag_s: int,
) -> dict[str, ev.Outcome]:
    rng = np.random.default_rng(seed)
    trials = ev.water_onsets(data, homes, per_home, rng)
    months, starts = _water_months(data, homes)
    in_split = np.isin(data.readings.meter, homes)
    sub = ev.Readings(
        data.readings.meter[in_split], data.readings.ts[in_split], data.readings.value[in_split]
    )
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def series(trial: ev.Trial) -> tuple[np.ndarray, np.ndarray]:
        if trial.home not in cache:
            sel = data.readings.meter == trial.home
            cache[trial.home] = (data.readings.ts[sel], data.readings.value[sel])
        ts, reg = cache[trial.home]
        return ts, ev.inject_water(ts, reg, trial.onset)

    out = {}
    for name, book in books.items():
        delays = ev.run_trials(data.meters, series, trials, book, lag_s)
        false = ev.false_alerts(
            data.meters, sub, book, lag_s, lambda home, t: home in starts and t >= starts[home]
        )
        out[name] = ev.outcome(delays, len(false), months)
    return out


def evaluate_electricity(
    data: ElectricityData,
    months: set[int],
    books: Mapping[str, RuleBook],
    *,
    incidents: int,
    seed: int,
    lag_s: int,
) -> dict[str, ev.Outcome]:
    rng = np.random.default_rng(seed)
    trials = ev.electricity_onsets(data, months, incidents, rng)
    meters, normal = ev.electricity_readings(data)
    month_mask = ev.months_of(data.ts, months)
    household_months = month_mask.sum() / 48 / 30.44

    def series(trial: ev.Trial) -> tuple[np.ndarray, np.ndarray]:
        return data.ts, ev.inject_electricity(data, trial.onset)

    out = {}
    for name, book in books.items():
        delays = ev.run_trials(meters, series, trials, book, lag_s)
        false = ev.false_alerts(
            meters,
            normal,
            book,
            lag_s,
            lambda home, t: bool(ev.months_of(np.array([t]), months)[0]),
        )
        out[name] = ev.outcome(delays, len(false), household_months)
    return out


def run(
    data_dir: Path,
    *,
    books: Mapping[str, RuleBook] | None = None,
    quick: bool = False,
    seed: int = 2024,
    lag_s: int = 3600,
    parts: tuple[str, ...] = PARTS,
    datasets: tuple[str, ...] = ("electricity", "water"),
    incidents: int | None = None,
    households: int | None = None,
) -> dict[str, Any]:
    """{dataset: {part: {book: Outcome}}}.

    ``incidents``: per part for electricity, per household for water (default 200 and 12,
    40 and 3 with ``quick``); ``households``: only the first N households of each water part
    (quick iterations; the figures of record use all).
    """
    books = books or ev.books()
    results: dict[str, Any] = {}
    if "electricity" in datasets:
        elec = load_liu(data_dir)
        results["electricity"] = {
            part: evaluate_electricity(
                elec,
                TUNE_MONTHS if part == "tune" else REPORT_MONTHS,
                books,
                incidents=incidents or (40 if quick else 200),
                seed=seed,
                lag_s=lag_s,
            )
            for part in parts
        }
    if "water" in datasets:
        water = load_daiad(data_dir)
        split = water_split(water)
        results["water"] = {
            part: evaluate_water(
                water,
                split[part][:households] if households else split[part],
                books,
                per_home=incidents or (3 if quick else 12),
                seed=seed,
                lag_s=lag_s,
            )
            for part in parts
        }
    return results
