"""The back office applies the same scope as the web and the API, and audits what it shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tanfang.accounts.models import Role, User
from tanfang.admin_site import admin_site
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.core import crypto
from tanfang.registry.models import Elder
from tests.factories import PASSWORD, lonely_widow, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    dongcheng, fangshan = tree.districts
    here, there = tree.communities[0], tree.communities[4]
    return {
        "tree": tree,
        "dongcheng": dongcheng,
        "fangshan": fangshan,
        "here": here,
        "there": there,
        "widow": lonely_widow(here, phone="13912345678"),
        "father": parent_with_son(tree.communities[2]),
        "stranger": lonely_widow(there, name="赵外区"),
        "city_admin": make_user(Role.CITY_ADMIN, tree.city),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, dongcheng),
        "other_supervisor": make_user(Role.DISTRICT_SUPERVISOR, fangshan),
        "staff": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "other_worker": make_user(Role.COMMUNITY_WORKER, there),
        "auditor": make_user(Role.AUDITOR, dongcheng),
    }


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def elder_url(elder: Elder) -> str:
    return f"/admin/registry/elder/{elder.pk}/change/"


# --------------------------------------------------------------------------- who gets in


@pytest.mark.parametrize(
    "role", [Role.COMMUNITY_WORKER, Role.VISITOR, Role.DATA_PARTNER, Role.AUDITOR]
)
def test_roles_without_back_office_are_sent_to_the_login(world: dict[str, Any], role: str) -> None:
    user = make_user(role, world["here"] if role != Role.AUDITOR else world["dongcheng"])
    response = client_for(user).get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client_for(user).get(elder_url(world["widow"]))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_audit_log_is_not_in_the_back_office() -> None:
    from tanfang.audit.models import AuditEntry as Entry

    assert Entry not in admin_site._registry
    # Only the models this module registers; no Group, Token or audit rows.
    names = {m._meta.label for m in admin_site._registry}
    assert names == {
        "areas.Area",
        "accounts.User",
        "registry.Elder",
        "registry.OtherCategoryRule",
        # The visit policy and the service teams (visits/admin.py).
        "visits.VisitRule",
        "visits.HolidaySurge",
        "visits.CountingRule",
        "visits.ServiceProvider",
        "visits.VisitSurge",
        "visits.VisitorProfile",
        "care.ServiceEntry",
        # Monitoring (monitoring/admin.py).
        "monitoring.DataPartner",
        "monitoring.Meter",
        "monitoring.Device",
        "monitoring.Absence",
        "monitoring.DistrictRules",
        "monitoring.Alert",
        "monitoring.IngestBatch",
        # Notifications (notifications/admin.py).
        "notifications.FamilyContact",
        "notifications.MessageTemplate",
        "notifications.NotificationRules",
        "notifications.WeComGroup",
        # Referrals (referrals/admin.py).
        "referrals.ReferralRules",
        "referrals.Referral",
        # Emergencies (emergencies/admin.py).
        "emergencies.EmergencyRules",
    }


# --------------------------------------------------------------------------- elders


def test_supervisor_sees_only_her_district_and_the_list_is_audited(world: dict[str, Any]) -> None:
    response = client_for(world["supervisor"]).get("/admin/registry/elder/")
    assert response.status_code == 200
    shown = {e.pk for e in response.context["cl"].result_list}
    assert shown == {world["widow"].pk, world["father"].pk}
    page = response.content.decode()
    assert "赵外区" not in page
    assert crypto.decrypt(world["widow"].id_number_cipher) not in page
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert set(entry.details["elder_ids"]) == shown and entry.actor == world["supervisor"]


def test_opening_an_elder_is_audited_and_shows_no_identifier_in_full(
    world: dict[str, Any],
) -> None:
    widow = world["widow"]
    response = client_for(world["supervisor"]).get(elder_url(widow))
    assert response.status_code == 200
    page = response.content.decode()
    assert widow.id_number_masked in page and "139****5678" in page
    assert crypto.decrypt(widow.id_number_cipher) not in page
    assert "13912345678" not in page
    assert widow.id_number_cipher not in page and widow.id_number_hash not in page
    assert "No spouse and no living children" in page or "无配偶" in page
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD)
    assert entry.elder_id == widow.pk and entry.actor == world["supervisor"]


def test_another_districts_elder_cannot_be_opened(world: dict[str, Any]) -> None:
    client = client_for(world["supervisor"])
    for suffix in ("change/", "history/", "delete/"):
        response = client.get(f"/admin/registry/elder/{world['stranger'].pk}/{suffix}")
        assert response.status_code in (302, 403, 404), suffix
        if response.status_code == 302:
            assert not response["Location"].endswith(f"/{world['stranger'].pk}/change/")
    assert not AuditEntry.objects.filter(elder_id=world["stranger"].pk).exists()


def test_elders_are_read_only_in_the_back_office(world: dict[str, Any]) -> None:
    client = client_for(world["city_admin"])
    widow = world["widow"]
    response = client.post(elder_url(widow), {"name": "改名"})
    assert response.status_code == 403
    widow.refresh_from_db()
    assert widow.name == "李桂英"
    assert client.get("/admin/registry/elder/add/").status_code == 403


def test_search_by_full_id_number_uses_the_blind_index(world: dict[str, Any]) -> None:
    client = client_for(world["city_admin"])
    number = crypto.decrypt(world["stranger"].id_number_cipher)
    response = client.get("/admin/registry/elder/", {"q": number})
    assert [e.pk for e in response.context["cl"].result_list] == [world["stranger"].pk]
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST)
    assert number not in str(entry.details)
    # The same search by a supervisor of another district finds nothing.
    response = client_for(world["supervisor"]).get("/admin/registry/elder/", {"q": number})
    assert list(response.context["cl"].result_list) == []


def test_autocomplete_is_scoped(world: dict[str, Any]) -> None:
    response = client_for(world["supervisor"]).get(
        "/admin/autocomplete/",
        {"app_label": "accounts", "model_name": "user", "field_name": "area", "term": "房山"},
    )
    assert response.status_code == 200
    assert response.json()["results"] == []


# --------------------------------------------------------------------------- users


def add_user(client: Client, **fields: Any) -> Any:
    data = {
        "username": "new-user",
        "usable_password": "true",
        "password1": "a-Long-pass-9876",
        "password2": "a-Long-pass-9876",
        "first_name": "",
        "last_name": "",
        "phone": "",
        "_save": "Save",
    }
    data.update(fields)
    return client.post("/admin/accounts/user/add/", data)


def test_supervisor_manages_users_of_her_district_only(world: dict[str, Any]) -> None:
    client = client_for(world["supervisor"])
    listed = {u.username for u in client.get("/admin/accounts/user/").context["cl"].result_list}
    assert listed == {
        world["supervisor"].username,
        world["staff"].username,
        world["worker"].username,
    }
    # Not the auditor who watches her district, nobody of another district, no city admin.
    other = client.get(f"/admin/accounts/user/{world['other_worker'].pk}/change/")
    assert other.status_code == 302
    password = client.post(
        f"/admin/accounts/user/{world['other_worker'].pk}/password/",
        {"password1": "x-New-pass-1234", "password2": "x-New-pass-1234"},
    )
    assert password.status_code in (302, 403, 404)
    world["other_worker"].refresh_from_db()
    assert world["other_worker"].check_password(PASSWORD)


def test_supervisor_creates_a_worker_in_her_district(world: dict[str, Any]) -> None:
    response = add_user(
        client_for(world["supervisor"]), role=Role.COMMUNITY_WORKER, area=world["here"].pk
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = User.objects.get(username="new-user")
    assert created.role == Role.COMMUNITY_WORKER and created.area == world["here"]
    assert created.check_password("a-Long-pass-9876")
    assert not created.is_staff and not created.is_superuser


@pytest.mark.parametrize(
    ("role", "area_key", "field"),
    [
        (Role.COMMUNITY_WORKER, "there", "area"),  # another district
        (Role.CITY_ADMIN, "city", "role"),  # above her own role
        (Role.AUDITOR, "dongcheng", "role"),  # auditors are appointed by the city
        (Role.COMMUNITY_WORKER, "dongcheng", "area"),  # wrong level for the role
    ],
)
def test_supervisor_cannot_create_beyond_her_reach(
    world: dict[str, Any], role: str, area_key: str, field: str
) -> None:
    area = world["tree"].city if area_key == "city" else world[area_key]
    response = add_user(client_for(world["supervisor"]), role=role, area=area.pk)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not User.objects.filter(username="new-user").exists()


def test_supervisor_cannot_raise_a_users_role(world: dict[str, Any]) -> None:
    worker = world["worker"]
    response = client_for(world["supervisor"]).post(
        f"/admin/accounts/user/{worker.pk}/change/",
        {
            "username": worker.username,
            "first_name": "",
            "last_name": "",
            "email": "",
            "phone": "",
            "role": Role.CITY_ADMIN,
            "area": world["tree"].city.pk,
            "is_active": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    worker.refresh_from_db()
    assert worker.role == Role.COMMUNITY_WORKER and worker.area == world["here"]


def test_city_admin_appoints_an_auditor(world: dict[str, Any]) -> None:
    response = add_user(
        client_for(world["city_admin"]), role=Role.AUDITOR, area=world["fangshan"].pk
    )
    assert response.status_code == 302
    assert User.objects.get(username="new-user").role == Role.AUDITOR


def test_subdistrict_staff_manages_no_users(world: dict[str, Any]) -> None:
    client = client_for(world["staff"])
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/user/").status_code == 403
    assert add_user(client, role=Role.VISITOR, area=world["here"].pk).status_code == 403


# --------------------------------------------------------------------------- areas


def test_areas_are_read_only_except_names_for_the_city(world: dict[str, Any]) -> None:
    here = world["here"]
    url = f"/admin/areas/area/{here.pk}/change/"
    supervisor = client_for(world["supervisor"])
    assert supervisor.get(url).status_code == 200
    assert supervisor.post(url, {"name": "改名"}).status_code == 403
    assert supervisor.get(f"/admin/areas/area/{world['there'].pk}/change/").status_code == 302
    city = client_for(world["city_admin"])
    response = city.post(url, {"name": "新名字社区", "name_en": "New", "code": "999", "_save": "1"})
    assert response.status_code == 302
    here.refresh_from_db()
    assert (here.name, here.name_en, here.code) == ("新名字社区", "New", "110101001001")
