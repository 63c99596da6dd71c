"""Monitoring in the back office: rules validated before they are saved, meters linked in
scope with their history, partners without their token, alerts read-only and scoped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.monitoring.alerts import Raise, alert_raise
from tanfang.monitoring.models import (
    DataPartner,
    DistrictRules,
    InstallationEvent,
    LinkAction,
    Meter,
)
from tests.factories import lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    partner = DataPartner.objects.create(
        code="water", name="Water", kind="water_utility", token_hash="f" * 64, token_prefix="tk_ab"
    )
    return {
        "tree": tree,
        "partner": partner,
        "city_admin": make_user(Role.CITY_ADMIN, tree.city),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "staff": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        "widow": lonely_widow(tree.communities[0]),
        "stranger": lonely_widow(tree.communities[4], name="赵外区"),
    }


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rules_post(client: Client, area: Any, rules: str, pk: int | None = None) -> Any:
    url = (
        f"/admin/monitoring/districtrules/{pk}/change/"
        if pk
        else "/admin/monitoring/districtrules/add/"
    )
    return client.post(
        url,
        {
            "area": area.pk if area is not None else "",
            "rules": rules,
            "escalate_visitor_minutes": 20,
            "escalate_community_minutes": 40,
        },
    )


def test_rules_are_validated_before_they_are_saved(world: dict[str, Any]) -> None:
    admin = client_for(world["city_admin"])
    dongcheng = world["tree"].districts[0]
    response = rules_post(admin, dongcheng, "{not json")
    assert response.status_code == 200 and not DistrictRules.objects.exists()
    response = rules_post(admin, dongcheng, json.dumps({"rules": {"silence": {"parms": {}}}}))
    assert response.status_code == 200 and not DistrictRules.objects.exists()
    assert "unknown field" in response.content.decode()
    response = rules_post(
        admin, dongcheng, json.dumps({"rules": {"silence": {"params": {"hours": "six"}}}})
    )
    assert "must be a number" in response.content.decode()
    response = rules_post(admin, world["tree"].subdistricts[0], "{}")
    assert response.status_code == 200 and not DistrictRules.objects.exists()
    good = json.dumps({"rules": {"routine_missed": {"params": {"night_min_hours": 10}}}})
    response = rules_post(admin, dongcheng, good)
    assert response.status_code == 302
    row = DistrictRules.objects.get(area=dongcheng)
    assert row.rules["rules"]["routine_missed"]["params"]["night_min_hours"] == 10
    assert row.updated_by == world["city_admin"] and row.escalate_visitor_minutes == 20
    # The city's row once only.
    assert rules_post(admin, None, "{}").status_code == 302
    assert rules_post(admin, None, "{}").status_code == 200
    assert DistrictRules.objects.filter(area__isnull=True).count() == 1


def test_a_supervisor_edits_her_districts_rules_only(world: dict[str, Any]) -> None:
    city = DistrictRules.objects.create(area=None)
    fangshan = DistrictRules.objects.create(area=world["tree"].districts[1])
    supervisor = client_for(world["supervisor"])
    assert rules_post(supervisor, world["tree"].districts[0], "{}").status_code == 302
    assert rules_post(supervisor, world["tree"].districts[1], "{}").status_code == 200
    assert rules_post(supervisor, None, "{}", pk=city.pk).status_code == 403
    assert supervisor.get(f"/admin/monitoring/districtrules/{fangshan.pk}/change/").status_code in (
        302,
        404,
    )


def test_a_meter_is_linked_in_scope_and_its_history_kept(world: dict[str, Any]) -> None:
    staff = client_for(world["staff"])
    body = {
        "meter_id": "W-100",
        "partner": world["partner"].pk,
        "utility": "water",
        "register": "cumulative",
        "unit": "m3",
        "interval_minutes": 60,
        "tz": "Asia/Shanghai",
        "active": "on",
        "events-TOTAL_FORMS": 0,
        "events-INITIAL_FORMS": 0,
    }
    refused = staff.post("/admin/monitoring/meter/add/", {**body, "elder": world["stranger"].pk})
    assert refused.status_code == 200 and not Meter.objects.exists()
    response = staff.post("/admin/monitoring/meter/add/", {**body, "elder": world["widow"].pk})
    assert response.status_code == 302, response.content.decode()[:2000]
    meter = Meter.objects.get(meter_id="W-100")
    assert meter.elder == world["widow"]
    actions = list(meter.events.order_by("id").values_list("action", "elder_id", "by_id"))
    assert actions == [
        (LinkAction.INSTALLED, world["widow"].pk, world["staff"].pk),
        (LinkAction.LINKED, world["widow"].pk, world["staff"].pk),
    ]
    response = staff.post(f"/admin/monitoring/meter/{meter.pk}/change/", {**body, "elder": ""})
    assert response.status_code == 302
    assert InstallationEvent.objects.filter(meter=meter, action=LinkAction.UNLINKED).exists()
    # Unlinked, it is the city's to see.
    assert staff.get(f"/admin/monitoring/meter/{meter.pk}/change/").status_code in (302, 404)
    assert client_for(world["city_admin"]).get("/admin/monitoring/meter/").status_code == 200


def test_partners_never_show_their_token_and_alerts_are_read_only(
    world: dict[str, Any],
) -> None:
    admin = client_for(world["city_admin"])
    page = admin.get(f"/admin/monitoring/datapartner/{world['partner'].pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "f" * 64 not in text and "tk_ab" in text
    assert (
        client_for(world["supervisor"])
        .post(f"/admin/monitoring/datapartner/{world['partner'].pk}/change/", {"name": "x"})
        .status_code
        == 403
    )
    meter = Meter.objects.create(
        meter_id="W-7",
        partner=world["partner"],
        elder=world["widow"],
        utility="water",
        register="interval",
        unit="L",
    )
    alert, _ = alert_raise(
        Raise(
            key="W-7:silence:x",
            kind="data_silence",
            rule="silence",
            severity="technical",
            started_at=timezone.now(),
            detected_at=timezone.now(),
            evidence={},
            meter=meter,
        )
    )
    assert alert is not None
    listing = admin.get("/admin/monitoring/alert/")
    assert listing.status_code == 200 and {a.pk for a in listing.context["cl"].result_list} == {
        alert.pk
    }
    page = admin.get(f"/admin/monitoring/alert/{alert.pk}/change/")
    assert page.status_code == 200 and "assigned" in page.content.decode()
    assert admin.get("/admin/monitoring/alert/add/").status_code == 403
    stranger = client_for(make_user(Role.DISTRICT_SUPERVISOR, world["tree"].districts[1]))
    assert stranger.get("/admin/monitoring/alert/").context["cl"].result_count == 0
