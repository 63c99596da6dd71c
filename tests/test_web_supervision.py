"""The supervisors' worklist (overdue elders by area, visitors' workloads and their
drill-downs) and the surge pages (declare, list)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import Elder, VisitorAssignment
from tanfang.registry.records import AssessmentRecord
from tanfang.visits.models import ElderVisitStatus, VisitSurge
from tanfang.visits.obligations import Frequency, period_of
from tanfang.visits.status import status_refresh
from tanfang.web.views.supervision import percent
from tests.factories import Tree, lonely_widow, make_elder, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def tree() -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # messages are compared in English
    client.force_login(user)
    return client


def overdue(elder: Elder, days: int) -> None:
    ElderVisitStatus.objects.filter(elder=elder).update(
        overdue_since=timezone.localdate() - dt.timedelta(days=days)
    )


def counted_this_week(elder: Elder) -> None:
    start = period_of(timezone.localdate(), Frequency.WEEK)[0]
    at = timezone.make_aware(dt.datetime.combine(start, dt.time(9)))
    ElderVisitStatus.objects.filter(elder=elder).update(last_counted_at=at, overdue_since=None)


@pytest.fixture
def place(tree: Tree) -> dict[str, Any]:
    """Subdistrict 0: community 0 has 甲 (overdue 9 days), 乙 (overdue 2 days), 丙 (visited
    this week) and 丁 (deceased, not due); community 1 has 戊 (due, not overdue). Fangshan
    (community 4) has 越界 (overdue). Visitor 小周 of community 0 has 甲 and 丙."""
    c0, c1, c4 = tree.communities[0], tree.communities[1], tree.communities[4]
    people = {
        "甲": lonely_widow(c0, name="甲"),
        "乙": make_elder(c0, name="乙"),
        "丙": make_elder(c0, name="丙"),
        "丁": make_elder(c0, name="丁", life_status="deceased"),
        "戊": make_elder(c1, name="戊"),
        "越界": make_elder(c4, name="越界"),
    }
    status_refresh(elder_ids=[e.pk for e in people.values()])
    ElderVisitStatus.objects.update(overdue_since=None, last_counted_at=None)
    overdue(people["甲"], 9)
    overdue(people["乙"], 2)
    overdue(people["越界"], 5)
    counted_this_week(people["丙"])
    visitor = make_user(Role.VISITOR, c0, username="xiaozhou")
    for name in ("甲", "丙"):
        VisitorAssignment.objects.create(
            elder=people[name], visitor=visitor, starts_on=dt.date(2025, 1, 1)
        )
    return {"people": people, "visitor": visitor}


def test_percent_rounds_down_and_never_claims_the_target_early() -> None:
    assert percent(1, 2) == "50%"
    assert percent(1, 3) == "33.3%"
    assert percent(999, 1000) == "99.9%"
    assert percent(9999, 10000) == "99.9%"
    assert percent(3, 3) == "100%"
    assert percent(0, 0) == "—"


def test_overdue_by_child_area_and_workload_of_a_subdistrict(tree: Tree, place: dict) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(reverse("supervision"))
    assert response.status_code == 200
    rows = {r["area"].code: (r["due"], r["overdue"]) for r in response.context["children"]}
    c0, c1 = tree.communities[0].code, tree.communities[1].code
    # 丁 is deceased: not due. Fangshan is outside the subdistrict.
    assert rows == {c0: (3, 2), c1: (1, 0)}
    html = response.content.decode()
    assert f'data-testid="overdue-{c0}-overdue"><a href="?area={tree.communities[0].pk}' in html
    loads = {r["visitor"].username: r for r in response.context["loads"]}
    assert loads["xiaozhou"]["elders"] == 2
    assert loads["xiaozhou"]["visited"] == 1
    assert loads["xiaozhou"]["overdue"] == 1
    assert loads["xiaozhou"]["completion"] == "50%"
    assert "越界" not in html
    # No list of elders on the subdistrict's page: nothing personal to audit.
    assert not AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).exists()


def test_a_community_lists_its_overdue_elders_longest_first_and_audits(
    tree: Tree, place: dict
) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(reverse("supervision"), {"area": tree.communities[0].pk})
    assert response.status_code == 200
    names = [r["elder"].name for r in response.context["overdue_rows"]]
    assert names == ["甲", "乙"]
    html = response.content.decode()
    jia = place["people"]["甲"]
    assert f'href="{reverse("elder-detail", args=[jia.pk])}"' in html
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.details["page"] == "supervision-overdue"
    assert sorted(entry.details["elder_ids"]) == sorted([jia.pk, place["people"]["乙"].pk])
    assert entry.area_code == tree.communities[0].code


def test_a_visitor_drill_down_lists_her_elders(tree: Tree, place: dict) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    visitor = place["visitor"]
    response = signed_in(worker).get(reverse("supervision"), {"visitor": visitor.pk})
    assert response.status_code == 200
    assert {r["elder"].name for r in response.context["visitor_rows"]} == {"甲", "丙"}
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.details["page"] == "supervision-visitor"
    assert entry.details["visitor"] == "xiaozhou"
    # A visitor of another community is not found from here.
    other = make_user(Role.VISITOR, tree.communities[1])
    assert signed_in(worker).get(reverse("supervision"), {"visitor": other.pk}).status_code == 404


def test_a_community_worker_sees_her_community_only(tree: Tree, place: dict) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    client = signed_in(worker)
    response = client.get(reverse("supervision"))
    assert [(r["area"].pk, r["due"], r["overdue"]) for r in response.context["children"]] == [
        (tree.communities[0].pk, 3, 2)
    ]
    for outside in (tree.communities[1], tree.subdistricts[0], tree.communities[4]):
        assert client.get(reverse("supervision"), {"area": outside.pk}).status_code == 404
    assert client.get(reverse("supervision"), {"area": "x"}).status_code == 404


def test_a_district_sees_subdistricts_without_the_visitors_table(tree: Tree, place: dict) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    client = signed_in(supervisor)
    client.get(reverse("supervision"))  # session and first-request costs
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("supervision"))
    assert response.status_code == 200
    # 8 for visits, 2 for the monitoring alerts' outcomes (counts, and the child areas), 5
    # for emergencies, referrals and family notifications (tests/test_supervision_response.py).
    assert len(queries) <= 15, [q["sql"] for q in queries.captured_queries]
    rows = {r["area"].code: (r["due"], r["overdue"]) for r in response.context["children"]}
    assert rows == {tree.subdistricts[0].code: (4, 2), tree.subdistricts[1].code: (0, 0)}
    assert response.context["loads"] == []
    assert "visitor-loads" not in response.content.decode()


def test_roles_without_rates_are_refused(tree: Tree) -> None:
    visitor = make_user(Role.VISITOR, tree.communities[0])
    assert signed_in(visitor).get(reverse("supervision")).status_code == 403
    assert signed_in(visitor).get(reverse("surges")).status_code == 403


# --------------------------------------------------------------------------- surges


def surge_form(area: Any, **changes: Any) -> dict[str, Any]:
    today = timezone.localdate()
    data = {
        "reason": "高温天气",
        "area": area.pk,
        "starts_on": today.isoformat(),
        "ends_on": (today + dt.timedelta(days=4)).isoformat(),
        "frequency": "day",
        "mode": "phone",
        "categories_all": ["living_alone", "impaired"],
    }
    data.update(changes)
    return data


def test_declaring_a_surge_updates_the_elders_due(tree: Tree) -> None:
    fangshan = tree.districts[1]
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, fangshan)
    place = tree.communities[4]
    frail = lonely_widow(
        place,
        name="韩桂珍",
        assessment=AssessmentRecord(scheme="beijing", level=1, assessed_on=dt.date(2025, 6, 1)),
    )
    alone_only = lonely_widow(place, name="魏淑华")
    status_refresh(elder_ids=[frail.pk, alone_only.pk])
    response = signed_in(supervisor).post(reverse("surge-new"), surge_form(fangshan))
    assert response.status_code == 302, response.content.decode()[:2000]
    surge = VisitSurge.objects.get()
    assert (surge.area, surge.reason, surge.frequency, surge.mode) == (
        fangshan,
        "高温天气",
        "day",
        "phone",
    )
    assert sorted(surge.categories_all) == ["impaired", "living_alone"]
    assert surge.declared_by == supervisor
    assert surge.ends_on - surge.starts_on == dt.timedelta(days=4)

    def kinds(elder: Elder) -> set[str]:
        status = ElderVisitStatus.objects.get(elder=elder)
        return {o["kind"] for o in status.open_obligations}

    assert "surge" in kinds(frail)
    assert "surge" not in kinds(alone_only)  # not impaired: the surge is for both categories
    page = signed_in(supervisor).get(reverse("surges"))
    assert [r["surge"].pk for r in page.context["current"]] == [surge.pk]
    assert "高温天气" in page.content.decode()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_on": "2020-01-02", "starts_on": "2020-01-01"}, "ends_on"),
        ({"ends_on": "2020-01-01", "starts_on": "2099-01-01"}, "ends_on"),
        ({"reason": "   "}, "reason"),
        ({"frequency": "hour"}, "frequency"),
    ],
)
def test_a_surge_form_with_mistakes_is_refused(tree: Tree, changes: dict, field: str) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).post(
        reverse("surge-new"), surge_form(tree.subdistricts[0], **changes)
    )
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert not VisitSurge.objects.exists()


def test_a_surge_is_declared_only_within_the_scope(tree: Tree) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    client = signed_in(staff)
    form = client.get(reverse("surge-new")).context["form"]
    offered = set(form.fields["area"].queryset)
    assert offered == {tree.subdistricts[0], tree.communities[0], tree.communities[1]}
    for outside in (tree.districts[0], tree.subdistricts[1], tree.communities[4]):
        response = client.post(reverse("surge-new"), surge_form(outside))
        assert response.status_code == 400
        assert "area" in response.context["form"].errors
    assert not VisitSurge.objects.exists()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    assert signed_in(worker).get(reverse("surge-new")).status_code == 403
    assert (
        signed_in(worker).post(reverse("surge-new"), surge_form(tree.communities[0])).status_code
        == 403
    )
    assert not VisitSurge.objects.exists()


def test_the_list_shows_surges_above_and_below_not_elsewhere(tree: Tree) -> None:
    today = timezone.localdate()

    def surge(code: str, area: Any, starts: dt.date, ends: dt.date) -> VisitSurge:
        return VisitSurge.objects.create(
            code=code, reason=f"理由{code}", area=area, starts_on=starts, ends_on=ends
        )

    city_wide = surge("city", tree.city, today, today + dt.timedelta(days=2))
    mine = surge(
        "mine", tree.communities[0], today - dt.timedelta(days=30), today - dt.timedelta(days=28)
    )
    surge("sibling", tree.communities[1], today, today)
    surge("fangshan", tree.districts[1], today, today)
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    response = signed_in(worker).get(reverse("surges"))
    assert [r["surge"] for r in response.context["current"]] == [city_wide]
    assert [r["surge"] for r in response.context["past"]] == [mine]
    html = response.content.decode()
    assert "理由sibling" not in html and "理由fangshan" not in html
    assert 'data-testid="surge-new"' not in html  # she may not declare one


def test_monitoring_alert_outcomes_are_counted_by_area(tree: Tree, place: dict) -> None:
    """Alerts of the last 30 days per community of the subdistrict: raised, still open, and
    how the closed ones ended; outside the subdistrict nothing is counted."""
    from tanfang.monitoring.alerts import Raise, alert_close, alert_raise
    from tanfang.monitoring.models import DataPartner, Meter

    partner = DataPartner.objects.create(code="w", name="水务", kind="water_utility")
    now = timezone.now()
    people = place["people"]
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])

    def raised(name: str, days_ago: int) -> Any:
        meter, _ = Meter.objects.get_or_create(
            meter_id=f"M-{name}",
            defaults={
                "partner": partner,
                "elder": people[name],
                "utility": "water",
                "register": "cumulative",
                "unit": "L",
            },
        )
        at = now - dt.timedelta(days=days_ago)
        alert, _ = alert_raise(
            Raise(
                key=f"{meter.meter_id}:routine_missed:{at.isoformat()}",
                kind="missed_routine",
                rule="routine_missed",
                severity="warning",
                started_at=at - dt.timedelta(hours=9),
                detected_at=at,
                evidence={},
                meter=meter,
            ),
            now=at,
        )
        assert alert is not None
        return alert

    alert_close(raised("甲", 1), actor=worker, outcome="all_well")
    alert_close(raised("甲", 2), actor=worker, outcome="needed_help", note="送医")
    raised("乙", 3)  # still open
    raised("甲", 45)  # before the 30 days
    raised("越界", 1)  # Fangshan
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(reverse("supervision"))
    outcomes = response.context["alert_outcomes"]
    rows = {r["row"].code: r for r in outcomes["rows"]}
    c0, c1 = tree.communities[0].code, tree.communities[1].code
    assert set(rows) == {c0, c1}
    assert (rows[c0]["row"].raised, rows[c0]["row"].open) == (3, 1)
    assert rows[c0]["row"].outcomes == {"all_well": 1, "needed_help": 1}
    assert rows[c1]["row"].raised == 0
    html = response.content.decode()
    assert f'data-testid="alert-outcome-{c0}-raised">3<' in html
    # A supervisor looking at a child area does not get her own area's counts there.
    response = signed_in(staff).get(reverse("supervision"), {"area": tree.communities[0].pk})
    assert response.context["alert_outcomes"] is None
