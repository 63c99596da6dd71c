"""The visit rates page (weekly and monthly, per child area, target, trend) and its
drill-down to the elders not visited (audited, paged by keyset)."""

from __future__ import annotations

import datetime as dt
import re
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
from tanfang.registry.models import Elder
from tanfang.visits.models import RateSnapshot
from tanfang.visits.obligations import Frequency, period_of
from tanfang.visits.rates import rate_snapshot_close
from tanfang.visits.status import status_refresh
from tanfang.web.views import rates_page
from tests.factories import Tree, make_elder, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def signed_in(user: Any) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # messages are compared in English
    client.force_login(user)
    return client


def this_week() -> str:
    return period_of(timezone.localdate(), Frequency.WEEK)[2]


def visited_now(elder: Elder) -> None:
    """A counting phone visit in the current week (and month), whatever the time of day."""
    week_start = period_of(timezone.localdate(), Frequency.WEEK)[0]
    start = timezone.make_aware(dt.datetime.combine(week_start, dt.time(0, 1)))
    started = max(timezone.now() - dt.timedelta(minutes=10), start)
    record_visit(
        None,
        elder,
        mode="phone",
        started_at=started,
        ended_at=started + dt.timedelta(minutes=5),
        source="import",
    )


@pytest.fixture
def tree() -> Tree:
    return make_tree()


@pytest.fixture
def people(tree: Tree) -> dict[str, Elder]:
    """Community 0: 甲 visited this week, 乙 not, 丁 deceased (not due). Community 1: 戊 not
    visited. Fangshan (community 4): 越界 visited."""
    c0, c1, c4 = tree.communities[0], tree.communities[1], tree.communities[4]
    found = {
        "甲": make_elder(c0, name="甲"),
        "乙": make_elder(c0, name="乙"),
        "丁": make_elder(c0, name="丁", life_status="deceased"),
        "戊": make_elder(c1, name="戊"),
        "越界": make_elder(c4, name="越界"),
    }
    status_refresh(elder_ids=[e.pk for e in found.values()])
    visited_now(found["甲"])
    visited_now(found["越界"])
    return found


def cell(html: str, code: str, what: str) -> str:
    match = re.search(rf'data-testid="rate-{code}-{what}"[^>]*>([^<]*)<', html)
    assert match is not None, f"no cell rate-{code}-{what}"
    return match.group(1).strip()


