"""The demo city's meters, devices and readings, from real homes' data, and its first alerts.

Nothing about a meter's behaviour is invented: every reading comes from ``../shared/data``
(its README) through ``detection/datasets.py``:

- water: each demo water meter is one of the 92 DAIAD households of Alicante (cumulative
  register in litres, about hourly, with the households' real gaps, resets and absences);
- electricity: every third monitored home has an electricity meter replaying the Liu
  single-occupant house (kWh per half hour);
- the readings are time-shifted by whole weeks, so that a Monday stays a Monday and 07:00
  stays 07:00 (local wall-clock time of the home, now Asia/Shanghai), and so that they end
  at the demo's "now"; each meter takes a different stretch of its home's year (a
  different number of weeks back), so meters that share a home do not repeat each other.

Steps (``demo_monitoring_create``):

1. three data partners (water utility, power utility, device vendor) whose contact is the
   demo ``partner`` user, each with a published demo token (``DEMO_TOKENS``);
2. meters for about one active elder in six (``monitored_count``: 30 to 300), the demo
   visitors' elders first, then their communities, then the others; SOS buttons (and a
   few fall and smoke detectors) for the ``visitor``'s elders and a few more; an
   installation event for each;
3. an incident for the first of the ``visitor`` account's elders, the way the evaluation
   injects one (``detection/evaluation.py``): at a morning moment at least 12 hours before
   "now" when the home had just used water, the register stays flat from then on;
4. the readings go in through ``ingest.ingest_frame`` (one batch per partner, as a file
   delivery), then one tick of live detection (``tick.monitor_tick``) raises the alerts
   that the real data and the incident give.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tanfang.accounts.models import User
from tanfang.monitoring.detection.datasets import default_data_dir, load_daiad, load_liu
from tanfang.monitoring.ingest import ingest_frame
from tanfang.monitoring.models import (
    DataPartner,
    Device,
    DeviceKind,
    IngestSource,
    InstallationEvent,
    LinkAction,
    Meter,
    PartnerKind,
)
from tanfang.monitoring.partners import partner_create, token_hash
from tanfang.monitoring.tick import monitor_tick
from tanfang.registry.models import Elder, LifeStatus, VisitorAssignment

# About one elder in six has meters, from 30 (a small demo) to 300 (the default city):
# enough to see the alerts of real homes, few enough to build in seconds.
MONITORED_SHARE = 6
MONITORED_MIN, MONITORED_MAX = 30, 300
# A third of the monitored homes also have an electricity meter.
ELECTRICITY_EVERY = 3
# Eight weeks of history (what the chart's "usual" pattern compares with) and a few days.
HISTORY_DAYS = 59
WEEK_S = 7 * 86400
SHANGHAI_OFFSET_S = 8 * 3600  # Asia/Shanghai has no daylight saving time
# Incidents the way the evaluation injects them: a daytime moment after activity.
INCIDENT_MORNING = (7 * 3600, 10 * 3600 + 1800)
INCIDENT_BEFORE_NOW_S = 12 * 3600
ACTIVE_RISE_L = 2.0
MAX_GAP_S = 2 * 3600

# Published like the demo password: the demo's partners push with these (docs/demo.md).
DEMO_TOKENS = {
    "demo-water": "tanfang-demo-water",
    "demo-power": "tanfang-demo-power",
    "demo-devices": "tanfang-demo-devices",
}
PARTNERS = (
    ("demo-water", "北京自来水集团（演示）", PartnerKind.WATER_UTILITY),
    ("demo-power", "国网北京市电力公司（演示）", PartnerKind.POWER_UTILITY),
    ("demo-devices", "安康智能设备（演示）", PartnerKind.DEVICE_VENDOR),
)


@dataclass
class MonitoringReport:
    meters: int = 0
    devices: int = 0
    readings: int = 0
    alerts: int = 0
    incident_elder: int | None = None
    incident_at: dt.datetime | None = None
    timings: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- the real data


@dataclass(frozen=True)
class Home:
    """One real home's readings in its local wall-clock time (seconds as if UTC)."""

    local: np.ndarray  # int64
    value: np.ndarray  # float64


