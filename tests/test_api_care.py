"""The field app's care actions: whose they are, their history, steps on, and refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, CareActionEvent, ServiceEntry
from tanfang.care.rules import next_states
from tanfang.registry.models import Elder
from tests.factories import api_client, assign, lonely_widow, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db

ACTIONS = "/api/v1/care-actions/"


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def visited(elder: Elder, visitor: Any, **sections: Any) -> None:
    """A consented in-home visit by ``visitor`` that found ``sections``."""
    assign(elder, visitor)
    record_visit(visitor, elder, sections=sections, consent=True)


FINDINGS = {
    "safety": {"gas": {"hazard": True, "what": "软管老化"}},
    "needs": {"kinds": ["rehabilitation_nursing"]},
}


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]
    visitor = make_user(Role.VISITOR, here)
    widow = lonely_widow(here)
    visited(widow, visitor, **FINDINGS)
    far_visitor = make_user(Role.VISITOR, there)
    stranger = lonely_widow(there, name="赵外区")
    visited(stranger, far_visitor, **FINDINGS)
    actions = {a.subject: a for a in CareAction.objects.filter(elder=widow)}
    return {
        "tree": tree,
        "visitor": visitor,
        "widow": widow,
        "gas": actions["gas"],
        "nursing": actions["rehabilitation_nursing"],
        "far_gas": CareAction.objects.get(elder=stranger, subject="gas"),
        "other_visitor": make_user(Role.VISITOR, here),
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "fangshan_worker": make_user(Role.COMMUNITY_WORKER, there),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "service": ServiceEntry.objects.create(
            name="东城区康复护理服务中心",
            needs=["rehabilitation_nursing"],
            area=tree.districts[0],
            phone="010-64000000",
        ),
        "far_service": ServiceEntry.objects.create(
            name="房山区康复护理服务中心", needs=["rehabilitation_nursing"], area=tree.districts[1]
        ),
    }


def move(client: APIClient, action: CareAction, **body: Any) -> Any:
    return client.post(f"{ACTIONS}{action.pk}/move/", body, format="json")


def test_the_visitor_lists_her_open_actions_soonest_due_first(world: dict[str, Any]) -> None:
    response = api_client(world["visitor"], "en").get(ACTIONS)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [world["gas"].pk, world["nursing"].pk]
    gas = rows[0]
    assert (gas["kind"], gas["subject"], gas["state"]) == ("hazard", "gas", "to_remind")
    assert gas["detail"] == "软管老化" and gas["elder"] == {
        "id": world["widow"].pk,
        "name": world["widow"].name,
    }
    assert [step["code"] for step in gas["next_states"]] == list(next_states("hazard", "to_remind"))
    assert all(step["label"] for step in gas["next_states"])
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST, actor=world["visitor"])
    assert entry.details["elder_ids"] == [world["widow"].pk]


def test_lists_are_scoped_and_cost_the_same_queries_for_more_rows(world: dict[str, Any]) -> None:
    assert api_client(world["other_visitor"]).get(ACTIONS).json()["results"] == []
    worker = api_client(world["worker"])
    worker.get(ACTIONS)

    def listed() -> tuple[list[int], int]:
        with CaptureQueriesContext(connection) as captured:
            response = worker.get(ACTIONS)
        return [row["id"] for row in response.json()["results"]], len(captured)

    ids, queries = listed()
    assert ids == [world["gas"].pk, world["nursing"].pk]
    visited(lonely_widow(world["tree"].communities[0], name="又一位"), world["visitor"], **FINDINGS)
    ids, more = listed()
    assert len(ids) == 4 and world["far_gas"].pk not in ids
    assert more == queries


def test_pages_follow_the_cursor(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    first = client.get(ACTIONS, {"page_size": 1}).json()
    assert [row["id"] for row in first["results"]] == [world["gas"].pk]
    second = client.get(first["next"]).json()
    assert [row["id"] for row in second["results"]] == [world["nursing"].pk]
    assert second["next"] is None


def test_one_action_shows_its_history_and_is_audited(world: dict[str, Any]) -> None:
    response = api_client(world["worker"]).get(f"{ACTIONS}{world['gas'].pk}/")
    assert response.status_code == 200
    events = response.json()["events"]
    assert [(e["event"], e["to_state"]) for e in events] == [("opened", "to_remind")]
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD, actor=world["worker"])
    assert entry.elder_id == world["widow"].pk and entry.details["part"] == "care_action"


def test_actions_outside_the_scope_are_not_found(world: dict[str, Any]) -> None:
    gas, far = world["gas"], world["far_gas"]
    cases = [("other_visitor", gas), ("fangshan_worker", gas), ("visitor", far), ("worker", far)]
    for name, action in cases:
        client = api_client(world[name])
        assert client.get(f"{ACTIONS}{action.pk}/").status_code == 404, name
        assert move(client, action, to="reminded").status_code == 404, name
    assert api_client(world["supervisor"]).get(ACTIONS).status_code == 403
    assert APIClient().get(ACTIONS).status_code == 401
    assert CareAction.objects.get(pk=gas.pk).state == "to_remind"
    assert CareAction.objects.get(pk=far.pk).state == "to_remind"
    assert not AuditEntry.objects.filter(action=AuditAction.VIEW_RECORD).exists()


def test_a_hazard_is_reminded_then_removed_and_leaves_the_list(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    reminded = move(client, world["gas"], to="reminded", note="已提醒更换软管")
    assert reminded.status_code == 200, reminded.content
    assert reminded.json()["state"] == "reminded" and not reminded.json()["closed"]
    # The community worker closes it, as in the browser flow.
    removed = move(api_client(world["worker"]), world["gas"], to="removed", result="已更换")
    assert removed.status_code == 200
    body = removed.json()
    assert body["closed"] and body["closed_at"] and body["result"] == "已更换"
    assert body["next_states"] == []
    assert [e["to_state"] for e in body["events"]] == ["to_remind", "reminded", "removed"]
    ids = [row["id"] for row in client.get(ACTIONS).json()["results"]]
    assert ids == [world["nursing"].pk]


def test_impossible_steps_conflict_and_bad_input_names_its_field(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"], "en")
    skipped = move(client, world["gas"], to="served")
    assert skipped.status_code == 409
    assert [e["field"] for e in skipped.json()["errors"]] == ["to"]
    unknown = move(client, world["gas"], to="vanished")
    assert unknown.status_code == 400
    assert [(e["field"], e["label"]) for e in unknown.json()["errors"]] == [("to", "Next step")]
    move(client, world["gas"], to="declined")
    closed = move(client, world["gas"], to="reminded")
    assert closed.status_code == 409
    assert CareActionEvent.objects.filter(action=world["gas"]).count() == 2  # opened, declined


def test_a_service_need_is_connected_to_a_service_of_the_elders_area(
    world: dict[str, Any],
) -> None:
    client = api_client(world["visitor"])
    far = move(client, world["nursing"], to="connected", service=world["far_service"].pk)
    assert far.status_code == 400
    assert [e["field"] for e in far.json()["errors"]] == ["service"]
    hazard = move(client, world["gas"], to="reminded", service=world["service"].pk)
    assert hazard.status_code == 400
    assert CareAction.objects.get(pk=world["gas"].pk).state == "to_remind"
    connected = move(client, world["nursing"], to="connected", service=world["service"].pk)
    assert connected.status_code == 200
    assert connected.json()["service"] == {
        "id": world["service"].pk,
        "name": "东城区康复护理服务中心",
        "phone": "010-64000000",
    }
    assert CareAction.objects.get(pk=world["nursing"].pk).service == world["service"]
