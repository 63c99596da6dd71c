"""Partners' pushes over HTTP: only a partner's token opens them, readings as JSON or CSV
with the batch report, the same body twice, sizes, device events raising alerts."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.api import views_ingest
from tanfang.monitoring import store
from tanfang.monitoring.models import (
    Alert,
    DataPartner,
    Device,
    DeviceEvent,
    IngestBatch,
    Meter,
)
from tanfang.monitoring.partners import partner_create, partner_token_issue
from tests.factories import assign, lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db

READINGS = "/api/v1/ingest/readings/"
EVENTS = "/api/v1/ingest/device-events/"


@pytest.fixture(autouse=True)
def _dirs(settings: Any, tmp_path: Path) -> None:
    settings.MONITORING_DIR = tmp_path / "monitoring"
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    community = tree.communities[0]
    contact = make_user(Role.DATA_PARTNER, tree.city, username="shuiwu")
    water = partner_create(code="bj-water", name="自来水", kind="water_utility", contact=contact)
    Meter.objects.create(
        meter_id="W1", partner=water, utility="water", register="interval", unit="L",
        interval_minutes=15,
    )  # fmt: skip
    other_contact = make_user(Role.DATA_PARTNER, tree.city, username="dianli")
    power = partner_create(
        code="bj-power", name="电力", kind="power_utility", contact=other_contact
    )
    Meter.objects.create(
        meter_id="E1", partner=power, utility="electricity", register="interval", unit="Wh",
    )  # fmt: skip
    elder = lonely_widow(community)
    visitor = make_user(Role.VISITOR, community, username="xiaoli")
    assign(elder, visitor, days_ago=30)
    Device.objects.create(device_id="SOS-1", partner=water, elder=elder, kind="sos")
    Device.objects.create(device_id="SOS-9", partner=power, elder=elder, kind="sos")
    return {
        "water": water,
        "power": power,
        "token": partner_token_issue(partner=water),
        "power_token": partner_token_issue(partner=power),
        "visitor": visitor,
        "worker": make_user(Role.COMMUNITY_WORKER, community, username="wang"),
        "elder": elder,
    }


def partner_client(token: str, language: str = "en") -> APIClient:
    client = APIClient(HTTP_ACCEPT_LANGUAGE=language)
    client.credentials(HTTP_AUTHORIZATION=f"Partner {token}")
    return client


def recent(minutes: int) -> str:
    moment = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes)
    return moment.isoformat()


# --------------------------------------------------------------------------- authentication


def test_only_a_partner_token_opens_the_pushes(world: dict[str, Any]) -> None:
    body = {"readings": [{"meter_id": "W1", "ts": recent(30), "value": 1}]}
    anonymous = APIClient().post(READINGS, body, format="json")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == 'Partner realm="api"'
    assert partner_client("wrong").post(READINGS, body, format="json").status_code == 401
    # A user's token or session is not a partner, whatever the user's role.
    for user in (world["worker"], world["water"].contact):
        key = Token.objects.create(user=user).key
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        assert client.post(READINGS, body, format="json").status_code == 401
        assert client.post(EVENTS, {}, format="json").status_code == 401
        session = Client()
        session.force_login(user)
        assert session.post(READINGS, body, content_type="application/json").status_code == 401
    # And a partner's token opens nothing of the users'.
    partner = partner_client(world["token"])
    assert partner.get("/api/v1/me/").status_code == 401
    assert partner.get("/api/v1/elders/").status_code == 401
    assert partner.post(READINGS, body, format="json").status_code == 201
    assert not IngestBatch.objects.exclude(partner=world["water"]).exists()


def test_a_partner_that_is_inactive_or_lost_its_contact_is_refused(world: dict[str, Any]) -> None:
    body: dict[str, Any] = {"readings": []}
    water: DataPartner = world["water"]
    contact = water.contact
    assert contact is not None
    contact.is_active = False
    contact.save(update_fields=["is_active"])
    refused = partner_client(world["token"]).post(READINGS, body, format="json")
    assert refused.status_code == 403
    assert "no active contact" in refused.json()["detail"]
    water.active = False
    water.save(update_fields=["active"])
    assert partner_client(world["token"]).post(READINGS, body, format="json").status_code == 401


# --------------------------------------------------------------------------- readings


def test_json_readings_with_a_report_row_by_row(world: dict[str, Any]) -> None:
    body = {
        "readings": [
            {"meter_id": "W1", "ts": recent(45), "value": 12.5},
            {"meter_id": "W1", "ts": int(timezone.now().timestamp()) // 900 * 900, "value": "3"},
            {"meter_id": "E1", "ts": recent(45), "value": 1},
            {"meter_id": "W1", "ts": "2024-05-01T08:00:00", "value": 1},
            {"meter_id": "W1", "ts": recent(30), "value": None},
            {"meter_id": "W1", "ts": recent(15), "value": 9000},
            {"meter_id": "W1", "ts": recent(45), "value": 12.5, "unit": "L"},
        ]
    }
    response = partner_client(world["token"]).post(READINGS, body, format="json")
    assert response.status_code == 201, response.content
    report = response.json()
    assert report["repeated"] is False
    assert (report["rows"], report["stored"], report["duplicates"], report["quarantined"]) == (
        7,
        2,
        1,
        4,
    )
    assert report["reasons"] == {
        "unknown_meter": 1,
        "bad_timestamp": 1,
        "bad_value": 1,
        "absurd_value": 1,
    }
    assert [(r["row"], r["field"], r["reason"]) for r in report["set_aside"]] == [
        (3, "meter_id", "unknown_meter"),
        (4, "ts", "bad_timestamp"),
        (5, "value", "bad_value"),
        (6, "value", "absurd_value"),
    ]
    assert report["set_aside"][1]["message"].startswith("the time has no UTC offset")
    assert response["Cache-Control"] == "no-store"
    assert store.readings_scan().collect().height == 2
    # The same body again: the same batch, nothing new.
    again = partner_client(world["token"]).post(READINGS, body, format="json")
    assert again.status_code == 200
    assert again.json()["repeated"] is True and again.json()["batch"] == report["batch"]
    assert IngestBatch.objects.count() == 1


def test_messages_follow_the_request_language(world: dict[str, Any]) -> None:
    body = {"readings": [{"meter_id": "W9", "ts": recent(45), "value": 1}]}
    english = partner_client(world["token"], "en").post(READINGS, body, format="json")
    assert english.json()["set_aside"][0]["message"] == (
        "unknown meter, or a meter of another partner"
    )


def test_csv_body(world: dict[str, Any]) -> None:
    text = f"meter_id,ts,value\nW1,{recent(45)},4\nW1,{recent(30)},x\n"
    response = partner_client(world["token"]).post(READINGS, text.encode(), content_type="text/csv")
    assert response.status_code == 201, response.content
    report = response.json()
    assert (report["stored"], report["quarantined"]) == (1, 1)
    assert report["set_aside"][0]["row"] == 3  # the header is row 1
    world["water"].column_mapping = {"*": {"meter_id": "表号", "delimiter": ";"}}
    world["water"].save(update_fields=["column_mapping"])
    mapped = f"表号;ts;value\nW1;{recent(15)};2\n".encode("gbk")
    response = partner_client(world["token"]).post(
        READINGS, mapped, content_type="text/csv; charset=gbk"
    )
    assert response.status_code == 201, response.content
    assert response.json()["stored"] == 1


def test_bodies_that_are_not_readings(world: dict[str, Any], monkeypatch: Any) -> None:
    client = partner_client(world["token"])
    assert client.post(READINGS, {"rows": []}, format="json").status_code == 400
    bad_json = client.post(READINGS, b"{not json", content_type="application/json")
    assert bad_json.status_code == 400
    listed = client.post(READINGS, {"readings": [1, 2]}, format="json")
    assert listed.status_code == 400
    missing = client.post(READINGS, b"a,b\n1,2\n", content_type="text/csv")
    assert missing.status_code == 400
    assert "“meter_id” is missing" in str(missing.json())
    assert client.post(READINGS, b"x", content_type="text/plain").status_code == 415
    monkeypatch.setattr(views_ingest, "MAX_BODY_BYTES", 100)
    big = {"readings": [{"meter_id": "W1", "ts": recent(15), "value": i} for i in range(10)]}
    assert client.post(READINGS, big, format="json").status_code == 413
    monkeypatch.setattr(views_ingest, "MAX_READINGS", 5)
    monkeypatch.setattr(views_ingest, "MAX_BODY_BYTES", 1 << 20)
    assert client.post(READINGS, big, format="json").status_code == 400
    assert not IngestBatch.objects.exists()


# --------------------------------------------------------------------------- device events


def test_an_sos_event_raises_an_alert_once(world: dict[str, Any]) -> None:
    client = partner_client(world["token"])
    body = {
        "device_id": "SOS-1",
        "kind": "sos",
        "ts": recent(1),
        "message_id": "m-1",
        "battery": 80,
    }
    first = client.post(EVENTS, body, format="json")
    assert first.status_code == 201, first.content
    answer = first.json()
    assert answer["alert_created"] is True and answer["repeated"] is False
    alert = Alert.objects.get(pk=answer["alert"])
    assert (alert.kind, alert.elder_id, alert.assigned_to) == (
        "device",
        world["elder"].pk,
        world["visitor"],
    )
    assert DeviceEvent.objects.get(message_id="m-1").payload == {"battery": 80}
    again = client.post(EVENTS, body, format="json")
    assert again.status_code == 200
    assert again.json()["repeated"] is True and again.json()["alert"] == alert.pk
    assert Alert.objects.count() == 1


def test_device_events_are_checked(world: dict[str, Any]) -> None:
    client = partner_client(world["token"])
    base = {"kind": "heartbeat", "ts": recent(1), "message_id": "h-1"}
    beat = client.post(EVENTS, {**base, "device_id": "SOS-1"}, format="json")
    assert beat.status_code == 201 and beat.json()["alert"] is None
    assert Device.objects.get(device_id="SOS-1").last_seen_at is not None
    # Another partner's device is unknown to this one.
    other = client.post(EVENTS, {**base, "device_id": "SOS-9", "message_id": "h-2"}, format="json")
    assert other.status_code == 400 and "device_id" in other.json()
    future = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    late = client.post(
        EVENTS, {**base, "device_id": "SOS-1", "message_id": "h-3", "ts": future}, format="json"
    )
    assert late.status_code == 400 and "ts" in late.json()
    naive = client.post(
        EVENTS,
        {**base, "device_id": "SOS-1", "message_id": "h-4", "ts": "2024-05-01T08:00:00"},
        format="json",
    )
    assert naive.status_code == 400
    # A message id already used by another partner's device is a conflict, not a replay.
    power = partner_client(world["power_token"])
    taken = power.post(EVENTS, {**base, "device_id": "SOS-9"}, format="json")
    assert taken.status_code == 409
    assert Alert.objects.count() == 0


# --------------------------------------------------------------------------- schema


def test_the_schema_documents_both_pushes_with_the_partner_scheme() -> None:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--api-version", "v1", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    post = schema["paths"]["/api/v1/ingest/readings/"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert post["security"] == [{"partnerAuth": []}]
    assert {"200", "201", "401", "413"} <= set(post["responses"])
    events = schema["paths"]["/api/v1/ingest/device-events/"]["post"]
    assert events["security"] == [{"partnerAuth": []}]
    assert schema["components"]["securitySchemes"]["partnerAuth"]["in"] == "header"
