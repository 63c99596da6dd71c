"""Stored profiles: the nightly learning of every meter's routine, so that the tick need not.

``profiles_learn(now=...)`` (``tanfang monitor learn``, every night) does the learning the
local engine does inside a tick (``engine._run_group``: the usage grid of the learning
history, ``Profile.learn``, the inactivity and quiet spells), for every active meter, exactly
as a tick at ``now`` with the usual look-back would, and stores what the rules read from a
profile: per meter and local day the activity thresholds, and each rule's thresholds (the
profile's cached tables, keyed by the rule's parameters). The file holds the local days from
before the longest look-back to two days after ``now`` (a day's profile depends only on the
days before the day before it, so tomorrow's is known tonight).

One file per learning day, ``MONITORING_DIR/profiles/YYYY-MM-DD.npz`` (plain arrays, no
pickle), written atomically (tmp + rename), with the meter ids, the moment learned and the
rule book's fingerprint. ``profiles_load(book, now=...)`` returns the newest file's profiles
when it was learned in the last ``FRESH_S`` (2 days) with the same rule book, else None.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from tanfang.monitoring.detection import engine
from tanfang.monitoring.detection.config import RuleBook, RuleSet
from tanfang.monitoring.detection.grid import Grid, calendar, spread
from tanfang.monitoring.detection.normalise import normalise
from tanfang.monitoring.detection.profile import Profile
from tanfang.monitoring.detection.tables import MeterTable, Readings

log = logging.getLogger(__name__)

FRESH_S = 2 * 86400
DAYS_AHEAD = 2
FORMAT = 1


def profiles_dir() -> Path:
    return Path(settings.MONITORING_DIR) / "profiles"


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def book_fingerprint(book: RuleBook) -> str:
    """The rule book's content hash: profiles learned under other rules are not used."""
    return _digest(book.raw)


def rules_fingerprint(rules: RuleSet) -> str:
    """One district's resolved rules (districts without their own rules share the city's)."""
    return _digest(dataclasses.asdict(rules))


class StoredProfile(Profile):
    """A profile read from the store: its thresholds are the cached tables; a batch of its
    meters (``take``) keeps them (``Profile.take`` drops caches: they are recomputed there)."""

    def take(self, rows: np.ndarray) -> Profile:
        out = super().take(rows)
        if out is not self:
            out._cache = {k: v[rows] for k, v in self._cache.items()}
        return out


@dataclass
class GroupProfile:
    """The stored profile of the meters of one (rule set, utility)."""

    meter_ids: np.ndarray  # (M,) str
    day0: int
    act_thr: np.ndarray  # (M, D)
    act_thr_learned: np.ndarray  # (M, D)
    weekday_of_day: np.ndarray  # (D,)
    tables: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)  # (M, D, 24)

    def profile(self, positions: np.ndarray, learning: Any) -> StoredProfile:
        """The profile of some meters (positions in ``meter_ids``), in that order."""
        p = StoredProfile(
            day0=self.day0,
            act_thr=self.act_thr[positions],
            weekday_of_day=self.weekday_of_day,
            act_thr_learned=self.act_thr_learned[positions],
            learning=learning,
        )
        p._cache = {k: v[positions] for k, v in self.tables.items()}
        return p


@dataclass
class Stored:
    """A profile file: when learned, under which rules, per (rules fingerprint, utility)."""

    learned_at: int
    book: str
    groups: dict[tuple[str, str], GroupProfile]
    path: Path | None = None

    @property
    def day0(self) -> int:
        return min((g.day0 for g in self.groups.values()), default=0)

    def covers(self, first_day: int, last_day: int) -> bool:
        """Whether every group holds the local days first_day..last_day."""
        return all(
            g.day0 <= first_day and g.day0 + g.act_thr.shape[1] - 1 >= last_day
            for g in self.groups.values()
        )


# --------------------------------------------------------------------------- learning


def _utc_day(ts: int) -> int:
    return ts // 86400


