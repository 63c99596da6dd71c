"""The field app's visit endpoints: worklist, elder summary, idempotent submission, corrections.

Scope (404 outside it), the error envelope naming fields in the request's language, the
audit entries, and — on PostgreSQL — the same submission sent by many threads at once.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction
from tanfang.registry.models import Elder
from tanfang.visits.models import Visit, VisitRevision
from tanfang.visits.status import status_refresh
from tests.factories import (
    api_client,
    assign,
    lonely_widow,
    make_tree,
    make_user,
    parent_with_son,
)

pytestmark = pytest.mark.django_db

VISITS = "/api/v1/visits/"
WORKLIST = "/api/v1/worklist/"


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    # WhiteNoise warns (an error under -W error) when STATIC_ROOT does not exist yet.
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def world() -> dict[str, Any]:
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[4]  # Dongcheng / Fangshan
    visitor = make_user(Role.VISITOR, here, username="xiaoli")
    widow = lonely_widow(here, phone="13912345678")
    father = parent_with_son(here)
    unassigned = parent_with_son(here, name="未分配")
    stranger = lonely_widow(there, name="赵外区")
    for elder in (widow, father):
        assign(elder, visitor, days_ago=60)
    status_refresh(elder_ids=[widow.pk, father.pk, unassigned.pk, stranger.pk])
    return {
        "tree": tree,
        "visitor": visitor,
        "widow": widow,
        "father": father,
        "unassigned": unassigned,
        "stranger": stranger,
        "other_visitor": make_user(Role.VISITOR, here),
        "worker": make_user(Role.COMMUNITY_WORKER, here),
        "fangshan_worker": make_user(Role.COMMUNITY_WORKER, there),
        "supervisor": make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0]),
        "partner": make_user(Role.DATA_PARTNER, tree.city),
    }


def submission(elder: Elder, **changes: Any) -> dict[str, Any]:
    started = timezone.localtime() - dt.timedelta(minutes=40)
    body = {
        "client_uuid": str(uuid.uuid4()),
        "elder": elder.pk,
        "mode": "in_home",
        "started_at": started.isoformat(),
        "ended_at": (started + dt.timedelta(minutes=25)).isoformat(),
        "person_met": "elder",
        "outcome": "met",
        "sections": {"health": {"mobility": "aided"}},
        "notes": "精神不错",
        "consent": False,
        "location": {"latitude": 39.92881, "longitude": 116.41662, "accuracy_m": 15},
    }
    body.update(changes)
    return body


def fields_of(response: Any) -> dict[str, dict[str, str]]:
    return {error["field"]: error for error in response.json()["errors"]}


# --------------------------------------------------------------------------- worklist


def test_worklist_shows_the_visitors_own_elders_without_identifiers(world: dict[str, Any]) -> None:
    response = api_client(world["visitor"]).get(WORKLIST)
    assert response.status_code == 200
    body = response.json()
    rows = [*body["overdue"], *body["today"], *body["week"]]
    assert {row["elder_id"] for row in rows} == {world["widow"].pk, world["father"].pk}
    widow = next(row for row in rows if row["elder_id"] == world["widow"].pk)
    assert widow["obligations"] and widow["obligations"][0]["kind"] == "regular"
    assert widow["obligations"][0]["kind_label"]
    text = response.content.decode()
    assert "13912345678" not in text and world["widow"].id_number_masked not in text
    assert response["Cache-Control"] == "no-store"
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_LIST, actor=world["visitor"])
    assert sorted(entry.details["elder_ids"]) == sorted(row["elder_id"] for row in rows)


def test_worklist_costs_the_same_queries_for_more_elders(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    client.get(WORKLIST)  # session and translations warmed up

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(WORKLIST).status_code == 200
        return len(captured)

    before = queries()
    more = [lonely_widow(world["tree"].communities[0], name=f"多{i}") for i in range(3)]
    for elder in more:
        assign(elder, world["visitor"], days_ago=60)
    status_refresh(elder_ids=[elder.pk for elder in more])
    assert queries() == before


def test_worklist_of_a_community_worker_is_her_area(world: dict[str, Any]) -> None:
    body = api_client(world["worker"]).get(WORKLIST).json()
    ids = {row["elder_id"] for row in [*body["overdue"], *body["today"], *body["week"]]}
    assert ids == {world["widow"].pk, world["father"].pk, world["unassigned"].pk}


def test_worklist_needs_the_capability(world: dict[str, Any]) -> None:
    assert api_client(world["partner"]).get(WORKLIST).status_code == 403
    assert APIClient().get(WORKLIST).status_code == 401


# --------------------------------------------------------------------------- summary


def test_summary_for_the_visit_screen_is_masked_and_audited(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    for _ in range(6):
        client.post(VISITS, submission(world["father"]), format="json")
    response = client.get(f"/api/v1/elders/{world['father'].pk}/summary/")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "张建国" and body["age"] >= 75
    assert body["first_contact"] == {
        "relation": "child",
        "relation_label": body["first_contact"]["relation_label"],
        "phone_masked": "138****8000",
    }
    assert "13800138000" not in response.content.decode()
    assert len(body["last_visits"]) == 5
    times = [visit["started_at"] for visit in body["last_visits"]]
    assert times == sorted(times, reverse=True)
    status = body["visit_status"]
    assert status["excluded"] == "" and status["last_counted_at"] is not None
    assert body["open_care_actions"] == []
    entry = AuditEntry.objects.get(action=AuditAction.VIEW_RECORD, actor=world["visitor"])
    assert entry.elder_id == world["father"].pk and entry.details["part"] == "summary"


def test_summary_lists_the_open_care_actions_and_categories(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"], "en")
    sections = {"safety": {"gas": {"hazard": True, "what": "hose cracked"}}}
    client.post(VISITS, submission(world["widow"], sections=sections, consent=True), format="json")
    body = client.get(f"/api/v1/elders/{world['widow'].pk}/summary/").json()
    assert {"code": "living_alone", "label": "Living alone"} in body["categories"]
    assert body["phone_masked"] == "139****5678"
    assert [(a["kind"], a["subject"]) for a in body["open_care_actions"]] == [("hazard", "gas")]
    assert body["last_visits"][0]["risk_level"] == "high"


def test_summary_outside_the_scope_is_not_found(world: dict[str, Any]) -> None:
    visitor = api_client(world["visitor"])
    for elder in (world["unassigned"], world["stranger"]):
        assert visitor.get(f"/api/v1/elders/{elder.pk}/summary/").status_code == 404
    worker = api_client(world["worker"])
    assert worker.get(f"/api/v1/elders/{world['stranger'].pk}/summary/").status_code == 404
    assert worker.get("/api/v1/elders/999999/summary/").status_code == 404
    assert not AuditEntry.objects.filter(action=AuditAction.VIEW_RECORD).exists()


# --------------------------------------------------------------------------- submission


def test_a_visit_is_recorded_once_however_often_it_is_sent(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    body = submission(world["widow"])
    first = client.post(VISITS, body, format="json")
    assert first.status_code == 201, first.content
    again = client.post(VISITS, body, format="json")
    assert again.status_code == 200
    assert again.content == first.content
    visit = Visit.objects.get(elder=world["widow"])
    assert str(visit.client_uuid) == body["client_uuid"]
    shown = first.json()
    assert shown["id"] == visit.pk and shown["revision"] == 1
    assert shown["location"] == {"latitude": 39.92881, "longitude": 116.41662, "accuracy_m": 15}
    assert shown["started_at"].endswith("+08:00")
    assert shown["visitor_name"] == "xiaoli" and shown["counts"] is True
    # A different body under the same id changes nothing: the first one is the visit.
    altered = client.post(VISITS, {**body, "notes": "改过"}, format="json")
    assert altered.status_code == 200 and altered.json()["notes"] == "精神不错"
    assert Visit.objects.count() == 1
    created = AuditEntry.objects.filter(action=AuditAction.CREATE_RECORD, details__has_key="visit")
    assert created.count() == 1


def test_recording_a_visit_costs_a_bounded_number_of_queries(
    world: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    """The field app's hottest write: pinned, so that no query per finding or per past visit
    creeps in (a consented visit with a hazard and a need opens two care actions)."""
    client = api_client(world["visitor"])
    client.post(VISITS, submission(world["widow"]), format="json")  # caches warmed up
    body = submission(world["widow"])
    body["consent"] = True
    body["sections"] = {
        "safety": {"gas": {"hazard": True, "what": "软管老化"}},
        "needs": {"kinds": ["rehabilitation_nursing"]},
    }
    # 25, and 1 for the district's referral rules (where the needs go, referrals/routing.py).
    with django_assert_max_num_queries(26):
        assert client.post(VISITS, body, format="json").status_code == 201


def test_a_submission_id_belongs_to_one_elder(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    body = submission(world["widow"])
    client.post(VISITS, body, format="json")
    reused = client.post(VISITS, {**body, "elder": world["father"].pk}, format="json")
    assert reused.status_code == 400
    assert set(fields_of(reused)) == {"client_uuid"}
    assert not Visit.objects.filter(elder=world["father"]).exists()


def test_a_consented_visit_answers_with_its_care_actions(world: dict[str, Any]) -> None:
    sections = {
        "safety": {"gas": {"hazard": True, "what": "灶具无熄火保护"}},
        "needs": {"kinds": ["rehabilitation_nursing"]},
    }
    response = api_client(world["visitor"]).post(
        VISITS, submission(world["widow"], sections=sections, consent=True), format="json"
    )
    assert response.status_code == 201
    actions = {(a["kind"], a["subject"]) for a in response.json()["care_actions"]}
    assert actions == {("hazard", "gas"), ("service", "rehabilitation_nursing")}
    assert CareAction.objects.filter(elder=world["widow"]).count() == 2


def test_errors_name_every_field_in_the_request_language(world: dict[str, Any]) -> None:
    bad = {
        "elder": world["widow"].pk,
        "mode": "telepathy",
        "started_at": "2026-03-05T09:30:00",
        "ended_at": "yesterday",
        "location": {"latitude": 123},
    }
    english = api_client(world["visitor"], "en").post(VISITS, bad, format="json")
    assert english.status_code == 400
    errors = fields_of(english)
    assert set(errors) == {
        "client_uuid",
        "mode",
        "started_at",
        "ended_at",
        "person_met",
        "outcome",
        "location.latitude",
        "location.longitude",
    }
    assert errors["client_uuid"]["message"] == "This field is required."
    assert "UTC offset" in errors["started_at"]["message"]
    assert errors["location.longitude"]["label"] == "Check-in location · Longitude"
    chinese = api_client(world["visitor"]).post(VISITS, bad, format="json")  # zh-hans default
    assert fields_of(chinese)["client_uuid"]["message"] == "该字段是必填项。"
    assert not Visit.objects.exists()


def test_the_services_objections_name_their_fields(world: dict[str, Any]) -> None:
    later = timezone.localtime() + dt.timedelta(hours=3)
    body = submission(
        world["widow"],
        started_at=later.isoformat(),
        ended_at=(later - dt.timedelta(minutes=5)).isoformat(),
        person_met="nobody",
        sections={"safety": {"gas": {"hazard": "maybe"}}, "weather": {}},
    )
    response = api_client(world["visitor"], "en").post(VISITS, body, format="json")
    assert response.status_code == 400
    errors = fields_of(response)
    assert {"ended_at", "person_met", "sections.safety.gas.hazard", "sections.weather"} <= set(
        errors
    )
    assert errors["sections.safety.gas.hazard"]["label"] == "Safety · Gas · Hazard"
    assert not Visit.objects.exists()


def test_a_visit_for_an_elder_outside_the_scope_is_refused(world: dict[str, Any]) -> None:
    client = api_client(world["visitor"])
    for elder in (world["unassigned"], world["stranger"]):
        response = client.post(VISITS, submission(elder), format="json")
        assert response.status_code == 400
        assert set(fields_of(response)) == {"elder"}
    missing = client.post(VISITS, {**submission(world["widow"]), "elder": 999999}, format="json")
    assert missing.json() == response.json()
    assert not Visit.objects.exists()


def test_recording_needs_the_capability(world: dict[str, Any]) -> None:
    body = submission(world["widow"])
    assert api_client(world["supervisor"]).post(VISITS, body, format="json").status_code == 403
    assert api_client(world["partner"]).post(VISITS, body, format="json").status_code == 403
    assert APIClient().post(VISITS, body, format="json").status_code == 401
    assert not Visit.objects.exists()


# --------------------------------------------------------------------------- one visit


def _recorded(world: dict[str, Any], **changes: Any) -> dict[str, Any]:
    response = api_client(world["visitor"]).post(
        VISITS, submission(world["widow"], **changes), format="json"
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def test_a_visit_is_read_in_scope_and_audited(world: dict[str, Any]) -> None:
    visit = _recorded(world)
    url = f"{VISITS}{visit['id']}/"
    for reader in ("visitor", "worker", "supervisor"):
        response = api_client(world[reader]).get(url)
        assert response.status_code == 200, reader
        assert response.json()["client_uuid"] == visit["client_uuid"]
    for outsider in ("other_visitor", "fangshan_worker"):
        assert api_client(world[outsider]).get(url).status_code == 404, outsider
    assert api_client(world["partner"]).get(url).status_code == 403
    viewers = AuditEntry.objects.filter(action=AuditAction.VIEW_RECORD, elder_id=world["widow"].pk)
    assert sorted(viewers.values_list("actor_username", flat=True)) == sorted(
        [world["visitor"].username, world["worker"].username, world["supervisor"].username]
    )


def test_the_author_corrects_within_24_hours_and_each_change_is_kept(
    world: dict[str, Any],
) -> None:
    visit = _recorded(world)
    url = f"{VISITS}{visit['id']}/"
    client = api_client(world["visitor"])
    response = client.patch(
        url,
        {"outcome": "not_home", "person_met": "nobody", "sections": {}},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["outcome"], body["revision"], body["counts"]) == ("not_home", 2, False)
    revision = VisitRevision.objects.get(visit_id=visit["id"])
    assert revision.changes["outcome"] == ["met", "not_home"]
    # The submission sent again answers the visit as it is now.
    again = client.post(
        VISITS, submission(world["widow"], client_uuid=visit["client_uuid"]), format="json"
    )
    assert again.status_code == 200 and again.json()["revision"] == 2


def test_corrections_by_others_after_24_hours_or_of_other_fields_are_refused(
    world: dict[str, Any],
) -> None:
    visit = _recorded(world)
    url = f"{VISITS}{visit['id']}/"
    author = api_client(world["visitor"], "en")
    unknown = author.patch(url, {"elder": world["father"].pk, "location": None}, format="json")
    assert unknown.status_code == 400
    assert set(fields_of(unknown)) == {"elder", "location"}
    wrong = author.patch(url, {"mode": "carrier_pigeon"}, format="json")
    assert wrong.status_code == 400 and set(fields_of(wrong)) == {"mode"}
    other = api_client(world["worker"]).patch(url, {"notes": "改"}, format="json")
    assert other.status_code == 403 and set(fields_of(other)) == {"visit"}
    for name, code in (("supervisor", 403), ("other_visitor", 404)):
        refused = api_client(world[name]).patch(url, {"notes": "改"}, format="json")
        assert refused.status_code == code, name
    Visit.objects.filter(pk=visit["id"]).update(locked_after=timezone.now() - dt.timedelta(1))
    locked = author.patch(url, {"notes": "太晚了"}, format="json")
    assert locked.status_code == 409
    assert "locked" in fields_of(locked)["visit"]["message"]
    stored = Visit.objects.get(pk=visit["id"])
    assert (stored.notes, stored.revision, stored.elder_id) == ("精神不错", 1, world["widow"].pk)
    assert not VisitRevision.objects.exists()


# --------------------------------------------------------------------------- concurrency


@pytest.mark.django_db(transaction=True)
def test_the_same_submission_sent_at_once_by_many_threads_is_one_visit() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises every write: concurrent submissions need PostgreSQL")
    tree = make_tree()
    visitor = make_user(Role.VISITOR, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    assign(elder, visitor, days_ago=60)
    key = Token.objects.create(user=visitor).key
    body = submission(elder, consent=True, sections={"safety": {"gas": {"hazard": True}}})
    threads = 8
    barrier = threading.Barrier(threads)
    answers: list[tuple[int, bytes]] = []
    failures: list[BaseException] = []

    def send() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
            barrier.wait(timeout=30)
            response = client.post(VISITS, body, format="json")
            answers.append((response.status_code, response.content))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=send) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not failures, failures
    assert sorted(code for code, _ in answers) == [200] * (threads - 1) + [201]
    assert len({content for _, content in answers}) == 1
    assert Visit.objects.filter(client_uuid=body["client_uuid"]).count() == 1
    assert CareAction.objects.filter(elder=elder).count() == 1
    created = AuditEntry.objects.filter(action=AuditAction.CREATE_RECORD, details__has_key="visit")
    assert created.count() == 1
