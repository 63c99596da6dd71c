"""Care action pages: the user's open actions (overdue first, escalated marked), one action
with its history and the steps allowed from its state, moving it on, and the scope."""

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
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, CareActionEvent, ServiceEntry
from tanfang.care.rules import next_states
from tanfang.care.services import care_actions_escalate
from tanfang.registry.models import Elder
from tests.factories import Tree, assigned_visitor, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class Place:
    tree: Tree
    visitor: User
    worker: User
    elder: Elder
    gas: CareAction
    nursing: CareAction


@pytest.fixture
def place() -> Place:
    tree = make_tree()
    community = tree.communities[0]
    visitor, elder = assigned_visitor(community)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    record_visit(
        visitor,
        elder,
        sections={
            "safety": {"gas": {"hazard": True, "what": "软管开裂"}},
            "needs": {"kinds": ["rehabilitation_nursing"]},
        },
        consent=True,
    )
    return Place(
        tree,
        visitor,
        worker,
        elder,
        CareAction.objects.get(elder=elder, kind="hazard", subject="gas"),
        CareAction.objects.get(elder=elder, kind="service", subject="rehabilitation_nursing"),
    )


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-testid="care-row" data-action-id="(\d+)"', html)]


def test_the_list_shows_her_open_actions_overdue_first_and_is_audited(place: Place) -> None:
    today = timezone.localdate()
    CareAction.objects.filter(pk=place.nursing.pk).update(due_on=today - dt.timedelta(days=2))
    response = signed_in(place.visitor).get(reverse("care-list"))
    assert response.status_code == 200
    html = response.content.decode()
    assert rows(html)[:2] == [place.nursing.pk, place.gas.pk]
    nursing = html.split(f'data-action-id="{place.nursing.pk}"', 1)[1].split("</li>", 1)[0]
    assert 'data-testid="care-overdue"' in nursing
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST, details__page="care-list")
    assert entry.details["elder_ids"] == [place.elder.pk]


def test_escalated_actions_are_marked_for_the_community_worker(place: Place) -> None:
    escalated = care_actions_escalate(on=place.gas.due_on + dt.timedelta(days=1))
    assert escalated >= 1
    html = signed_in(place.worker).get(reverse("care-list")).content.decode()
    gas = html.split(f'data-action-id="{place.gas.pk}"', 1)[1].split("</li>", 1)[0]
    assert 'data-testid="care-escalated"' in gas
    assert re.search(
        rf'class="care-card[^"]* escalated" data-testid="care-row" data-action-id="{place.gas.pk}"',
        html,
    )


def test_closed_actions_leave_the_list(place: Place) -> None:
    client = signed_in(place.visitor)
    client.post(reverse("care-move", args=[place.gas.pk]), {"to": "declined", "note": "老人拒绝"})
    assert place.gas.pk not in rows(client.get(reverse("care-list")).content.decode())


def test_the_page_offers_only_the_steps_allowed_and_shows_the_history(place: Place) -> None:
    response = signed_in(place.visitor).get(reverse("care-detail", args=[place.gas.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    offered = set(re.findall(r'name="to" value="(\w+)"', html))
    assert offered == set(next_states("hazard", "to_remind"))
    assert "served" not in offered
    assert 'data-event="opened"' in html
    assert "软管开裂" in html
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, details__care_action=place.gas.pk
    ).exists()


def test_the_community_worker_walks_a_hazard_to_removed(place: Place) -> None:
    client = signed_in(place.worker)
    url = reverse("care-move", args=[place.gas.pk])
    # A step of another kind of action is refused, and nothing changes.
    refused = client.post(url, {"to": "served"})
    assert refused.status_code == 400
    place.gas.refresh_from_db()
    assert place.gas.state == "to_remind"
    assert client.post(url, {"to": "reminded", "note": "已提醒关阀"}).status_code == 302
    done = client.post(url, {"to": "removed", "result": "已更换软管，复查无漏气"})
    assert done.status_code == 302
    place.gas.refresh_from_db()
    assert place.gas.closed and place.gas.state == "removed"
    assert place.gas.result == "已更换软管，复查无漏气"
    steps = list(
        CareActionEvent.objects.filter(action=place.gas).values_list("to_state", "by_id", "note")
    )
    assert steps[1:] == [
        ("reminded", place.worker.pk, "已提醒关阀"),
        ("removed", place.worker.pk, "已更换软管，复查无漏气"),
    ]
    page = client.get(reverse("care-detail", args=[place.gas.pk])).content.decode()
    assert 'data-closed="true"' in page and 'id="care-move-form"' not in page
    again = client.post(url, {"to": "declined"})
    assert again.status_code == 302  # closed: back to the page with a message
    place.gas.refresh_from_db()
    assert place.gas.state == "removed"


def test_a_service_need_is_connected_to_a_service_of_the_elders_area(place: Place) -> None:
    elder = place.elder
    near = ServiceEntry.objects.create(
        name="东城康复护理站",
        needs=["rehabilitation_nursing"],
        area_id=elder.subdistrict_id,
        phone="010-12345678",
    )
    meals = ServiceEntry.objects.create(
        name="社区助餐点", needs=["daily_life_care"], area_id=elder.community_id
    )
    far = ServiceEntry.objects.create(
        name="房山康复中心", needs=["rehabilitation_nursing"], area=place.tree.districts[1]
    )
    client = signed_in(place.visitor)
    html = client.get(reverse("care-detail", args=[place.nursing.pk])).content.decode()
    options = re.findall(r'<option value="(\d+)"', html)
    assert options == [str(near.pk), str(meals.pk)]  # the matching one first, none far away
    url = reverse("care-move", args=[place.nursing.pk])
    assert client.post(url, {"to": "connected", "service": far.pk}).status_code == 400
    response = client.post(url, {"to": "connected", "service": near.pk, "note": "已联系"})
    assert response.status_code == 302
    place.nursing.refresh_from_db()
    assert place.nursing.state == "connected" and place.nursing.service == near
    page = client.get(reverse("care-detail", args=[place.nursing.pk])).content.decode()
    assert 'data-testid="care-service"' in page and "东城康复护理站" in page


def test_actions_outside_ones_reach_answer_404(place: Place) -> None:
    community = place.elder.community
    colleague = make_user(Role.VISITOR, community)  # same community, not her action
    elsewhere = make_user(Role.COMMUNITY_WORKER, place.tree.communities[1])
    for user in (colleague, elsewhere):
        client = signed_in(user)
        assert client.get(reverse("care-detail", args=[place.gas.pk])).status_code == 404
        moved = client.post(reverse("care-move", args=[place.gas.pk]), {"to": "declined"})
        assert moved.status_code == 404
        assert place.gas.pk not in rows(client.get(reverse("care-list")).content.decode())
    place.gas.refresh_from_db()
    assert place.gas.state == "to_remind"
    assert (
        signed_in(place.visitor).get(reverse("care-move", args=[place.gas.pk])).status_code == 405
    )
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, Area.objects.get(pk=community.district_id))
    assert signed_in(supervisor).get(reverse("care-list")).status_code == 403
