"""Emergency cases as services (``emergencies/services.py``), their triggers and scope.

An SOS alarm opens a case in the alarm's transaction with every outbox message written
(first contact and family: SMS and e-mail, urgent, with a confirmation link; staff: inbox,
SMS, the community's WeCom group); a second alarm joins the open case; the case climbs on
its timers until a person confirms; closing needs an outcome (hospitalised sets the life
status, the linked alert closes too); who sees which cases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.core import crypto
from tanfang.emergencies.models import (
    CallAttempt,
    CaseLevel,
    CaseState,
    EmergencyCase,
    EmergencyEvent,
    EmergencyRules,
)
from tanfang.emergencies.selectors import cases_open_for, timeline, visible_to
from tanfang.emergencies.services import (
    EmergencyError,
    call_list,
    call_log,
    emergencies_escalate,
    emergency_close,
    emergency_confirm,
    emergency_open,
)
from tanfang.emergencies.triggers import visitor_report
from tanfang.monitoring.alerts import Raise, alert_raise, alerts_escalate, device_alert_raise
from tanfang.monitoring.models import Alert, AlertState, DataPartner, Device, Meter
from tanfang.notifications.models import (
    FamilyContact,
    Message,
    MessageState,
    Notification,
    WeComGroup,
)
from tanfang.registry.models import LifeStatus
from tests.factories import assign, make_tree, make_user, parent_with_son, record_visit

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 9, 1, 0, tzinfo=dt.UTC)  # 09:00 in Beijing


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here = tree.communities[0]
    visitor = make_user(Role.VISITOR, here)
    visitor.phone = "13911112222"
    visitor.save(update_fields=["phone"])
    elder = parent_with_son(here)  # first contact: his son, 13800138000
    assign(elder, visitor, days_ago=400)
    daughter = FamilyContact.objects.create(
        elder=elder,
        name="张丽",
        relation="女儿",
        phone_cipher=crypto.encrypt("13700137000"),
        phone_masked="137****7000",
        email_cipher=crypto.encrypt("li@example.com"),
        email_masked="l*@example.com",
    )
    group = WeComGroup.objects.create(
        area=here, name="社区工作群", key_cipher=crypto.encrypt("robot-key")
    )
    contact = make_user(Role.DATA_PARTNER, tree.city)
    partner = DataPartner.objects.create(
        code="devices", name="Devices", kind="device_vendor", contact=contact
    )
    device = Device.objects.create(device_id="SOS-1", partner=partner, elder=elder, kind="sos")
    return {
        "tree": tree,
        "here": here,
        "visitor": visitor,
        "elder": elder,
        "daughter": daughter,
        "group": group,
        "partner": partner,
        "device": device,
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "subdistrict": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
    }


def press(world: dict[str, Any], message_id: str = "m-1", at: dt.datetime = T0) -> Alert:
    alert, _created = device_alert_raise(
        world["device"], kind="sos", at=at, message_id=message_id, received_at=at
    )
    assert alert is not None
    return alert


def the_case(world: dict[str, Any]) -> EmergencyCase:
    return EmergencyCase.objects.get(elder=world["elder"])


def test_an_sos_opens_a_case_and_tells_everyone_in_the_same_transaction(
    world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        alert = press(world)
    assert callbacks, "the outbox workers are woken when the alarm commits"
    case = the_case(world)
    assert (case.trigger, case.state, case.level) == ("sos", "open", CaseLevel.VISITOR)
    assert case.alert == alert and case.assigned_to == world["visitor"]
    assert case.escalate_at == T0 + dt.timedelta(minutes=5)
    sent = {
        (m.notification.recipient_kind, m.channel, m.address_masked)
        for m in Message.objects.select_related("notification")
    }
    assert sent == {
        ("first_contact", "sms", "138****8000"),
        ("family", "sms", "137****7000"),
        ("family", "email", "l*@example.com"),
        ("user", "inbox", ""),  # the visitor and the community worker
        ("user", "sms", "139****2222"),
        ("group", "wecom", "社区工作群"),
    }
    assert Message.objects.filter(channel="inbox").count() == 2
    assert all(m.urgent and m.state == MessageState.PENDING for m in Message.objects.all())
    family = Notification.objects.filter(template="emergency_family")
    assert family.count() == 2
    assert all(n.confirm_token_hash and n.cause_type == "emergency" for n in family)
    first = family.get(recipient_kind="first_contact")
    # The least personal data: surname and honorific ("张爷爷" once translated), no full name.
    assert "张" in first.text and "张建国" not in first.text
    staff = Notification.objects.get(template="emergency_staff", user=world["visitor"])
    assert f"/emergencies/{case.pk}/" in staff.text
    # Every message written is a line of the timeline.
    assert EmergencyEvent.objects.filter(case=case, kind="notified").count() == 7
    assert [e.kind for e in case.events.order_by("id")][:2] == ["opened", "assigned"]


def test_no_case_and_no_message_when_the_alarm_rolls_back(world: dict[str, Any]) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        press(world)
        assert Message.objects.exists()
        raise RuntimeError("the ingest failed after the alarm")
    assert not EmergencyCase.objects.exists() and not Message.objects.exists()


def test_a_second_alarm_joins_the_open_case(world: dict[str, Any]) -> None:
    press(world)
    messages = Message.objects.count()
    press(world, "m-2", T0 + dt.timedelta(minutes=1))
    assert EmergencyCase.objects.count() == 1 and Alert.objects.count() == 2
    assert Message.objects.count() == messages, "nobody is told twice"
    assert the_case(world).events.filter(kind="joined").count() == 1
    # The same alarm delivered again joins nothing.
    press(world, "m-2", T0 + dt.timedelta(minutes=1))
    assert the_case(world).events.filter(kind="joined").count() == 1


def test_the_case_climbs_on_its_timers_until_the_district(world: dict[str, Any]) -> None:
    press(world)
    case = the_case(world)
    assert emergencies_escalate(now=T0 + dt.timedelta(minutes=4)) == 0
    steps = [
        (5, CaseLevel.COMMUNITY, world["worker"]),
        (15, CaseLevel.SUBDISTRICT, world["subdistrict"]),
        (30, CaseLevel.DISTRICT, world["supervisor"]),
    ]
    for minutes, level, person in steps:
        before = Message.objects.count()
        assert emergencies_escalate(now=T0 + dt.timedelta(minutes=minutes)) == 1
        case.refresh_from_db()
        assert (case.level, case.assigned_to) == (level, person)
        told = Message.objects.filter(notification__user=person).exclude(id__lte=before)
        assert {m.channel for m in told} == {"inbox"}
    assert case.escalate_at is None and case.state == CaseState.OPEN
    assert emergencies_escalate(now=T0 + dt.timedelta(hours=5)) == 0
    escalated = case.events.filter(kind="escalated").order_by("id")
    assert [e.level for e in escalated] == ["community", "subdistrict", "district"]
    # The community's group is told at the start and again when the case reaches the
    # community level; the subdistrict and the district have no group here.
    assert Message.objects.filter(channel="wecom").count() == 2


def test_district_timers_apply(world: dict[str, Any]) -> None:
    EmergencyRules.objects.create(area=world["tree"].districts[0], visitor_minutes=2)
    press(world)
    assert the_case(world).escalate_at == T0 + dt.timedelta(minutes=2)


def test_confirming_stops_the_climb(world: dict[str, Any]) -> None:
    press(world)
    case = emergency_confirm(case=the_case(world), actor=world["visitor"], note="我在路上")
    assert case.state == CaseState.CONFIRMED and case.escalate_at is None
    assert case.confirmed_by == world["visitor"]
    assert emergencies_escalate(now=T0 + dt.timedelta(hours=1)) == 0
    with pytest.raises(EmergencyError):
        emergency_confirm(case=case, actor=world["visitor"])


def test_the_call_list_and_logging_calls(world: dict[str, Any]) -> None:
    press(world)
    case = the_case(world)
    lines = call_list(case)
    assert [line.kind for line in lines] == ["first_contact", "family", "user", "user", "user"]
    assert lines[0].phone == "13800138000" and lines[0].phone_masked == "138****8000"
    assert lines[1].name == "张丽" and lines[2].phone == "13911112222"
    assert all(not line.phone for line in call_list(case, reveal=False))
    visitor = world["visitor"]
    for result in ("no_answer", "busy", "answered"):
        call_log(case=case, actor=visitor, contact_ref=lines[0].ref, result=result)
    case.refresh_from_db()
    assert case.state == CaseState.OPEN, "an answered call alone does not confirm"
    assert list(CallAttempt.objects.values_list("result", flat=True)) == [
        "no_answer",
        "busy",
        "answered",
    ]
    assert case.events.filter(kind="call").count() == 3
    with pytest.raises(EmergencyError):
        call_log(case=case, actor=visitor, contact_ref="family:999999", result="busy")
    with pytest.raises(EmergencyError):
        outsider = make_user(Role.COMMUNITY_WORKER, world["tree"].communities[1])
        call_log(case=case, actor=outsider, contact_ref=lines[0].ref, result="busy")


def test_closing_needs_an_outcome_and_hospitalised_sets_the_life_status(
    world: dict[str, Any],
) -> None:
    alert = press(world)
    case = the_case(world)
    visitor = world["visitor"]
    with pytest.raises(EmergencyError):
        emergency_close(case=case, actor=visitor, outcome="hospitalised", note="")
    with pytest.raises(EmergencyError):
        emergency_close(case=case, actor=visitor, outcome="nothing")
    case = emergency_close(case=case, actor=visitor, outcome="hospitalised", note="120送往医院")
    assert case.state == CaseState.CLOSED and case.confirmed_by == visitor
    assert [e.kind for e in case.events.order_by("id")][-2:] == ["confirmed", "closed"]
    world["elder"].refresh_from_db()
    assert world["elder"].life_status == LifeStatus.IN_HOSPITAL
    alert.refresh_from_db()
    assert (alert.state, alert.outcome) == (AlertState.CLOSED, "emergency_handled")
    with pytest.raises(EmergencyError):
        emergency_close(case=case, actor=visitor, outcome="all_well")
    # A new alarm after closing opens a new case.
    press(world, "m-9", T0 + dt.timedelta(hours=2))
    assert EmergencyCase.objects.filter(elder=world["elder"]).count() == 2


def test_a_false_alarm_closes_the_alert_as_such(world: dict[str, Any]) -> None:
    alert = press(world)
    emergency_close(case=the_case(world), actor=world["worker"], outcome="false_alarm")
    alert.refresh_from_db()
    assert alert.outcome == "false_alarm"
    world["elder"].refresh_from_db()
    assert world["elder"].life_status != LifeStatus.IN_HOSPITAL


def test_who_sees_which_cases(world: dict[str, Any]) -> None:
    press(world)
    case = the_case(world)
    tree = world["tree"]

    def sees(user: Any) -> bool:
        return visible_to(user).filter(pk=case.pk).exists()

    for key in ("visitor", "worker", "subdistrict", "supervisor"):
        assert sees(world[key]), key
    assert sees(make_user(Role.CITY_ADMIN, tree.city))
    assert not sees(make_user(Role.VISITOR, world["here"]))  # not her elder
    assert not sees(make_user(Role.COMMUNITY_WORKER, tree.communities[1]))
    assert not sees(make_user(Role.DISTRICT_SUPERVISOR, tree.districts[1]))
    assert not sees(make_user(Role.AUDITOR, tree.city))
    assert not sees(world["partner"].contact)
    assert [c.pk for c in cases_open_for(user=world["visitor"])] == [case.pk]
    other = make_user(Role.COMMUNITY_WORKER, tree.communities[1])
    with pytest.raises(EmergencyError):
        emergency_confirm(case=case, actor=other)


def test_a_critical_inactivity_alert_unanswered_at_the_community_opens_a_case(
    world: dict[str, Any],
) -> None:
    meter = Meter.objects.create(
        meter_id="W1",
        partner=world["partner"],
        elder=world["elder"],
        utility="water",
        register="cumulative",
        unit="m3",
    )
    now = timezone.now()
    alert, _ = alert_raise(
        Raise(
            key="W1:inactivity:1",
            kind="inactivity",
            rule="inactivity",
            severity="critical",
            started_at=now - dt.timedelta(hours=20),
            detected_at=now,
            evidence={},
            meter=meter,
        ),
        now=now,
    )
    assert alert is not None and not EmergencyCase.objects.exists()
    assert alerts_escalate(now=now + dt.timedelta(hours=1)) == 1
    case = the_case(world)
    assert (case.trigger, case.alert) == ("inactivity", alert)
    assert Message.objects.filter(notification__template="emergency_family").exists()


def test_a_visit_with_emergency_rescue_and_a_report_open_cases(world: dict[str, Any]) -> None:
    visit = record_visit(
        world["visitor"],
        world["elder"],
        sections={"needs": {"kinds": ["emergency_rescue"]}},
        notes="老人摔倒在地，无法起身",
    )
    case = the_case(world)
    assert (case.trigger, case.visit, case.opened_by) == (
        "visitor_report",
        visit,
        world["visitor"],
    )
    assert "摔倒" in case.summary
    joined, created = visitor_report(
        actor=world["worker"], elder=world["elder"], description="邻居说老人没开门"
    )
    assert (joined, created) == (case, False)
    kinds = [row["kind"] for row in timeline(case)]
    assert kinds[:2] == ["opened", "assigned"] and "joined" in kinds
    again, created = emergency_open(
        elder=world["elder"], trigger="visitor_report", summary="", visit=visit
    )
    assert (again, created) == (case, False)
