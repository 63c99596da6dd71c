"""The elders endpoints: scope, masking, audit, and writes through the registry's services."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.core import crypto
from tanfang.registry.models import CategoryOverride, Elder, ElderChange
from tests.factories import (
    lonely_widow,
    make_elder,
    make_tree,
    make_user,
    new_id_number,
    parent_with_son,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


ELDERS = "/api/v1/elders/"


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]  # Dongcheng / Fangshan
    widow = lonely_widow(here, phone="13912345678")
    father = parent_with_son(here)
    stranger = lonely_widow(there, name="赵外区", phone="13700001111")
    return {
        "tree": tree,
        "here": here,
        "there": there,
        "widow": widow,
        "father": father,
        "stranger": stranger,
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "partner": make_user(Role.DATA_PARTNER, tree.city),
    }


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def full_id(elder: Elder) -> str:
    return crypto.decrypt(elder.id_number_cipher)


def test_list_shows_only_the_scope_with_identifiers_masked(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).get(ELDERS)
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [world["widow"].pk, world["father"].pk]
    body = response.content.decode()
    for elder in (world["widow"], world["father"]):
        assert full_id(elder) not in body
        assert elder.id_number_masked in body
    assert "13912345678" not in body and "139****5678" in body
    assert "cipher" not in body and "hash" not in body
    assert response["Cache-Control"] == "no-store"


def test_list_writes_one_audit_entry_with_filters_and_elders_shown(world: dict[str, Any]) -> None:
    client_for(world["worker"]).get(ELDERS, {"q": full_id(world["widow"])})
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.actor == world["worker"]
    assert entry.details["elder_ids"] == [world["widow"].pk]
    assert entry.details["shown"] == 1
    # The search is kept masked: a full ID number never reaches the audit log in clear.
    assert entry.details["filters"]["q"] == world["widow"].id_number_masked
    assert full_id(world["widow"]) not in json.dumps(entry.details)


def test_list_filters_like_the_web_list(world: dict[str, Any]) -> None:
    client = client_for(world["supervisor"])

    def ids(**params: Any) -> list[int]:
        response = client.get(ELDERS, params)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    widow, father = world["widow"].pk, world["father"].pk
    assert ids() == [widow, father]
    assert ids(category="living_alone") == [widow]
    assert ids(focus="true") == [widow]
    assert ids(focus="false") == [father]
    assert ids(missing_first_contact="true") == [widow]
    assert ids(area=world["here"].code) == [widow, father]
    assert ids(area=world["tree"].subdistricts[1].code) == []
    assert ids(q="李桂") == [widow]
    assert ids(q="13912345678") == [widow]
    # Another district's area is as unknown as a code that does not exist.
    hidden = client.get(ELDERS, {"area": world["there"].code})
    assert hidden.status_code == 400
    assert client.get(ELDERS, {"area": "999999"}).json() == hidden.json()
    assert ids(q=full_id(world["stranger"])) == []


def test_list_pages_by_keyset(world: dict[str, Any]) -> None:
    client = client_for(world["supervisor"])
    first = client.get(ELDERS, {"page_size": 1}).json()
    assert [r["id"] for r in first["results"]] == [world["widow"].pk]
    second = client.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [world["father"].pk]
    assert second["next"] is None


def test_list_query_count_does_not_grow_with_the_page(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    client.get(ELDERS)  # warm the session
    with CaptureQueriesContext(connection) as few:
        client.get(ELDERS)
    for i in range(5):
        make_elder(world["here"], name=f"测试{i}")
    with CaptureQueriesContext(connection) as more:
        response = client.get(ELDERS)
    assert len(response.json()["results"]) == 7
    assert len(more) == len(few)
    assert len(few) <= 5  # session, user, elders (joined), audit insert


def test_retrieve_is_audited_and_out_of_scope_is_404(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    response = client.get(f"{ELDERS}{world['father'].pk}/")
    assert response.status_code == 200
    data = response.json()
    assert data["id_number_masked"] == world["father"].id_number_masked
    assert full_id(world["father"]) not in response.content.decode()
    assert data["children"][0]["name"] == "张伟"
    assert data["first_contact"]["phone_masked"] == "138****8000"
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD)
    assert entry.elder_id == world["father"].pk and entry.actor == world["worker"]

    assert client.get(f"{ELDERS}{world['stranger'].pk}/").status_code == 404
    assert client.get(f"{ELDERS}999999/").status_code == 404
    assert AuditEntry.objects.filter(elder_id=world["stranger"].pk).count() == 0


def test_create_goes_through_the_services(world: dict[str, Any]) -> None:
    number = new_id_number(dt.date(1938, 1, 9), "male")
    response = client_for(world["worker"]).post(
        ELDERS,
        {
            "id_number": number,
            "name": "孙德福",
            "community_code": world["here"].code,
            "phone": "138 0013 9999",
            "spouse_status": "none",
            "children": [],
            "household": [],
            "relatives_same_subdistrict": False,
            "daily_companionship": False,
            "first_contact": {
                "name": "钱主任",
                "relation": "community",
                "phone": "13600001234",
                "designated_by_community": True,
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    data = response.json()
    elder = Elder.objects.get(pk=data["id"])
    assert data["gender"] == "male" and data["birth_date"] == "1938-01-09"
    assert data["id_number_masked"] == elder.id_number_masked != number
    assert number not in response.content.decode()
    assert "living_alone" in elder.categories and elder.focus
    assert elder.first_contact is not None and elder.first_contact.designated_by_community
    assert crypto.decrypt(elder.phone_cipher) == "13800139999"
    change = ElderChange.objects.get(elder=elder)
    assert change.by == world["worker"] and change.source == f"user:{world['worker'].username}"
    assert AuditEntry.objects.filter(action=AuditAction.CREATE_RECORD, elder_id=elder.pk).exists()


def test_create_refuses_another_area_and_a_known_id_number(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    outside = client.post(
        ELDERS,
        {
            "id_number": new_id_number(dt.date(1940, 1, 1)),
            "name": "周",
            "community_code": world["there"].code,
        },
        format="json",
    )
    assert outside.status_code == 400
    assert "community_code" in outside.json()

    known = client.post(
        ELDERS,
        {
            "id_number": full_id(world["stranger"]),
            "name": "赵",
            "community_code": world["here"].code,
        },
        format="json",
    )
    assert known.status_code == 400
    # Nothing was merged into the other district's record, and its auditor is told.
    stranger = Elder.objects.get(pk=world["stranger"].pk)
    assert stranger.name == "赵外区" and stranger.community == world["there"]
    denied = AuditEntry.objects.get(action=AuditAction.ACCESS_DENIED)
    assert denied.elder_id == stranger.pk and denied.area_code == world["there"].code
    assert Elder.objects.count() == 3


def test_create_validates_the_id_number(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).post(
        ELDERS,
        {"id_number": "110101194001010000", "name": "吴", "community_code": world["here"].code},
        format="json",
    )
    assert response.status_code == 400
    assert "id_number" in response.json()
    assert Elder.objects.count() == 3


def test_partial_update_records_the_change_and_reclassifies(world: dict[str, Any]) -> None:
    father = world["father"]
    assert "living_alone" not in father.categories
    client = client_for(world["worker"])
    response = client.patch(
        f"{ELDERS}{father.pk}/",
        {
            "spouse_status": "deceased",
            "children": [{"name": "张伟", "alive": False, "birth_year": 1975}],
            "address": "东城区某胡同1号",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    father.refresh_from_db()
    assert father.address == "东城区某胡同1号"
    assert "living_alone" in father.categories
    assert "fp_special_family" in father.categories
    assert response.json()["categories"] == father.categories
    change = ElderChange.objects.filter(elder=father).order_by("-id").first()
    assert change is not None and change.by == world["worker"]
    assert "address" in change.changes
    entry = AuditEntry.objects.get(action=AuditAction.UPDATE_RECORD, elder_id=father.pk)
    assert "address" in entry.details["changed"]


def test_partial_update_cannot_change_the_id_number_or_leave_the_scope(
    world: dict[str, Any],
) -> None:
    client = client_for(world["worker"])
    father = world["father"]
    url = f"{ELDERS}{father.pk}/"
    assert (
        client.patch(url, {"id_number": full_id(world["widow"])}, format="json").status_code == 400
    )
    moved = client.patch(url, {"community_code": world["there"].code}, format="json")
    assert moved.status_code == 400
    father.refresh_from_db()
    assert father.community == world["here"]
    assert (
        client.patch(
            f"{ELDERS}{world['stranger'].pk}/", {"address": "x"}, format="json"
        ).status_code
        == 404
    )
    assert (
        not ElderChange.objects.filter(elder=world["stranger"], note="")
        .exclude(note="created")
        .exists()
    )


def test_life_status_goes_through_its_service(world: dict[str, Any]) -> None:
    widow = world["widow"]
    response = client_for(world["worker"]).patch(
        f"{ELDERS}{widow.pk}/", {"life_status": "in_hospital"}, format="json"
    )
    assert response.status_code == 200
    widow.refresh_from_db()
    assert widow.life_status == "in_hospital" and widow.life_status_since is not None


def test_roles_without_edit_cannot_write(world: dict[str, Any]) -> None:
    supervisor = client_for(world["supervisor"])
    assert supervisor.get(f"{ELDERS}{world['widow'].pk}/").status_code == 200
    assert (
        supervisor.patch(
            f"{ELDERS}{world['widow'].pk}/", {"address": "x"}, format="json"
        ).status_code
        == 403
    )
    assert supervisor.post(ELDERS, {}, format="json").status_code == 403
    partner = client_for(world["partner"])
    assert partner.get(ELDERS).status_code == 403
    assert partner.get(f"{ELDERS}{world['widow'].pk}/").status_code == 403


def test_reveal_is_audited_with_its_reason(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    url = f"{ELDERS}{world['widow'].pk}/reveal/"
    response = client.post(url, {"field": "id_number", "reason": "核对身份"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"field": "id_number", "value": full_id(world["widow"])}
    assert response["Cache-Control"] == "no-store"
    entry = AuditEntry.objects.get(action=AuditAction.REVEAL_IDENTIFIER)
    assert entry.reason == "核对身份" and entry.details == {"field": "id_number"}
    assert entry.elder_id == world["widow"].pk

    phone = client.post(url, {"field": "phone", "reason": "打电话"}, format="json")
    assert phone.json()["value"] == "13912345678"
    assert client.post(url, {"field": "phone", "reason": ""}, format="json").status_code == 400
    assert client.post(url, {"field": "address", "reason": "x y"}, format="json").status_code == 400
    outside = f"{ELDERS}{world['stranger'].pk}/reveal/"
    assert (
        client.post(outside, {"field": "phone", "reason": "打电话"}, format="json").status_code
        == 404
    )
    assert AuditEntry.objects.filter(action=AuditAction.REVEAL_IDENTIFIER).count() == 2


def test_classification_in_the_requests_language(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    url = f"{ELDERS}{world['widow'].pk}/classification/"
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").json()
    living = next(c for c in english["categories"] if c["code"] == "living_alone")
    assert living["label"] == "Living alone"
    assert living["reason"].startswith("No spouse and no living children")
    assert living["by_hand"] is False
    chinese = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").json()
    reason = next(c for c in chinese["categories"] if c["code"] == "living_alone")["reason"]
    assert reason.startswith("无配偶")
    assert english["advanced_age"] is True and english["focus"] is True
    missing = {m["fact"] for m in english["missing_facts"]}
    assert "capability_level" in missing
    assert (
        AuditEntry.objects.filter(
            action=AuditAction.VIEW_RECORD, elder_id=world["widow"].pk
        ).count()
        == 2
    )


def test_category_override_needs_a_reason_and_is_audited(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    url = f"{ELDERS}{world['father'].pk}/category-overrides/"
    assert (
        client.post(
            url, {"category": "impaired", "action": "add", "reason": ""}, format="json"
        ).status_code
        == 400
    )
    response = client.post(
        url,
        {"category": "impaired", "action": "add", "reason": "入户发现卧床"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 201, response.content
    impaired = next(c for c in response.json()["categories"] if c["code"] == "impaired")
    assert impaired == {
        "code": "impaired",
        "label": "Impaired",
        "reason": "Added by hand: 入户发现卧床",
        "by_hand": True,
    }
    world["father"].refresh_from_db()
    assert "impaired" in world["father"].categories
    assert CategoryOverride.objects.filter(elder=world["father"], category="impaired").exists()
    assert AuditEntry.objects.filter(action=AuditAction.OVERRIDE_CATEGORY).count() == 1
    listed = client.get(url).json()
    assert [o["reason"] for o in listed] == ["入户发现卧床"]

    supervisor = client_for(world["supervisor"])
    assert (
        supervisor.post(
            url, {"category": "impaired", "action": "remove", "reason": "x"}, format="json"
        ).status_code
        == 403
    )
    outside = f"{ELDERS}{world['stranger'].pk}/category-overrides/"
    assert (
        client.post(
            outside, {"category": "impaired", "action": "add", "reason": "x"}, format="json"
        ).status_code
        == 404
    )


def test_visitor_sees_only_assigned_elders(world: dict[str, Any]) -> None:
    from tanfang.registry.models import VisitorAssignment

    visitor = make_user(Role.VISITOR, world["here"])
    VisitorAssignment.objects.create(
        elder=world["widow"], visitor=visitor, starts_on=dt.date(2020, 1, 1)
    )
    client = client_for(visitor)
    assert [r["id"] for r in client.get(ELDERS).json()["results"]] == [world["widow"].pk]
    assert client.get(f"{ELDERS}{world['father'].pk}/").status_code == 404
    assert (
        client.post(
            f"{ELDERS}{world['widow'].pk}/reveal/",
            {"field": "phone", "reason": "打电话"},
            format="json",
        ).status_code
        == 200
    )
    assert (
        client.patch(f"{ELDERS}{world['widow'].pk}/", {"address": "x"}, format="json").status_code
        == 403
    )
