"""Referral pages: the subdistrict's open referrals (overdue first), the district's overdue
ones with counts per subdistrict, one referral with its steps, the elder page, and scope."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import ServiceEntry
from tanfang.referrals.models import Referral
from tanfang.referrals.services import referral_move, referrals_escalate
from tanfang.registry.models import Elder
from tests.factories import Tree, assign, lonely_widow, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class Place:
    tree: Tree
    visitor: User
    staff: User
    supervisor: User
    elder: Elder
    referral: Referral
    service: ServiceEntry


@pytest.fixture
def place() -> Place:
    tree = make_tree()
    community = tree.communities[0]
    visitor = make_user(Role.VISITOR, community)
    elder = lonely_widow(community, name="孙秀英", extremely_poor=True)
    assign(elder, visitor)
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    record_visit(
        visitor,
        elder,
        sections={"needs": {"kinds": ["rehabilitation_nursing"]}},
        consent=True,
    )
    return Place(
        tree=tree,
        visitor=visitor,
        staff=staff,
        supervisor=make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        elder=elder,
        referral=Referral.objects.get(elder=elder),
        service=ServiceEntry.objects.create(
            name="东城康复护理站",
            needs=["rehabilitation_nursing"],
            area=tree.subdistricts[0],
            phone="010-12345678",
        ),
    )


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> list[int]:
    return [
        int(pk) for pk in re.findall(r'data-testid="referral-row" data-referral-id="(\d+)"', html)
    ]


def more_referrals(place: Place, n: int) -> list[Referral]:
    """``n`` more extremely poor elders of the subdistrict, each with one referral."""
    found = []
    for i in range(n):
        community = place.tree.communities[i % 2]
        elder = lonely_widow(community, name=f"周{i}英", extremely_poor=True)
        worker_visit = record_visit(
            None, elder, sections={"needs": {"kinds": ["daily_life_care"]}}, consent=True
        )
        found.append(Referral.objects.get(visit=worker_visit))
    return found


def test_the_subdistrict_list_shows_open_referrals_overdue_first(place: Place) -> None:
    [other] = more_referrals(place, 1)
    Referral.objects.filter(pk=other.pk).update(due_at=timezone.now() - dt.timedelta(hours=3))
    response = signed_in(place.staff).get(reverse("referral-list"))
    html = response.content.decode()
    assert response.status_code == 200
    assert rows(html) == [other.pk, place.referral.pk]
    assert 'data-testid="referral-overdue"' in html
    assert "孙秀英" in html
    entry = AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).latest("at")
    assert entry.details["page"] == "referral-list"
    assert sorted(entry.details["elder_ids"]) == sorted([place.elder.pk, other.elder_id])
    assert 'id="nav-referrals"' in html


def test_the_district_sees_overdue_referrals_and_counts(place: Place) -> None:
    client = signed_in(place.supervisor)
    html = client.get(reverse("referral-list")).content.decode()
    assert rows(html) == []
    assert 'data-testid="referral-empty"' in html
    late = place.referral.due_at + dt.timedelta(minutes=5)
    Referral.objects.filter(pk=place.referral.pk).update(due_at=timezone.now() - dt.timedelta(1))
    referrals_escalate(now=late)
    html = client.get(reverse("referral-list")).content.decode()
    assert rows(html) == [place.referral.pk]
    counts = re.findall(
        r'data-testid="referral-count-row" data-area="(\d+)" data-open="(\d+)" '
        r'data-overdue="(\d+)"',
        html,
    )
    assert (place.tree.subdistricts[0].code, "1", "1") in counts
    assert (place.tree.subdistricts[1].code, "0", "0") in counts


def test_the_list_query_count_is_pinned(place: Place, django_assert_max_num_queries: Any) -> None:
    more_referrals(place, 6)
    for user in (place.staff, place.supervisor):
        client = signed_in(user)
        client.get(reverse("referral-list"))
        # session, user, user's area, the referrals, the audit entry, the counts and the
        # areas they are counted by (district only), the header's unread inbox count.
        with django_assert_max_num_queries(8):
            response = client.get(reverse("referral-list"))
        assert response.status_code == 200


def test_the_detail_page_steps_through(place: Place) -> None:
    client = signed_in(place.staff)
    url = reverse("referral-detail", args=[place.referral.pk])
    html = client.get(url).content.decode()
    assert 'data-testid="referral-step-accepted"' in html
    assert 'data-testid="referral-step-declined"' in html
    assert 'data-testid="referral-step-matched"' not in html
    assert "孙秀英" in html and place.elder.id_number_masked not in html
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, elder_id=place.elder.pk, details__page="referral-detail"
    ).exists()
    step = reverse("referral-step", args=[place.referral.pk])
    assert client.post(step, {"to": "accepted"}).status_code == 302
    html = client.get(url).content.decode()
    assert "东城康复护理站" in html  # the directory's service is offered
    response = client.post(step, {"to": "matched"})
    assert response.status_code == 400
    assert 'data-testid="error-service"' in response.content.decode()
    assert client.post(step, {"to": "matched", "service": place.service.pk}).status_code == 302
    assert client.post(step, {"to": "done", "result": "已上门康复"}).status_code == 302
    referral = Referral.objects.get(pk=place.referral.pk)
    assert (referral.state, referral.closed, referral.result) == ("done", True, "已上门康复")
    html = client.get(url).content.decode()
    assert 'data-testid="referral-steps' not in html
    assert [e for e in re.findall(r'data-event="(\w+)"', html)] == [
        "received",
        "accepted",
        "matched",
        "done",
    ]


def test_declining_needs_a_reason(place: Place) -> None:
    client = signed_in(place.staff)
    step = reverse("referral-step", args=[place.referral.pk])
    response = client.post(step, {"to": "declined", "reason": " "})
    assert response.status_code == 400
    assert 'data-testid="error-reason"' in response.content.decode()
    assert client.post(step, {"to": "declined", "reason": "家属已安排"}).status_code == 302
    assert Referral.objects.get(pk=place.referral.pk).decline_reason == "家属已安排"


def test_a_forbidden_step_is_refused(place: Place) -> None:
    response = signed_in(place.staff).post(
        reverse("referral-step", args=[place.referral.pk]), {"to": "done", "result": "x"}
    )
    assert response.status_code == 400
    assert Referral.objects.get(pk=place.referral.pk).state == "received"


def test_the_district_views_but_does_not_handle(place: Place) -> None:
    client = signed_in(place.supervisor)
    html = client.get(reverse("referral-detail", args=[place.referral.pk])).content.decode()
    assert 'data-testid="referral-state"' in html
    assert 'data-testid="referral-step-accepted"' not in html
    response = client.post(reverse("referral-step", args=[place.referral.pk]), {"to": "accepted"})
    assert response.status_code == 403


def test_another_subdistrict_gets_404_and_a_visitor_403(place: Place) -> None:
    other = make_user(Role.SUBDISTRICT_STAFF, place.tree.subdistricts[1])
    url = reverse("referral-detail", args=[place.referral.pk])
    assert signed_in(other).get(url).status_code == 404
    assert signed_in(other).get(reverse("referral-list")).content.decode().count("孙秀英") == 0
    assert signed_in(place.visitor).get(url).status_code == 403
    assert signed_in(place.visitor).get(reverse("referral-list")).status_code == 403


def test_the_elder_page_lists_her_referrals(place: Place) -> None:
    referral_move(place.staff, place.referral, "accepted")
    html = signed_in(place.staff).get(reverse("elder-detail", args=[place.elder.pk]))
    text = html.content.decode()
    assert f'data-referral-id="{place.referral.pk}" data-state="accepted"' in text
    # The visitor (no referral capability) sees no referral section.
    text = signed_in(place.visitor).get(reverse("elder-detail", args=[place.elder.pk]))
    assert 'id="elder-referrals"' not in text.content.decode()


# -- the supervision page's drill-down: ?area= and overdue=1 -------------------------------
def a_referral(community: Any, *, due_in: dt.timedelta, closed: bool = False) -> Referral:
    """A referral of a new elder of ``community``, received two days ago, due ``due_in``
    from now (negative: overdue unless ``closed``)."""
    elder = lonely_widow(community, name=f"吴{Referral.objects.count()}英", extremely_poor=True)
    now = timezone.now()
    return Referral.objects.create(
        key=f"drill:{elder.pk}",
        elder=elder,
        community_id=elder.community_id,
        subdistrict_id=elder.subdistrict_id,
        district_id=elder.district_id,
        need="meals",
        route_reason="extremely_poor",
        source="visit",
        created_at=now - dt.timedelta(days=2),
        due_at=now + due_in,
        closed=closed,
        closed_at=now if closed else None,
        state="done" if closed else "received",
    )


@pytest.fixture
def spread(place: Place) -> dict[str, Referral]:
    """Subdistrict 0: overdue in community 0 and in community 1, not yet due, overdue but
    done. Subdistrict 1: overdue. Fangshan: overdue."""
    c, day = place.tree.communities, dt.timedelta(days=1)
    return {
        "overdue_c0": a_referral(c[0], due_in=-day),
        "overdue_c1": a_referral(c[1], due_in=-2 * day),
        "not_due": a_referral(c[0], due_in=day),
        "done": a_referral(c[1], due_in=-day, closed=True),
        "next_door": a_referral(c[2], due_in=-day),
        "fangshan": a_referral(c[4], due_in=-day),
    }


def test_the_list_filtered_by_area_and_overdue(place: Place, spread: dict[str, Referral]) -> None:
    tree = place.tree
    supervisor = signed_in(place.supervisor)
    s0 = tree.subdistricts[0]
    page = supervisor.get(reverse("referral-list"), {"area": s0.pk, "overdue": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    assert set(rows(html)) == {spread["overdue_c0"].pk, spread["overdue_c1"].pk}
    assert 'data-testid="list-filter"' in html and s0.name in html
    assert 'data-testid="clear-filter"' in html
    html = supervisor.get(
        reverse("referral-list"), {"area": tree.subdistricts[1].pk, "overdue": "1"}
    ).content.decode()
    assert set(rows(html)) == {spread["next_door"].pk}
    # Subdistrict staff: a community of hers, overdue only, then every open one there.
    staff = signed_in(place.staff)
    c0 = tree.communities[0].pk
    html = staff.get(reverse("referral-list"), {"area": c0, "overdue": "1"}).content.decode()
    assert set(rows(html)) == {spread["overdue_c0"].pk}
    html = staff.get(reverse("referral-list"), {"area": c0}).content.decode()
    assert set(rows(html)) == {place.referral.pk, spread["overdue_c0"].pk, spread["not_due"].pk}
    html = staff.get(reverse("referral-list"), {"overdue": "1"}).content.decode()
    assert set(rows(html)) == {spread["overdue_c0"].pk, spread["overdue_c1"].pk}


def test_the_filtered_list_outside_the_scope_is_404(
    place: Place, spread: dict[str, Referral]
) -> None:
    tree = place.tree
    supervisor = signed_in(place.supervisor)
    for area in ("x", "0x1", "999999", str(tree.subdistricts[2].pk), str(tree.city.pk)):
        answer = supervisor.get(reverse("referral-list"), {"area": area, "overdue": "1"})
        assert answer.status_code == 404, area
    staff = signed_in(place.staff)
    assert staff.get(reverse("referral-list"), {"area": tree.subdistricts[1].pk}).status_code == 404
    assert staff.get(reverse("referral-list"), {"area": tree.communities[2].pk}).status_code == 404


def test_the_filtered_list_query_count_is_pinned(
    place: Place, spread: dict[str, Referral], django_assert_max_num_queries: Any
) -> None:
    more_referrals(place, 6)
    for user in (place.staff, place.supervisor):
        client = signed_in(user)
        query = {"area": place.tree.subdistricts[0].pk, "overdue": "1"}
        client.get(reverse("referral-list"), query)
        # The unfiltered list's 8, and the chosen area.
        with django_assert_max_num_queries(9):
            response = client.get(reverse("referral-list"), query)
        assert response.status_code == 200
