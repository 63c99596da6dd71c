"""The elder page: reasons and masked identifiers, reveal with a reason, category changes by
hand, the first contact and its history — and the audit entries each of them writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import CategoryOverride, Elder, FirstContact, VisitorAssignment
from tests.factories import Tree, lonely_widow, make_tree, make_user, new_id_number, parent_with_son


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


def test_the_page_shows_reasons_masked_identifiers_and_missing_facts(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    number = new_id_number(dt.date(1940, 3, 2))
    elder = lonely_widow(tree.communities[0], id_number=number, phone="13912345678")
    html = signed_in(worker).get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert 'data-category="living_alone"' in html
    assert "无配偶、无在世子女" in html  # the stored reason, rendered in Chinese
    assert elder.id_number_masked in html and number not in html
    assert "139****5678" in html and "13912345678" not in html
    assert 'data-testid="missing-facts"' in html  # no capability assessment recorded
    assert 'data-testid="focus-flag"' in html


def test_reasons_follow_the_reader_language(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    client = signed_in(worker)
    client.post(reverse("set-language"), {"language": "en", "next": "/"})
    html = client.get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert "No spouse and no living children" in html


def test_reveal_requires_a_reason(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    number = new_id_number(dt.date(1940, 3, 2))
    elder = lonely_widow(tree.communities[0], id_number=number)
    response = signed_in(worker).post(
        reverse("elder-reveal", args=[elder.pk]), {"field": "id_number", "reason": " "}
    )
    assert response.status_code == 400
    assert number not in response.content.decode()
    assert not AuditEntry.objects.filter(action=AuditAction.REVEAL_IDENTIFIER).exists()


@pytest.mark.parametrize("field", ["id_number", "phone"])
def test_reveal_shows_the_number_once_and_audits_who_whom_when_why(tree: Tree, field: str) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    number = new_id_number(dt.date(1940, 3, 2))
    elder = lonely_widow(tree.communities[0], id_number=number, phone="13912345678")
    client = signed_in(worker)
    response = client.post(
        reverse("elder-reveal", args=[elder.pk]),
        {"field": field, "reason": "核对身份办理补贴"},
    )
    assert response.status_code == 200
    full = number if field == "id_number" else "13912345678"
    assert full in response.content.decode()
    entry = AuditEntry.objects.get(action=AuditAction.REVEAL_IDENTIFIER)
    assert (entry.actor_username, entry.elder_id, entry.reason) == (
        worker.username,
        elder.pk,
        "核对身份办理补贴",
    )
    assert entry.details == {"field": field}
    assert entry.at is not None
    # Shown once: the next view of the page is masked again.
    assert full not in client.get(reverse("elder-detail", args=[elder.pk])).content.decode()


def test_a_visitor_may_reveal_the_phone_of_her_assigned_elder(tree: Tree) -> None:
    visitor = make_user(Role.VISITOR, tree.communities[0])
    elder = lonely_widow(tree.communities[0], phone="13912345678")
    VisitorAssignment.objects.create(elder=elder, visitor=visitor, starts_on="2024-01-01")
    response = signed_in(visitor).post(
        reverse("elder-reveal", args=[elder.pk]),
        {"field": "phone", "reason": "call before visiting"},
    )
    assert "13912345678" in response.content.decode()


def test_override_requires_a_reason(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    response = signed_in(worker).post(
        reverse("elder-override", args=[elder.pk]),
        {"category": "empty_nest", "action": "add", "reason": "   "},
    )
    assert response.status_code == 400
    assert not CategoryOverride.objects.exists()
    elder.refresh_from_db()
    assert "empty_nest" not in elder.categories


def test_override_adds_and_removes_categories_and_is_audited(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    client = signed_in(worker)
    response = client.post(
        reverse("elder-override", args=[elder.pk]),
        {"category": "empty_nest", "action": "add", "reason": "儿子长期在外地工作"},
    )
    assert response.status_code == 302
    elder.refresh_from_db()
    assert "empty_nest" in elder.categories
    entry = AuditEntry.objects.get(action=AuditAction.OVERRIDE_CATEGORY)
    assert (entry.elder_id, entry.reason) == (elder.pk, "儿子长期在外地工作")
    html = client.get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert "儿子长期在外地工作" in html  # the hand-added category shows its reason

    widow = lonely_widow(tree.communities[0])
    client.post(
        reverse("elder-override", args=[widow.pk]),
        {"category": "living_alone", "action": "remove", "reason": "侄女每日照料"},
    )
    widow.refresh_from_db()
    assert "living_alone" not in widow.categories
    html = client.get(reverse("elder-detail", args=[widow.pk])).content.decode()
    assert 'data-testid="removed-category"' in html and "侄女每日照料" in html


def test_a_supervisor_cannot_override(tree: Tree) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    elder = parent_with_son(tree.communities[0])
    response = signed_in(supervisor).post(
        reverse("elder-override", args=[elder.pk]),
        {"category": "empty_nest", "action": "add", "reason": "x"},
    )
    assert response.status_code == 403
    assert not CategoryOverride.objects.exists()


def test_setting_the_first_contact_keeps_the_history(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    old = elder.first_contact
    assert old is not None
    client = signed_in(worker)
    response = client.post(
        reverse("elder-first-contact", args=[elder.pk]),
        {"name": "刘芳", "relation": "neighbour", "phone": "13811112222", "note": "儿子同意"},
    )
    assert response.status_code == 302
    elder.refresh_from_db()
    assert elder.first_contact is not None and elder.first_contact.name == "刘芳"
    old.refresh_from_db()
    assert not old.is_current and old.valid_to is not None
    assert FirstContact.objects.filter(elder=elder).count() == 2
    assert AuditEntry.objects.filter(
        action=AuditAction.SET_FIRST_CONTACT, elder_id=elder.pk
    ).exists()
    html = client.get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert 'data-testid="first-contact-history"' in html
    # The elder has a son: a neighbour as first contact is flagged, with the advice.
    assert 'data-testid="first-contact-problem"' in html
    assert "张伟" in html


def test_first_contact_form_validates_the_phone(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    response = signed_in(worker).post(
        reverse("elder-first-contact", args=[elder.pk]),
        {"name": "刘芳", "relation": "neighbour", "phone": "12345"},
    )
    assert response.status_code == 400
    assert not FirstContact.objects.filter(elder=elder).exists()
    with translation.override("zh-hans"):
        assert 'data-testid="error-phone"' in response.content.decode()


def test_missing_first_contact_shows_the_advice(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    html = signed_in(worker).get(reverse("elder-detail", args=[elder.pk])).content.decode()
    assert 'data-testid="first-contact-problem"' in html
    assert 'data-testid="first-contact-advice"' in html


def test_elder_page_query_count_is_bounded(tree: Tree, django_assert_max_num_queries: Any) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    from tanfang.monitoring.models import DataPartner, Device, Meter

    partner = DataPartner.objects.create(code="w", name="水务", kind="water_utility")
    for n in range(3):
        Meter.objects.create(
            meter_id=f"M{n}",
            partner=partner,
            elder=elder,
            utility="water",
            register="interval",
            unit="L",
        )
        Device.objects.create(device_id=f"D{n}", partner=partner, elder=elder, kind="sos")
    client = signed_in(worker)
    client.get(reverse("elder-detail", args=[elder.pk]))
    # 16 for the registry and visits, 4 for the monitoring section (meters, devices, alerts,
    # absences), whatever their number; 3 for the contact list (family contacts, who was
    # told what and its messages); 1 for her referrals.
    with django_assert_max_num_queries(24):
        client.get(reverse("elder-detail", args=[elder.pk]))
    assert Elder.objects.filter(pk=elder.pk).exists()
