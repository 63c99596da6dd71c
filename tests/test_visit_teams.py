"""Service teams: assignment by hand and balanced, substitutes, surges, the visitor's scope."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.accounts.scope import elders_visible_to
from tanfang.registry.models import Elder, VisitorAssignment
from tanfang.registry.records import AssessmentRecord
from tanfang.visits.models import ElderVisitStatus, VisitorProfile
from tanfang.visits.status import status_refresh
from tanfang.visits.teams import (
    TeamError,
    assignments_balance,
    substitution_create,
    surge_declare,
    visitor_assign,
)
from tests.factories import lonely_widow, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture
def community():
    tree = make_tree()
    return tree, tree.communities[0]


def test_assigning_by_hand_ends_the_previous_assignment(community):
    _tree, place = community
    worker = make_user(Role.COMMUNITY_WORKER, place)
    first, second = make_user(Role.VISITOR, place), make_user(Role.VISITOR, place)
    elder = lonely_widow(place)
    today = timezone.localdate()
    visitor_assign(actor=worker, elder=elder, visitor=first, on=today - dt.timedelta(days=10))
    visitor_assign(actor=worker, elder=elder, visitor=second, on=today)
    rows = list(VisitorAssignment.objects.filter(elder=elder).order_by("starts_on"))
    assert rows[0].ends_on == today - dt.timedelta(days=1)
    assert rows[1].visitor == second and rows[1].ends_on is None
    assert not elders_visible_to(first, Elder.objects.all()).exists()
    assert list(elders_visible_to(second, Elder.objects.all())) == [elder]


def test_a_visitor_of_another_community_cannot_be_assigned(community):
    tree, place = community
    worker = make_user(Role.COMMUNITY_WORKER, place)
    elsewhere = make_user(Role.VISITOR, tree.communities[1])
    with pytest.raises(TeamError):
        visitor_assign(actor=worker, elder=lonely_widow(place), visitor=elsewhere)


def test_balancing_respects_capacity_and_evens_out_the_load(community):
    _, place = community
    worker = make_user(Role.COMMUNITY_WORKER, place)
    big, small = make_user(Role.VISITOR, place), make_user(Role.VISITOR, place)
    VisitorProfile.objects.create(user=big, capacity=4)
    VisitorProfile.objects.create(user=small, capacity=2)
    for i in range(7):
        lonely_widow(place, name=f"老人{i}")
    result = assignments_balance(actor=worker, community=place)
    assert (result.assigned, result.unassigned_left) == (6, 1)
    loads = {v: VisitorAssignment.objects.filter(visitor=v).count() for v in (big, small)}
    assert loads == {big: 4, small: 2}
    # Balancing again assigns only what is still waiting, and there is no room left.
    again = assignments_balance(actor=worker, community=place)
    assert (again.assigned, again.unassigned_left) == (0, 1)


def test_a_substitute_sees_the_absent_visitors_elders_only_for_the_period(community):
    _, place = community
    worker = make_user(Role.COMMUNITY_WORKER, place)
    away, substitute = make_user(Role.VISITOR, place), make_user(Role.VISITOR, place)
    elder = lonely_widow(place)
    today = timezone.localdate()
    visitor_assign(actor=worker, elder=elder, visitor=away, on=today - dt.timedelta(days=5))
    assert not elders_visible_to(substitute, Elder.objects.all()).exists()
    substitution_create(
        actor=worker,
        visitor=away,
        substitute=substitute,
        starts_on=today,
        ends_on=today + dt.timedelta(days=7),
        reason="休假",
    )
    assert list(elders_visible_to(substitute, Elder.objects.all())) == [elder]
    with pytest.raises(TeamError):
        substitution_create(
            actor=worker, visitor=away, substitute=away, starts_on=today, ends_on=today
        )


def test_a_surge_makes_the_matching_elders_due_daily(community):
    tree, place = community
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    lonely = lonely_widow(
        place,
        assessment=AssessmentRecord(scheme="beijing", level=2, assessed_on=dt.date(2026, 1, 5)),
    )
    other = parent_with_son(place)
    today = timezone.localdate()
    status_refresh(elder_ids=[lonely.pk, other.pk], on=today)
    surge_declare(
        actor=supervisor,
        code="heat-2026",
        area=tree.districts[0],
        reason="高温",
        starts_on=today,
        ends_on=today + dt.timedelta(days=4),
        frequency="day",
        mode="phone",
        categories_all=["impaired", "living_alone"],
    )
    lonely_status = ElderVisitStatus.objects.get(elder=lonely)
    other_status = ElderVisitStatus.objects.get(elder=other)
    assert lonely_status.next_due_on == today
    assert any(o["kind"] == "surge" for o in lonely_status.open_obligations)
    assert not any(o["kind"] == "surge" for o in other_status.open_obligations)