def _learn_batch(
    meters: MeterTable,
    readings: Readings,
    rules: RuleSet,
    utility: str,
    ticks: np.ndarray,
    lag_s: int,
    step_s: int,
    grid_end: int,
) -> Profile | None:
    """The profile ``engine._run_group`` learns for these meters at these ticks (same grid
    start, the same readings: up to the last tick's horizon), on a grid extended to
    ``grid_end`` so that the days after the last tick get their thresholds too, and every
    rule's thresholds computed (left in the profile's cache)."""
    active_rules = rules.for_utility(utility)
    if not active_rules or all(r.kind == "data_silence" for r in active_rules):
        return None
    n = len(meters)
    horizon_end = int(ticks[-1]) - lag_s
    g0 = (int(ticks[0]) - engine.history_seconds(rules)) // step_s * step_s
    grid = Grid(g0, step_s, max(1, -(-(grid_end - g0) // step_s)))
    keep = (readings.ts <= horizon_end) & (readings.ts > g0 - 86400)
    if not keep.all():
        readings = Readings(readings.meter[keep], readings.ts[keep], readings.value[keep])
    limits = rules.limits[utility]
    norm = normalise(
        readings,
        meters,
        max_per_hour=np.full(n, float(limits["max_per_hour"])),
        max_gap_s=np.full(n, float(limits["max_gap_hours"]) * 3600),
        future_cutoff=None,
    )
    usage, peak = spread(norm, grid, n)
    cal = calendar(grid, meters.tz)
    zone_idx = cal.zone_index(meters.tz)
    profile, _feat = engine.learned(
        usage, peak, grid, cal, zone_idx, rules, utility, active_rules, step_s=step_s
    )
    for rule in active_rules:  # what the rules will ask for (rules.py), now in the cache
        p = rule.params
        if rule.kind == "missed_routine":
            if p["basis"] == "days":
                profile.day_thresholds(p)
            elif p["basis"] == "spell":
                profile.spell_quantile(
                    float(p["quantile"]), int(p["around_hours"]), int(p["min_spells"])
                )
            else:
                profile.inactivity_quantile(float(p["quantile"]))
        elif rule.kind == "low_usage":
            profile.cumulative_quantile(float(p["quantile"]))
    return profile


def _days(profile: Profile, first_day: int, last_day: int) -> slice:
    lo, hi = first_day - profile.day0, last_day - profile.day0 + 1
    if lo < 0 or hi > profile.days:
        raise ValueError("the learning grid does not cover the stored days")
    return slice(lo, hi)


def profiles_learn(
    meters: MeterTable,
    readings: Readings,
    book: RuleBook,
    *,
    now: int,
    lag_s: int = engine.DEFAULT_LAG_S,
    tick_s: int = engine.DEFAULT_STEP_S,
    lookback_s: int = engine.DEFAULT_LOOKBACK_S,
    max_lookback_s: int = 14 * 86400,
) -> Stored:
    """Learn the profiles of ``meters`` as a tick at ``now`` would (``readings``: the
    learning history up to ``now``, as the tick reads it)."""
    step_s = engine.DEFAULT_STEP_S
    ticks = np.arange(now - lookback_s // tick_s * tick_s, now + 1, tick_s, dtype=np.int64)
    plan = engine._Plan(meters, book, ticks, lag_s, step_s, None)
    short = max(
        engine.history_seconds(plan.rules(g), learning=False) for g in set(plan.group_of.tolist())
    )
    # Local days (any time zone is within a day of UTC): the longest look-back's grid ..
    # two days after now.
    first_day = _utc_day(now - max_lookback_s - short - 86400) - 1
    last_day = _utc_day(now) + DAYS_AHEAD + 1
    grid_end = (last_day + 2) * 86400
    by_meter = engine._ByMeter(readings)
    parts: dict[tuple[str, str], list[tuple[np.ndarray, Profile]]] = {}
    for g, rows in plan.tasks(np.arange(len(meters))):
        utility = plan.utility(g)
        if utility == "device":
            continue
        rules = plan.rules(g)
        sub = meters if len(rows) == len(meters) else meters.take(rows)
        profile = _learn_batch(
            sub, by_meter.readings_of(rows), rules, utility, ticks, lag_s, step_s, grid_end
        )
        if profile is not None:
            parts.setdefault((rules_fingerprint(rules), utility), []).append((rows, profile))
    groups: dict[tuple[str, str], GroupProfile] = {}
    for key, batches in parts.items():
        keys = list(batches[0][1]._cache)
        ids, act, learned, tables = [], [], [], {k: [] for k in keys}  # type: ignore[var-annotated]
        for rows, profile in batches:
            days = _days(profile, first_day, last_day)
            ids.extend(meters.meter_id[int(r)] for r in rows)
            act.append(profile.act_thr[:, days])
            learned.append(profile.act_thr_learned[:, days])
            weekday = profile.weekday_of_day[days]
            for k in keys:
                tables[k].append(profile._cache[k][:, days])
        groups[key] = GroupProfile(
            meter_ids=np.array(ids, dtype=str),
            day0=first_day,
            act_thr=np.concatenate(act),
            act_thr_learned=np.concatenate(learned),
            weekday_of_day=weekday,
            tables={k: np.concatenate(v) for k, v in tables.items()},
        )
    return Stored(learned_at=now, book=book_fingerprint(book), groups=groups)


# --------------------------------------------------------------------------- files


def profiles_save(stored: Stored, folder: Path | None = None) -> Path:
    """Write ``stored`` as ``<folder>/YYYY-MM-DD.npz`` (the UTC day learned), atomically."""
    folder = folder or profiles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    day = dt.datetime.fromtimestamp(stored.learned_at, dt.UTC).date().isoformat()
    arrays: dict[str, np.ndarray] = {}
    groups = []
    for i, ((rules_fp, utility), g) in enumerate(sorted(stored.groups.items())):
        prefix = f"g{i}"
        keys = list(g.tables)
        groups.append(
            {
                "rules": rules_fp,
                "utility": utility,
                "day0": g.day0,
                "tables": [list(k) for k in keys],
            }
        )
        arrays[f"{prefix}_meter_ids"] = g.meter_ids
        arrays[f"{prefix}_act_thr"] = g.act_thr
        arrays[f"{prefix}_act_thr_learned"] = g.act_thr_learned
        arrays[f"{prefix}_weekday_of_day"] = g.weekday_of_day
        for j, k in enumerate(keys):
            arrays[f"{prefix}_t{j}"] = g.tables[k]
    meta = {
        "format": FORMAT,
        "learned_at": stored.learned_at,
        "book": stored.book,
        "groups": groups,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = folder / f"{day}.npz"
    tmp = folder / f".{day}.{os.getpid()}.tmp.npz"
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return path


def profiles_read(path: Path) -> Stored:
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: unknown format {meta.get('format')!r}")
        groups: dict[tuple[str, str], GroupProfile] = {}
        for i, g in enumerate(meta["groups"]):
            prefix = f"g{i}"
            groups[(g["rules"], g["utility"])] = GroupProfile(
                meter_ids=data[f"{prefix}_meter_ids"],
                day0=int(g["day0"]),
                act_thr=data[f"{prefix}_act_thr"],
                act_thr_learned=data[f"{prefix}_act_thr_learned"],
                weekday_of_day=data[f"{prefix}_weekday_of_day"],
                tables={tuple(k): data[f"{prefix}_t{j}"] for j, k in enumerate(g["tables"])},
            )
    return Stored(int(meta["learned_at"]), str(meta["book"]), groups, path)


def profiles_load(book: RuleBook, *, now: int, folder: Path | None = None) -> Stored | None:
    """The newest stored profiles learned at or before ``now``, when learned in the last
    ``FRESH_S`` under the same rule book; None otherwise (the tick then learns itself)."""
    folder = folder or profiles_dir()
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("????-??-??.npz"), reverse=True):
        try:
            stored = profiles_read(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("stored profiles %s unreadable: %s", path, exc)
            continue
        if stored.learned_at > now:
            continue
        if now - stored.learned_at > FRESH_S:
            log.info("stored profiles %s are stale: not used", path.name)
            return None
        if stored.book != book_fingerprint(book):
            log.info("stored profiles %s were learned under other rules: not used", path.name)
            return None
        return stored
    return None


def profiles_prune(*, keep: int = 7, folder: Path | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` profile files."""
    folder = folder or profiles_dir()
    files = sorted(folder.glob("????-??-??.npz"), reverse=True)
    for path in files[keep:]:
        path.unlink(missing_ok=True)
    return files[keep:]


@dataclass
class LearnReport:
    now: dt.datetime
    meters: int = 0
    readings: int = 0
    path: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.now.isoformat()}: profiles of {self.meters} meters learned from "
            f"{self.readings} readings, {self.path or 'nothing stored'}, {self.seconds:.1f} s"
        )


def monitor_learn(*, now: dt.datetime | None = None) -> LearnReport:
    """The nightly job: learn every active meter's profile from the store and save it."""
    from tanfang.monitoring import tick  # the tick's meters, rules and store reads

    started = time.perf_counter()
    now = now or timezone.now()
    report = LearnReport(now=now)
    now_s = int(now.timestamp())
    live = tick.meter_table_from_db(on=timezone.localdate(now))
    report.meters = len(live)
    if live.meters:
        book = tick.rule_book_from_db()
        readings = tick.readings_for(live.table, book, now_s, engine.DEFAULT_LOOKBACK_S)
        report.readings = len(readings)
        stored = profiles_learn(live.table, readings, book, now=now_s)
        report.path = str(profiles_save(stored))
        profiles_prune()
    report.seconds = time.perf_counter() - started
    log.info("monitor learn %s", report.summary())
    return report


def positions(ids: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    """Positions of ``wanted`` meter ids in ``ids`` (-1: not there)."""
    index = {str(m): i for i, m in enumerate(ids.tolist())}
    return np.array([index.get(str(m), -1) for m in wanted], dtype=np.int64)
