"""Creating and editing an elder by hand: validation in the user's language, scope of the
community choice, writes through the services with the user as source, audit entries."""

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
from tanfang.registry.models import Elder, ElderChange
from tests.factories import Tree, lonely_widow, make_tree, make_user, new_id_number


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


def formset(prefix: str, rows: list[dict[str, Any]], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "20",
    }
    for i, row in enumerate(rows):
        data.update({f"{prefix}-{i}-{k}": v for k, v in row.items()})
    return data


def elder_data(community: Any, **over: Any) -> dict[str, Any]:
    data = {
        "name": "陈玉梅",
        "phone": "",
        "community": community.pk,
        "address": "东城区某街1号",
        "spouse_status": "deceased",
        "spouse_lives_with": "unknown",
        "relatives_same_subdistrict": "false",
        "daily_companionship": "false",
        "disability_status": "none",
        "disability_grade": "",
        "disability_type": "",
        "extremely_poor": "unknown",
        "children_known": "on",
        "household_known": "on",
        "willing": "true",
        "willingness_on": "",
        **formset("children", [{"name": "陈明", "alive": "false", "birth_year": "1965"}]),
        **formset("household", []),
    }
    data.update(over)
    return data


def test_create_registers_an_elder_with_the_user_as_source(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community, "li")
    number = new_id_number(dt.date(1941, 6, 7))
    response = signed_in(worker).post(
        reverse("elder-new"), elder_data(community, id_number=number, phone="13912345678")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    elder = Elder.objects.get(id_number_masked=number[:6] + "*" * 8 + number[-4:])
    assert response["Location"] == reverse("elder-detail", args=[elder.pk])
    assert (elder.name, elder.community_id, elder.gender) == ("陈玉梅", community.pk, "female")
    assert elder.birth_date == dt.date(1941, 6, 7)
    today = timezone.localdate().isoformat()
    assert elder.fact_sources["spouse_status"] == {"source": "user:li", "date": today}
    assert [c.name for c in elder.children.all()] == ["陈明"]
    assert elder.children.get().source == "user:li"
    assert elder.willing_to_be_visited is True
    assert "living_alone" in elder.categories  # no spouse, the only child died
    assert AuditEntry.objects.filter(action=AuditAction.CREATE_RECORD, elder_id=elder.pk).exists()


def test_create_shows_errors_next_to_the_fields_in_chinese(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    bad = new_id_number(dt.date(1941, 6, 7))
    bad = bad[:-1] + ("0" if bad[-1] != "0" else "1")  # wrong check digit
    response = signed_in(worker).post(
        reverse("elder-new"), elder_data(community, id_number=bad, phone="12345", name="")
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) >= {"id_number", "phone", "name"}
    html = response.content.decode()
    assert 'data-testid="error-id_number"' in html
    assert "校验" in str(form.errors["id_number"])  # the check digit, in Chinese
    assert not Elder.objects.exists()


def test_create_refuses_people_under_sixty_and_known_numbers(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    young = new_id_number(dt.date(1990, 1, 1))
    response = signed_in(worker).post(reverse("elder-new"), elder_data(community, id_number=young))
    assert response.status_code == 400 and "id_number" in response.context["form"].errors
    # A number already registered elsewhere is refused, not merged into that record.
    number = new_id_number(dt.date(1940, 3, 2))
    other = lonely_widow(tree.communities[1], id_number=number)
    response = signed_in(worker).post(reverse("elder-new"), elder_data(community, id_number=number))
    assert response.status_code == 400
    other.refresh_from_db()
    assert other.community_id == tree.communities[1].pk and other.name != "陈玉梅"


def test_community_choices_are_limited_to_the_users_scope(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    client = signed_in(worker)
    form = client.get(reverse("elder-new")).context["form"]
    assert list(form.fields["community"].queryset) == [tree.communities[0]]
    response = client.post(
        reverse("elder-new"),
        elder_data(tree.communities[1], id_number=new_id_number(dt.date(1941, 6, 7))),
    )
    assert response.status_code == 400 and "community" in response.context["form"].errors


def test_cross_field_validation(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    response = signed_in(worker).post(
        reverse("elder-new"),
        elder_data(
            community,
            id_number=new_id_number(dt.date(1941, 6, 7)),
            spouse_status="none",
            spouse_lives_with="true",
            disability_status="none",
            disability_grade="1",
            assessment_scheme="beijing",
            assessment_level="4",
            assessed_on="2025-01-01",
        ),
    )
    errors = response.context["form"].errors
    assert {"spouse_lives_with", "disability_grade", "assessment_level"} <= set(errors)


def test_edit_changes_facts_children_and_life_status(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community, "zhao")
    elder = lonely_widow(community)
    client = signed_in(worker)
    page = client.get(reverse("elder-edit", args=[elder.pk]))
    assert page.status_code == 200
    assert AuditEntry.objects.filter(action=AuditAction.VIEW_RECORD, elder_id=elder.pk).exists()
    data = elder_data(
        community,
        name=elder.name,
        spouse_status="deceased",
        daily_companionship="true",
        relatives_same_subdistrict="true",
        life_status="in_hospital",
        **formset(
            "children",
            [
                {
                    "name": "孙强",
                    "alive": "true",
                    "birth_year": "1968",
                    "lives_with": "false",
                    "same_subdistrict": "true",
                },
            ],
        ),
    )
    response = client.post(reverse("elder-edit", args=[elder.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    elder.refresh_from_db()
    assert elder.daily_companionship is True
    assert elder.life_status == "in_hospital"
    assert [c.name for c in elder.children.all()] == ["孙强"]
    assert elder.fact_sources["daily_companionship"]["source"] == "user:zhao"
    assert "living_alone" not in elder.categories  # a living son nearby
    entry = AuditEntry.objects.get(action=AuditAction.UPDATE_RECORD, elder_id=elder.pk)
    assert "daily_companionship" in entry.details["changed"]
    assert ElderChange.objects.filter(elder=elder, by=worker).exists()


def test_edit_without_changes_writes_nothing(tree: Tree) -> None:
    community = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, community)
    elder = lonely_widow(community)
    client = signed_in(worker)
    form = client.get(reverse("elder-edit", args=[elder.pk])).context["form"]
    before = ElderChange.objects.filter(elder=elder).count()
    data = {
        name: ("" if value is None else value)
        for name, value in ((n, form.initial.get(n)) for n in form.fields)
    }
    data.update(
        {
            "community": community.pk,
            "willing": "unknown",
            "spouse_lives_with": "unknown",
            "extremely_poor": "unknown",
            "relatives_same_subdistrict": "false",
            "daily_companionship": "false",
            "children_known": "on",
            "household_known": "on",
            "dispersed_supported": "",
        }
    )
    data.update(formset("children", [], 0))
    data.update(formset("household", [], 0))
    response = client.post(reverse("elder-edit", args=[elder.pk]), data)
    assert response.status_code == 302
    assert ElderChange.objects.filter(elder=elder).count() == before
    assert not AuditEntry.objects.filter(action=AuditAction.UPDATE_RECORD).exists()


def test_edit_of_another_community_is_not_found(tree: Tree) -> None:
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[1])
    response = signed_in(worker).post(
        reverse("elder-edit", args=[elder.pk]), elder_data(tree.communities[0])
    )
    assert response.status_code == 404
    elder.refresh_from_db()
    assert elder.community_id == tree.communities[1].pk
