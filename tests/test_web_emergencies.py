"""The emergency pages: one case with its call list (tel: links, one-tap results), logging
calls, confirming, closing (and the form's errors), the timeline a district supervisor reads,
the list, the worklist's and the elder page's sections, reporting an emergency; scope (404
outside), audit, and a query count that does not grow with the timeline."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role, User
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.core import crypto
from tanfang.emergencies.models import (
    CallAttempt,
    CaseLevel,
    CaseState,
    EmergencyCase,
    EmergencyRules,
)
from tanfang.emergencies.services import call_log
from tanfang.monitoring.alerts import device_alert_raise
from tanfang.monitoring.models import DataPartner, Device
from tanfang.notifications.models import FamilyContact, Message, MessageState
from tanfang.registry.models import LifeStatus
from tests.factories import assign, make_elder, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here = tree.communities[0]
    visitor = make_user(Role.VISITOR, here)
    elder = parent_with_son(here)
    assign(elder, visitor, days_ago=30)
    FamilyContact.objects.create(
        elder=elder,
        name="张丽",
        relation="女儿",
        phone_cipher=crypto.encrypt("13700137000"),
        phone_masked="137****7000",
    )
    partner = DataPartner.objects.create(
        code="devices",
        name="Devices",
        kind="device_vendor",
        contact=make_user(Role.DATA_PARTNER, tree.city),
    )
    device = Device.objects.create(device_id="SOS-1", partner=partner, elder=elder, kind="sos")
    return {
        "tree": tree,
        "here": here,
        "visitor": visitor,
        "elder": elder,
        "device": device,
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
    }


def press(world: dict[str, Any], message_id: str = "m-1") -> EmergencyCase:
    now = timezone.now()
    device_alert_raise(world["device"], kind="sos", at=now, message_id=message_id)
    return EmergencyCase.objects.get(elder=world["elder"], state__in=["open", "confirmed"])


def client_for(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return client


def test_the_case_page_shows_the_call_list_with_tel_links(world: dict[str, Any]) -> None:
    case = press(world)
    page = client_for(world["visitor"]).get(reverse("emergency-detail", args=[case.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="emergency-state" data-state="open"' in html
    assert 'href="tel:13800138000"' in html and 'href="tel:13700137000"' in html
    for result in ("no_answer", "busy", "unreachable", "answered"):
        assert f'data-testid="call-{result}"' in html
    assert 'data-testid="emergency-confirm"' in html
    assert world["elder"].address in html or "emergency-address" in html
    # One record view and one reveal of the phones per page view.
    entries = AuditEntry.objects.filter(actor_username=world["visitor"].username)
    assert entries.filter(action=AuditAction.VIEW_RECORD).count() == 1
    assert entries.filter(action=AuditAction.REVEAL_IDENTIFIER).count() == 1


def test_logging_calls_confirming_and_closing(world: dict[str, Any]) -> None:
    case = press(world)
    client = client_for(world["visitor"])
    son = f"first_contact:{world['elder'].first_contacts.get(is_current=True).pk}"
    for result in ("no_answer", "busy", "answered"):
        answer = client.post(
            reverse("emergency-call", args=[case.pk]), {"contact": son, "result": result}
        )
        assert answer.status_code == 302
    assert list(CallAttempt.objects.values_list("result", flat=True)) == [
        "no_answer",
        "busy",
        "answered",
    ]
    assert (
        client.post(
            reverse("emergency-call", args=[case.pk]), {"contact": "family:0", "result": "busy"}
        ).status_code
        == 302
    )
    assert CallAttempt.objects.count() == 3, "someone not on the list is refused"
    assert (
        client.post(reverse("emergency-confirm", args=[case.pk]), {"note": "在路上"}).status_code
        == 302
    )
    case.refresh_from_db()
    assert case.state == CaseState.CONFIRMED and case.escalate_at is None
    refused = client.post(
        reverse("emergency-close", args=[case.pk]), {"outcome": "hospitalised", "note": ""}
    )
    assert refused.status_code == 400 and 'data-testid="error-note"' in refused.content.decode()
    closed = client.post(
        reverse("emergency-close", args=[case.pk]),
        {"outcome": "hospitalised", "note": "120送往区医院"},
    )
    assert closed.status_code == 302
    case.refresh_from_db()
    assert (case.state, case.outcome) == (CaseState.CLOSED, "hospitalised")
    world["elder"].refresh_from_db()
    assert world["elder"].life_status == LifeStatus.IN_HOSPITAL


def test_a_district_supervisor_reads_the_timeline(world: dict[str, Any]) -> None:
    case = press(world)
    visitor = world["visitor"]
    call_log(case=case, actor=visitor, contact_ref=f"user:{visitor.pk}", result="answered")
    # The outbox sent one message: the page shows it from the outbox row.
    sms = Message.objects.filter(channel="sms").first()
    assert sms is not None
    Message.objects.filter(pk=sms.pk).update(
        state=MessageState.DELIVERED,
        sent_at=timezone.now(),
        delivered_at=timezone.now(),
    )
    client = client_for(visitor)
    client.post(reverse("emergency-close", args=[case.pk]), {"outcome": "all_well"})
    supervisor = client_for(world["supervisor"])
    listing = supervisor.get(reverse("emergency-list")).content.decode()
    assert f'data-case-id="{case.pk}"' in listing and 'data-state="closed"' in listing
    assert 'data-testid="emergency-to-confirm"' in listing
    page = supervisor.get(reverse("emergency-detail", args=[case.pk]))
    html = page.content.decode()
    for kind in (
        "opened",
        "assigned",
        "notified",
        "sent",
        "delivered",
        "call",
        "confirmed",
        "closed",
    ):
        assert f'data-kind="{kind}"' in html, kind
    assert "tel:" not in html, "a closed case shows no full numbers"
    assert not AuditEntry.objects.filter(
        actor_username=world["supervisor"].username, action=AuditAction.REVEAL_IDENTIFIER
    ).exists()


def test_outside_the_scope_is_404(world: dict[str, Any]) -> None:
    case = press(world)
    tree = world["tree"]
    for user in (
        make_user(Role.COMMUNITY_WORKER, tree.communities[1]),
        make_user(Role.DISTRICT_SUPERVISOR, tree.districts[1]),
        make_user(Role.VISITOR, world["here"]),
    ):
        client = client_for(user)
        assert client.get(reverse("emergency-detail", args=[case.pk])).status_code == 404
        assert client.post(reverse("emergency-confirm", args=[case.pk])).status_code == 404
    case.refresh_from_db()
    assert case.state == CaseState.OPEN


def test_the_worklist_and_the_elder_page_show_the_open_case(world: dict[str, Any]) -> None:
    client = client_for(world["visitor"])
    elder = world["elder"]
    page = client.get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert 'data-testid="emergency-report-submit"' in page
    assert (
        'data-testid="worklist-emergencies"' not in client.get(reverse("worklist")).content.decode()
    )
    answer = client.post(
        reverse("emergency-report", args=[elder.pk]), {"description": "老人摔倒，呼救"}
    )
    case = EmergencyCase.objects.get(elder=elder)
    assert answer.status_code == 302 and answer["Location"].endswith(f"/emergencies/{case.pk}/")
    assert (case.trigger, case.opened_by) == ("visitor_report", world["visitor"])
    worklist = client.get(reverse("worklist")).content.decode()
    assert f'data-case-id="{case.pk}"' in worklist
    # Above everything else: the alerts and the elders to visit come after it.
    top = worklist.index('data-testid="worklist-emergencies"')
    assert top < worklist.index('data-testid="worklist-overdue"')
    page = client.get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert 'data-testid="elder-emergency-open"' in page
    assert (
        client.post(reverse("emergency-report", args=[elder.pk]), {"description": ""}).status_code
        == 302
    )
    assert EmergencyCase.objects.count() == 1


def test_the_case_page_costs_the_same_queries_however_long_the_timeline(
    world: dict[str, Any],
) -> None:
    case = press(world)
    client = client_for(world["visitor"])
    url = reverse("emergency-detail", args=[case.pk])
    visitor = world["visitor"]

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    queries()  # the first page of a session reads what later pages remember
    few = queries()
    for n in range(8):
        call_log(
            case=case,
            actor=visitor,
            contact_ref=f"user:{visitor.pk}",
            result="no_answer",
            note=f"第{n}次",
            now=timezone.now() + dt.timedelta(seconds=n),
        )
    assert queries() == few
    assert few <= 40, few


# -- the supervision page's drill-down: ?area= and late=1 ----------------------------------
def a_case(
    community: Any,
    *,
    opened_ago: dt.timedelta,
    confirmed_after: float | None = None,
    closed: bool = False,
) -> EmergencyCase:
    """A case of a new elder of ``community``, confirmed that many minutes after opening (or
    not), closed (all well) when ``closed``."""
    elder = make_elder(community, name=f"急{EmergencyCase.objects.count()}")
    opened = timezone.now() - opened_ago
    confirmed = None if confirmed_after is None else opened + dt.timedelta(minutes=confirmed_after)
    state = CaseState.OPEN if confirmed is None else CaseState.CONFIRMED
    return EmergencyCase.objects.create(
        key=f"drill:{elder.pk}",
        elder=elder,
        community_id=elder.community_id,
        subdistrict_id=elder.subdistrict_id,
        district_id=elder.district_id,
        trigger="sos",
        level=CaseLevel.VISITOR,
        state=CaseState.CLOSED if closed else state,
        opened_at=opened,
        confirmed_at=confirmed,
        closed_at=confirmed if closed else None,
        outcome="all_well" if closed else "",
    )


@pytest.fixture
def two_subdistricts(world: dict[str, Any]) -> dict[str, EmergencyCase]:
    """The city waits 5 + 10 minutes; community 1 (subdistrict 0) only 2 + 3. Subdistrict 0:
    confirmed after 40 minutes and closed (late), unconfirmed for two hours (late), confirmed
    after 8 minutes in community 0 (on time) and in community 1 (late there), unconfirmed for
    3 minutes (not yet late), late but 40 days ago (outside the window). Subdistrict 1: late."""
    EmergencyRules.objects.create(area=None, visitor_minutes=5, community_minutes=10)
    c = world["tree"].communities
    EmergencyRules.objects.create(area=c[1], visitor_minutes=2, community_minutes=3)
    hours, days = (lambda n: dt.timedelta(hours=n)), (lambda n: dt.timedelta(days=n))
    return {
        "late_closed": a_case(c[0], opened_ago=days(2), confirmed_after=40, closed=True),
        "late_open": a_case(c[0], opened_ago=hours(2)),
        "on_time": a_case(c[0], opened_ago=days(1), confirmed_after=8),
        "strict": a_case(c[1], opened_ago=days(1), confirmed_after=8),
        "fresh": a_case(c[0], opened_ago=dt.timedelta(minutes=3)),
        "old": a_case(c[0], opened_ago=days(40), confirmed_after=90, closed=True),
        "next_door": a_case(c[2], opened_ago=days(1), confirmed_after=60),
    }


def case_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'data-testid="emergency-row" data-case-id="(\d+)"', html)}


def test_the_list_filtered_by_area_and_late(
    world: dict[str, Any], two_subdistricts: dict[str, EmergencyCase]
) -> None:
    cases, tree = two_subdistricts, world["tree"]
    client = client_for(world["supervisor"])
    s0 = tree.subdistricts[0]
    page = client.get(reverse("emergency-list"), {"area": s0.pk, "late": "1"})
    assert page.status_code == 200
    html = page.content.decode()
    want = {"late_closed", "late_open", "strict"}
    assert case_ids(html) == {cases[k].pk for k in want}
    [shown] = re.findall(r'data-testid="list-filter">([^<]*)<a href="/emergencies/"', html)
    assert s0.name in shown and "30" in shown
    # The area alone: every case of the subdistrict, late or not, none of its neighbour's.
    html = client.get(reverse("emergency-list"), {"area": s0.pk}).content.decode()
    assert case_ids(html) == {c.pk for k, c in cases.items() if k != "next_door"}
    s1 = client.get(reverse("emergency-list"), {"area": tree.subdistricts[1].pk, "late": "1"})
    assert case_ids(s1.content.decode()) == {cases["next_door"].pk}
    # A community worker's list (open cases only) includes the closed late one when late=1.
    worker = client_for(world["worker"])
    html = worker.get(reverse("emergency-list"), {"late": "1"}).content.decode()
    assert case_ids(html) == {cases["late_closed"].pk, cases["late_open"].pk}
    entry = AuditEntry.objects.filter(actor_username=world["supervisor"].username).first()
    assert entry is not None and entry.action == AuditAction.VIEW_LIST


def test_the_filtered_list_outside_the_scope_is_404(
    world: dict[str, Any], two_subdistricts: dict[str, EmergencyCase]
) -> None:
    tree = world["tree"]
    supervisor = client_for(world["supervisor"])
    for area in ("x", "-1", "999999", str(tree.subdistricts[2].pk), str(tree.districts[1].pk)):
        answer = supervisor.get(reverse("emergency-list"), {"area": area, "late": "1"})
        assert answer.status_code == 404, area
    staff = client_for(make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]))
    assert (
        staff.get(reverse("emergency-list"), {"area": tree.subdistricts[1].pk}).status_code == 404
    )
    assert staff.get(reverse("emergency-list"), {"area": tree.city.pk}).status_code == 404
    assert staff.get(reverse("emergency-list"), {"area": tree.communities[1].pk}).status_code == 200


def test_the_filtered_list_costs_the_same_queries_however_many_cases(
    world: dict[str, Any], two_subdistricts: dict[str, EmergencyCase]
) -> None:
    tree = world["tree"]
    client = client_for(world["supervisor"])
    query = {"area": tree.subdistricts[0].pk, "late": "1"}

    def queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            page = client.get(reverse("emergency-list"), query)
        assert page.status_code == 200
        return len(captured.captured_queries), len(case_ids(page.content.decode()))

    queries()
    few, shown = queries()
    for community in tree.communities[4:]:
        EmergencyRules.objects.create(area=community, visitor_minutes=1, community_minutes=1)
    for n, community in enumerate(tree.communities[:2] * 3):
        a_case(community, opened_ago=dt.timedelta(days=n + 1), confirmed_after=30 + n)
    assert queries() == (few, shown + 6)
    assert few <= 12, few
