"""Family notifications: the first contact is told what visits, care actions and alerts find,
with the least personal data, after the quiet hours unless urgent; urgent ones carry a
confirm link and escalate to the community when nobody confirms."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from tanfang.accounts.models import Role
from tanfang.care.models import CareAction
from tanfang.care.services import care_action_move
from tanfang.core import crypto
from tanfang.monitoring.alerts import Raise, alert_raise
from tanfang.monitoring.models import Alert
from tanfang.notifications.contacts import (
    ContactError,
    family_contact_add,
    family_contact_deactivate,
)
from tanfang.notifications.family import (
    elder_label,
    family_tell_alert,
    notifications_escalate,
)
from tanfang.notifications.models import (
    Channel,
    FamilyContact,
    Message,
    MessageTemplate,
    Notification,
    NotificationRules,
    RecipientKind,
    WeComGroup,
)
from tanfang.notifications.recipients import family_recipients, on_duty
from tanfang.notifications.rules import quiet_until
from tanfang.notifications.services import confirm_url, notification_confirm
from tests.factories import (
    assign,
    lonely_widow,
    make_tree,
    make_user,
    parent_with_son,
    record_visit,
)

pytestmark = pytest.mark.django_db
BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def tree():  # type: ignore[no-untyped-def]
    return make_tree()


@pytest.fixture
def elder(tree):  # type: ignore[no-untyped-def]
    return parent_with_son(tree.communities[0], address="东城区某街道8号楼3单元")


def _raise(elder, *, severity: str, at: dt.datetime, key: str = "k1") -> Alert:  # type: ignore[no-untyped-def]
    alert, _created = alert_raise(
        Raise(
            key=key,
            kind="inactivity",
            rule="inactivity",
            severity=severity,
            started_at=at - dt.timedelta(hours=10),
            detected_at=at,
            evidence={},
            elder=elder,
        ),
        now=at,
    )
    assert alert is not None
    return alert


def _private_marks(elder) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        crypto.decrypt(elder.id_number_cipher),
        elder.id_number_masked,
        elder.name,
        "8号楼",
    ]


def test_a_hazard_found_tells_the_first_contact_by_sms_without_personal_data(tree, elder) -> None:  # type: ignore[no-untyped-def]
    visitor = make_user(Role.VISITOR, tree.communities[0])
    assign(elder, visitor)
    visit = record_visit(
        visitor,
        elder,
        sections={"safety": {"gas": {"hazard": True, "what": "软管老化"}}},
        consent=True,
    )
    told = Notification.objects.filter(elder=elder, topic="hazard")
    assert told.count() == 1
    notification = told.get()
    assert notification.recipient_kind == RecipientKind.FIRST_CONTACT
    assert notification.cause_type == "visit" and notification.cause_id == visit.pk
    messages = list(Message.objects.filter(notification=notification))
    assert [m.channel for m in messages] == [Channel.SMS]
    sms = messages[0]
    assert crypto.decrypt(sms.address_cipher) == "13800138000"
    assert sms.address_masked == "138****8000"
    assert sms.sms_template_code == "SMS_TF_HAZARD_FOUND"
    assert elder_label(elder) == "张老人"
    assert "张老人" in sms.body and "/n/" in sms.body  # a reply link
    for mark in _private_marks(elder):
        assert mark not in sms.body
    assert "软管老化" not in sms.body  # the visitor's free text stays inside
    # A correction that changes nothing tells nothing again.
    from tanfang.visits.services import visit_correct

    visit_correct(actor=visitor, visit=visit, changes={"notes": "补充"})
    assert Notification.objects.filter(elder=elder, topic="hazard").count() == 1


def test_needs_are_told_to_family_route_elders_only(tree, elder) -> None:  # type: ignore[no-untyped-def]
    record_visit(None, elder, sections={"needs": {"kinds": ["daily_life_care"]}}, consent=True)
    assert Notification.objects.filter(elder=elder, topic="need").count() == 1
    poor = parent_with_son(tree.communities[0], name="赵大山", extremely_poor=True)
    record_visit(None, poor, sections={"needs": {"kinds": ["daily_life_care"]}}, consent=True)
    assert not Notification.objects.filter(elder=poor, topic="need").exists()


def test_an_elder_without_a_first_contact_tells_nobody(tree) -> None:  # type: ignore[no-untyped-def]
    widow = lonely_widow(tree.communities[0])
    record_visit(
        None, widow, sections={"safety": {"gas": {"hazard": True, "what": ""}}}, consent=True
    )
    _raise(widow, severity="critical", at=timezone.now())
    assert not Notification.objects.filter(elder=widow).exists()


def test_a_non_urgent_alert_at_23_waits_for_the_end_of_the_quiet_hours(elder) -> None:  # type: ignore[no-untyped-def]
    at = dt.datetime(2026, 11, 30, 23, 0, tzinfo=BEIJING)
    alert = _raise(elder, severity="warning", at=at)
    notification = Notification.objects.get(cause_type="alert", cause_id=alert.pk)
    assert not notification.urgent and notification.escalate_at is None
    sms = notification.messages.get()
    assert sms.next_attempt_at == dt.datetime(2026, 12, 1, 8, 0, tzinfo=BEIJING)
    assert sms.sms_template_code == "SMS_TF_ALERT_RAISED"


def test_a_critical_alert_is_urgent_and_escalates_when_unconfirmed(tree, elder) -> None:  # type: ignore[no-untyped-def]
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    worker.phone = "13900001111"
    worker.save()
    group = WeComGroup.objects.create(
        area=tree.communities[0], name="社区群", key_cipher=crypto.encrypt("robot-key")
    )
    at = dt.datetime(2026, 11, 30, 23, 0, tzinfo=BEIJING)
    alert = _raise(elder, severity="critical", at=at)
    notification = Notification.objects.get(cause_type="alert", cause_id=alert.pk)
    assert notification.urgent
    assert notification.escalate_at == at + dt.timedelta(minutes=30)
    sms = notification.messages.get()
    assert sms.next_attempt_at == at  # urgent: no quiet hours
    assert "/n/" in sms.body
    # Before the time: nothing; after it: escalated once to the worker and the group.
    assert notifications_escalate(now=at + dt.timedelta(minutes=29)) == 0
    assert notifications_escalate(now=at + dt.timedelta(minutes=31)) == 1
    assert notifications_escalate(now=at + dt.timedelta(minutes=40)) == 0
    notification.refresh_from_db()
    assert notification.escalated_at == at + dt.timedelta(minutes=31)
    escalations = Notification.objects.filter(topic="escalation")
    assert {(n.recipient_kind, n.user_id, n.group_id) for n in escalations} == {
        (RecipientKind.USER, worker.pk, None),
        (RecipientKind.GROUP, None, group.pk),
    }
    to_worker = escalations.get(user=worker)
    assert sorted(to_worker.messages.values_list("channel", flat=True)) == ["inbox", "sms"]
    assert to_worker.cause_type == "alert" and to_worker.cause_id == alert.pk
    assert f"/alerts/{alert.pk}/" in to_worker.text
    assert escalations.get(group=group).messages.get().channel == Channel.WECOM


def test_a_confirmed_urgent_message_does_not_escalate(tree, elder) -> None:  # type: ignore[no-untyped-def]
    make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    at = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BEIJING)
    alert, _ = alert_raise(
        Raise(
            key="crit",
            kind="inactivity",
            rule="inactivity",
            severity="critical",
            started_at=at,
            detected_at=at,
            evidence={},
            elder=elder,
        ),
        now=at,
    )
    assert alert is not None
    notification = Notification.objects.get(cause_type="alert", cause_id=alert.pk)
    token = notification.params["link"].rstrip("/").rsplit("/", 1)[1]
    assert notification.params["link"] == confirm_url(token)
    assert notification_confirm(token=token, reply="我马上过去", now=at + dt.timedelta(minutes=5))
    assert notifications_escalate(now=at + dt.timedelta(hours=2)) == 0
    notification.refresh_from_db()
    assert notification.confirmed_at is not None and notification.reply == "我马上过去"
    assert not Notification.objects.filter(topic="escalation").exists()


def test_the_same_alert_raised_twice_is_told_once(elder) -> None:  # type: ignore[no-untyped-def]
    at = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BEIJING)
    first = _raise(elder, severity="critical", at=at, key="same")
    second = _raise(elder, severity="critical", at=at, key="same")
    assert first.pk == second.pk
    family_tell_alert(alert=first)  # and told again directly: still once
    assert Notification.objects.filter(cause_type="alert", cause_id=first.pk).count() == 1
    assert Message.objects.filter(notification__cause_id=first.pk).count() == 1


def test_technical_and_sos_alerts_do_not_message_the_family(elder) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now()
    alert = _raise(elder, severity="warning", at=at, key="t")
    Alert.objects.filter(pk=alert.pk).update(technical=True)
    alert.refresh_from_db()
    Notification.objects.all().delete()
    assert family_tell_alert(alert=alert) == []
    Alert.objects.filter(pk=alert.pk).update(technical=False, rule="device_sos", kind="device")
    alert.refresh_from_db()
    assert family_tell_alert(alert=alert) == []


def test_a_districts_template_override_is_used(tree, elder) -> None:  # type: ignore[no-untyped-def]
    MessageTemplate.objects.create(
        code="alert_raised",
        area=tree.districts[0],
        text="【东城探访】{elder}家中{what}，{time}。",
        sms_template_code="SMS_DC_1",
    )
    at = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BEIJING)
    alert = _raise(elder, severity="warning", at=at)
    notification = Notification.objects.get(cause_type="alert", cause_id=alert.pk)
    assert notification.text.startswith("【东城探访】张老人家中")
    assert notification.messages.get().sms_template_code == "SMS_DC_1"


def test_a_closed_care_action_tells_its_result(tree, elder) -> None:  # type: ignore[no-untyped-def]
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    visit = record_visit(
        None, elder, sections={"safety": {"gas": {"hazard": True, "what": ""}}}, consent=True
    )
    action = CareAction.objects.get(visit=visit, kind="hazard")
    care_action_move(actor=worker, action=action, to="reminded")
    assert not Notification.objects.filter(topic="care_result").exists()
    care_action_move(actor=worker, action=action, to="removed", result="更换了软管 张伟")
    told = Notification.objects.get(topic="care_result")
    assert told.cause_type == "care_action" and told.cause_id == action.pk
    assert "更换了软管" not in told.text  # the worker's free text is not sent


def test_the_contact_list_and_its_services(tree, elder) -> None:  # type: ignore[no-untyped-def]
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    contact = family_contact_add(
        actor=worker,
        elder=elder,
        name="张丽",
        relation="child",
        phone="139-1234-5678",
        email="li@example.com",
    )
    assert contact.phone_masked == "139****5678" and contact.email_masked == "l***@example.com"
    assert crypto.decrypt(contact.phone_cipher) == "13912345678"
    recipients = family_recipients(elder)
    assert [r.kind for r in recipients] == ["first_contact", "family"]
    assert [a.channel for a in recipients[1].addresses] == ["sms", "email"]
    with pytest.raises(ContactError):
        family_contact_add(actor=worker, elder=elder, name="无号码", relation="child")
    with pytest.raises(ContactError):
        family_contact_add(
            actor=worker, elder=elder, name="坏邮箱", relation="child", email="not-an-address"
        )
    family_contact_deactivate(actor=worker, contact=contact)
    assert [r.kind for r in family_recipients(elder)] == ["first_contact"]
    assert FamilyContact.objects.get(pk=contact.pk).active is False
    from tanfang.audit.models import AuditEntry

    entries = AuditEntry.objects.filter(elder_id=elder.pk, details__family_contact=contact.pk)
    assert entries.count() == 2
    assert "13912345678" not in str(list(entries.values("details")))


def test_on_duty_is_the_first_active_worker_of_the_area(tree) -> None:  # type: ignore[no-untyped-def]
    community = tree.communities[0]
    assert on_duty(Role.COMMUNITY_WORKER, community.pk) is None
    first = make_user(Role.COMMUNITY_WORKER, community)
    make_user(Role.COMMUNITY_WORKER, community)
    assert on_duty(Role.COMMUNITY_WORKER, community.pk) == first
    first.is_active = False
    first.save()
    assert on_duty(Role.COMMUNITY_WORKER, community.pk) != first
    assert on_duty(Role.COMMUNITY_WORKER, None) is None


# --------------------------------------------------------------------------- quiet hours

TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))
MOMENTS = st.integers(
    min_value=int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()),
    max_value=int(dt.datetime(2031, 1, 1, tzinfo=dt.UTC).timestamp()),
).map(lambda seconds: dt.datetime.fromtimestamp(seconds, tz=BEIJING))


def _inside(t: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= t < end
    return t >= start or t < end


@settings(max_examples=300, deadline=None)
@given(now=MOMENTS, start=TIMES, end=TIMES)
def test_quiet_until_never_lands_inside_the_quiet_hours_nor_before_now(
    now: dt.datetime, start: dt.time, end: dt.time
) -> None:
    rules = NotificationRules(quiet_start=start, quiet_end=end)
    until = quiet_until(now, rules)
    local = now.astimezone(BEIJING).time()
    if until is None:
        assert not _inside(local, start, end)
        return
    assert _inside(local, start, end)
    assert until >= now
    assert not _inside(until.astimezone(BEIJING).time(), start, end)
    assert until - now <= dt.timedelta(days=1)


def test_quiet_until_examples() -> None:
    rules = NotificationRules(quiet_start=dt.time(21), quiet_end=dt.time(8))
    at = dt.datetime(2026, 11, 30, 23, 0, tzinfo=BEIJING)
    assert quiet_until(at, rules) == dt.datetime(2026, 12, 1, 8, 0, tzinfo=BEIJING)
    early = dt.datetime(2026, 11, 30, 6, 0, tzinfo=BEIJING)
    assert quiet_until(early, rules) == dt.datetime(2026, 11, 30, 8, 0, tzinfo=BEIJING)
    assert quiet_until(dt.datetime(2026, 11, 30, 12, 0, tzinfo=BEIJING), rules) is None


def test_emergency_messages_are_not_escalated_here(tree, elder) -> None:  # type: ignore[no-untyped-def]
    from tanfang.notifications.recipients import first_contact_recipient
    from tanfang.notifications.services import notify

    make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    at = dt.datetime(2026, 11, 30, 10, 0, tzinfo=BEIJING)
    recipient = first_contact_recipient(elder)
    assert recipient is not None
    notify(
        key="emergency:1",
        topic="emergency",
        template="emergency_family",
        params={"elder": "张老人", "what": "SOS", "time": "10:00", "phone": "110"},
        recipients=[recipient],
        elder=elder,
        urgent=True,
        confirm=True,
        cause=("emergency", 1),
        now=at,
    )
    assert Notification.objects.get(topic="emergency").escalate_at is not None
    assert notifications_escalate(now=at + dt.timedelta(hours=1)) == 0
