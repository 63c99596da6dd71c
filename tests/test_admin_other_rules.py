"""Districts' "other" rules in the back office: who may write them, validation, reclassify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tanfang.accounts.models import Role
from tanfang.registry.models import Elder, OtherCategoryRule
from tanfang.registry.services import AccessDenied, RegistryError, other_rule_save
from tests.factories import lonely_widow, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db

ADD = "/admin/registry/othercategoryrule/add/"
OLD_AND_ALONE = {
    "all": [
        {"fact": "age", "op": ">=", "value": 85},
        {"fact": "living_alone", "op": "==", "value": True},
    ]
}


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    dongcheng, fangshan = tree.districts
    return {
        "tree": tree,
        "dongcheng": dongcheng,
        "fangshan": fangshan,
        # 86 years old, living alone: matches OLD_AND_ALONE.
        "widow": lonely_widow(tree.communities[0]),
        "father": parent_with_son(tree.communities[1]),
        # Same facts in the other district: must not be touched by Dongcheng's rule.
        "stranger": lonely_widow(tree.communities[4], name="赵外区"),
        "city_admin": make_user(Role.CITY_ADMIN, tree.city),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, dongcheng),
        "staff": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
    }


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_rule(client: Client, district: Any, conditions: Any, **fields: Any) -> Any:
    data = {
        "district": district.pk,
        "code": "old_alone",
        "label": "85岁以上独居",
        "conditions": json.dumps(conditions),
        "active": "on",
        "_save": "Save",
    }
    data.update(fields)
    return client.post(ADD, data)


def test_supervisor_adds_a_rule_and_her_district_is_reclassified(world: dict[str, Any]) -> None:
    response = post_rule(client_for(world["supervisor"]), world["dongcheng"], OLD_AND_ALONE)
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = OtherCategoryRule.objects.get()
    assert rule.district == world["dongcheng"] and rule.conditions == OLD_AND_ALONE
    widow = Elder.objects.get(pk=world["widow"].pk)
    assert "other" in widow.categories
    assert widow.category_reasons["other"][0] == "other.rules"
    assert "other" not in Elder.objects.get(pk=world["father"].pk).categories
    assert "other" not in Elder.objects.get(pk=world["stranger"].pk).categories


def test_switching_a_rule_off_reclassifies_again(world: dict[str, Any]) -> None:
    rule = other_rule_save(
        actor=world["city_admin"],
        district=world["dongcheng"],
        code="old_alone",
        label="85岁以上独居",
        conditions=OLD_AND_ALONE,
        active=True,
    )
    assert "other" in Elder.objects.get(pk=world["widow"].pk).categories
    response = client_for(world["supervisor"]).post(
        f"/admin/registry/othercategoryrule/{rule.pk}/change/",
        {
            "district": world["dongcheng"].pk,
            "code": "old_alone",
            "label": "85岁以上独居",
            "conditions": json.dumps(OLD_AND_ALONE),
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.active is False
    assert "other" not in Elder.objects.get(pk=world["widow"].pk).categories


@pytest.mark.parametrize(
    "conditions",
    [
        {"all": [{"fact": "shoe_size", "op": ">", "value": 40}]},
        {"all": [{"fact": "age", "op": "~", "value": 80}]},
        {"all": []},
        {"any": [{"fact": "age", "op": ">=", "value": 80}]},
        [{"fact": "age", "op": ">=", "value": 80}],
    ],
)
def test_bad_conditions_are_refused_by_the_form(world: dict[str, Any], conditions: Any) -> None:
    response = post_rule(client_for(world["supervisor"]), world["dongcheng"], conditions)
    assert response.status_code == 200
    assert "conditions" in response.context["adminform"].form.errors
    assert not OtherCategoryRule.objects.exists()


def test_supervisor_cannot_write_another_districts_rules(world: dict[str, Any]) -> None:
    client = client_for(world["supervisor"])
    response = post_rule(client, world["fangshan"], OLD_AND_ALONE)
    assert response.status_code == 200
    assert "district" in response.context["adminform"].form.errors
    theirs = other_rule_save(
        actor=world["city_admin"],
        district=world["fangshan"],
        code="x",
        label="x",
        conditions=OLD_AND_ALONE,
        active=True,
    )
    assert "other" in Elder.objects.get(pk=world["stranger"].pk).categories
    url = f"/admin/registry/othercategoryrule/{theirs.pk}/change/"
    assert client.get(url).status_code == 302
    client.post(
        url,
        {
            "district": world["fangshan"].pk,
            "code": "x",
            "label": "x",
            "conditions": json.dumps(OLD_AND_ALONE),
            "_save": "Save",
        },
    )
    theirs.refresh_from_db()
    assert theirs.active is True
    with pytest.raises(AccessDenied):
        other_rule_save(
            actor=world["supervisor"],
            district=world["fangshan"],
            code="y",
            label="y",
            conditions=OLD_AND_ALONE,
            active=True,
        )


def test_city_admin_writes_any_district(world: dict[str, Any]) -> None:
    response = post_rule(client_for(world["city_admin"]), world["fangshan"], OLD_AND_ALONE)
    assert response.status_code == 302
    assert "other" in Elder.objects.get(pk=world["stranger"].pk).categories
    assert "other" not in Elder.objects.get(pk=world["widow"].pk).categories


def test_subdistrict_staff_reads_her_districts_rules_only(world: dict[str, Any]) -> None:
    mine = other_rule_save(
        actor=world["city_admin"],
        district=world["dongcheng"],
        code="a",
        label="a",
        conditions=OLD_AND_ALONE,
        active=True,
    )
    other_rule_save(
        actor=world["city_admin"],
        district=world["fangshan"],
        code="b",
        label="b",
        conditions=OLD_AND_ALONE,
        active=True,
    )
    client = client_for(world["staff"])
    listed = client.get("/admin/registry/othercategoryrule/")
    assert [r.pk for r in listed.context["cl"].result_list] == [mine.pk]
    assert client.get(ADD).status_code == 403
    response = client.post(
        f"/admin/registry/othercategoryrule/{mine.pk}/change/",
        {
            "district": world["dongcheng"].pk,
            "code": "a",
            "label": "changed",
            "conditions": json.dumps(OLD_AND_ALONE),
            "_save": "Save",
        },
    )
    assert response.status_code == 403
    mine.refresh_from_db()
    assert mine.label == "a"


def test_service_refuses_duplicate_codes_and_bad_rules(world: dict[str, Any]) -> None:
    other_rule_save(
        actor=world["supervisor"],
        district=world["dongcheng"],
        code="a",
        label="a",
        conditions=OLD_AND_ALONE,
        active=True,
    )
    with pytest.raises(RegistryError):
        other_rule_save(
            actor=world["supervisor"],
            district=world["dongcheng"],
            code="a",
            label="again",
            conditions=OLD_AND_ALONE,
            active=True,
        )
    with pytest.raises(RegistryError):
        other_rule_save(
            actor=world["supervisor"],
            district=world["dongcheng"],
            code="b",
            label="b",
            conditions={"all": [{"fact": "age"}]},
            active=True,
        )
    assert OtherCategoryRule.objects.count() == 1


def test_reclassification_runs_in_batches(world: dict[str, Any]) -> None:
    from tanfang.registry.services import district_reclassify

    for i in range(5):
        lonely_widow(world["tree"].communities[i % 4], name=f"独居{i}")
    OtherCategoryRule.objects.create(
        district=world["dongcheng"], code="a", label="a", conditions=OLD_AND_ALONE
    )
    assert district_reclassify(district_id=world["dongcheng"].pk, batch_size=2) == 7
    dongcheng = Elder.objects.filter(district=world["dongcheng"])
    assert sorted("other" in e.categories for e in dongcheng) == [False] + [True] * 6