@lru_cache(maxsize=1)
def _water_homes(data_dir: Path) -> tuple[Home, ...]:
    """The DAIAD households, in the order of ``load_daiad``."""
    data = load_daiad(data_dir)
    local = (
        pl.Series(data.readings.ts * 1_000_000)
        .cast(pl.Datetime("us", "UTC"))
        .dt.convert_time_zone("Europe/Madrid")
        .dt.replace_time_zone(None)
        .dt.epoch("s")
        .to_numpy()
        .astype(np.int64)
    )
    homes = []
    for row in range(len(data.meters)):
        pick = data.readings.meter == row
        order = np.argsort(local[pick], kind="stable")
        homes.append(Home(local[pick][order], data.readings.value[pick][order]))
    return tuple(homes)


@lru_cache(maxsize=1)
def _electricity_home(data_dir: Path) -> Home:
    """The Liu house: its naive stamps are local time already (read as UTC)."""
    data = load_liu(data_dir)
    return Home(data.ts.astype(np.int64), data.total.astype(np.float64))


def _window(home: Home, end_local: int) -> tuple[np.ndarray, np.ndarray]:
    lo = int(np.searchsorted(home.local, end_local - HISTORY_DAYS * 86400, side="right"))
    hi = int(np.searchsorted(home.local, end_local, side="right"))
    return home.local[lo:hi], home.value[lo:hi]


