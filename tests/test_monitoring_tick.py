"""Live detection from the reading store into alerts (``monitoring/tick.py``), on real data.

Two DAIAD households (../shared/data, tanfang/monitoring/detection/datasets.py) written to a
temporary reading store through ``store.readings_append``:

- ``W-ALONE``: household 79 with a 24-hour incident injected the protocol's way (the register
  stays flat from an active daytime moment); its elder lives alone with a visitor;
- ``W-HOSP``: the same readings for an elder in hospital;
- ``W-SILENT``: household 16, whose meter stops reporting two hours before the incident's
  onset and comes back twelve hours after it.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from django.core.management import call_command

from tanfang.accounts.models import Role
from tanfang.monitoring import profiles, store
from tanfang.monitoring.chart import chart_series
from tanfang.monitoring.detection import datasets, evaluation
from tanfang.monitoring.detection.config import RuleBookError
from tanfang.monitoring.models import (
    Absence,
    Alert,
    AlertAction,
    AlertEvent,
    AlertKind,
    AlertLevel,
    DataPartner,
    DistrictRules,
    Meter,
)
from tanfang.monitoring.remote_visits import client_uuid, remote_visits_record
from tanfang.monitoring.tick import (
    meter_table_from_db,
    monitor_tick,
    rule_book_from_db,
    rules_validate,
)
from tanfang.registry.models import LifeStatus, VisitorAssignment
from tanfang.visits.models import CountingRule, Visit
from tanfang.visits.policy import policy_forget
from tests.factories import lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db

DATA = datasets.default_data_dir()
ONSET = 1486663901  # 2017-02-09 19:11 Europe/Madrid: household 79 was just active
WATER_ALONE, WATER_HOSPITAL, WATER_SILENT = 79, 79, 16
HISTORY_DAYS = 130

if not (DATA / "daiad-water").is_dir():  # pragma: no cover - the data ships with the repo
    pytest.skip("../shared/data/daiad-water is not here", allow_module_level=True)


def moment(hours_after_onset: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ONSET + hours_after_onset * 3600, dt.UTC)


@pytest.fixture(autouse=True)
def _fresh_policy() -> Any:
    # The visit policy is cached per process; a rolled-back CountingRule must not linger.
    policy_forget()
    yield
    policy_forget()


@pytest.fixture(scope="module")
def water() -> datasets.WaterData:
    return datasets.load_daiad(DATA)


def home(data: datasets.WaterData, row: int) -> tuple[np.ndarray, np.ndarray]:
    sel = data.readings.meter == row
    ts, reg = data.readings.ts[sel], data.readings.value[sel]
    keep = (ts > ONSET - HISTORY_DAYS * 86400) & (ts <= ONSET + 40 * 3600)
    return ts[keep], reg[keep]


def store_readings(meter_id: str, ts: np.ndarray, values: np.ndarray, batch: int) -> None:
    frame = pl.DataFrame({"meter_id": [meter_id] * len(ts), "ts": ts, "value": values})
    store.readings_append(frame, batch_id=batch)


@pytest.fixture
def world(settings: Any, tmp_path: Path, water: datasets.WaterData) -> dict[str, Any]:
    settings.MONITORING_DIR = tmp_path / "monitoring"
    ts, reg = home(water, WATER_ALONE)
    incident = evaluation.inject_water(ts, reg, ONSET)
    store_readings("W-ALONE", ts, incident, 1)
    store_readings("W-HOSP", ts, incident, 2)
    ts, reg = home(water, WATER_SILENT)
    gap = (ts > ONSET - 2 * 3600) & (ts <= ONSET + 12 * 3600)
    store_readings("W-SILENT", ts[~gap], reg[~gap], 3)

    tree = make_tree()
    community = tree.communities[0]
    visitor = make_user(Role.VISITOR, community)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    contact = make_user(Role.DATA_PARTNER, tree.city)
    partner = DataPartner.objects.create(
        code="aguas", name="Aguas", kind="water_utility", contact=contact
    )
    alone = lonely_widow(community, name="独居")
    in_hospital = lonely_widow(community, name="住院")
    quiet = lonely_widow(community, name="静默")
    for elder in (alone, in_hospital, quiet):
        VisitorAssignment.objects.create(
            elder=elder, visitor=visitor, starts_on=dt.date(2016, 1, 1)
        )
    Absence.objects.create(
        elder=in_hospital, reason="hospital", starts_on=dt.date(2017, 2, 1), ends_on=None
    )
    meters = {}
    for meter_id, elder in (("W-ALONE", alone), ("W-HOSP", in_hospital), ("W-SILENT", quiet)):
        meters[meter_id] = Meter.objects.create(
            meter_id=meter_id,
            partner=partner,
            elder=elder,
            utility="water",
            register="cumulative",
            unit="L",
            interval_minutes=60,
            tz="Europe/Madrid",
        )
    return {
        "tree": tree,
        "visitor": visitor,
        "worker": worker,
        "contact": contact,
        "partner": partner,
        "alone": alone,
        "in_hospital": in_hospital,
        "quiet": quiet,
        "meters": meters,
    }


def alerts_of(meter_id: str) -> list[Alert]:
    return list(Alert.objects.filter(meter__meter_id=meter_id).order_by("detected_at"))


def test_meter_table_from_the_database(world: dict[str, Any]) -> None:
    unlinked = Meter.objects.create(
        meter_id="W-SPARE",
        partner=world["partner"],
        utility="water",
        register="cumulative",
        unit="m3",
        rollover=9999.0,
    )
    live = meter_table_from_db(on=dt.date(2017, 2, 10))
    table = live.table
    row = {m: i for i, m in enumerate(table.meter_id)}
    assert table.status[row["W-ALONE"]] == ""
    assert table.status[row["W-HOSP"]] == "hospital"
    assert table.district[row["W-ALONE"]] == "110101"
    assert table.elder_id[row["W-ALONE"]] == str(world["alone"].pk)
    # Unlinked: silence only, in the store's canonical unit (litres).
    assert table.status[row["W-SPARE"]] == "away" and table.elder_id[row["W-SPARE"]] == ""
    assert table.factor[row["W-SPARE"]] == 1.0
    assert table.rollover[row["W-SPARE"]] == pytest.approx(9_999_000.0)
    assert unlinked in live.meters
    world["alone"].life_status = LifeStatus.DECEASED
    world["alone"].save(update_fields=["life_status"])
    table = meter_table_from_db(on=dt.date(2017, 2, 10)).table
    assert table.status[row["W-ALONE"]] == "deceased"


def test_an_incident_raises_one_alert_to_the_visitor_and_resolves_when_water_flows(
    world: dict[str, Any],
) -> None:
    first = monitor_tick(now=moment(10))
    person = [a for a in alerts_of("W-ALONE")]
    assert len(person) == 1, first.summary()
    alert = person[0]
    assert alert.kind in (AlertKind.MISSED_ROUTINE, AlertKind.INACTIVITY)
    assert alert.level == AlertLevel.VISITOR and alert.assigned_to == world["visitor"]
    assert alert.elder == world["alone"] and not alert.technical
    assert alert.severity == "critical"
    # The anomaly began at the last use before the onset; detected within the protocol's 12 h.
    assert abs((alert.started_at - moment(0)).total_seconds()) < 3 * 3600
    assert moment(0) < alert.detected_at <= moment(10)
    assert alert.episode_key.startswith(f"W-ALONE:{alert.rule}:")
    series = alert.evidence["series"]
    assert series["step_s"] == 3600 and series["unit"] == "L"
    assert len(series["usage"]) == len(series["usual"]) == 48
    # The last hours are flat, while the home usually uses water at those hours.
    assert sum(v or 0 for v in series["usage"][-9:]) < 5
    assert sum(v or 0 for v in series["usual"][-12:]) > 20
    assert alert.evidence["inactive_hours"] > 6
    # The same series can be drawn from the store on demand, while the readings last.
    assert chart_series(world["meters"]["W-ALONE"], end=moment(10)) == series

    # Nothing for the elder in hospital; the silent meter is the partner's, not the visitor's.
    assert alerts_of("W-HOSP") == []
    silent = alerts_of("W-SILENT")
    assert [(a.kind, a.technical, a.level) for a in silent] == [
        (AlertKind.DATA_SILENCE, True, AlertLevel.PARTNER)
    ]
    assert silent[0].assigned_to == world["contact"]
    assert silent[0].severity == "info"
    assert set(first.raised) == {alert.pk, silent[0].pk}

    # The incident ends after 24 hours; the meter comes back 12 hours after the onset.
    later = monitor_tick(now=moment(30))
    alert.refresh_from_db()
    silent[0].refresh_from_db()
    assert alert.resolved_at is not None and moment(24) < alert.resolved_at <= moment(30)
    assert silent[0].resolved_at is not None and silent[0].resolved_at <= moment(15)
    assert set(later.resolved) == {alert.pk, silent[0].pk}
    notes = dict(
        AlertEvent.objects.filter(action=AlertAction.RESOLVED).values_list("alert_id", "note")
    )
    assert notes[alert.pk] and notes[silent[0].pk] and notes[alert.pk] != notes[silent[0].pk]
    assert alert.escalate_at is None
    # One episode, one alert: no new alert for the same quiet spell after it resolved.
    assert len(alerts_of("W-ALONE")) == 1
    assert not any(a.kind != AlertKind.DATA_SILENCE for a in alerts_of("W-SILENT"))


def test_two_ticks_at_the_same_moment_change_nothing(world: dict[str, Any]) -> None:
    first = monitor_tick(now=moment(10))
    state = list(Alert.objects.order_by("pk").values())
    events = AlertEvent.objects.count()
    second = monitor_tick(now=moment(10))
    assert first.raised and second.raised == [] and second.resolved == []
    assert list(Alert.objects.order_by("pk").values()) == state
    assert AlertEvent.objects.count() == events
    # And after the resolving tick, again nothing.
    monitor_tick(now=moment(30))
    state = list(Alert.objects.order_by("pk").values())
    events = AlertEvent.objects.count()
    again = monitor_tick(now=moment(30))
    assert again.raised == [] and again.resolved == []
    assert list(Alert.objects.order_by("pk").values()) == state
    assert AlertEvent.objects.count() == events


def test_the_command_prints_what_the_tick_did(world: dict[str, Any]) -> None:
    out = io.StringIO()
    call_command("monitor", "tick", "--now", moment(10).isoformat(), stdout=out)
    assert "2 alerts raised" in out.getvalue()
    assert Alert.objects.count() == 2


def test_district_rules_apply_and_bad_rules_are_refused(world: dict[str, Any]) -> None:
    DistrictRules.objects.create(
        area=None, rules={"rules": {"silence": {"params": {"hours": 48.0}}}}
    )
    book = rule_book_from_db()
    silence = {r.name: r for r in book.for_district("110101").rules}["silence"]
    assert silence.params["hours"] == 48.0
    DistrictRules.objects.create(
        area=world["tree"].districts[0], rules={"rules": {"routine_missed": {"enabled": False}}}
    )
    names = {r.name for r in rule_book_from_db().for_district("110101").rules}
    assert "routine_missed" not in names
    assert "routine_missed" in {r.name for r in rule_book_from_db().for_district("110111").rules}
    # With a 48-hour silence allowance the silent meter raises nothing.
    monitor_tick(now=moment(10))
    assert alerts_of("W-SILENT") == []
    bad = DistrictRules(
        area=world["tree"].districts[1], rules={"rules": {"silence": {"param": {}}}}
    )
    with pytest.raises(RuleBookError, match="unknown field"):
        rules_validate(bad)
    with pytest.raises(RuleBookError, match="district's own row"):
        rules_validate(DistrictRules(area=None, rules={"districts": {"110101": {}}}))


def test_a_normal_day_is_a_remote_monitoring_visit_where_the_district_says_so(
    world: dict[str, Any],
) -> None:
    day = dt.date(2017, 2, 8)  # two days before the incident (Beijing time)
    assert remote_visits_record(day=day).recorded == []  # the link is off by default
    DistrictRules.objects.create(area=world["tree"].districts[0], remote_visit_counts=True)
    result = remote_visits_record(day=day)
    visits = list(Visit.objects.filter(mode="remote_monitoring"))
    assert {v.elder_id for v in visits} == {world["alone"].pk, world["quiet"].pk}
    assert set(result.recorded) == {v.pk for v in visits}
    assert result.skipped == {"not_home": 1}  # in hospital
    for visit in visits:
        assert visit.local_date == day and visit.outcome == "met" and visit.visitor is None
        assert visit.client_uuid == client_uuid(visit.elder_id, day)
    # The plan's counting rule does not count remote monitoring: recorded, not counted.
    assert not result.counts and not any(v.counts for v in visits)
    again = remote_visits_record(day=day)
    assert again.recorded == [] and again.already == 2
    assert Visit.objects.filter(mode="remote_monitoring").count() == 2

    # The incident's day: the alert and the silent meter leave only the elder in hospital out.
    monitor_tick(now=moment(10))
    incident = remote_visits_record(day=dt.date(2017, 2, 10))
    assert incident.recorded == []
    assert incident.skipped == {"not_home": 1, "alert": 1, "not_reporting": 1}

    # Where the counting rule lists the mode, the visit counts.
    CountingRule.objects.create(
        effective_from=dt.date(2016, 1, 1),
        modes=["phone", "online", "in_home", "combined", "remote_monitoring"],
        outcomes=["met"],
    )
    counted = remote_visits_record(day=dt.date(2017, 2, 7))
    assert counted.counts and counted.recorded
    assert all(Visit.objects.get(pk=pk).counts for pk in counted.recorded)


def test_the_remote_visits_command(world: dict[str, Any]) -> None:
    DistrictRules.objects.create(area=None, remote_visit_counts=True)
    out, err = io.StringIO(), io.StringIO()
    call_command("monitor", "remote-visits", "--day", "2017-02-08", stdout=out, stderr=err)
    assert "2 remote visits recorded" in out.getvalue()
    assert "do not count" in err.getvalue()


# --------------------------------------------------------------------------- stored profiles


def _spy_scans(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Record the ``since`` of every store scan."""
    sinces: list[int | None] = []
    scan = store.readings_scan

    def spy(**kwargs: Any) -> Any:
        sinces.append(kwargs.get("since"))
        return scan(**kwargs)

    monkeypatch.setattr(store, "readings_scan", spy)
    return sinces


