"""The auditor's page: the entries of her area, filtered by user, action, elder and date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.audit.selectors import AuditFilters, audit_page
from tests.factories import Tree, lonely_widow, make_tree, make_user, parent_with_son


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def tree(db: None) -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_auditor_sees_who_revealed_whose_number_and_why(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0], "wang")
    auditor = make_user(Role.AUDITOR, tree.city, "audit")
    elder = lonely_widow(tree.communities[0])
    signed_in(worker).post(
        reverse("elder-reveal", args=[elder.pk]), {"field": "id_number", "reason": "办理补贴"}
    )
    response = signed_in(auditor).get(
        reverse("audit-log"), {"action": AuditAction.REVEAL_IDENTIFIER}
    )
    rows = response.context["rows"]
    assert len(rows) == 1
    entry = rows[0]["entry"]
    assert (entry.actor_username, entry.elder_id, entry.reason) == ("wang", elder.pk, "办理补贴")
    html = response.content.decode()
    assert 'data-action="reveal_identifier"' in html
    assert elder.id_number_masked in html and "办理补贴" in html


def test_filters_by_user_elder_and_date(tree: Tree) -> None:
    community = tree.communities[0]
    wang = make_user(Role.COMMUNITY_WORKER, community, "wang")
    zhao = make_user(Role.COMMUNITY_WORKER, community, "zhao")
    auditor = make_user(Role.AUDITOR, tree.city)
    a = lonely_widow(community)
    b = parent_with_son(community)
    signed_in(wang).get(reverse("elder-detail", args=[a.pk]))
    signed_in(zhao).get(reverse("elder-detail", args=[b.pk]))

    def entries(**kw: Any) -> list[AuditEntry]:
        return audit_page(user=auditor, filters=AuditFilters(**kw)).entries

    assert {e.actor_username for e in entries(username="wang")} == {"wang"}
    assert {e.elder_id for e in entries(elder=str(b.pk))} == {b.pk}
    assert {e.elder_id for e in entries(elder=b.name)} == {b.pk}
    today = timezone.localdate()
    assert len(entries(date_from=today, date_to=today)) == 2
    assert entries(date_to=today - dt.timedelta(days=1)) == []


def test_an_auditor_reads_only_her_area(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    far_worker = make_user(Role.COMMUNITY_WORKER, tree.communities[4])
    auditor = make_user(Role.AUDITOR, tree.districts[0])
    near = lonely_widow(tree.communities[0])
    far = lonely_widow(tree.communities[4], name="房山老人")
    signed_in(worker).get(reverse("elder-detail", args=[near.pk]))
    signed_in(far_worker).get(reverse("elder-detail", args=[far.pk]))
    html = signed_in(auditor).get(reverse("audit-log")).content.decode()
    assert near.id_number_masked in html
    assert "房山老人" not in html


def test_audit_page_pages_backwards_with_bounded_queries(
    tree: Tree, django_assert_max_num_queries: Any
) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    auditor = make_user(Role.AUDITOR, tree.city)
    elder = lonely_widow(tree.communities[0])
    client = signed_in(worker)
    for _ in range(55):
        client.get(reverse("elder-detail", args=[elder.pk]))
    audit_client = signed_in(auditor)
    audit_client.get(reverse("audit-log"))
    with django_assert_max_num_queries(4):  # session, user, user's area, the page
        first = audit_client.get(reverse("audit-log"))
    assert len(first.context["rows"]) == 50
    before = first.context["page"].next_before
    second = audit_client.get(reverse("audit-log"), {"before": before})
    assert len(second.context["rows"]) == 5
