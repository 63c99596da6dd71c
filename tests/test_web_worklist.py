"""The worklist page: whom to visit, overdue first, then today, then this week; only one's own
elders; what each card says; one audit entry per view; a query count that does not grow."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus, VisitSurge
from tanfang.visits.obligations import Frequency, period_of
from tests.factories import (
    assign,
    lonely_widow,
    make_tree,
    make_user,
    parent_with_son,
    record_visit,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@dataclass
class Place:
    community: Area
    visitor: User
    worker: User


@pytest.fixture
def place() -> Place:
    tree = make_tree()
    community = tree.communities[0]
    return Place(
        community,
        make_user(Role.VISITOR, community),
        make_user(Role.COMMUNITY_WORKER, community),
    )


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def elder_for(place: Place, name: str, *, assigned: bool = True, **status: Any) -> Elder:
    """An elder of the community (assigned to the visitor) with the visit status given, as the
    nightly job would have stored it."""
    elder = lonely_widow(place.community, name=name)
    if assigned:
        assign(elder, place.visitor)
    ElderVisitStatus.objects.update_or_create(
        elder=elder,
        defaults={
            "community": place.community,
            "frequency": "week",
            "computed_on": timezone.localdate(),
            **status,
        },
    )
    return elder


def cards(html: str) -> list[tuple[str, int]]:
    """(group, elder id) of each card, in page order."""
    return [
        (group, int(elder))
        for elder, group in re.findall(
            r'data-testid="worklist-card" data-elder-id="(\d+)" data-group="(\w+)"', html
        )
    ]


def test_a_visitor_sees_her_due_elders_overdue_first_then_today_then_this_week(
    place: Place,
) -> None:
    today = timezone.localdate()
    week_end = period_of(today, Frequency.WEEK)[1]
    overdue = elder_for(
        place,
        "逾期甲",
        overdue_since=today - dt.timedelta(days=9),
        next_due_on=today - dt.timedelta(days=9),
        risk_level="high",
        urgency=1480,
    )
    due_today = elder_for(place, "今日乙", next_due_on=today, urgency=500)
    later_this_week = elder_for(place, "本周丙", next_due_on=week_end, urgency=40)
    elder_for(place, "下周丁", next_due_on=week_end + dt.timedelta(days=3))
    elder_for(place, "已故戊", excluded="deceased", overdue_since=today - dt.timedelta(days=30))
    elder_for(place, "未分配己", assigned=False, overdue_since=today - dt.timedelta(days=3))

    response = signed_in(place.visitor).get(reverse("worklist"))
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    html = response.content.decode()
    expected_week = "today" if week_end == today else "week"
    assert cards(html) == [
        ("overdue", overdue.pk),
        ("today", due_today.pk),
        (expected_week, later_this_week.pk),
    ]
    # The overdue card: name, community, category, risk, days overdue, the button.
    card = html.split(f'data-elder-id="{overdue.pk}"', 1)[1].split("</article>", 1)[0]
    assert "逾期甲" in card and place.community.name in card
    assert 'data-category="living_alone"' in card
    assert 'data-testid="worklist-risk"' in card
    assert re.search(r"\b9\b", card.split('data-testid="worklist-due"', 1)[1][:200])
    assert reverse("visit-new", args=[overdue.pk]) in card
    assert "web/visits.css" in html


def test_each_view_writes_one_list_audit_entry_with_the_elders_shown(place: Place) -> None:
    today = timezone.localdate()
    a = elder_for(place, "甲", next_due_on=today)
    b = elder_for(place, "乙", overdue_since=today - dt.timedelta(days=1))
    signed_in(place.visitor).get(reverse("worklist"))
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.actor == place.visitor
    assert entry.details["page"] == "worklist"
    assert entry.details["shown"] == 2
    assert sorted(entry.details["elder_ids"]) == sorted([a.pk, b.pk])


def test_a_community_worker_sees_the_due_elders_of_her_community(place: Place) -> None:
    today = timezone.localdate()
    mine = elder_for(place, "甲", next_due_on=today)
    unassigned = elder_for(place, "乙", assigned=False, next_due_on=today)
    html = signed_in(place.worker).get(reverse("worklist")).content.decode()
    assert {pk for _, pk in cards(html)} == {mine.pk, unassigned.pk}


def test_surges_holidays_and_open_care_actions_show_on_the_card(place: Place) -> None:
    today = timezone.localdate()
    elder = lonely_widow(place.community, name="热浪庚")
    assign(elder, place.visitor)
    record_visit(
        place.visitor,
        elder,
        sections={"safety": {"gas": {"hazard": True, "what": "漏气"}}},
        consent=True,
    )
    VisitSurge.objects.create(
        code="heat-2026",
        reason="高温天气每日电话探访",
        area=place.community,
        starts_on=today,
        ends_on=today + dt.timedelta(days=4),
    )
    ElderVisitStatus.objects.filter(elder=elder).update(
        next_due_on=today,
        overdue_since=None,
        excluded="",
        scheduled=True,
        open_obligations=[
            {
                "kind": "surge",
                "code": "heat-2026",
                "due_by": today.isoformat(),
                "mode": "phone",
                "frequency": "day",
                "scheduled": True,
            }
        ],
    )
    html = signed_in(place.visitor).get(reverse("worklist")).content.decode()
    card = html.split(f'data-elder-id="{elder.pk}"', 1)[1].split("</article>", 1)[0]
    assert "高温天气每日电话探访" in card
    assert 'data-kind="surge"' in card
    assert 'data-testid="worklist-open-actions"' in card
    assert reverse("care-list") in card


def test_the_query_count_does_not_grow_with_the_list(place: Place) -> None:
    today = timezone.localdate()
    client = signed_in(place.visitor)
    client.get(reverse("worklist"))  # session and user loaded once

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("worklist")).status_code == 200
        return len(captured.captured_queries)

    for n in range(2):
        elder_for(place, f"少{n}", next_due_on=today)
    few = queries()
    for n in range(8):
        elder_for(place, f"多{n}", overdue_since=today - dt.timedelta(days=n + 1))
    assert queries() == few


def test_roles_that_do_not_record_visits_are_refused(place: Place) -> None:
    supervisor = make_user(
        Role.DISTRICT_SUPERVISOR, Area.objects.get(pk=place.community.district_id)
    )
    assert signed_in(supervisor).get(reverse("worklist")).status_code == 403
    assert Client().get(reverse("worklist")).status_code == 302  # to the sign-in page


def test_another_visitors_elders_never_show(place: Place) -> None:
    today = timezone.localdate()
    colleague = make_user(Role.VISITOR, place.community)
    theirs = parent_with_son(place.community)
    assign(theirs, colleague)
    ElderVisitStatus.objects.create(
        elder=theirs, community=place.community, next_due_on=today, computed_on=today
    )
    html = signed_in(place.visitor).get(reverse("worklist")).content.decode()
    assert cards(html) == []
    assert theirs.name not in html
    assert 'data-testid="worklist-empty-overdue"' in html
