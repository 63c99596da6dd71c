"""Visit rates (docs/visit-rates.md): who is due, who was visited, roll-up, snapshots, trend,
and the drill-down to the elders not visited."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest

from tanfang.accounts.models import Role
from tanfang.registry.models import VisitorAssignment
from tanfang.registry.records import WillingnessRecord
from tanfang.visits.models import RateSnapshot
from tanfang.visits.rates import (
    RateError,
    missed_elders,
    rate_period,
    rate_snapshot_close,
    rate_trend,
    rates_for,
)
from tanfang.visits.services import VisitInput, visit_record
from tanfang.visits.status import status_refresh
from tests.factories import make_elder, make_tree, make_user

pytestmark = pytest.mark.django_db

SHANGHAI = ZoneInfo("Asia/Shanghai")
ON = dt.date(2026, 3, 5)  # Thursday of 2026-W10 (2 to 8 March); 2026-W09 is 23 Feb to 1 March
AFTER_W10 = dt.date(2026, 3, 9)


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


def visit(elder, started: dt.datetime, *, outcome: str = "met", mode: str = "phone"):
    return visit_record(
        actor=None,
        elder=elder,
        data=VisitInput(
            client_uuid=uuid.uuid4(),
            mode=mode,
            started_at=started,
            ended_at=started + dt.timedelta(minutes=10),
            person_met="nobody" if outcome == "not_home" else "elder",
            outcome=outcome,
        ),
        source="import",
    )[0]


@pytest.fixture
def city():
    """Community 0 (东城区第1街道第1社区): A visited, B not, C only "not home", D deceased,
    G visited at 00:30 on Monday 2 March (Sunday in UTC). Community 1: E visited in W09 only.
    Community 4 (房山区): F declined visits. Statuses computed as of ``ON``."""
    tree = make_tree()
    c0, c1, c4 = tree.communities[0], tree.communities[1], tree.communities[4]
    people = {
        "A": make_elder(c0, name="甲"),
        "B": make_elder(c0, name="乙"),
        "C": make_elder(c0, name="丙"),
        "D": make_elder(c0, name="丁", life_status="deceased"),
        "G": make_elder(c0, name="庚"),
        "E": make_elder(c1, name="戊"),
        "F": make_elder(
            c4,
            name="己",
            willingness=WillingnessRecord(
                willing=False, recorded_on=dt.date(2026, 1, 10), recorded_by_name="李红"
            ),
        ),
    }
    visit(people["A"], at(3, 10))
    visit(people["C"], at(4, 9), outcome="not_home")
    visit(people["G"], at(2, 0, 30))
    visit(people["E"], at(25, 15, month=2))
    status_refresh(on=ON)
    return tree, people


def _by_code(rows):
    return {row.area_code: row for row in rows}


def test_the_weekly_rate_of_every_node_adds_communities_up_to_the_city(city):
    tree, _people = city
    rows = rates_for(area=tree.city, period="2026-W10", on=ON)
    assert [r.area_code for r in rows] == sorted(r.area_code for r in rows)
    assert len(rows) == 1 + 2 + 4 + 8
    by_code = _by_code(rows)
    c0 = by_code[tree.communities[0].code]
    assert (c0.due, c0.visited, c0.rate) == (4, 2, 0.5)  # A, B, C, G due; A and G visited
    assert c0.excluded["deceased"] == 1
    assert c0.basis == "computed" and c0.target == 1.0 and c0.period == "2026-W10"
    c1 = by_code[tree.communities[1].code]
    assert (c1.due, c1.visited) == (1, 0)  # E's visit was the week before
    assert by_code[tree.communities[2].code].rate is None  # nobody due
    sub = by_code[tree.subdistricts[0].code]
    assert (sub.due, sub.visited, sub.level) == (5, 2, "subdistrict")
    fangshan = by_code[tree.districts[1].code]
    assert (fangshan.due, fangshan.visited, fangshan.excluded["declined"]) == (0, 0, 1)
    top = by_code[tree.city.code]
    assert (top.due, top.visited, top.rate) == (5, 2, 0.4)
    assert top.excluded == {
        "deceased": 1,
        "moved_away": 0,
        "in_institution": 0,
        "in_hospital": 0,
        "declined": 1,
    }


def test_the_open_period_from_statuses_equals_the_count_of_visits(city):
    """The open period is counted from ``last_counted_at``; once closed, from the visits'
    ``week_key``: both must give the same numbers for the same week."""
    tree, _people = city
    open_rows = rates_for(area=tree.city, period="2026-W10", on=ON)
    closed_rows = rates_for(area=tree.city, period="2026-W10", on=AFTER_W10)
    strip = [(r.area_code, r.due, r.visited, r.excluded) for r in open_rows]
    assert strip == [(r.area_code, r.due, r.visited, r.excluded) for r in closed_rows]
    assert {r.basis for r in closed_rows} == {"computed"}


def test_a_closed_week_counts_its_own_visits_in_beijing_time(city):
    tree, _people = city
    by_code = _by_code(rates_for(area=tree.districts[0], period="2026-W09", on=ON))
    assert tree.city.code not in by_code  # only the node asked for and those under it
    assert (
        by_code[tree.communities[1].code].visited,
        by_code[tree.communities[0].code].visited,
    ) == (
        1,
        0,  # G's visit at 00:30 on Monday is in W10, though still Sunday in UTC
    )


def test_the_monthly_rate_counts_the_visits_of_the_month(city):
    tree, _people = city
    march = _by_code(rates_for(area=tree.city, period="2026-03", on=ON))[tree.city.code]
    february = _by_code(rates_for(area=tree.city, period="2026-02", on=ON))[tree.city.code]
    assert (march.due, march.visited) == (5, 2)
    assert (february.due, february.visited) == (5, 1)  # E on 25 February


def test_closing_a_period_keeps_its_rates_whatever_is_recorded_later(city):
    tree, people = city
    written = rate_snapshot_close("2026-W09", on=ON)
    assert written == 15 == RateSnapshot.objects.filter(period="2026-W09").count()
    assert rate_snapshot_close("2026-W09", on=ON) == 15  # idempotent
    assert RateSnapshot.objects.filter(period="2026-W09").count() == 15
    snapshot = RateSnapshot.objects.get(period="2026-W09", area=tree.city)
    assert (snapshot.due, snapshot.visited) == (5, 1)
    assert snapshot.excluded == {"deceased": 1, "declined": 1}

    visit(people["B"], at(27, 11, month=2))  # a late entry for the closed week
    rows = _by_code(rates_for(area=tree.city, period="2026-W09", on=ON))
    assert {r.basis for r in rows.values()} == {"snapshot"}
    assert rows[tree.city.code].visited == 1
    assert rows[tree.city.code].excluded["declined"] == 1
    RateSnapshot.objects.filter(period="2026-W09").delete()
    recomputed = _by_code(rates_for(area=tree.city, period="2026-W09", on=ON))
    assert (recomputed[tree.city.code].visited, recomputed[tree.city.code].basis) == (
        2,
        "computed",
    )


def test_only_a_period_that_is_over_can_be_closed(city):
    with pytest.raises(RateError):
        rate_snapshot_close("2026-W10", on=ON)
    assert not RateSnapshot.objects.exists()


@pytest.mark.parametrize(
    "key", ["2026-W54", "2026-W00", "2026-13", "2026/03", "2026-W9", "W10", "2026-Q1", ""]
)
def test_a_period_must_be_an_iso_week_or_a_month(key):
    with pytest.raises(RateError):
        rate_period(key)


def test_periods_name_their_days():
    week = rate_period("2026-W01")
    assert (week.start, week.end) == (dt.date(2025, 12, 29), dt.date(2026, 1, 4))
    month = rate_period("2026-02")
    assert (month.start, month.end, month.kind) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 28),
        "month",
    )


def test_a_period_that_has_not_begun_has_no_rate(city):
    tree, _people = city
    with pytest.raises(RateError):
        rates_for(area=tree.city, period="2026-W11", on=ON)


def test_the_trend_shows_the_node_over_past_periods_with_snapshots_where_kept(city):
    tree, _people = city
    rate_snapshot_close("2026-W09", on=ON)
    trend = rate_trend(area=tree.communities[1], kind="week", periods=3, on=ON)
    assert [(r.period, r.visited, r.due, r.basis) for r in trend] == [
        ("2026-W08", 0, 1, "computed"),
        ("2026-W09", 1, 1, "snapshot"),
        ("2026-W10", 0, 1, "computed"),
    ]


def test_missed_elders_are_the_due_not_visited_as_the_user_may_see_them(city):
    tree, people = city
    c0 = tree.communities[0]
    worker = make_user(Role.COMMUNITY_WORKER, c0)
    missed = missed_elders(user=worker, area=c0, period="2026-W10", on=ON)
    assert {s.elder_id for s in missed} == {people["B"].pk, people["C"].pk}
    closed = missed_elders(user=worker, area=c0, period="2026-W10", on=AFTER_W10)
    assert {s.elder_id for s in closed} == {people["B"].pk, people["C"].pk}
    w09 = missed_elders(user=worker, area=c0, period="2026-W09", on=ON)
    assert {s.elder_id for s in w09} == {people[k].pk for k in "ABCG"}

    visitor = make_user(Role.VISITOR, c0)
    VisitorAssignment.objects.create(
        elder=people["C"], visitor=visitor, starts_on=dt.date(2026, 1, 1)
    )
    seen = missed_elders(user=visitor, area=c0, period="2026-W10", on=ON)
    assert [s.elder_id for s in seen] == [people["C"].pk]

    stranger = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[1])
    assert not missed_elders(user=stranger, area=c0, period="2026-W10", on=ON).exists()


def test_a_user_gets_rates_only_for_an_area_she_may_see(city):
    tree, _people = city
    dongcheng = make_user(Role.DISTRICT_SUPERVISOR, tree.districts[0])
    assert rates_for(area=tree.districts[1], period="2026-W10", on=ON, user=dongcheng) == []
    rows = rates_for(area=tree.districts[0], period="2026-W10", on=ON, user=dongcheng)
    assert rows[0].area_code == tree.districts[0].code


def test_the_rates_of_the_whole_city_take_a_fixed_number_of_queries(
    city, django_assert_num_queries
):
    tree, _people = city
    with django_assert_num_queries(2):  # the areas; the statuses grouped by community
        rates_for(area=tree.city, period="2026-W10", on=ON)
    with django_assert_num_queries(4):  # + the snapshots; + the visited of a closed week
        rates_for(area=tree.city, period="2026-W09", on=ON)
