"""The emergency endpoints: list and detail in scope (call list masked, timeline), logging a
call, confirming, closing (409 when no longer possible), 404 outside the scope."""

from __future__ import annotations

from typing import Any

import pytest

from tanfang.accounts.models import Role
from tanfang.emergencies.models import CaseState, EmergencyCase
from tanfang.emergencies.triggers import visitor_report
from tests.factories import api_client, assign, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here = tree.communities[0]
    visitor = make_user(Role.VISITOR, here)
    elder = parent_with_son(here)
    assign(elder, visitor, days_ago=3)
    case, _ = visitor_report(actor=visitor, elder=elder, description="老人摔倒")
    return {"tree": tree, "visitor": visitor, "elder": elder, "case": case}


def test_list_and_detail_with_the_call_list_masked(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    listing = client.get("/api/v1/emergencies/?state=active")
    assert listing.status_code == 200
    assert [c["id"] for c in listing.json()["results"]] == [world["case"].pk]
    detail = client.get(f"/api/v1/emergencies/{world['case'].pk}/").json()
    assert detail["trigger"] == "visitor_report" and detail["state"] == "open"
    assert detail["calls"][0]["phone_masked"] == "138****8000"
    assert "13800138000" not in str(detail)
    assert [t["kind"] for t in detail["timeline"]][:2] == ["opened", "assigned"]
    assert client.get("/api/v1/emergencies/?state=nonsense").status_code == 400


def test_call_confirm_close(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    base = f"/api/v1/emergencies/{world['case'].pk}"
    ref = client.get(base + "/").json()["calls"][0]["ref"]
    answer = client.post(base + "/calls/", {"contact": ref, "result": "busy"}, format="json")
    assert answer.status_code == 200
    assert [t["call_result"] for t in answer.json()["timeline"] if t["kind"] == "call"] == ["busy"]
    assert (
        client.post(
            base + "/calls/", {"contact": "x:1", "result": "busy"}, format="json"
        ).status_code
        == 400
    )
    assert client.post(base + "/confirm/", {}, format="json").status_code == 200
    assert client.post(base + "/confirm/", {}, format="json").status_code == 409
    assert (
        client.post(base + "/close/", {"outcome": "found_deceased"}, format="json").status_code
        == 400
    )
    closed = client.post(base + "/close/", {"outcome": "all_well"}, format="json")
    assert closed.status_code == 200 and closed.json()["state"] == CaseState.CLOSED
    assert client.post(base + "/close/", {"outcome": "all_well"}, format="json").status_code == 409


def test_outside_the_scope_is_404(world: dict[str, Any]) -> None:
    other = make_user(Role.COMMUNITY_WORKER, world["tree"].communities[1])
    client = api_client(other)
    assert client.get(f"/api/v1/emergencies/{world['case'].pk}/").status_code == 404
    assert (
        client.post(
            f"/api/v1/emergencies/{world['case'].pk}/confirm/", {}, format="json"
        ).status_code
        == 404
    )
    assert client.get("/api/v1/emergencies/").json()["results"] == []
    assert EmergencyCase.objects.get().state == "open"
