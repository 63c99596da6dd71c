"""The data-quality page: counts per area and per child area, the lists behind them,
duplicates, stale first contacts and old facts; bounded queries; audited lists."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import Elder, FirstContact
from tanfang.registry.selectors import (
    duplicate_groups,
    problem_keys,
    quality_problem_page,
    quality_summary,
)
from tanfang.registry.services import first_contact_set
from tests.factories import Tree, lonely_widow, make_elder, make_tree, make_user, parent_with_son


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # District and city counts are cached by area id and day; ids repeat across tests.
    cache.clear()


@pytest.fixture
def tree(db: None) -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_counts_of_each_problem(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    today = timezone.localdate()
    widow = lonely_widow(community)  # no first contact, no assessment, willingness unknown
    parent = parent_with_son(community)  # first contact is the son
    neighbour_contact = parent_with_son(community, name="王建军")
    first_contact_set(
        actor=None, elder=neighbour_contact, name="刘芳", relation="neighbour", phone="13811112222"
    )
    # Every fact as of today, except what the test makes old (the factories date 2026-01-05).
    for elder in Elder.objects.all():
        elder.fact_sources = {
            k: {**v, "date": today.isoformat()} for k, v in elder.fact_sources.items()
        }
        elder.save(update_fields=["fact_sources"])
    FirstContact.objects.filter(elder=parent, is_current=True).update(
        confirmed_on=today - dt.timedelta(days=400)
    )
    parent.refresh_from_db()
    parent.fact_sources["children"]["date"] = (today - dt.timedelta(days=500)).isoformat()
    parent.save(update_fields=["fact_sources"])
    summary = quality_summary(user=worker, area=community, today=today)
    t = summary.total
    assert t["elders"] == 3
    assert t["missing_first_contact"] == 1
    assert t["first_contact_not_child"] == 1
    assert t["stale_first_contact"] == 1
    assert t["old_facts"] == 1
    assert t["willingness_unknown"] == 3
    assert t["missing:capability_level"] == 3
    assert t["missing_facts"] == 3
    assert t["missing:spouse"] == 0
    assert summary.child_level is None and summary.rows == []
    # Each count and the list behind it agree, for every problem.
    for key in problem_keys():
        listed = quality_problem_page(user=worker, area=community, problem=key, today=today)
        assert len(listed.elders) == t[key], key
    html = signed_in(worker).get(reverse("quality")).content.decode()
    assert 'data-problem="missing_first_contact"' in html
    assert widow.pk  # the widow is the one without a first contact
    page = signed_in(worker).get(reverse("quality"), {"problem": "missing_first_contact"})
    assert [r["elder"].pk for r in page.context["rows"]] == [widow.pk]


def test_counts_per_child_area_and_scope(tree: Tree) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    lonely_widow(tree.communities[0])
    lonely_widow(tree.communities[1], name="钱秀英")
    lonely_widow(tree.communities[2], name="孙秀英")  # another subdistrict: not counted
    summary = quality_summary(user=staff, area=tree.subdistricts[0], today=timezone.localdate())
    assert summary.child_level == "community"
    per_area = {r.area.pk: r.counts["missing_first_contact"] for r in summary.rows if r.area}
    assert per_area == {tree.communities[0].pk: 1, tree.communities[1].pk: 1}
    assert summary.total["elders"] == 2
    # Asking for an area outside her scope falls back to her own.
    response = signed_in(staff).get(reverse("quality"), {"area": tree.subdistricts[2].pk})
    assert response.context["area"] == tree.subdistricts[0]


def test_duplicates_same_name_and_birth_date(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    a = make_elder(community, name="刘桂兰", birth_date=dt.date(1939, 9, 9))
    b = make_elder(community, name="刘桂兰", birth_date=dt.date(1939, 9, 9))
    make_elder(community, name="刘桂兰", birth_date=dt.date(1939, 9, 10))
    groups, more = duplicate_groups(user=worker, area=community)
    assert not more
    assert [(g.name, sorted(e.pk for e in g.elders)) for g in groups] == [
        ("刘桂兰", sorted([a.pk, b.pk]))
    ]
    response = signed_in(worker).get(reverse("quality"), {"problem": "duplicates"})
    assert response.context["duplicates"] == 1
    assert 'data-testid="duplicate-group"' in response.content.decode()


def test_a_problem_list_is_audited(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    widow = lonely_widow(community)
    signed_in(worker).get(reverse("quality"), {"problem": "missing:capability_level"})
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.details["problem"] == "missing:capability_level"
    assert entry.details["elder_ids"] == [widow.pk]
    # The counts alone name nobody and are not audited.
    signed_in(worker).get(reverse("quality"))
    assert AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).count() == 1


def test_the_dead_are_not_data_quality_problems(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    widow = lonely_widow(community)
    Elder.objects.filter(pk=widow.pk).update(life_status="deceased")
    summary = quality_summary(user=worker, area=community, today=timezone.localdate())
    assert summary.total["elders"] == 0


def test_quality_page_query_count(tree: Tree, django_assert_max_num_queries: Any) -> None:
    admin = make_user(Role.CITY_ADMIN, tree.city)
    for i, community in enumerate(tree.communities):
        lonely_widow(community, name=f"老人{i}")
        parent_with_son(community, name=f"家长{i}")
    client = signed_in(admin)
    client.get(reverse("quality"))
    cache.clear()
    # PostgreSQL: the count runs between "SET jit = off" and "RESET jit".
    jit = 2 if connection.vendor == "postgresql" else 0
    # session, user, user's area, area choices, the grouped counts, first contacts who are
    # not children, child areas' names, duplicates; the header's inbox badge (its cached
    # count went with cache.clear())
    with django_assert_max_num_queries(8 + jit + 1):
        response = client.get(reverse("quality"))
    assert response.context["summary"].total["elders"] == 16
    # A district's counts are kept for a while: the second view does not count again.
    client.get(reverse("quality"), {"area": tree.districts[0].pk})
    # session, user, area, chosen area, choices, list ids, list rows, audit
    with django_assert_max_num_queries(8):
        response = client.get(
            reverse("quality"), {"area": tree.districts[0].pk, "problem": "missing_facts"}
        )
    assert len(response.context["rows"]) == 8
