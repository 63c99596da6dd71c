"""Areas, first contacts, classification of plain facts, and who-am-I through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.core import crypto
from tanfang.registry.models import FirstContact
from tests.factories import lonely_widow, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]
    return {
        "tree": tree,
        "here": here,
        "there": there,
        "widow": lonely_widow(here),
        "father": parent_with_son(here),
        "stranger": parent_with_son(there, name="赵外区"),
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "partner": make_user(Role.DATA_PARTNER, tree.districts[0]),
        "auditor": make_user(Role.AUDITOR, tree.city),
    }


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- areas


def test_data_partner_reads_the_areas_of_her_subtree(world: dict[str, Any]) -> None:
    client = client_for(world["partner"])
    response = client.get("/api/v1/areas/")
    assert response.status_code == 200
    codes = [a["code"] for a in response.json()["results"]]
    assert codes[0] == "110101" and len(codes) == 1 + 2 + 4
    assert all(code.startswith("110101") for code in codes)
    communities = client.get("/api/v1/areas/", {"level": "community"}).json()["results"]
    assert {a["parent"] for a in communities} == {s.code for s in world["tree"].subdistricts[:2]}
    one = client.get(f"/api/v1/areas/{world['here'].code}/").json()
    assert one == {
        "code": world["here"].code,
        "name": world["here"].name,
        "name_en": "",
        "level": "community",
        "parent": world["tree"].subdistricts[0].code,
        "subdistrict_kind": "",
        "community_kind": "residents",
    }
    assert client.get(f"/api/v1/areas/{world['there'].code}/").status_code == 404
    assert client.get("/api/v1/areas/", {"parent": world["there"].code}).status_code == 400
    # No personal data for partners.
    assert client.get("/api/v1/elders/").status_code == 403
    assert client.get("/api/v1/first-contacts/").status_code == 403


def test_community_worker_sees_her_community_only(world: dict[str, Any]) -> None:
    codes = [a["code"] for a in client_for(world["worker"]).get("/api/v1/areas/").json()["results"]]
    assert codes == [world["here"].code]


def test_auditor_and_visitor_get_no_areas(world: dict[str, Any]) -> None:
    assert client_for(world["auditor"]).get("/api/v1/areas/").status_code == 403
    visitor = make_user(Role.VISITOR, world["here"])
    assert client_for(visitor).get("/api/v1/areas/").status_code == 403


# --------------------------------------------------------------------------- first contacts


def test_first_contacts_list_is_scoped_masked_and_audited(world: dict[str, Any]) -> None:
    response = client_for(world["supervisor"]).get("/api/v1/first-contacts/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [r["elder"] for r in rows] == [world["father"].pk]
    assert rows[0]["phone_masked"] == "138****8000"
    assert "13800138000" not in response.content.decode()
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert entry.details["elder_ids"] == [world["father"].pk]


def test_setting_a_first_contact_keeps_the_history(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    father = world["father"]
    old = father.first_contact
    response = client.post(
        "/api/v1/first-contacts/",
        {
            "elder": father.pk,
            "name": "张丽",
            "relation": "child",
            "phone": "13311112222",
            "note": "儿子出国",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    father.refresh_from_db()
    assert father.first_contact is not None and father.first_contact.name == "张丽"
    assert crypto.decrypt(father.first_contact.phone_cipher) == "13311112222"
    assert FirstContact.objects.get(pk=old.pk).is_current is False
    assert AuditEntry.objects.filter(
        action=AuditAction.SET_FIRST_CONTACT, elder_id=father.pk
    ).exists()
    history = client.get(f"/api/v1/elders/{father.pk}/first-contacts/").json()
    assert [(c["name"], c["is_current"]) for c in history] == [("张丽", True), ("张伟", False)]
    listed = client.get("/api/v1/first-contacts/", {"elder": father.pk}).json()["results"]
    assert [c["name"] for c in listed] == ["张丽"]
    past = client.get(f"/api/v1/first-contacts/{old.pk}/")
    assert past.status_code == 200 and past.json()["is_current"] is False


def test_first_contact_of_a_child_must_be_the_elders_child(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    stranger_child = world["stranger"].children.get()
    response = client.post(
        "/api/v1/first-contacts/",
        {
            "elder": world["father"].pk,
            "name": "张伟",
            "relation": "child",
            "phone": "13311112222",
            "child": stranger_child.pk,
        },
        format="json",
    )
    assert response.status_code == 400
    own_child = world["father"].children.get()
    response = client.post(
        "/api/v1/first-contacts/",
        {
            "elder": world["father"].pk,
            "name": "张伟",
            "relation": "child",
            "phone": "13311112222",
            "child": own_child.pk,
        },
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["child"] == own_child.pk


def test_first_contacts_out_of_scope_are_refused(world: dict[str, Any]) -> None:
    client = client_for(world["worker"])
    stranger = world["stranger"]
    before = FirstContact.objects.filter(elder=stranger).count()
    response = client.post(
        "/api/v1/first-contacts/",
        {"elder": stranger.pk, "name": "甲", "relation": "neighbour", "phone": "13311112222"},
        format="json",
    )
    assert response.status_code == 400
    assert FirstContact.objects.filter(elder=stranger).count() == before
    assert client.get(f"/api/v1/first-contacts/{stranger.first_contact_id}/").status_code == 404
    assert client.get(f"/api/v1/elders/{stranger.pk}/first-contacts/").status_code == 404
    assert client.get("/api/v1/first-contacts/", {"elder": stranger.pk}).json()["results"] == []
    # A district supervisor reads but does not edit.
    supervisor = client_for(world["supervisor"])
    assert (
        supervisor.post(
            "/api/v1/first-contacts/",
            {
                "elder": world["father"].pk,
                "name": "甲",
                "relation": "neighbour",
                "phone": "13311112222",
            },
            format="json",
        ).status_code
        == 403
    )


def test_first_contact_phone_is_validated(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).post(
        "/api/v1/first-contacts/",
        {"elder": world["widow"].pk, "name": "钱", "relation": "community", "phone": "12345"},
        format="json",
    )
    assert response.status_code == 400 and "phone" in response.json()
    assert not FirstContact.objects.filter(elder=world["widow"]).exists()


# --------------------------------------------------------------------------- classify


WIDOW_FACTS = {
    "id": "w1",
    "as_of": "2026-01-05",
    "birth_date": "1940-03-02",
    "spouse": None,
    "children": [],
}


def test_classify_one_object(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).post(
        "/api/v1/classify/", WIDOW_FACTS, format="json", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    data = response.json()
    assert data["id"] == "w1" and data["categories"] == ["living_alone"]
    assert data["reasons"]["living_alone"].startswith("No spouse")
    assert data["advanced_age"] is True and data["focus"] is True


def test_classify_a_list_reports_bad_items_in_place(world: dict[str, Any]) -> None:
    response = client_for(world["supervisor"]).post(
        "/api/v1/classify/",
        [WIDOW_FACTS, {"id": 7, "birth_date": "1940-13-01"}],
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    good, bad = response.json()
    assert good["categories"] == ["living_alone"]
    assert bad == {
        "index": 1,
        "id": 7,
        "error": {"field": "birth_date", "message": "must be a date written YYYY-MM-DD"},
    }


def test_classify_one_bad_object_is_a_400_naming_the_field(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).post(
        "/api/v1/classify/",
        {"children": [{"age": "old"}]},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 400
    assert response.json() == {"children[0].age": ["must be a whole number"]}


def test_classify_needs_view_elders_and_touches_no_rows(world: dict[str, Any]) -> None:
    assert (
        client_for(world["partner"])
        .post("/api/v1/classify/", WIDOW_FACTS, format="json")
        .status_code
        == 403
    )
    assert (
        client_for(world["auditor"])
        .post("/api/v1/classify/", WIDOW_FACTS, format="json")
        .status_code
        == 403
    )
    before = AuditEntry.objects.count()
    client_for(world["worker"]).post("/api/v1/classify/", WIDOW_FACTS, format="json")
    assert AuditEntry.objects.count() == before


def test_classify_refuses_too_many_items(world: dict[str, Any]) -> None:
    response = client_for(world["worker"]).post(
        "/api/v1/classify/", [WIDOW_FACTS] * 1001, format="json"
    )
    assert response.status_code == 400


# --------------------------------------------------------------------------- me


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_me_for_every_role(world: dict[str, Any], role: str) -> None:
    user = make_user(role, world["tree"].districts[0])
    response = client_for(user).get("/api/v1/me/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    data = response.json()
    assert data["role"] == role and data["area"]["code"] == "110101"
    from tanfang.accounts.roles import ROLE_CAPABILITIES

    assert data["capabilities"] == sorted(str(c) for c in ROLE_CAPABILITIES[role])


def test_me_refuses_users_without_a_role_or_area(world: dict[str, Any]) -> None:
    nobody = make_user(Role.COMMUNITY_WORKER, None)
    assert client_for(nobody).get("/api/v1/me/").status_code == 403
    assert APIClient().get("/api/v1/me/").status_code in (401, 403)
