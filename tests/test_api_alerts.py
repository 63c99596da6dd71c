"""The alert endpoints: scope (404 outside it), filters, a partner's view without personal
data, acknowledging and closing (409 when the state moved on), audit entries, and a list
whose query count does not grow with the alerts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.monitoring.alerts import Raise, alert_raise
from tanfang.monitoring.models import Alert, AlertState, DataPartner, Meter
from tanfang.registry.models import LifeStatus
from tests.factories import api_client, assign, lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db

ALERTS = "/api/v1/alerts/"


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def raised(meter: Meter, kind: str = "missed_routine", hours_ago: float = 1) -> Alert:
    detected = timezone.now() - dt.timedelta(hours=hours_ago)
    rule = "silence" if kind == "data_silence" else "routine_missed"
    alert, created = alert_raise(
        Raise(
            key=f"{meter.meter_id}:{rule}:{detected.isoformat()}",
            kind=kind,
            rule=rule,
            severity="technical" if kind == "data_silence" else "high",
            started_at=detected - dt.timedelta(hours=8),
            detected_at=detected,
            evidence={
                "inactive_hours": 8.0,
                "series": {"start": 0, "step_s": 3600, "usage": [1.0], "usual": [2.0]},
            },
            meter=meter,
        ),
        now=detected,
    )
    assert created and alert is not None
    return alert


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]
    visitor = make_user(Role.VISITOR, here)
    widow = lonely_widow(here, phone="13912345678")
    assign(widow, visitor, days_ago=30)
    stranger = lonely_widow(there, name="赵外区")
    contact = make_user(Role.DATA_PARTNER, tree.city)
    partner = DataPartner.objects.create(
        code="water", name="Water", kind="water_utility", contact=contact
    )
    meter = Meter.objects.create(
        meter_id="W1", partner=partner, elder=widow, utility="water", register="interval", unit="L"
    )
    far = Meter.objects.create(
        meter_id="F1",
        partner=partner,
        elder=stranger,
        utility="water",
        register="interval",
        unit="L",
    )
    return {
        "tree": tree,
        "visitor": visitor,
        "widow": widow,
        "stranger": stranger,
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "fangshan_worker": make_user(Role.COMMUNITY_WORKER, there),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "auditor": make_user(Role.AUDITOR, tree.city),
        "contact": contact,
        "meter": meter,
        "far_meter": far,
        "person": raised(meter),
        "silent": raised(meter, "data_silence", hours_ago=2),
        "far": raised(far, hours_ago=3),
    }


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_the_list_is_the_callers_scope_newest_first(world: dict[str, Any]) -> None:
    visitor = api_client(world["visitor"])
    response = visitor.get(ALERTS)
    assert ids(response) == [world["person"].pk, world["silent"].pk]
    row = response.json()["results"][0]
    assert row["elder"] == {"id": world["widow"].pk, "name": world["widow"].name}
    assert row["community"]["code"] == world["tree"].communities[0].code
    assert row["assigned_to"]["id"] == world["visitor"].pk
    assert row["kind_label"] and row["severity"] == "critical" and row["meter_id"] == "W1"
    assert "13912345678" not in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST, actor=world["visitor"])
    assert entry.details["elder_ids"] == [world["widow"].pk]
    assert ids(api_client(world["fangshan_worker"]).get(ALERTS)) == [world["far"].pk]
    assert ids(api_client(world["supervisor"]).get(ALERTS)) == [
        world["person"].pk,
        world["silent"].pk,
    ]


def test_filters(world: dict[str, Any]) -> None:
    admin = api_client(make_user(Role.CITY_ADMIN, world["tree"].city))
    assert ids(admin.get(ALERTS, {"kind": "data_silence"})) == [world["silent"].pk]
    assert ids(admin.get(ALERTS, {"area": "110111"})) == [world["far"].pk]
    assert ids(admin.get(ALERTS, {"state": "active"})) == [
        world["person"].pk,
        world["silent"].pk,
        world["far"].pk,
    ]
    assert ids(admin.get(ALERTS, {"state": "closed"})) == []
    worker = api_client(world["worker"])
    response = worker.get(ALERTS, {"area": "110111"})  # Fangshan: not hers
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "area"
    assert worker.get(ALERTS, {"kind": "nonsense"}).status_code == 400


def test_a_partner_sees_its_technical_alerts_without_personal_data(world: dict[str, Any]) -> None:
    partner = api_client(world["contact"])
    response = partner.get(ALERTS)
    assert ids(response) == [world["silent"].pk]
    row = response.json()["results"][0]
    assert row["elder"] is None and row["community"] is None and row["technical"]
    text = response.content.decode()
    assert world["widow"].name not in text and world["tree"].communities[0].name not in text
    detail = partner.get(f"{ALERTS}{world['silent'].pk}/")
    assert detail.status_code == 200 and detail.json()["elder"] is None
    assert world["widow"].name not in detail.content.decode()
    assert partner.get(f"{ALERTS}{world['person'].pk}/").status_code == 404
    assert partner.get(f"/api/v1/elders/{world['widow'].pk}/alerts/").status_code == 403
    refused = partner.post(
        f"{ALERTS}{world['silent'].pk}/close/", {"outcome": "hospitalised"}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "outcome"
    closed = partner.post(
        f"{ALERTS}{world['silent'].pk}/close/",
        {"outcome": "all_well", "note": "gateway replaced"},
        format="json",
    )
    assert closed.status_code == 200 and closed.json()["outcome"] == "all_well"


def test_detail_has_evidence_and_history_and_is_audited(world: dict[str, Any]) -> None:
    response = api_client(world["visitor"]).get(f"{ALERTS}{world['person'].pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["evidence"]["inactive_hours"] == 8.0
    assert body["evidence"]["series"]["usual"] == [2.0]
    assert [e["action"] for e in body["events"]] == ["raised", "assigned"]
    assert body["events"][1]["to_user"]["id"] == world["visitor"].pk
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD, actor=world["visitor"])
    assert entry.elder_id == world["widow"].pk and entry.details["alert"] == world["person"].pk
    # Outside the scope: 404, as for an alert that does not exist.
    for pk in (world["far"].pk, 999_999):
        assert api_client(world["visitor"]).get(f"{ALERTS}{pk}/").status_code == 404


def test_acknowledge_then_close(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    url = f"{ALERTS}{world['person'].pk}/"
    response = client.post(f"{url}acknowledge/", {"note": "打电话"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "acknowledged" and response.json()["escalate_at"] is None
    again = client.post(f"{url}acknowledge/", {}, format="json")
    assert again.status_code == 409 and again.json()["errors"][0]["message"]
    assert client.post(f"{url}close/", {"outcome": "maybe"}, format="json").status_code == 400
    closed = client.post(
        f"{url}close/", {"outcome": "hospitalised", "note": "摔倒，送医"}, format="json"
    )
    assert closed.status_code == 200
    body = closed.json()
    assert (body["state"], body["outcome"], body["outcome_note"]) == (
        "closed",
        "hospitalised",
        "摔倒，送医",
    )
    assert [e["action"] for e in body["events"]][-1] == "closed"
    world["widow"].refresh_from_db()
    assert world["widow"].life_status == LifeStatus.IN_HOSPITAL
    assert client.post(f"{url}close/", {"outcome": "all_well"}, format="json").status_code == 409
    assert AuditEntry.objects.filter(
        action=AuditAction.UPDATE_RECORD, actor=world["visitor"], elder_id=world["widow"].pk
    ).exists()


def test_who_may_act(world: dict[str, Any]) -> None:
    url = f"{ALERTS}{world['person'].pk}/acknowledge/"
    # The supervisor oversees: she reads alerts but does not handle them.
    assert api_client(world["supervisor"]).get(ALERTS).status_code == 200
    assert api_client(world["supervisor"]).post(url, {}, format="json").status_code == 403
    assert api_client(world["auditor"]).get(ALERTS).status_code == 403
    assert api_client(world["fangshan_worker"]).post(url, {}, format="json").status_code == 404
    assert APIClient().get(ALERTS).status_code in (401, 403)
    assert Alert.objects.get(pk=world["person"].pk).state == AlertState.OPEN


def test_an_elders_alerts(world: dict[str, Any]) -> None:
    client = api_client(world["worker"])
    response = client.get(f"/api/v1/elders/{world['widow'].pk}/alerts/")
    assert ids(response) == [world["person"].pk, world["silent"].pk]
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, elder_id=world["widow"].pk, details__part="alerts"
    ).exists()
    assert client.get(f"/api/v1/elders/{world['stranger'].pk}/alerts/").status_code == 404


def test_the_list_costs_the_same_queries_for_more_alerts(world: dict[str, Any]) -> None:
    client = api_client(world["worker"])
    client.get(ALERTS)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(ALERTS).status_code == 200
        return len(captured)

    before = queries()
    for i in range(4):
        other = lonely_widow(world["tree"].communities[0], name=f"多{i}")
        meter = Meter.objects.create(
            meter_id=f"M{i}",
            partner=world["meter"].partner,
            elder=other,
            utility="gas",
            register="interval",
            unit="L",
        )
        raised(meter, hours_ago=5 + i)
    assert queries() == before
