"""Monitoring alerts as services (``monitoring/alerts.py``) and who sees them (selectors).

Assignment (visitor, her substitute, the community worker, the subdistrict), suppression
while the elder is not at home, device alarms, the escalation chain on its timers,
acknowledgement, closing with an outcome (hospitalised and deceased change the elder's life
status), idempotency, and the scope of ``alerts_visible_to``.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.monitoring.alerts import (
    AlertError,
    Raise,
    alert_acknowledge,
    alert_close,
    alert_raise,
    alert_resolve,
    alerts_escalate,
    device_alert_raise,
)
from tanfang.monitoring.models import (
    Absence,
    Alert,
    AlertAction,
    AlertEvent,
    AlertLevel,
    AlertOutcome,
    AlertState,
    DataPartner,
    Device,
    DeviceEvent,
    DistrictRules,
    Meter,
)
from tanfang.monitoring.selectors import (
    alerts_list,
    alerts_open_for,
    alerts_visible_to,
    elder_alerts,
    outcome_counts,
)
from tanfang.registry.models import Elder, LifeStatus
from tanfang.visits.models import ElderVisitStatus, Substitution
from tanfang.visits.status import status_refresh
from tests.factories import assign, lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)  # 09:00 in Beijing


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here = tree.communities[0]
    visitor = make_user(Role.VISITOR, here)
    widow = lonely_widow(here)
    assign(widow, visitor, days_ago=400)
    contact = make_user(Role.DATA_PARTNER, tree.city)
    partner = DataPartner.objects.create(
        code="water", name="Water", kind="water_utility", contact=contact
    )
    other_partner = DataPartner.objects.create(
        code="power",
        name="Power",
        kind="power_utility",
        contact=make_user(Role.DATA_PARTNER, tree.city),
    )
    meter = Meter.objects.create(
        meter_id="W1",
        partner=partner,
        elder=widow,
        utility="water",
        register="cumulative",
        unit="m3",
    )
    return {
        "tree": tree,
        "here": here,
        "visitor": visitor,
        "widow": widow,
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "subdistrict": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "contact": contact,
        "partner": partner,
        "other_partner": other_partner,
        "meter": meter,
    }


def quiet(
    meter: Meter, *, kind: str = "missed_routine", started: dt.datetime = T0, **kw: Any
) -> Raise:
    rule = {"missed_routine": "routine_missed", "data_silence": "silence"}.get(kind, kind)
    values: dict[str, Any] = {
        "key": f"{meter.meter_id}:{rule}:{started.isoformat()}",
        "kind": kind,
        "rule": rule,
        "severity": "technical" if kind == "data_silence" else "high",
        "started_at": started - dt.timedelta(hours=9),
        "detected_at": started,
        "evidence": {"inactive_hours": 9.0},
        "meter": meter,
    }
    values.update(kw)
    return Raise(**values)


def test_a_person_alert_goes_to_the_visitor_with_her_timer(world: dict[str, Any]) -> None:
    alert, created = alert_raise(quiet(world["meter"]), now=T0)
    assert created and alert is not None
    assert alert.elder == world["widow"] and alert.community == world["here"]
    assert alert.partner == world["partner"] and not alert.technical
    assert (alert.level, alert.assigned_to) == (AlertLevel.VISITOR, world["visitor"])
    assert alert.escalate_at == T0 + dt.timedelta(minutes=30)
    assert alert.severity == "critical"  # the rule book's "high"
    actions = list(alert.events.values_list("action", "to_user"))
    assert actions == [(AlertAction.RAISED, None), (AlertAction.ASSIGNED, world["visitor"].pk)]


def test_the_substitute_gets_it_while_the_visitor_is_away(world: dict[str, Any]) -> None:
    substitute = make_user(Role.VISITOR, world["here"])
    today = timezone.localdate(T0)
    Substitution.objects.create(
        visitor=world["visitor"],
        substitute=substitute,
        starts_on=today - dt.timedelta(days=1),
        ends_on=today + dt.timedelta(days=1),
    )
    alert, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert alert is not None and alert.assigned_to == substitute
    assert alert in alerts_visible_to(substitute)


def test_without_a_visitor_the_community_worker_then_the_subdistrict(
    world: dict[str, Any],
) -> None:
    DistrictRules.objects.create(area=None, escalate_community_minutes=45)
    loner = lonely_widow(world["here"], name="无人")
    meter = Meter.objects.create(
        meter_id="W2",
        partner=world["partner"],
        elder=loner,
        utility="water",
        register="interval",
        unit="L",
    )
    alert, _ = alert_raise(quiet(meter), now=T0)
    assert alert is not None
    assert (alert.level, alert.assigned_to) == (AlertLevel.COMMUNITY, world["worker"])
    assert alert.escalate_at == T0 + dt.timedelta(minutes=45)
    world["worker"].is_active = False
    world["worker"].save(update_fields=["is_active"])
    other = Meter.objects.create(
        meter_id="W3",
        partner=world["partner"],
        elder=loner,
        utility="water",
        register="interval",
        unit="L",
    )
    alert, _ = alert_raise(quiet(other), now=T0)
    assert alert is not None
    assert (alert.level, alert.assigned_to) == (AlertLevel.SUBDISTRICT, world["subdistrict"])
    assert alert.escalate_at is None


def test_no_person_alert_while_the_elder_is_not_at_home(world: dict[str, Any]) -> None:
    widow = world["widow"]
    Absence.objects.create(elder=widow, reason="away", starts_on=dt.date(2026, 3, 1))
    assert alert_raise(quiet(world["meter"]), now=T0) == (None, False)
    # Gas left on and a meter that stopped reporting are raised whoever is at home.
    gas, created = alert_raise(quiet(world["meter"], kind="continuous_use", rule="gas_continuous"))
    assert created and gas is not None
    silent, created = alert_raise(quiet(world["meter"], kind="data_silence"), now=T0)
    assert created and silent is not None and silent.technical
    Absence.objects.all().delete()
    widow.life_status = LifeStatus.IN_HOSPITAL
    widow.save(update_fields=["life_status"])
    assert alert_raise(quiet(world["meter"]), now=T0) == (None, False)
    assert Alert.objects.filter(kind="missed_routine").count() == 0


def test_a_device_alarm_is_raised_at_once_and_only_once(world: dict[str, Any]) -> None:
    widow = world["widow"]
    widow.life_status = LifeStatus.IN_HOSPITAL  # a pressed button is raised whatever we know
    widow.save(update_fields=["life_status"])
    device = Device.objects.create(
        device_id="SOS-1", partner=world["partner"], elder=widow, kind="sos"
    )
    pressed = dt.datetime(2026, 3, 9, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    alert, created = device_alert_raise(
        device, kind="sos", at=pressed, message_id="m-1", payload={"battery": 80}, received_at=T0
    )
    assert created and alert is not None
    assert (alert.kind, alert.severity, alert.level) == ("device", "critical", AlertLevel.VISITOR)
    assert alert.assigned_to == world["visitor"] and alert.evidence["battery"] == 80
    # The same message again (read back from the database in UTC) is the same alert.
    again, created = device_alert_raise(device, kind="sos", at=pressed, message_id="m-1")
    assert (again, created) == (alert, False)
    assert DeviceEvent.objects.count() == 1 and Alert.objects.count() == 1
    heartbeat, created = device_alert_raise(device, kind="heartbeat", at=pressed, message_id="m-2")
    assert (heartbeat, created) == (None, False)
    device.refresh_from_db()
    assert device.last_seen_at is not None


def test_the_escalation_chain_climbs_on_its_timers(world: dict[str, Any]) -> None:
    alert, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert alert is not None
    assert alerts_escalate(now=T0 + dt.timedelta(minutes=29)) == 0
    assert alerts_escalate(now=T0 + dt.timedelta(minutes=31)) == 1
    alert.refresh_from_db()
    assert (alert.level, alert.assigned_to) == (AlertLevel.COMMUNITY, world["worker"])
    assert alert.escalate_at == T0 + dt.timedelta(minutes=91)
    assert alerts_escalate(now=T0 + dt.timedelta(minutes=90)) == 0
    assert alerts_escalate(now=T0 + dt.timedelta(minutes=92)) == 1
    alert.refresh_from_db()
    assert (alert.level, alert.assigned_to) == (AlertLevel.SUBDISTRICT, world["subdistrict"])
    assert alert.escalate_at is None
    assert alerts_escalate(now=T0 + dt.timedelta(days=1)) == 0
    climbed = alert.events.filter(action=AlertAction.ESCALATED).values_list("level", "to_user")
    assert list(climbed) == [
        (AlertLevel.COMMUNITY, world["worker"].pk),
        (AlertLevel.SUBDISTRICT, world["subdistrict"].pk),
    ]
    # Whoever it climbed to sees it.
    assert alert in alerts_open_for(user=world["subdistrict"])


def test_acknowledging_stops_the_climb(world: dict[str, Any]) -> None:
    alert, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert alert is not None
    acknowledged = alert_acknowledge(alert, actor=world["visitor"], note="calling her")
    assert acknowledged.state == AlertState.ACKNOWLEDGED and acknowledged.escalate_at is None
    assert alerts_escalate(now=T0 + dt.timedelta(days=1)) == 0
    with pytest.raises(AlertError):
        alert_acknowledge(alert, actor=world["visitor"])
    event = alert.events.get(action=AlertAction.ACKNOWLEDGED)
    assert (event.by, event.note) == (world["visitor"], "calling her")


def test_only_someone_who_sees_the_alert_may_act_on_it(world: dict[str, Any]) -> None:
    alert, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert alert is not None
    stranger = make_user(Role.COMMUNITY_WORKER, world["tree"].communities[4])
    for actor in (stranger, world["contact"], world["supervisor"]):
        with pytest.raises(AlertError):
            alert_acknowledge(alert, actor=actor)
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN


def test_closing_records_the_outcome_and_counts_it(world: dict[str, Any]) -> None:
    first, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert first is not None
    closed = alert_close(first, actor=world["worker"], outcome="all_well", note="at the market")
    assert closed.state == AlertState.CLOSED and closed.outcome == AlertOutcome.ALL_WELL
    assert closed.acknowledged_by == world["worker"]  # closing acknowledges too
    with pytest.raises(AlertError):
        alert_close(first, actor=world["worker"], outcome="all_well")
    second, _ = alert_raise(quiet(world["meter"], started=T0 + dt.timedelta(days=1)), now=T0)
    assert second is not None
    with pytest.raises(AlertError):
        alert_close(second, actor=world["visitor"], outcome="nonsense")
    rows = outcome_counts(
        user=world["supervisor"], since=T0 - dt.timedelta(days=1), until=T0 + dt.timedelta(days=2)
    )
    mine = next(r for r in rows if r.area_id == world["tree"].subdistricts[0].pk)
    assert (mine.raised, mine.open, mine.outcomes) == (2, 1, {"all_well": 1})
    assert sum(r.raised for r in rows) == 2
    assert outcome_counts(user=world["visitor"], since=T0, until=T0) == []


def test_hospitalised_and_deceased_change_the_life_status(world: dict[str, Any]) -> None:
    widow = world["widow"]
    status_refresh(elder_ids=[widow.pk])
    alert, _ = alert_raise(quiet(world["meter"]), now=T0)
    assert alert is not None
    alert_close(alert, actor=world["visitor"], outcome="hospitalised", note="fell, ambulance")
    widow.refresh_from_db()
    assert widow.life_status == LifeStatus.IN_HOSPITAL
    assert ElderVisitStatus.objects.get(elder=widow).excluded == "in_hospital"
    loner = lonely_widow(world["here"], name="独居二")
    assign(loner, world["visitor"], days_ago=10)
    meter = Meter.objects.create(
        meter_id="W9",
        partner=world["partner"],
        elder=loner,
        utility="water",
        register="interval",
        unit="L",
    )
    alert, _ = alert_raise(quiet(meter), now=T0)
    assert alert is not None
    alert_close(alert, actor=world["worker"], outcome="found_deceased")
    assert Elder.objects.get(pk=loner.pk).life_status == LifeStatus.DECEASED


def test_a_technical_alert_goes_to_the_partner_and_closes_technically(
    world: dict[str, Any],
) -> None:
    silent, _ = alert_raise(quiet(world["meter"], kind="data_silence"), now=T0)
    assert silent is not None
    assert (silent.level, silent.assigned_to, silent.severity) == (
        AlertLevel.PARTNER,
        world["contact"],
        "info",
    )
    assert silent.escalate_at is None
    assert alerts_escalate(now=T0 + dt.timedelta(days=1)) == 0
    with pytest.raises(AlertError):
        alert_close(silent, actor=world["contact"], outcome="hospitalised")
    alert_close(silent, actor=world["contact"], outcome="all_well", note="gateway replaced")
    assert Alert.objects.get(pk=silent.pk).outcome == "all_well"


def test_raising_and_resolving_are_idempotent(world: dict[str, Any]) -> None:
    found = quiet(world["meter"])
    first, created = alert_raise(found, now=T0)
    assert created and first is not None
    again, created = alert_raise(found, now=T0 + dt.timedelta(minutes=15))
    assert (again, created) == (first, False)
    assert AlertEvent.objects.count() == 2
    resumed = T0 + dt.timedelta(hours=2)
    assert alert_resolve(first, at=resumed, note="activity resumed")
    assert not alert_resolve(first, at=resumed + dt.timedelta(hours=1))
    first.refresh_from_db()
    assert first.resolved_at == resumed and first.escalate_at is None
    assert first.state == AlertState.OPEN  # a person still closes it with what was found
    assert alerts_escalate(now=T0 + dt.timedelta(days=1)) == 0


def test_who_sees_which_alerts(world: dict[str, Any]) -> None:
    person, _ = alert_raise(quiet(world["meter"]), now=T0)
    silent, _ = alert_raise(quiet(world["meter"], kind="data_silence"), now=T0)
    stranger_elder = lonely_widow(world["tree"].communities[4], name="房山")
    far = Meter.objects.create(
        meter_id="F1",
        partner=world["other_partner"],
        elder=stranger_elder,
        utility="water",
        register="interval",
        unit="L",
    )
    far_alert, _ = alert_raise(quiet(far), now=T0)
    far_silent, _ = alert_raise(quiet(far, kind="data_silence"), now=T0)
    unlinked = Meter.objects.create(
        meter_id="U1", partner=world["partner"], utility="water", register="interval", unit="L"
    )
    orphan, _ = alert_raise(quiet(unlinked, kind="data_silence"), now=T0)
    assert None not in (person, silent, far_alert, far_silent, orphan)

    def seen(user: Any) -> set[int]:
        return set(alerts_visible_to(user).values_list("pk", flat=True))

    assert seen(world["visitor"]) == {person.pk, silent.pk}
    assert seen(make_user(Role.VISITOR, world["here"])) == set()
    assert seen(world["worker"]) == {person.pk, silent.pk}
    assert seen(world["supervisor"]) == {person.pk, silent.pk}
    city_admin = make_user(Role.CITY_ADMIN, world["tree"].city)
    assert seen(city_admin) == {person.pk, silent.pk, far_alert.pk, far_silent.pk}
    # A partner sees its own technical alerts, never a person alert.
    assert seen(world["contact"]) == {silent.pk, orphan.pk}
    assert seen(make_user(Role.AUDITOR, world["tree"].city)) == set()
    # The worklist leaves technical alerts to the partner.
    assert [a.pk for a in alerts_open_for(user=world["visitor"])] == [person.pk]
    assert {a.pk for a in alerts_open_for(user=world["contact"])} == {silent.pk, orphan.pk}
    assert list(elder_alerts(user=world["contact"], elder=world["widow"])) == []
    assert {a.pk for a in elder_alerts(user=world["worker"], elder=world["widow"])} == {
        person.pk,
        silent.pk,
    }
    fangshan = world["tree"].districts[1]
    assert {a.pk for a in alerts_list(user=city_admin, area=fangshan)} == {
        far_alert.pk,
        far_silent.pk,
    }
    assert {a.pk for a in alerts_list(user=city_admin, kind="data_silence", state="active")} == {
        silent.pk,
        far_silent.pk,
    }


def test_the_escalate_command(world: dict[str, Any]) -> None:
    alert_raise(quiet(world["meter"]), now=T0)
    out = io.StringIO()
    later = (T0 + dt.timedelta(minutes=31)).isoformat()
    call_command("monitor", "escalate", "--now", later, stdout=out)
    assert out.getvalue().strip() == "1 alerts escalated"
    with pytest.raises(CommandError, match="no UTC offset"):
        call_command("monitor", "escalate", "--now", "2026-03-09T09:00")
    with pytest.raises(CommandError, match="not over yet"):
        call_command("monitor", "remote-visits", "--day", timezone.localdate().isoformat())
