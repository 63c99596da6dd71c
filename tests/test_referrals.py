"""Referrals: the route rules, routing from a recorded visit and a closed alert, the steps and
their time limits, escalation to the district (once), and who sees which referral."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, ServiceEntry
from tanfang.notifications.models import Message, Notification
from tanfang.referrals import rules
from tanfang.referrals.models import Referral, ReferralEvent, ReferralRules, ReferralState
from tanfang.referrals.routing import needs_route
from tanfang.referrals.selectors import (
    referral_counts,
    referrals_open,
    referrals_overdue,
    referrals_visible_to,
)
from tanfang.referrals.services import ReferralError, referral_move, referrals_escalate
from tanfang.registry.models import Elder
from tests.factories import (
    Tree,
    assign,
    lonely_widow,
    make_tree,
    make_user,
    parent_with_son,
    record_visit,
)

# --------------------------------------------------------------------------- pure rules

CATEGORY_CODES = ["living_alone", "empty_nest", "impaired", "fp_special_family", "other"]


def test_extremely_poor_is_referred_first() -> None:
    route = rules.route_of(extremely_poor=True, categories=["fp_special_family"])
    assert route == rules.Route(rules.RouteKind.REFERRAL, "extremely_poor")
    assert route.referral


def test_only_child_family_is_referred() -> None:
    route = rules.route_of(extremely_poor=False, categories=["living_alone", "fp_special_family"])
    assert route == rules.Route(rules.RouteKind.REFERRAL, "fp_special_family")


def test_unknown_poverty_and_other_categories_go_to_the_family() -> None:
    route = rules.route_of(extremely_poor=None, categories=["living_alone", "impaired"])
    assert route == rules.Route(rules.RouteKind.FAMILY)
    assert not route.referral


def test_a_districts_extra_category_refers() -> None:
    route = rules.route_of(
        extremely_poor=False, categories=["impaired"], extra_categories=["impaired"]
    )
    assert route == rules.Route(rules.RouteKind.REFERRAL, "impaired")


@given(
    poor=st.sampled_from([True, False, None]),
    held=st.sets(st.sampled_from(CATEGORY_CODES)),
    extra=st.lists(st.sampled_from(CATEGORY_CODES), max_size=3),
)
def test_route_is_referral_exactly_when_a_reason_holds(
    poor: bool | None, held: set[str], extra: list[str]
) -> None:
    route = rules.route_of(extremely_poor=poor, categories=held, extra_categories=extra)
    expected = poor is True or "fp_special_family" in held or bool(held & set(extra))
    assert route.referral == expected
    if route.referral:
        assert route.reason == "extremely_poor" or route.reason in held
    else:
        assert route.reason == ""


def test_emergencies_and_repeats_are_not_referred() -> None:
    needs = [("emergency_rescue", ""), ("daily_life_care", ""), ("daily_life_care", "x")]
    assert rules.referred_needs(needs) == [("daily_life_care", "")]


@given(state=st.sampled_from(list(rules.Step)), to=st.sampled_from(list(rules.Step)))
def test_steps_only_move_forward_or_decline(state: rules.Step, to: rules.Step) -> None:
    allowed = rules.can_move(state, to)
    if rules.is_closed(state) or to == rules.Step.RECEIVED:
        assert not allowed
    elif to == rules.Step.DECLINED:
        assert allowed
    else:
        order = [rules.Step.RECEIVED, rules.Step.ACCEPTED, rules.Step.MATCHED, rules.Step.DONE]
        assert allowed == (order.index(to) == order.index(state) + 1)


def test_time_limits_per_step() -> None:
    at = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    limits = rules.TimeLimits(accept_hours=12, match_days=2, done_days=10)
    assert rules.due_after("received", at, limits) == at + dt.timedelta(hours=12)
    assert rules.due_after("accepted", at, limits) == at + dt.timedelta(days=2)
    assert rules.due_after("matched", at, limits) == at + dt.timedelta(days=10)
    assert rules.due_after("done", at, limits) is None
    assert rules.due_after("declined", at, limits) is None
    assert rules.is_overdue(state="accepted", due_at=at, now=at + dt.timedelta(seconds=1))
    assert not rules.is_overdue(state="done", due_at=at, now=at + dt.timedelta(days=1))


def test_what_a_step_needs() -> None:
    def problem(to: str, state: str = "accepted", **kw: Any) -> str:
        values = {"reason": "", "result": "", "has_service": False, **kw}
        return rules.step_problem(state=state, to=to, **values)

    assert problem("declined") == "reason"
    assert problem("declined", reason="  ") == "reason"
    assert problem("declined", reason="moved away") == ""
    assert problem("matched") == "service"
    assert problem("matched", has_service=True) == ""
    assert problem("done", state="matched") == "result"
    assert problem("done", state="matched", result="delivered") == ""
    assert problem("done") == "not_possible"


# --------------------------------------------------------------------------- the world


@dataclass
class Place:
    tree: Tree
    visitor: User
    staff: User
    other_staff: User
    supervisor: User
    poor: Elder
    ordinary: Elder
    service: ServiceEntry


@pytest.fixture
def place(db: Any) -> Place:
    tree = make_tree()
    community = tree.communities[0]
    visitor = make_user(Role.VISITOR, community)
    poor = lonely_widow(community, name="赵桂兰", extremely_poor=True)
    ordinary = parent_with_son(community, name="钱建国")
    assign(poor, visitor)
    assign(ordinary, visitor)
    return Place(
        tree=tree,
        visitor=visitor,
        staff=make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        other_staff=make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[1]),
        supervisor=make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        poor=poor,
        ordinary=ordinary,
        service=ServiceEntry.objects.create(
            name="东城康复护理站", needs=["rehabilitation_nursing"], area=tree.subdistricts[0]
        ),
    )


def visit_with_needs(place: Place, elder: Elder, *needs: str) -> Any:
    return record_visit(
        place.visitor, elder, sections={"needs": {"kinds": list(needs)}}, consent=True
    )


# --------------------------------------------------------------------------- routing


def test_a_visit_refers_the_needs_of_an_extremely_poor_elder(place: Place) -> None:
    visit = visit_with_needs(place, place.poor, "rehabilitation_nursing", "emergency_rescue")
    referral = Referral.objects.get(elder=place.poor)
    assert referral.need == "rehabilitation_nursing"
    assert referral.subdistrict_id == place.tree.subdistricts[0].pk
    assert referral.district_id == place.tree.districts[0].pk
    assert referral.route_reason == "extremely_poor"
    assert referral.source == "visit" and referral.visit_id == visit.pk
    assert referral.state == ReferralState.RECEIVED
    care = CareAction.objects.get(visit=visit, kind="service", subject="rehabilitation_nursing")
    assert referral.care_action_id == care.pk
    assert referral.due_at == referral.created_at + dt.timedelta(hours=24)
    assert list(referral.events.values_list("event", flat=True)) == ["received"]
    # The subdistrict's staff are told in their inbox, once.
    told = Notification.objects.get(cause_type="referral", cause_id=referral.pk)
    assert told.user_id == place.staff.pk and told.template == "referral_received"
    assert Message.objects.filter(notification=told, channel="inbox").count() == 1
    assert "ID" not in told.text and place.poor.name not in told.text


def test_an_ordinary_elders_needs_are_not_referred(place: Place) -> None:
    visit_with_needs(place, place.ordinary, "daily_life_care")
    assert not Referral.objects.exists()


def test_routing_twice_opens_nothing_more(place: Place) -> None:
    visit = visit_with_needs(place, place.poor, "daily_life_care", "assistive_devices")
    assert Referral.objects.count() == 2
    again = needs_route(
        actor=place.visitor,
        elder=place.poor,
        needs=[("daily_life_care", ""), ("assistive_devices", "")],
        source="visit",
        visit=visit,
    )
    assert len(again) == 2 and Referral.objects.count() == 2
    assert Notification.objects.filter(cause_type="referral").count() == 2


def test_without_consent_nothing_is_referred(place: Place) -> None:
    record_visit(place.visitor, place.poor, sections={"needs": {"kinds": ["daily_life_care"]}})
    assert not Referral.objects.exists()


def test_a_districts_extra_category_is_referred(place: Place) -> None:
    ReferralRules.objects.create(area=place.tree.districts[0], extra_categories=["empty_nest"])
    elder = place.ordinary
    elder.categories = ["empty_nest"]
    elder.save(update_fields=["categories"])
    visit_with_needs(place, elder, "emotional_comfort")
    assert Referral.objects.get(elder=elder).route_reason == "empty_nest"


def test_an_alert_closed_as_needed_help_is_referred(place: Place) -> None:
    from tanfang.monitoring.alerts import Raise, alert_close, alert_raise

    now = timezone.now()
    alert, _ = alert_raise(
        Raise(
            key=f"test:{place.poor.pk}",
            kind="inactivity",
            rule="inactivity",
            severity="warning",
            started_at=now - dt.timedelta(hours=12),
            detected_at=now,
            evidence={},
            elder=place.poor,
        ),
        now=now,
    )
    assert alert is not None
    alert_close(alert, actor=place.visitor, outcome="needed_help", note="不能自己做饭")
    referral = Referral.objects.get(elder=place.poor)
    assert (referral.need, referral.source, referral.alert_id) == (
        rules.ALERT_HELP,
        "alert",
        alert.pk,
    )
    assert referral.detail == "不能自己做饭"


# --------------------------------------------------------------------------- steps


def opened(place: Place) -> Referral:
    visit_with_needs(place, place.poor, "rehabilitation_nursing")
    return Referral.objects.get(elder=place.poor)


def test_the_steps_through_to_done_with_time_limits(place: Place) -> None:
    ReferralRules.objects.create(area=None, accept_hours=8, match_days=2, done_days=5)
    referral = opened(place)
    t0 = timezone.now()
    moved = referral_move(place.staff, referral, "accepted", now=t0)
    assert moved.state == "accepted" and moved.handled_by_id == place.staff.pk
    assert moved.due_at == t0 + dt.timedelta(days=2)
    moved = referral_move(place.staff, moved, "matched", service=place.service, now=t0)
    assert moved.service_id == place.service.pk and moved.due_at == t0 + dt.timedelta(days=5)
    care = CareAction.objects.get(pk=referral.care_action_id)
    assert (care.state, care.service_id) == ("connected", place.service.pk)
    moved = referral_move(place.staff, moved, "done", result="每周两次上门康复", now=t0)
    assert moved.closed and moved.closed_at == t0 and moved.result == "每周两次上门康复"
    care.refresh_from_db()
    assert care.state == "served" and care.closed
    assert list(moved.events.values_list("event", flat=True)) == [
        "received",
        "accepted",
        "matched",
        "done",
    ]
    assert AuditEntry.objects.filter(
        action=AuditAction.UPDATE_RECORD, elder_id=place.poor.pk, reason="referral done"
    ).exists()


def test_forbidden_steps(place: Place) -> None:
    referral = opened(place)
    with pytest.raises(ReferralError) as caught:
        referral_move(place.staff, referral, "done", result="x")
    assert caught.value.code == "not_possible"
    with pytest.raises(ReferralError) as caught:
        referral_move(place.staff, referral, "declined")
    assert caught.value.code == "reason"
    referral_move(place.staff, referral, "accepted")
    with pytest.raises(ReferralError) as caught:
        referral_move(place.staff, referral, "matched")
    assert caught.value.code == "service"
    elsewhere = ServiceEntry.objects.create(
        name="房山服务", needs=["rehabilitation_nursing"], area=place.tree.subdistricts[2]
    )
    with pytest.raises(ReferralError) as caught:
        referral_move(place.staff, referral, "matched", service=elsewhere)
    assert caught.value.code == "service"
    declined = referral_move(place.staff, referral, "declined", reason="已入住养老机构")
    assert declined.closed and declined.decline_reason == "已入住养老机构"
    with pytest.raises(ReferralError):
        referral_move(place.staff, declined, "accepted")


def test_only_the_receiving_subdistrict_handles_it(place: Place) -> None:
    referral = opened(place)
    for who in (place.other_staff, place.supervisor, place.visitor):
        with pytest.raises(ReferralError) as caught:
            referral_move(who, referral, "accepted")
        assert caught.value.code == "forbidden"
    assert Referral.objects.get(pk=referral.pk).state == "received"


# --------------------------------------------------------------------------- escalation


def test_overdue_referrals_escalate_once_to_the_district(place: Place) -> None:
    referral = opened(place)
    soon = referral.due_at - dt.timedelta(minutes=1)
    assert referrals_escalate(now=soon) == 0
    late = referral.due_at + dt.timedelta(minutes=1)
    assert referrals_escalate(now=late) == 1
    assert referrals_escalate(now=late + dt.timedelta(days=3)) == 0
    referral.refresh_from_db()
    assert referral.escalated_at == late
    assert ReferralEvent.objects.filter(referral=referral, event="escalated").count() == 1
    told = Notification.objects.filter(cause_type="referral", template="referral_overdue")
    assert [n.user_id for n in told] == [place.supervisor.pk]
    assert referrals_overdue(user=place.supervisor, now=late).get() == referral
    [row] = [r for r in referral_counts(user=place.supervisor, now=late) if r.open]
    assert (row.area_id, row.open, row.overdue, row.escalated) == (
        place.tree.subdistricts[0].pk,
        1,
        1,
        1,
    )


def test_closed_referrals_do_not_escalate(place: Place) -> None:
    referral = opened(place)
    referral_move(place.staff, referral, "declined", reason="重复")
    assert referrals_escalate(now=referral.due_at + dt.timedelta(days=1)) == 0


# --------------------------------------------------------------------------- scope


def test_who_sees_the_referral(place: Place) -> None:
    referral = opened(place)
    community = place.tree.communities[0]
    sees = {
        "staff": place.staff,
        "supervisor": place.supervisor,
        "worker": make_user(Role.COMMUNITY_WORKER, community),
        "city": make_user(Role.CITY_ADMIN, place.tree.city),
    }
    blind = {
        "other subdistrict": place.other_staff,
        "other community": make_user(Role.COMMUNITY_WORKER, place.tree.communities[1]),
        "other district": make_user(Role.DISTRICT_SUPERVISOR, place.tree.districts[1]),
        "visitor": place.visitor,
        "auditor": make_user(Role.AUDITOR, place.tree.districts[0]),
        "partner": make_user(Role.DATA_PARTNER, place.tree.districts[0]),
    }
    for name, user in sees.items():
        assert list(referrals_visible_to(user)) == [referral], name
    for name, user in blind.items():
        assert not referrals_visible_to(user).exists(), name
    assert list(referrals_open(user=place.other_staff)) == []


# --------------------------------------------------------------------------- back office


def test_the_rules_form_checks_area_limits_and_categories(place: Place) -> None:
    from tanfang.referrals.admin import ReferralRulesForm

    district = place.tree.districts[0]
    form = ReferralRulesForm(
        data={
            "area": district.pk,
            "accept_hours": 12,
            "match_days": 2,
            "done_days": 7,
            "extra_categories": ["empty_nest", "impaired"],
        }
    )
    assert form.is_valid(), form.errors
    rules_row = form.save()
    assert rules_row.extra_categories == ["empty_nest", "impaired"]
    wrong = ReferralRulesForm(
        data={
            "area": place.tree.subdistricts[0].pk,
            "accept_hours": 0,
            "match_days": 2,
            "done_days": 7,
            "extra_categories": ["no_such_category"],
        }
    )
    assert not wrong.is_valid()
    assert {"area", "accept_hours", "extra_categories"} <= set(wrong.errors)


def test_the_district_supervisor_edits_her_districts_rules_in_the_back_office(
    place: Place,
) -> None:
    from django.test import Client

    client = Client()
    client.force_login(place.supervisor)
    response = client.post(
        "/admin/referrals/referralrules/add/",
        {
            "area": place.tree.districts[0].pk,
            "accept_hours": 6,
            "match_days": 1,
            "done_days": 5,
            "extra_categories": ["empty_nest"],
        },
    )
    assert response.status_code == 302, response.content[:500]
    row = ReferralRules.objects.get(area=place.tree.districts[0])
    assert (row.accept_hours, row.extra_categories) == (6, ["empty_nest"])
    other = client.post(
        "/admin/referrals/referralrules/add/",
        {"area": place.tree.districts[1].pk, "accept_hours": 6, "match_days": 1, "done_days": 5},
    )
    assert other.status_code == 200  # the other district is not a choice
    assert not ReferralRules.objects.filter(area=place.tree.districts[1]).exists()
    referral = opened(place)
    assert referral.due_at == referral.created_at + dt.timedelta(hours=6)
    assert client.get(f"/admin/referrals/referral/{referral.pk}/change/").status_code == 200