def test_weekly_rates_of_the_area_and_its_children(tree: Tree, people: dict) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    client = signed_in(staff)
    client.get(reverse("rates"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("rates"))
    assert response.status_code == 200
    assert len(queries) <= 26, [q["sql"] for q in queries.captured_queries]
    assert response.context["period"].key == this_week()
    html = response.content.decode()
    sub, c0, c1 = tree.subdistricts[0].code, tree.communities[0].code, tree.communities[1].code
    values = {
        code: tuple(cell(html, code, w) for w in ("due", "visited", "rate"))
        for code in (sub, c0, c1)
    }
    assert values == {sub: ("3", "1", "33.3%"), c0: ("2", "1", "50%"), c1: ("1", "0", "0%")}
    # Only the area and its children: no row of another subdistrict or of Fangshan.
    assert re.findall(r'data-testid="rate-row" data-area-code="(\d+)"', html) == [sub, c0, c1]
    # Each row drills down to the elders not visited.
    assert (
        f"{reverse('rates-missed')}?period={this_week()}&amp;area={tree.communities[0].pk}" in html
    )
    excluded = {key: n for key, _label, n in response.context["excluded"]}
    assert excluded["deceased"] == 1


def test_monthly_rates_and_the_trend(tree: Tree, people: dict) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    month = period_of(timezone.localdate(), Frequency.MONTH)[2]
    response = signed_in(staff).get(reverse("rates"), {"period": month})
    assert response.status_code == 200
    assert response.context["period"].key == month and not response.context["weekly"]
    html = response.content.decode()
    assert cell(html, tree.communities[0].code, "rate") == "50%"
    bars = response.context["chart"]["bars"]
    assert len(bars) == 8
    assert bars[-1]["key"] == month and bars[-1]["selected"]
    assert bars[-1]["rate"] == "33.3%" and bars[-1]["height"] == pytest.approx(33.3, abs=0.1)
    assert html.count('data-testid="trend-bar"') == 8
    previous = period_of(
        period_of(timezone.localdate(), Frequency.MONTH)[0] - dt.timedelta(days=1), Frequency.MONTH
    )[2]
    assert response.context["nearby"]["previous"] == previous
    assert f'href="?period={previous}&amp;area={tree.subdistricts[0].pk}"' in html
    assert response.context["nearby"]["next"] == ""  # the next month has not begun


def test_a_closed_period_shows_its_snapshot(tree: Tree, people: dict) -> None:
    last_week_day = timezone.localdate() - dt.timedelta(days=7)
    last_week = period_of(last_week_day, Frequency.WEEK)[2]
    rate_snapshot_close(last_week)
    RateSnapshot.objects.filter(area=tree.communities[0], period=last_week).update(
        due=10, visited=7
    )
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(
        reverse("rates"), {"period": last_week, "area": tree.communities[0].pk}
    )
    html = response.content.decode()
    code = tree.communities[0].code
    assert (cell(html, code, "due"), cell(html, code, "visited"), cell(html, code, "rate")) == (
        "10",
        "7",
        "70%",
    )
    assert response.context["snapshot"]
    assert response.context["nearby"]["next"] == this_week()


@pytest.mark.parametrize("period", ["2026-13", "W48", "2026-W60", "2999-W01", "'; drop"])
def test_a_period_that_cannot_be_shown_falls_back_to_this_week(
    tree: Tree, people: dict, period: str
) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(reverse("rates"), {"period": period})
    assert response.status_code == 200
    assert response.context["period"].key == this_week()
    assert response.context["period_error"]
    assert 'data-testid="period-error"' in response.content.decode()


def test_scope_of_the_rates(tree: Tree, people: dict) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    client = signed_in(worker)
    response = client.get(reverse("rates"))
    html = response.content.decode()
    assert re.findall(r'data-testid="rate-row" data-area-code="(\d+)"', html) == [
        tree.communities[0].code
    ]
    for outside in (tree.communities[1], tree.subdistricts[0], tree.communities[4]):
        assert client.get(reverse("rates"), {"area": outside.pk}).status_code == 404
        assert client.get(reverse("rates-missed"), {"area": outside.pk}).status_code == 404
    visitor = make_user(Role.VISITOR, tree.communities[0])
    assert signed_in(visitor).get(reverse("rates")).status_code == 403
    assert signed_in(visitor).get(reverse("rates-missed")).status_code == 403


def test_the_drill_down_lists_the_elders_not_visited_and_audits(tree: Tree, people: dict) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(
        reverse("rates-missed"), {"period": this_week(), "area": tree.communities[0].pk}
    )
    assert response.status_code == 200
    assert [r["elder"].name for r in response.context["rows"]] == ["乙"]
    html = response.content.decode()
    yi = people["乙"]
    assert f'href="{reverse("elder-detail", args=[yi.pk])}"' in html
    assert "甲" not in html and "丁" not in html
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.details["page"] == "rates-missed"
    assert entry.details["period"] == this_week()
    assert entry.details["elder_ids"] == [yi.pk]
    assert entry.area_code == tree.communities[0].code


def test_the_drill_down_pages_by_keyset(
    tree: Tree, people: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rates_page, "PAGE_SIZE", 1)
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    client = signed_in(staff)
    first = client.get(reverse("rates-missed"))
    assert [r["elder"].name for r in first.context["rows"]] == ["乙"]  # community 0 first
    assert first.context["next_url"]
    second = client.get(reverse("rates-missed") + first.context["next_url"])
    assert [r["elder"].name for r in second.context["rows"]] == ["戊"]
    assert second.context["next_url"] == ""
    assert 'data-testid="page-first"' in second.content.decode()
    assert AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).count() == 2
