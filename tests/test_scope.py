"""Which elders and areas each role sees: the one scope rule, at every level of the tree."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder, VisitorAssignment
from tests.factories import lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def city() -> dict[str, object]:
    tree = make_tree()
    elders = [lonely_widow(c, name=f"老人{i}") for i, c in enumerate(tree.communities)]
    return {"tree": tree, "elders": elders}


def _seen(user: object) -> set[int]:
    return set(Elder.objects.visible_to(user).values_list("pk", flat=True))


def test_each_level_sees_exactly_its_subtree(city: dict[str, object]) -> None:
    tree, elders = city["tree"], city["elders"]
    assert _seen(make_user(Role.CITY_ADMIN, tree.city)) == {e.pk for e in elders}
    district = tree.districts[1]
    assert _seen(make_user(Role.DISTRICT_SUPERVISOR, district)) == {
        e.pk for e in elders if e.district_id == district.pk
    }
    sub = tree.subdistricts[0]
    assert _seen(make_user(Role.SUBDISTRICT_STAFF, sub)) == {
        e.pk for e in elders if e.subdistrict_id == sub.pk
    }
    community = tree.communities[3]
    assert _seen(make_user(Role.COMMUNITY_WORKER, community)) == {
        e.pk for e in elders if e.community_id == community.pk
    }


def test_roles_without_personal_data_see_no_elder(city: dict[str, object]) -> None:
    tree = city["tree"]
    for role in (Role.DATA_PARTNER, Role.AUDITOR):
        assert _seen(make_user(role, tree.city)) == set()
    assert _seen(make_user(Role.COMMUNITY_WORKER, None)) == set()


def test_a_role_at_the_wrong_level_is_still_bounded_by_its_area(city: dict[str, object]) -> None:
    tree = city["tree"]
    # A "city admin" misplaced at a community sees nothing: her column is city_id.
    assert _seen(make_user(Role.CITY_ADMIN, tree.communities[0])) == set()


def test_visitor_sees_only_current_assignments_in_her_area(city: dict[str, object]) -> None:
    tree, elders = city["tree"], city["elders"]
    visitor = make_user(Role.VISITOR, tree.communities[0])
    mine, outside = elders[0], elders[5]
    today = timezone.localdate()
    VisitorAssignment.objects.create(elder=mine, visitor=visitor, starts_on=today)
    VisitorAssignment.objects.create(elder=outside, visitor=visitor, starts_on=today)
    ended = lonely_widow(tree.communities[0], name="过去的")
    VisitorAssignment.objects.create(
        elder=ended,
        visitor=visitor,
        starts_on=today - dt.timedelta(days=30),
        ends_on=today - dt.timedelta(days=1),
    )
    assert _seen(visitor) == {mine.pk}


def test_inactive_user_sees_nothing(city: dict[str, object]) -> None:
    user = make_user(Role.CITY_ADMIN, city["tree"].city)
    user.is_active = False
    user.save()
    assert _seen(user) == set()


def test_areas_visible_are_the_subtree(city: dict[str, object]) -> None:
    tree = city["tree"]
    sup = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    codes = set(Area.objects.visible_to(sup).values_list("code", flat=True))
    assert codes == {
        "110101",
        *(a.code for a in tree.subdistricts[:2]),
        *(a.code for a in tree.communities[:4]),
    }
    assert not Area.objects.visible_to(make_user(Role.AUDITOR, tree.city)).exists()


def test_auditor_reads_the_log_of_her_area_only(city: dict[str, object]) -> None:
    from tanfang.accounts.scope import audit_visible_to

    tree, elders = city["tree"], city["elders"]
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    audit_record(actor=worker, action=AuditAction.VIEW_RECORD, elder=elders[0])
    audit_record(actor=worker, action=AuditAction.VIEW_RECORD, elder=elders[6])
    district_auditor = make_user(Role.AUDITOR, tree.districts[0])
    seen = set(
        audit_visible_to(district_auditor, AuditEntry.objects.all()).values_list(
            "elder_id", flat=True
        )
    )
    assert seen == {elders[0].pk}
    assert not audit_visible_to(worker, AuditEntry.objects.all()).exists()