def _episodes() -> list[tuple[str, str, str, dt.datetime]]:
    return sorted(
        (a.episode_key, a.kind, a.meter.meter_id if a.meter else "", a.started_at)
        for a in Alert.objects.select_related("meter")
    )


def test_stored_profiles_raise_the_same_alerts_reading_less(
    world: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = moment(10)
    sinces = _spy_scans(monkeypatch)
    without = monitor_tick(now=at)
    learned_from = min(s for s in sinces if s is not None)
    expected = _episodes()
    assert without.raised and expected
    Alert.objects.all().delete()

    out = io.StringIO()
    call_command("monitor", "learn", "--now", at.isoformat(), stdout=out)
    assert "profiles of 3 meters learned" in out.getvalue()
    files = list((settings.MONITORING_DIR / "profiles").glob("*.npz"))
    assert [f.name for f in files] == [f"{at.date().isoformat()}.npz"]
    stored = profiles.profiles_read(files[0])
    assert sorted(m for g in stored.groups.values() for m in g.meter_ids.tolist()) == [
        "W-ALONE",
        "W-HOSP",
        "W-SILENT",
    ]

    sinces.clear()
    with_profiles = monitor_tick(now=at)
    assert _episodes() == expected
    assert len(with_profiles.raised) == len(without.raised)
    # Only the look-back and the rules' windows: weeks less than the learning history.
    assert sinces and min(s for s in sinces if s is not None) > learned_from + 30 * 86400
    assert with_profiles.readings < without.readings / 5

    # A tick later the same day uses them too, and the incident resolves as without them.
    sinces.clear()
    monitor_tick(now=moment(30))
    assert min(s for s in sinces if s is not None) > learned_from + 30 * 86400
    person = Alert.objects.get(meter__meter_id="W-ALONE", rule="routine_missed")
    assert person.resolved_at is not None


def test_stale_or_mismatched_profiles_are_not_used(
    world: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = moment(10)
    sinces = _spy_scans(monkeypatch)
    # Learned three days before: too old.
    call_command("monitor", "learn", "--now", moment(10 - 72).isoformat(), stdout=io.StringIO())
    sinces.clear()
    monitor_tick(now=at)
    full = min(s for s in sinces if s is not None)
    expected = _episodes()
    Alert.objects.all().delete()
    # Learned at the moment, then the rule book changes: not used either.
    call_command("monitor", "learn", "--now", at.isoformat(), stdout=io.StringIO())
    DistrictRules.objects.create(area=None, rules={"learning": {"min_days": 8}})
    sinces.clear()
    monitor_tick(now=at)
    assert min(s for s in sinces if s is not None) == full
    DistrictRules.objects.all().delete()
    Alert.objects.all().delete()
    # The same rules again: the fresh file is used.
    sinces.clear()
    monitor_tick(now=at)
    assert min(s for s in sinces if s is not None) > full + 30 * 86400
    assert _episodes() == expected
    # A new meter without a stored profile learns from the whole history meanwhile.
    Meter.objects.create(
        meter_id="W-NEW",
        partner=world["partner"],
        elder=None,
        utility="water",
        register="cumulative",
        unit="L",
        interval_minutes=60,
        tz="Europe/Madrid",
    )
    Alert.objects.all().delete()
    sinces.clear()
    monitor_tick(now=at)
    assert min(s for s in sinces if s is not None) == full
    assert [e for e in _episodes() if e[2] != "W-NEW"] == expected
