"""The service teams page: teams and visitors with their loads, assigning by hand, balancing a
community, substitutions; every write through the team services, inside the user's scope."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.registry.models import VisitorAssignment
from tanfang.visits.models import ProviderKind, ServiceProvider, Substitution, VisitorProfile
from tests.factories import make_elder, make_tree, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


def signed_in(user: Any) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"  # messages are compared in English
    client.force_login(user)
    return client


@pytest.fixture
def team(db: None) -> dict[str, Any]:
    """Community 0 with a station team (visitors 小王, capacity 2, with 甲; and 小李, a
    volunteer), 小赵 without a team, the elders 甲 乙 丙 and a worker. Community 1 has its own
    visitor 小孙 and elder 丁."""
    tree = make_tree()
    here, there = tree.communities[0], tree.communities[1]
    station = ServiceProvider.objects.create(
        name="第一驿站", kind=ProviderKind.COMMUNITY_STATION, area=here
    )
    wang = make_user(Role.VISITOR, here, username="xiaowang")
    li = make_user(Role.VISITOR, here, username="xiaoli")
    zhao = make_user(Role.VISITOR, here, username="xiaozhao")
    sun = make_user(Role.VISITOR, there, username="xiaosun")
    VisitorProfile.objects.create(user=wang, provider=station, capacity=2)
    VisitorProfile.objects.create(user=li, provider=station, volunteer=True, capacity=5)
    elders = {
        "甲": make_elder(here, name="甲", birth_date=dt.date(1935, 1, 1)),
        "乙": make_elder(here, name="乙", birth_date=dt.date(1938, 1, 1)),
        "丙": make_elder(here, name="丙", birth_date=dt.date(1945, 1, 1)),
        "丁": make_elder(there, name="丁"),
    }
    VisitorAssignment.objects.create(
        elder=elders["甲"], visitor=wang, starts_on=dt.date(2025, 1, 1)
    )
    return {
        "tree": tree,
        "here": here,
        "there": there,
        "station": station,
        "wang": wang,
        "li": li,
        "zhao": zhao,
        "sun": sun,
        "elders": elders,
        "worker": make_user(Role.COMMUNITY_WORKER, here, username="worker"),
    }


def test_teams_visitors_and_loads(team: dict) -> None:
    client = signed_in(team["worker"])
    client.get(reverse("teams"))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("teams"))
    assert response.status_code == 200
    assert len(queries) <= 16, [q["sql"] for q in queries.captured_queries]
    teams = {
        (t["provider"].name if t["provider"] else None): {
            v["visitor"].username: (v["load"], v["capacity"], v["volunteer"]) for v in t["visitors"]
        }
        for t in response.context["teams"]
    }
    assert teams == {
        "第一驿站": {"xiaowang": (1, 2, False), "xiaoli": (0, 5, True)},
        None: {"xiaozhao": (0, None, False)},
    }
    html = response.content.decode()
    assert "xiaosun" not in html  # another community's visitor
    assert response.context["unassigned_count"] == 2
    assert [e.name for e in response.context["unassigned"]] == ["乙", "丙"]  # oldest first
    entry = AuditEntry.objects.filter(action=AuditAction.VIEW_LIST).latest("at")
    assert entry.details["page"] == "teams-unassigned"
    assert sorted(entry.details["elder_ids"]) == sorted(
        [team["elders"]["乙"].pk, team["elders"]["丙"].pk]
    )


def test_a_visitor_drill_down_lists_her_elders(team: dict) -> None:
    client = signed_in(team["worker"])
    response = client.get(reverse("teams"), {"visitor": team["wang"].pk})
    assert [e.name for e in response.context["visitor_elders"]] == ["甲"]
    assert AuditEntry.objects.filter(
        action=AuditAction.VIEW_LIST, details__page="teams-visitor"
    ).exists()
    assert client.get(reverse("teams"), {"visitor": team["sun"].pk}).status_code == 404


def test_assigning_by_hand_moves_the_elder(team: dict) -> None:
    client = signed_in(team["worker"])
    jia = team["elders"]["甲"]
    response = client.post(
        reverse("team-assign"),
        {"elder": jia.pk, "visitor": team["li"].pk, "area": team["here"].pk},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('teams')}?area={team['here'].pk}"
    current = VisitorAssignment.objects.filter(elder=jia, ends_on__isnull=True).get()
    assert current.visitor == team["li"] and current.assigned_by == team["worker"]
    old = VisitorAssignment.objects.get(elder=jia, visitor=team["wang"])
    assert old.ends_on == timezone.localdate() - dt.timedelta(days=1)
    page = client.get(response["Location"])
    assert "甲" in page.content.decode() and "xiaoli" in page.content.decode()
    assert AuditEntry.objects.filter(
        action=AuditAction.UPDATE_RECORD, elder_id=jia.pk, details__assigned_to="xiaoli"
    ).exists()


def test_assigning_outside_the_scope_or_against_the_rules_is_refused(team: dict) -> None:
    client = signed_in(team["worker"])
    before = list(VisitorAssignment.objects.values())
    # An elder of another community: the same answer as a number nobody has.
    for number in (team["elders"]["丁"].pk, 999999):
        response = client.post(reverse("team-assign"), {"elder": number, "visitor": team["li"].pk})
        assert response.status_code == 400
        assert response.context["assign_form"].errors["elder"] == [
            "No elder with this registry number in your area."
        ]
    # A visitor of another community is not even a choice.
    response = client.post(
        reverse("team-assign"), {"elder": team["elders"]["乙"].pk, "visitor": team["sun"].pk}
    )
    assert response.status_code == 400
    assert "visitor" in response.context["assign_form"].errors
    assert list(VisitorAssignment.objects.values()) == before


def test_a_team_error_is_shown_next_to_the_form(team: dict) -> None:
    """The subdistrict sees both communities' visitors; the service refuses a visitor of
    the other community and its message is shown."""
    staff = make_user(Role.SUBDISTRICT_STAFF, team["tree"].subdistricts[0])
    response = signed_in(staff).post(
        reverse("team-assign"),
        {"elder": team["elders"]["乙"].pk, "visitor": team["sun"].pk},
    )
    assert response.status_code == 400
    assert response.context["assign_form"].non_field_errors() == [
        "The visitor does not work in the elder's community."
    ]
    assert 'data-testid="form-errors"' in response.content.decode()
    assert not VisitorAssignment.objects.filter(visitor=team["sun"]).exists()


def test_balancing_a_community(team: dict) -> None:
    client = signed_in(team["worker"])
    response = client.post(
        reverse("team-balance"), {"community": team["here"].pk, "area": team["here"].pk}
    )
    assert response.status_code == 302
    loads = {
        a.elder.name: a.visitor.username
        for a in VisitorAssignment.objects.filter(ends_on__isnull=True).select_related(
            "elder", "visitor"
        )
    }
    # 乙 and 丙 found a visitor; 小王 had room for one more, 小赵 has the default capacity.
    assert set(loads) == {"甲", "乙", "丙"}
    assert loads["甲"] == "xiaowang"
    page = client.get(response["Location"])
    assert page.context["unassigned_count"] == 0
    assert [str(m) for m in page.context["messages"]] == [
        f"{team['here'].name}: 2 elders assigned, 0 left without a visitor."
    ]
    # Another community cannot be balanced from here.
    outside = client.post(reverse("team-balance"), {"community": team["there"].pk})
    assert outside.status_code == 400
    assert not VisitorAssignment.objects.filter(elder=team["elders"]["丁"]).exists()


def test_substitutions(team: dict) -> None:
    client = signed_in(team["worker"])
    today = timezone.localdate()
    data = {
        "visitor": team["wang"].pk,
        "substitute": team["li"].pk,
        "starts_on": today.isoformat(),
        "ends_on": (today + dt.timedelta(days=6)).isoformat(),
        "reason": "住院",
    }
    response = client.post(reverse("team-substitute"), data)
    assert response.status_code == 302
    substitution = Substitution.objects.get()
    assert (substitution.visitor, substitution.substitute, substitution.reason) == (
        team["wang"],
        team["li"],
        "住院",
    )
    assert substitution.created_by == team["worker"]
    page = client.get(reverse("teams"))
    assert [s.pk for s in page.context["substitutions"]] == [substitution.pk]
    # The substitute now sees the elders of the visitor who is away.
    li_page = signed_in(team["li"]).get(reverse("elder-detail", args=[team["elders"]["甲"].pk]))
    assert li_page.status_code == 200
    # Mistakes come back as messages, nothing is written.
    same = client.post(reverse("team-substitute"), {**data, "substitute": team["wang"].pk})
    assert same.status_code == 400
    assert same.context["substitute_form"].non_field_errors() == [
        "A visitor cannot stand in for herself."
    ]
    backwards = client.post(
        reverse("team-substitute"),
        {**data, "ends_on": (today - dt.timedelta(days=1)).isoformat()},
    )
    assert backwards.status_code == 400
    assert backwards.context["substitute_form"].non_field_errors() == [
        "The substitution cannot end before it starts."
    ]
    outside = client.post(reverse("team-substitute"), {**data, "substitute": team["sun"].pk})
    assert outside.status_code == 400
    assert "substitute" in outside.context["substitute_form"].errors
    assert Substitution.objects.count() == 1


def test_who_may_manage_visitors(team: dict) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, team["tree"].districts[0])
    assert signed_in(supervisor).get(reverse("teams")).status_code == 403
    assert signed_in(team["wang"]).get(reverse("teams")).status_code == 403
    post = signed_in(team["wang"]).post(
        reverse("team-assign"), {"elder": team["elders"]["乙"].pk, "visitor": team["wang"].pk}
    )
    assert post.status_code == 403
    assert signed_in(team["worker"]).get(reverse("team-assign")).status_code == 405
    # The city administrator first chooses a subdistrict or a community.
    admin = make_user(Role.CITY_ADMIN, team["tree"].city)
    response = signed_in(admin).get(reverse("teams"))
    assert response.status_code == 200
    assert 'data-testid="choose-area"' in response.content.decode()
    chosen = signed_in(admin).get(reverse("teams"), {"area": team["here"].pk})
    assert {t["provider"].name for t in chosen.context["teams"] if t["provider"]} == {"第一驿站"}
    assert (
        signed_in(team["worker"]).get(reverse("teams"), {"area": team["there"].pk}).status_code
        == 404
    )
