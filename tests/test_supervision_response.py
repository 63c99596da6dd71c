"""The supervision page's evidence of late handling (突发事件处置不及时): emergencies confirmed
late, referrals overdue, family notifications unconfirmed or never delivered, per child area,
scoped to the supervisor's subtree, in a constant number of queries."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from html import unescape
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
from tanfang.areas.models import Area, AreaLevel
from tanfang.emergencies.models import CaseLevel, CaseState, EmergencyCase, EmergencyRules
from tanfang.emergencies.stats import emergency_stats, late_cases, percentile
from tanfang.notifications.models import (
    Channel,
    Message,
    MessageState,
    Notification,
    RecipientKind,
    Topic,
)
from tanfang.notifications.stats import family_stats
from tanfang.referrals.models import Referral, ReferralState
from tanfang.referrals.stats import referral_stats
from tanfang.registry.models import Elder
from tests.factories import Tree, make_area, make_elder, make_tree, make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()
_serial = itertools.count(1)


@pytest.fixture(autouse=True)
def _static_root(settings: Any) -> None:
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _now() -> None:
    """The data is placed relative to the test's start, not to the module's import (a long
    suite would otherwise age the 10-minute case past its limit)."""
    global NOW
    NOW = timezone.now()


@pytest.fixture
def tree() -> Tree:
    return make_tree()


def signed_in(user: Any) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    client.force_login(user)
    return client


def ago(**delta: float) -> dt.datetime:
    return NOW - dt.timedelta(**delta)


def case(
    community: Area,
    *,
    opened: dt.datetime,
    confirmed_after: float | None = None,
    outcome: str = "",
) -> EmergencyCase:
    """A case of a new elder of ``community``, opened at ``opened``, confirmed that many
    minutes later (or not), closed with ``outcome`` when given."""
    elder = make_elder(community, name=f"急{next(_serial)}")
    confirmed = None if confirmed_after is None else opened + dt.timedelta(minutes=confirmed_after)
    state = CaseState.OPEN if confirmed is None else CaseState.CONFIRMED
    return EmergencyCase.objects.create(
        key=f"test:{elder.pk}",
        elder=elder,
        community_id=elder.community_id,
        subdistrict_id=elder.subdistrict_id,
        district_id=elder.district_id,
        trigger="sos",
        level=CaseLevel.VISITOR,
        state=CaseState.CLOSED if outcome else state,
        opened_at=opened,
        confirmed_at=confirmed,
        closed_at=confirmed if outcome else None,
        outcome=outcome,
    )


@pytest.fixture
def emergencies(tree: Tree) -> dict[str, EmergencyCase]:
    """Dongcheng waits 10 + 20 minutes before a case is late; its community 2 only 5 + 5.

    Subdistrict 0: on time (12 min, all well), late (45 min, hospital), unconfirmed for two
    hours (late), unconfirmed for 10 minutes (not yet late), and one 40 days ago. Subdistrict
    1: 20 minutes in community 2 (late there), 20 minutes in community 3 (on time).
    Fangshan: one late case."""
    EmergencyRules.objects.create(area=tree.districts[0], visitor_minutes=10, community_minutes=20)
    EmergencyRules.objects.create(area=tree.communities[2], visitor_minutes=5, community_minutes=5)
    EmergencyRules.objects.create(area=None, visitor_minutes=1, community_minutes=1)
    c = tree.communities
    return {
        "on_time": case(c[0], opened=ago(days=2), confirmed_after=12, outcome="all_well"),
        "late": case(c[1], opened=ago(days=3), confirmed_after=45, outcome="hospitalised"),
        "waiting_long": case(c[0], opened=ago(hours=2)),
        "waiting_short": case(c[0], opened=ago(minutes=10)),
        "old": case(c[0], opened=ago(days=40), confirmed_after=90, outcome="all_well"),
        "strict": case(c[2], opened=ago(days=1), confirmed_after=20),
        "lenient": case(c[3], opened=ago(days=1), confirmed_after=20, outcome="false_alarm"),
        "fangshan": case(c[4], opened=ago(days=1), confirmed_after=300, outcome="all_well"),
    }


def referral(community: Area, *, created: dt.datetime, due: dt.datetime, **kw: Any) -> Referral:
    elder = make_elder(community, name=f"转{next(_serial)}")
    return Referral.objects.create(
        key=f"test:{elder.pk}:{next(_serial)}",
        elder=elder,
        community_id=elder.community_id,
        subdistrict_id=elder.subdistrict_id,
        district_id=elder.district_id,
        need="meals",
        route_reason="extremely_poor",
        source="visit",
        created_at=created,
        due_at=due,
        **kw,
    )


@pytest.fixture
def referrals(tree: Tree) -> None:
    """Subdistrict 0: received 5 days ago, overdue since yesterday and escalated; received
    10 days ago, done 3 days ago (7 days); received 60 days ago, open, not due yet; received
    50 days ago, declined 2 days ago; received 45 days ago, done 40 days ago. Subdistrict 1:
    received yesterday, open, due in 2 days. Fangshan: overdue."""
    c = tree.communities
    referral(c[0], created=ago(days=5), due=ago(days=1), escalated_at=ago(hours=20))
    closed = {"closed": True}
    done = {**closed, "state": ReferralState.DONE}
    referral(c[1], created=ago(days=10), due=ago(days=1), closed_at=ago(days=3), **done)
    referral(c[0], created=ago(days=60), due=NOW + dt.timedelta(days=1), state="accepted")
    referral(
        c[0],
        created=ago(days=50),
        due=ago(days=30),
        escalated_at=ago(days=35),
        closed_at=ago(days=2),
        state=ReferralState.DECLINED,
        decline_reason="家属已安排",
        **closed,
    )
    referral(c[1], created=ago(days=45), due=ago(days=40), closed_at=ago(days=40), **done)
    referral(c[2], created=ago(days=1), due=NOW + dt.timedelta(days=2))
    referral(c[4], created=ago(days=9), due=ago(days=2))


def notification(
    elder: Elder, *, kind: str, urgent: bool, created: dt.datetime, states: tuple[str, ...], **kw
) -> Notification:
    n = next(_serial)
    told = Notification.objects.create(
        key=f"test:{n}",
        topic=Topic.EMERGENCY if urgent else Topic.NEED,
        template="test",
        text="测试",
        elder=elder,
        district_id=elder.district_id,
        community_id=elder.community_id,
        recipient_kind=kind,
        urgent=urgent,
        created_at=created,
        **kw,
    )
    for index, state in enumerate(states):
        Message.objects.create(
            notification=told,
            key=f"test:{n}:{index}",
            channel=(Channel.SMS, Channel.EMAIL)[index % 2],
            channel_index=index,
            body="测试",
            state=state,
            next_attempt_at=created,
            created_at=created,
        )
    return told


@pytest.fixture
def family(tree: Tree) -> None:
    """Community 0: urgent confirmed; urgent escalated unconfirmed; urgent to a family contact
    whose SMS and e-mail both failed (never reached); a need whose SMS failed and e-mail is
    pending (not yet "never reached"); an urgent message to a worker (not family); an urgent
    one 40 days ago. Fangshan: an urgent one never reached."""
    elder = make_elder(tree.communities[0], name="家")
    first, fam = RecipientKind.FIRST_CONTACT, RecipientKind.FAMILY
    failed, pending = MessageState.FAILED, MessageState.PENDING
    sent = (MessageState.DELIVERED,)
    notification(elder, kind=first, urgent=True, created=ago(days=1), states=sent,
                 confirmed_at=ago(hours=23))  # fmt: skip
    notification(elder, kind=first, urgent=True, created=ago(days=2), states=sent,
                 escalated_at=ago(days=2))  # fmt: skip
    notification(elder, kind=fam, urgent=True, created=ago(days=2), states=(failed, failed))
    notification(elder, kind=first, urgent=False, created=ago(days=3), states=(failed, pending))
    notification(elder, kind=RecipientKind.USER, urgent=True, created=ago(days=1), states=sent)
    notification(elder, kind=first, urgent=True, created=ago(days=40), states=(failed,))
    far = make_elder(tree.communities[4], name="远")
    notification(far, kind=first, urgent=True, created=ago(days=1), states=(failed,))


def window() -> dict[str, Any]:
    return {"since": ago(days=30), "until": NOW}


def test_emergencies_late_and_on_time_per_subdistrict(tree: Tree, emergencies: dict) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    response = signed_in(supervisor).get(reverse("supervision"))
    assert response.status_code == 200
    rows = {r["row"].code: r["row"] for r in response.context["emergency_stats"]["rows"]}
    s0, s1 = tree.subdistricts[0].code, tree.subdistricts[1].code
    assert set(rows) == {s0, s1}
    assert (rows[s0].opened, rows[s0].open, rows[s0].late) == (4, 2, 2)
    assert (rows[s0].median_minutes, rows[s0].p90_minutes) == (28.5, 45.0)
    assert rows[s0].outcomes == {"all_well": 1, "hospitalised": 1}
    # Community 2's own rules (10 minutes) make its 20-minute case late; community 3 falls
    # back to the district's 30 minutes.
    assert (rows[s1].opened, rows[s1].open, rows[s1].late) == (2, 1, 1)
    assert (rows[s1].median_minutes, rows[s1].p90_minutes) == (20.0, 20.0)
    html = response.content.decode()
    assert f'data-testid="emergency-{s0}-late"><a href="/emergencies/?area=' in html
    pk0 = tree.subdistricts[0].pk
    assert f'href="/emergencies/?area={pk0}&amp;late=1"' in html
    assert f'data-testid="emergency-{s0}-median">28.5<' in html
    assert tree.subdistricts[2].code not in {r["row"].code for r in response.context[
        "emergency_stats"]["rows"]}  # fmt: skip


def test_a_subdistrict_sees_its_communities_and_nothing_of_its_neighbour(
    tree: Tree, emergencies: dict
) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    client = signed_in(staff)
    response = client.get(reverse("supervision"))
    rows = {r["row"].code: r["row"] for r in response.context["emergency_stats"]["rows"]}
    c0, c1 = tree.communities[0].code, tree.communities[1].code
    assert set(rows) == {c0, c1}
    assert (rows[c0].opened, rows[c0].late, rows[c1].opened, rows[c1].late) == (3, 1, 1, 1)
    html = response.content.decode()
    assert tree.communities[2].code not in html
    assert client.get(reverse("supervision"), {"area": tree.subdistricts[1].pk}).status_code == 404
    # The selector alone refuses the neighbour's area too, and a community below her own
    # area is its own single row.
    assert emergency_stats(user=staff, area=tree.subdistricts[1], **window()) == []
    assert emergency_stats(user=staff, area=tree.districts[0], **window()) == []
    [own] = emergency_stats(user=staff, area=tree.communities[0], **window())
    assert (own.code, own.opened) == (c0, 3)
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[1])
    assert emergency_stats(user=worker, area=tree.communities[0], **window()) == []
    visitor = make_user(Role.VISITOR, tree.communities[0])
    assert emergency_stats(user=visitor, area=tree.communities[0], **window()) == []


def test_an_unconfirmed_case_becomes_late_when_its_time_has_passed(
    tree: Tree, emergencies: dict
) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    later = NOW + dt.timedelta(minutes=25)  # the 10-minute case has now waited 35
    rows = emergency_stats(user=supervisor, area=tree.districts[0], now=later, **window())
    assert [r.late for r in rows] == [3, 1]


def test_referral_flow_and_backlog_per_subdistrict(tree: Tree, referrals: None) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    response = signed_in(supervisor).get(reverse("supervision"))
    rows = {r["row"].code: r["row"] for r in response.context["referral_stats"]}
    s0, s1 = tree.subdistricts[0].code, tree.subdistricts[1].code
    got = {
        code: (r.received, r.open, r.overdue, r.escalated, r.done, r.declined, r.median_days)
        for code, r in rows.items()
    }
    assert got == {s0: (2, 2, 1, 1, 1, 1, 7.0), s1: (1, 1, 0, 0, 0, 0, None)}
    html = response.content.decode()
    pk0 = tree.subdistricts[0].pk
    assert f'href="/referrals/?area={pk0}&amp;overdue=1"' in html
    assert f'data-testid="referral-{s1}-median-days">—<' in html
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[1])
    assert referral_stats(user=staff, area=tree.subdistricts[0], **window()) == []
    [c2, c3] = referral_stats(user=staff, area=tree.subdistricts[1], **window())
    assert (c2.received, c2.open, c3.received) == (1, 1, 0)


def test_family_notifications_confirmed_escalated_and_never_reached(
    tree: Tree, family: None
) -> None:
    staff = make_user(Role.SUBDISTRICT_STAFF, tree.subdistricts[0])
    response = signed_in(staff).get(reverse("supervision"))
    rows = {r.code: r for r in response.context["family_stats"]}
    c0, c1 = tree.communities[0].code, tree.communities[1].code
    got = {code: (r.urgent, r.confirmed, r.escalated, r.never_reached) for code, r in rows.items()}
    assert got == {c0: (3, 1, 1, 1), c1: (0, 0, 0, 0)}
    assert f'data-testid="family-{c0}-never-reached">1<' in response.content.decode()
    city = make_user(Role.CITY_ADMIN, tree.city)
    by_district = {r.code: r for r in family_stats(user=city, area=tree.city, **window())}
    assert by_district[tree.districts[0].code].never_reached == 1
    assert by_district[tree.districts[1].code].never_reached == 1


def test_percentile_is_by_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 90) == 9.0
    assert percentile([float(n) for n in range(1, 21)], 90) == 18.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def _page_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("supervision")).status_code == 200
    return len(queries)


def test_the_page_costs_the_same_queries_however_many_areas(
    tree: Tree,
    emergencies: dict,
    referrals: None,
    family: None,
    django_assert_max_num_queries: Any,
) -> None:
    supervisor = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    client = signed_in(supervisor)
    client.get(reverse("supervision"))  # session and first-request costs
    before = _page_queries(client)
    # Three more subdistricts, each with two communities, a late case, an overdue referral
    # and a family member never reached.
    for s in range(3, 6):
        sub = make_area(f"110101{s:03d}", f"新街道{s}", AreaLevel.SUBDISTRICT, tree.districts[0])
        for c in (1, 2):
            community = make_area(f"{sub.code}{c:03d}", f"{sub.name}{c}", AreaLevel.COMMUNITY, sub)
            case(community, opened=ago(days=1), confirmed_after=60, outcome="all_well")
            referral(community, created=ago(days=4), due=ago(days=1))
            elder = make_elder(community, name=f"家{s}{c}")
            notification(
                elder,
                kind=RecipientKind.FIRST_CONTACT,
                urgent=True,
                created=ago(days=1),
                states=(MessageState.FAILED,),
            )
    assert _page_queries(client) == before
    # 8 for visits, 2 for the monitoring alerts' outcomes, 5 for emergencies (cases, rules),
    # referrals (counts, days to done) and family notifications.
    with django_assert_max_num_queries(15):
        response = client.get(reverse("supervision"))
    assert len(response.context["emergency_stats"]["rows"]) == 5
    assert sum(r["row"].late for r in response.context["emergency_stats"]["rows"]) == 3 + 6
    assert sum(r["row"].overdue for r in response.context["referral_stats"]) == 1 + 6
    assert sum(r.never_reached for r in response.context["family_stats"]) == 1 + 6


def _links(html: str, kind: str) -> dict[str, tuple[int, str]]:
    """The "late" (emergencies) or "overdue" (referrals) cells that link to a list: area code
    -> (the count shown, the link)."""
    found = re.findall(
        rf'data-testid="{kind}-(\d+)-(?:late|overdue)"><a href="([^"]+)"[^>]*>(\d+)</a>', html
    )
    return {code: (int(n), unescape(url)) for code, url, n in found}


@pytest.mark.parametrize("role", [Role.DISTRICT_SUPERVISOR, Role.SUBDISTRICT_STAFF])
def test_each_count_is_the_number_of_rows_of_its_list(
    tree: Tree, emergencies: dict, referrals: None, role: str
) -> None:
    """Follow each linked count of the page: the list behind it has as many rows (the late
    emergencies of the last 30 days, the overdue referrals of the area), and the cases
    outside the window or not yet late are not among them."""
    area = tree.districts[0] if role == Role.DISTRICT_SUPERVISOR else tree.subdistricts[0]
    client = signed_in(make_user(role, area))
    html = client.get(reverse("supervision")).content.decode()
    late, overdue = _links(html, "emergency"), _links(html, "referral")
    assert sum(n for n, _url in late.values()) == (3 if area == tree.districts[0] else 2)
    assert sum(n for n, _url in overdue.values()) == 1
    for n, url in late.values():
        page = client.get(url).content.decode()
        assert page.count('data-testid="emergency-row"') == n, url
        assert f'data-case-id="{emergencies["old"].pk}"' not in page
        assert f'data-case-id="{emergencies["waiting_short"].pk}"' not in page
    for n, url in overdue.values():
        page = client.get(url).content.decode()
        assert page.count('data-testid="referral-row"') == n, url


def test_the_late_filter_agrees_with_the_counts_at_any_time(tree: Tree, emergencies: dict) -> None:
    """``late_cases`` and ``emergency_stats`` apply one definition, with every level's rules
    (the district's, a community's own, the city's default for Fangshan)."""
    city = make_user(Role.CITY_ADMIN, tree.city)
    for now in (NOW, NOW + dt.timedelta(minutes=25), NOW + dt.timedelta(days=1)):
        since = now - dt.timedelta(days=30)
        for area in (tree.city, *tree.districts, *tree.subdistricts, *tree.communities):
            counts = emergency_stats(user=city, area=area, since=since, until=now, now=now)
            in_window = EmergencyCase.objects.filter(opened_at__gte=since, opened_at__lt=now)
            for row in counts:
                column = f"{Area.objects.get(pk=row.area_id).level}_id"
                cases = in_window.filter(**{column: row.area_id})
                assert late_cases(cases, now=now).count() == row.late, (now, row)
