"""The demo city's monitoring: partners with their published tokens, meters and devices for
the monitored elders, readings that are real homes' readings moved by whole weeks to end at
"now", and a real alert from the incident injected for one of the visitor's elders."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl
from django.utils import timezone

from tanfang.accounts.models import User
from tanfang.demo import monitoring as demo
from tanfang.demo.services import DemoReport, demo_build
from tanfang.monitoring import store
from tanfang.monitoring.detection.datasets import default_data_dir
from tanfang.monitoring.models import Alert, Device, IngestBatch, Meter
from tanfang.monitoring.partners import partner_for_token
from tanfang.registry.models import VisitorAssignment

WEEK = 7 * 86400
LOCAL = 8 * 3600


def test_the_demo_city_is_monitored_with_real_homes_data(
    db: Any, settings: Any, tmp_path: Any
) -> None:
    """One build (it reads the real data and runs a tick), checked step by step."""
    settings.MONITORING_DIR = tmp_path / "monitoring"
    built = demo_build(seed=11, elders=120)
    _partners_meters_and_devices()
    _readings_are_real_homes_moved_by_whole_weeks_to_end_now(built)
    _the_incident_raises_a_real_alert_for_the_visitors_elder(built)


def _partners_meters_and_devices() -> None:
    partner = User.objects.get(username="partner")
    for code, token in demo.DEMO_TOKENS.items():
        found = partner_for_token(token)
        assert found is not None and (found.code, found.contact) == (code, partner)
    assert Meter.objects.filter(utility="water").count() == demo.monitored_count(120) == 30
    assert Meter.objects.filter(utility="electricity").count() == 10
    hers = set(
        VisitorAssignment.objects.filter(visitor__username="visitor").values_list(
            "elder_id", flat=True
        )
    )
    assert hers <= set(Meter.objects.values_list("elder_id", flat=True))
    assert hers <= set(Device.objects.filter(kind="sos").values_list("elder_id", flat=True))
    assert {b.source for b in IngestBatch.objects.all()} == {"file"}
    assert sum(b.quarantined for b in IngestBatch.objects.all()) == 0


def _readings_are_real_homes_moved_by_whole_weeks_to_end_now(built: DemoReport) -> None:
    now = int(timezone.now().timestamp())
    frame = store.readings_scan().collect()
    assert frame.height == built.monitoring.readings  # type: ignore[union-attr]
    last = frame.group_by("meter_id").agg(pl.col("ts").max())["ts"].to_numpy()
    assert (last <= now).all()
    assert np.median(now - last) < 3 * 3600  # they report up to "now"
    homes = demo._water_homes(default_data_dir())
    water = frame.filter(pl.col("meter_id").str.starts_with("W"))
    for meter_id, rows in list(water.sort("ts").group_by("meter_id", maintain_order=True))[:6]:
        local = rows["ts"].to_numpy() + LOCAL
        values = rows["value"].to_numpy()
        # Some DAIAD household has exactly these readings, a whole number of weeks earlier.
        match = [h for h in homes if len(h.local) and _same_stretch(h, local, values)]
        assert match, meter_id
    power = demo._electricity_home(default_data_dir())
    first = frame.filter(pl.col("meter_id").str.starts_with("E"))["meter_id"].min()
    rows = frame.filter(pl.col("meter_id") == first).sort("ts")
    local = rows["ts"].to_numpy() + LOCAL
    shifts = local[0] - power.local
    found = []
    for shift in shifts[shifts % WEEK == 0]:
        i = int(np.searchsorted(power.local, local[0] - shift))
        stretch = slice(i, i + len(local))
        if np.array_equal(power.local[stretch] + shift, local) and np.allclose(
            rows["value"].to_numpy(),
            power.value[stretch] * 1000,  # kWh -> Wh
        ):
            found.append(shift)
    assert len(found) == 1


def _same_stretch(home: Any, local: np.ndarray, values: np.ndarray) -> bool:
    """Whether ``home`` has these readings ``k`` whole weeks earlier (one reading per time,
    as the store keeps: the autumn's repeated hour of Madrid gives some times twice)."""
    shifts = local[0] - home.local
    for shift in np.unique(shifts[shifts % WEEK == 0]):
        inside = (home.local >= local[0] - shift) & (home.local <= local[-1] - shift)
        source = (
            pl.DataFrame({"t": home.local[inside] + shift, "v": home.value[inside]})
            .group_by("t")
            .agg(pl.col("v").max())
            .sort("t")
        )
        if not np.array_equal(source["t"].to_numpy(), local):
            continue
        # The incident's meter is flat from its onset on; the others are the household's own.
        original = source["v"].to_numpy()
        flat_from = np.flatnonzero(original != values)
        return bool(
            not len(flat_from) or (values[flat_from[0] :] == values[flat_from[0] - 1]).all()
        )
    return False


def _the_incident_raises_a_real_alert_for_the_visitors_elder(built: DemoReport) -> None:
    report = built.monitoring
    assert report is not None and report.incident_elder is not None
    first = (
        VisitorAssignment.objects.filter(visitor__username="visitor")
        .order_by("elder_id")
        .values_list("elder_id", flat=True)
        .first()
    )
    assert report.incident_elder == first
    assert report.incident_at is not None
    onset_local = report.incident_at + dt.timedelta(hours=8)
    assert dt.time(7) <= onset_local.time() <= dt.time(10, 30)
    assert timezone.now() - report.incident_at >= dt.timedelta(hours=12)
    alert = Alert.objects.get(elder_id=first, meter__utility="water", state="open")
    assert alert.kind in ("missed_routine", "inactivity")
    assert alert.assigned_to == User.objects.get(username="visitor")
    assert abs(alert.started_at - report.incident_at) <= dt.timedelta(hours=1)
    series = alert.evidence["series"]
    assert len(series["usage"]) == 48
    assert all(v in (0, None) for v in series["usage"][-10:])  # the home is silent
    assert report.alerts == Alert.objects.count() > 1


def test_the_onset_is_a_morning_moment_after_activity() -> None:
    day = 20_000 * 86400  # local midnight
    local = np.arange(day - 3 * 86400, day + 86400, 3600, dtype=np.int64)
    register = np.cumsum(np.where((local % 86400) // 3600 == 8, 40.0, 0.0))
    onset = demo.incident_onset(local, register, now_local=day + 23 * 3600)
    assert onset == day + 8 * 3600  # today's 08:00 reading, the last rise of the morning
    assert demo.incident_onset(local, register, now_local=day + 5 * 3600) == day - 86400 + 8 * 3600
    flat = demo.inject_flat(local, register, onset)
    assert (flat[local >= onset] == register[local == onset][0]).all()
    assert (flat[local < onset] == register[local < onset]).all()
    quiet = np.zeros(len(local))
    assert demo.incident_onset(local, quiet, now_local=day + 23 * 3600) is None


def test_whole_weeks_keep_the_weekday_and_the_hour() -> None:
    now_local = int(dt.datetime(2026, 11, 30, 15, 50, tzinfo=dt.UTC).timestamp())
    last = int(dt.datetime(2017, 2, 28, 23, 0, tzinfo=dt.UTC).timestamp())
    for back in (0, 3):
        end = demo._aligned_end(now_local, last, back)
        assert end <= last and (now_local - end) % WEEK == 0
        assert last - end < (back + 1) * WEEK
