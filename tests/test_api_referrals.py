"""Referrals through the API: the caller's list (scoped, overdue first), one referral with
its history, steps on (and the refusals), audit entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import ServiceEntry
from tanfang.referrals.models import Referral
from tests.factories import api_client, assign, lonely_widow, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db

REFERRALS = "/api/v1/referrals/"


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]
    found = {}
    for community, name in ((here, "吴秀兰"), (there, "郑外区")):
        visitor = make_user(Role.VISITOR, community)
        elder = lonely_widow(community, name=name, extremely_poor=True)
        assign(elder, visitor)
        record_visit(
            visitor,
            elder,
            sections={"needs": {"kinds": ["daily_life_care", "assistive_devices"]}},
            consent=True,
        )
        found[name] = elder
    return {
        "tree": tree,
        "elder": found["吴秀兰"],
        "staff": make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0]),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "far": Referral.objects.filter(elder=found["郑外区"]).first(),
        "service": ServiceEntry.objects.create(
            name="助餐点", needs=["daily_life_care"], area=here, phone="010-1"
        ),
    }


def test_the_list_is_scoped_and_soonest_due_first(world: dict[str, Any]) -> None:
    mine = list(Referral.objects.filter(elder=world["elder"]).order_by("id"))
    Referral.objects.filter(pk=mine[1].pk).update(due_at=timezone.now() - dt.timedelta(hours=1))
    response = api_client(world["staff"]).get(REFERRALS)
    assert response.status_code == 200
    body = response.json()
    assert [r["id"] for r in body["results"]] == [mine[1].pk, mine[0].pk]
    first = body["results"][0]
    assert first["overdue"] is True and first["state"] == "received"
    assert first["elder"] == {"id": world["elder"].pk, "name": "吴秀兰"}
    assert [s["code"] for s in first["next_states"]] == ["accepted", "declined"]
    entry = AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).latest("at")
    assert entry.details["api"] == "referrals" and entry.details["shown"] == 2
    overdue = api_client(world["supervisor"]).get(REFERRALS, {"overdue": "true"}).json()
    assert [r["id"] for r in overdue["results"]] == [mine[1].pk]


def test_detail_and_steps(world: dict[str, Any]) -> None:
    referral = Referral.objects.filter(elder=world["elder"], need="daily_life_care").get()
    client = api_client(world["staff"])
    detail = client.get(f"{REFERRALS}{referral.pk}/")
    assert detail.status_code == 200
    assert [e["event"] for e in detail.json()["events"]] == ["received"]
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_RECORD, elder_id=world["elder"].pk, details__part="referral"
    ).exists()
    steps = f"{REFERRALS}{referral.pk}/steps/"
    assert client.post(steps, {"to": "done", "result": "x"}, format="json").status_code == 409
    assert client.post(steps, {"to": "accepted"}, format="json").status_code == 200
    missing = client.post(steps, {"to": "matched"}, format="json")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "service"
    unknown = client.post(steps, {"to": "matched", "service": 999999}, format="json")
    assert unknown.status_code == 400
    matched = client.post(steps, {"to": "matched", "service": world["service"].pk}, format="json")
    assert matched.status_code == 200
    assert matched.json()["service"]["name"] == "助餐点"
    done = client.post(steps, {"to": "done", "result": "每日送餐"}, format="json")
    assert done.status_code == 200
    assert done.json()["closed"] is True and done.json()["next_states"] == []


def test_decline_needs_a_reason(world: dict[str, Any]) -> None:
    referral = Referral.objects.filter(elder=world["elder"]).first()
    assert referral is not None
    steps = f"{REFERRALS}{referral.pk}/steps/"
    client = api_client(world["staff"])
    response = client.post(steps, {"to": "declined"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "reason"
    ok = client.post(steps, {"to": "declined", "reason": "已有保姆"}, format="json")
    assert ok.json()["decline_reason"] == "已有保姆"


def test_refusals(world: dict[str, Any]) -> None:
    referral = Referral.objects.filter(elder=world["elder"]).first()
    assert referral is not None
    far = world["far"]
    staff = api_client(world["staff"])
    assert staff.get(f"{REFERRALS}{far.pk}/").status_code == 404
    assert (
        staff.post(f"{REFERRALS}{far.pk}/steps/", {"to": "accepted"}, format="json").status_code
        == 404
    )
    supervisor = api_client(world["supervisor"])
    assert supervisor.get(f"{REFERRALS}{referral.pk}/").status_code == 200
    step = supervisor.post(f"{REFERRALS}{referral.pk}/steps/", {"to": "accepted"}, format="json")
    assert step.status_code == 403
    visitor = api_client(make_user(Role.VISITOR, world["tree"].communities[0]))
    assert visitor.get(REFERRALS).status_code == 403
    assert Referral.objects.get(pk=far.pk).state == "received"