def _aligned_end(now_local: int, last_local: int, weeks_back: int) -> int:
    """The latest moment of the data at the same weekday and time as ``now_local``,
    ``weeks_back`` weeks further back."""
    weeks = -(-(now_local - last_local) // WEEK_S)
    return now_local - (weeks + weeks_back) * WEEK_S


def _to_epoch(local: np.ndarray, shift: int) -> np.ndarray:
    """Local wall-clock seconds of the source, moved by ``shift`` (whole weeks), as UTC epoch
    seconds of a home in Asia/Shanghai."""
    return local + shift - SHANGHAI_OFFSET_S


def _covered(local: np.ndarray, end_local: int) -> bool:
    """The meter reports through the window: enough readings and none in the last day
    missing for more than two hours."""
    if len(local) < HISTORY_DAYS * 12:
        return False
    tail = local[local > end_local - 86400]
    return len(tail) > 12 and (end_local - tail[-1]) <= MAX_GAP_S


# --------------------------------------------------------------------------- the incident


def incident_onset(local: np.ndarray, register: np.ndarray, now_local: int) -> int | None:
    """A morning moment (local 07:00-10:30), at least 12 hours before ``now_local``, when
    the register had just risen (the person was active) and the meter kept reporting from
    two hours before it to the end; None when this stretch of data has no such moment."""
    latest = now_local - INCIDENT_BEFORE_NOW_S
    day = latest - latest % 86400
    for start in (day, day - 86400):
        lo, hi = start + INCIDENT_MORNING[0], min(start + INCIDENT_MORNING[1], latest)
        rises = np.flatnonzero(
            (local[1:] > lo) & (local[1:] <= hi) & (np.diff(register) >= ACTIVE_RISE_L)
        )
        for i in rises[::-1] + 1:
            onset = int(local[i])
            after = local[local >= onset - 2 * 3600]
            spacing = np.diff(np.append(after, now_local))
            if len(after) > 12 and spacing.max() <= MAX_GAP_S:
                return onset
    return None


def inject_flat(local: np.ndarray, register: np.ndarray, onset: int) -> np.ndarray:
    """From ``onset`` on the register stays flat, as ``evaluation.inject_water`` does for 24
    hours; here the home stays silent until the end of the data (the incident is ongoing)."""
    out = register.copy()
    i = int(np.searchsorted(local, onset, side="right"))
    if i > 0:
        out[i:] = register[i - 1]
    return out


# --------------------------------------------------------------------------- building


def monitored_count(elders: int) -> int:
    return min(MONITORED_MAX, max(MONITORED_MIN, elders // MONITORED_SHARE))


def _monitored_elders(count: int) -> list[Elder]:
    """Active elders to equip: the demo visitors' elders, then their communities, then the
    others, at most ``count``."""
    assigned = list(
        VisitorAssignment.objects.filter(visitor__username__in=("visitor", "volunteer"))
        .order_by("visitor__username", "elder_id")
        .values_list("elder_id", flat=True)
    )
    communities = list(
        User.objects.filter(username__in=("community", "village")).values_list("area_id", flat=True)
    )
    active = Elder.objects.filter(life_status=LifeStatus.ACTIVE)
    chosen = list(dict.fromkeys(assigned))
    for elder_id in (
        active.filter(community_id__in=communities).order_by("id").values_list("id", flat=True)
    ):
        if len(chosen) >= count:
            break
        if elder_id not in chosen:
            chosen.append(elder_id)
    if len(chosen) < count:
        taken = set(chosen)
        for elder_id in active.order_by("id").values_list("id", flat=True)[: count * 2]:
            if len(chosen) >= count:
                break
            if elder_id not in taken:
                chosen.append(elder_id)
    found = active.select_related("community").in_bulk(chosen)
    return [found[i] for i in chosen if i in found]


def _partners() -> dict[str, DataPartner]:
    contact = User.objects.get(username="partner")
    partners = {}
    for code, name, kind in PARTNERS:
        partner = partner_create(code=code, name=name, kind=kind, contact=contact)
        token = DEMO_TOKENS[code]
        DataPartner.objects.filter(pk=partner.pk).update(
            token_hash=token_hash(token), token_prefix=token[:8]
        )
        partners[code] = partner
    return partners


def _clear_store() -> None:
    """The demo's database was empty: readings left from an earlier build belong to nothing."""
    root = Path(settings.MONITORING_DIR)
    for part in ("readings", "hourly", "quarantine"):
        shutil.rmtree(root / part, ignore_errors=True)


@dataclass
class _Equipment:
    """What the demo installs, before it is written."""

    partners: dict[str, DataPartner]
    installed_on: dt.date
    meters: list[Meter] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    frames: dict[str, list[pl.DataFrame]] = field(default_factory=dict)

    def meter(self, meter_id: str, elder: Elder, utility: str, frame: pl.DataFrame) -> None:
        water = utility == "water"
        code = "demo-water" if water else "demo-power"
        self.meters.append(
            Meter(
                meter_id=meter_id,
                partner=self.partners[code],
                elder=elder,
                utility=utility,
                register="cumulative" if water else "interval",
                unit="L" if water else "kWh",
                interval_minutes=60 if water else 30,
                installed_on=self.installed_on,
            )
        )
        self.frames.setdefault(code, []).append(frame)

    def device(self, device_id: str, elder: Elder, kind: str) -> None:
        self.devices.append(
            Device(
                device_id=device_id,
                partner=self.partners["demo-devices"],
                elder=elder,
                kind=kind,
                installed_on=self.installed_on,
            )
        )

    def save(self) -> None:
        Meter.objects.bulk_create(self.meters)
        Device.objects.bulk_create(self.devices)
        at = timezone.make_aware(dt.datetime.combine(self.installed_on, dt.time(10)))
        meters = Meter.objects.filter(meter_id__in=[m.meter_id for m in self.meters])
        devices = Device.objects.filter(device_id__in=[d.device_id for d in self.devices])
        InstallationEvent.objects.bulk_create(
            [
                *(
                    InstallationEvent(meter=m, elder=m.elder, action=LinkAction.INSTALLED, at=at)
                    for m in meters
                ),
                *(
                    InstallationEvent(device=d, elder=d.elder, action=LinkAction.INSTALLED, at=at)
                    for d in devices
                ),
            ]
        )


def demo_monitoring_create(
    *,
    seed: int,
    now: dt.datetime | None = None,
    data_dir: Path | None = None,
) -> MonitoringReport:
    """Partners, meters, devices, readings and the first tick (the module's docstring)."""
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    report = MonitoringReport()
    mark = time.monotonic()
    homes = _water_homes(data_dir or default_data_dir())
    power = _electricity_home(data_dir or default_data_dir())
    report.timings["loading the real data"] = time.monotonic() - mark
    mark = time.monotonic()
    _clear_store()
    with transaction.atomic():
        kit = _Equipment(_partners(), (now - dt.timedelta(days=HISTORY_DAYS)).date())
        _equip(kit, homes, power, seed=seed, now=now, report=report)
        kit.save()
    report.meters, report.devices = len(kit.meters), len(kit.devices)
    report.timings["meters and devices"] = time.monotonic() - mark
    mark = time.monotonic()
    for code, name in (
        ("demo-water", "DAIAD swm_trialA, time-shifted (demo)"),
        ("demo-power", "Liu 2018 ew.RData, time-shifted (demo)"),
    ):
        if kit.frames.get(code):
            batch = ingest_frame(
                kit.partners[code],
                pl.concat(kit.frames[code]),
                source=IngestSource.FILE,
                name=name,
                now=now,
            )
            report.readings += batch.stored
    report.timings["ingesting readings"] = time.monotonic() - mark
    mark = time.monotonic()
    report.alerts = len(monitor_tick(now=now).raised)
    report.timings["detection tick"] = time.monotonic() - mark
    return report


def _equip(
    kit: _Equipment,
    homes: tuple[Home, ...],
    power: Home,
    *,
    seed: int,
    now: dt.datetime,
    report: MonitoringReport,
) -> None:
    """Meters with their readings and devices for the monitored elders; the incident."""
    rng = random.Random(f"tanfang-demo-monitoring:{seed}")
    elders = _monitored_elders(monitored_count(Elder.objects.count()))
    visitor_elders = set(
        VisitorAssignment.objects.filter(visitor__username="visitor").values_list(
            "elder_id", flat=True
        )
    )
    incident_for = min(visitor_elders & {e.pk for e in elders}, default=None)
    now_local = int(now.timestamp()) + SHANGHAI_OFFSET_S
    water_last = max(int(h.local[-1]) for h in homes if len(h.local))
    order = list(range(len(homes)))
    rng.shuffle(order)
    for n, elder in enumerate(elders):
        code = elder.community.code if elder.community_id else "0"
        incident = elder.pk == incident_for
        local, register, end = _water_stretch(
            homes, order, n, rng, now_local, water_last, incident=incident
        )
        onset = incident_onset(local, register, end) if incident else None
        if onset is not None:
            register = inject_flat(local, register, onset)
            report.incident_elder = elder.pk
            report.incident_at = dt.datetime.fromtimestamp(
                _to_epoch(np.array([onset]), now_local - end)[0], dt.UTC
            )
        water_id = f"W{code}{n:04d}"
        kit.meter(
            water_id, elder, "water", _frame(water_id, _to_epoch(local, now_local - end), register)
        )
        if n % ELECTRICITY_EVERY == 0:
            end_e = _aligned_end(now_local, int(power.local[-1]), rng.randrange(0, 38))
            local_e, kwh = _window(power, end_e)
            power_id = f"E{code}{n:04d}"
            kit.meter(
                power_id,
                elder,
                "electricity",
                _frame(power_id, _to_epoch(local_e, now_local - end_e), kwh),
            )
        kind = _device_kind(n, elder.pk in visitor_elders)
        if kind:
            kit.device(f"{kind.upper()}{code}{n:04d}", elder, kind)


def _water_stretch(
    homes: tuple[Home, ...],
    order: list[int],
    n: int,
    rng: random.Random,
    now_local: int,
    last_local: int,
    *,
    incident: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """A stretch of a real household's year for meter ``n``: (local times, register, end).

    The households are dealt in a shuffled order; each meter tries up to 40 stretches
    (household, weeks back) and keeps the first that reports through to its end (and, for
    the incident, that has a morning to inject it at). A household's real gaps before the
    last day stay: they are what meters do.
    """
    first: tuple[np.ndarray, np.ndarray, int] | None = None
    for attempt in range(40):
        home = homes[order[(n + attempt * 7) % len(order)]]
        end = _aligned_end(now_local, last_local, rng.randrange(0, 40))
        local, register = _window(home, end)
        if first is None and len(local):
            first = (local, register, end)
        if not _covered(local, end):
            continue
        if incident and incident_onset(local, register, end) is None:
            continue
        return local, register, end
    return first or (np.zeros(0, np.int64), np.zeros(0), now_local)


def _device_kind(n: int, visitors_elder: bool) -> str:
    if visitors_elder or n % 25 == 0:
        return DeviceKind.SOS
    if n % 50 == 7:
        return DeviceKind.FALL
    if n % 50 == 17:
        return DeviceKind.SMOKE
    return ""


def _frame(meter_id: str, ts: np.ndarray, value: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "meter_id": pl.Series([meter_id] * len(ts), dtype=pl.String),
            "ts": pl.Series(ts, dtype=pl.Int64),
            "value": pl.Series(value, dtype=pl.Float64),
        }
    )
