"""The visit-obligation engine on the plan's own examples (issue 3, point 2).

Each test pins one clause of docs/visit-obligations.md: the switch from monthly to weekly
visits on 2026-01-01, overrides by category, risk, district and individual, the 房山 heat-wave
surge, the Spring Festival surge and chinese-calendar's data horizon, station contracts,
refusals and their yearly re-confirmation, exclusions, which visits count, and ISO weeks at
Asia/Shanghai midnight. The random-policy properties live in test_visit_obligations_properties.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from tanfang.visits.obligations import (
    SHANGHAI,
    Calendar,
    CountingPolicy,
    DueStatus,
    ElderFacts,
    Frequency,
    HolidaySurge,
    ModeRequirement,
    Obligation,
    PastVisit,
    PolicyRule,
    Surge,
    VisitPolicy,
    counts_for_rates,
    default_policy,
    due_status,
    local_date,
    obligations_for,
    period_from_key,
    period_of,
    rate_status,
)

CALENDAR = Calendar()
BEIJING, FANGSHAN, CHAOYANG = "110000", "110111", "110105"
FANGSHAN_AREAS = (BEIJING, FANGSHAN, "110111001", "110111001001")
CHAOYANG_AREAS = (BEIJING, CHAOYANG, "110105001", "110105001001")
D = dt.date


def elder(**changes: object) -> ElderFacts:
    base = ElderFacts(
        elder_id=1,
        area_codes=CHAOYANG_AREAS,
        categories=frozenset({"empty_nest"}),
        risk_level="general",
        life_status="active",
        willing=True,
        willingness_recorded_on=D(2024, 6, 1),
        station_contracts=(),
        advanced_age=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def visit(
    day: dt.date,
    mode: str = "phone",
    outcome: str = "met",
    *,
    hour: int = 10,
    station: bool = False,
) -> PastVisit:
    at = dt.datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)
    return PastVisit(at=at, mode=mode, outcome=outcome, by_station=station)


def status_of(
    facts: ElderFacts, policy: VisitPolicy, visits: list[PastVisit], on: dt.date
) -> DueStatus:
    return due_status(elder=facts, policy=policy, calendar=CALENDAR, visits=visits, on=on)


def obligations_of(
    facts: ElderFacts, policy: VisitPolicy, visits: list[PastVisit], on: dt.date
) -> list[Obligation]:
    return obligations_for(elder=facts, policy=policy, calendar=CALENDAR, visits=visits, on=on)


def kinds(obligations: list[Obligation]) -> list[tuple[str, str]]:
    return [(o.kind, o.code) for o in obligations]


# --- the plan's dates -------------------------------------------------------------------


def test_monthly_until_2025_then_weekly_from_2026() -> None:
    policy = default_policy()
    before = status_of(elder(), policy, [], D(2025, 12, 31))
    after = status_of(elder(), policy, [], D(2026, 1, 1))
    assert (before.frequency, before.period_key, before.next_due_on) == (
        Frequency.MONTH, "2025-12", D(2025, 12, 31),
    )  # fmt: skip
    # 2026-W01 runs from Monday 29 December 2025 to Sunday 4 January 2026.
    assert (after.frequency, after.period_key, after.next_due_on) == (
        Frequency.WEEK, "2026-W01", D(2026, 1, 4),
    )  # fmt: skip
    [regular] = obligations_of(elder(), policy, [], D(2026, 1, 2))
    assert (regular.code, regular.period_start, regular.due_by) == (
        "plan_weekly", D(2025, 12, 29), D(2026, 1, 4),
    )  # fmt: skip


def test_a_visit_in_the_transition_week_satisfies_december_and_2026_w01() -> None:
    policy = default_policy()
    visits = [visit(D(2025, 12, 30))]
    december = status_of(elder(), policy, visits, D(2025, 12, 31))
    week_one = status_of(elder(), policy, visits, D(2026, 1, 3))
    assert december.satisfied and december.next_due_on == D(2026, 1, 1)
    assert week_one.satisfied and week_one.next_due_on == D(2026, 1, 5)
    assert week_one.overdue_since is None


def test_overdue_since_the_day_after_the_earliest_missed_week() -> None:
    policy = default_policy()
    visits = [visit(D(2025, 12, 30))]
    # W02 (5–11 Jan) and W03 so far are unvisited; W01 was visited on 30 December.
    status = status_of(elder(), policy, visits, D(2026, 1, 14))
    assert status.overdue_since == D(2026, 1, 12)
    assert status.next_due_on == D(2026, 1, 18)
    # Still inside W02 the elder is due, not overdue.
    status = status_of(elder(), policy, visits, D(2026, 1, 9))
    assert status.overdue_since is None


def test_overdue_across_the_switch_counts_the_unvisited_december() -> None:
    visits = [visit(D(2025, 11, 20))]
    status = status_of(elder(), default_policy(), visits, D(2026, 1, 7))
    # W02 open, W01 missed, December (monthly) missed, November visited.
    assert status.overdue_since == D(2026, 1, 1)


def test_a_period_cut_short_by_a_rule_change_is_not_missed() -> None:
    daily = PolicyRule(
        code="daily_from_mid_june", effective_from=D(2025, 6, 15), effective_to=None,
        frequency=Frequency.DAY, priority=1,
    )  # fmt: skip
    policy = replace(default_policy(), rules=(*default_policy().rules, daily))
    visited_in_may = [visit(D(2025, 5, 20))]
    # June's monthly period, superseded on 15 June, is not a missed period.
    status = status_of(elder(), policy, visited_in_may, D(2025, 6, 15))
    assert status.overdue_since is None and status.frequency is Frequency.DAY
    # The next day, 15 June is missed; June's monthly period still is not.
    status = status_of(elder(), policy, visited_in_may, D(2025, 6, 16))
    assert status.overdue_since == D(2025, 6, 16)
    # An unvisited May is missed in full.
    status = status_of(elder(), policy, [visit(D(2025, 4, 20))], D(2025, 6, 16))
    assert status.overdue_since == D(2025, 6, 1)


def test_due_from_keeps_a_newly_registered_elder_from_being_overdue() -> None:
    newcomer = elder(due_from=D(2026, 3, 4))
    status = status_of(newcomer, default_policy(), [], D(2026, 3, 11))
    assert status.overdue_since is None and status.next_due_on == D(2026, 3, 15)
    veteran = status_of(elder(), default_policy(), [], D(2026, 3, 11))
    # Never visited: overdue as far back as the look-back goes (8 periods).
    assert veteran.overdue_since == D(2026, 1, 19)


# --- overrides --------------------------------------------------------------------------


def override_policy() -> VisitPolicy:
    base = default_policy()
    return replace(
        base,
        rules=(
            *base.rules,
            PolicyRule(
                code="impaired_in_home", effective_from=D(2026, 1, 1), effective_to=None,
                frequency=Frequency.WEEK, mode=ModeRequirement.IN_HOME,
                categories=frozenset({"impaired", "severely_disabled"}), priority=10,
            ),
            PolicyRule(
                code="high_risk_daily", effective_from=D(2026, 1, 1), effective_to=None,
                frequency=Frequency.DAY, mode=ModeRequirement.PHONE_OR_BETTER,
                risk_levels=frozenset({"high"}), priority=10,
            ),
            PolicyRule(
                code="fangshan_monthly_in_home", effective_from=D(2026, 1, 1), effective_to=None,
                frequency=Frequency.MONTH, mode=ModeRequirement.IN_HOME, area_code=FANGSHAN,
                priority=5,
            ),
            PolicyRule(
                code="elder_7_quarterly", effective_from=D(2026, 1, 1), effective_to=None,
                frequency=Frequency.QUARTER, elder_id=7, priority=100,
            ),
        ),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "code", "frequency"),
    [
        ({}, "plan_weekly", Frequency.WEEK),
        ({"categories": frozenset({"impaired"})}, "impaired_in_home", Frequency.WEEK),
        ({"risk_level": "high"}, "high_risk_daily", Frequency.DAY),
        # Equal priority 10: the more frequent rule wins the tie.
        (
            {"risk_level": "high", "categories": frozenset({"impaired"})},
            "high_risk_daily",
            Frequency.DAY,
        ),
        ({"area_codes": FANGSHAN_AREAS}, "fangshan_monthly_in_home", Frequency.MONTH),
        ({"area_codes": FANGSHAN_AREAS, "risk_level": "high"}, "high_risk_daily", Frequency.DAY),
        ({"elder_id": 7, "risk_level": "high"}, "elder_7_quarterly", Frequency.QUARTER),
    ],
)
def test_the_highest_priority_matching_rule_wins(
    changes: dict[str, object], code: str, frequency: Frequency
) -> None:
    status = status_of(elder(**changes), override_policy(), [], D(2026, 3, 11))
    assert (status.rule_code, status.frequency) == (code, frequency)


def test_an_override_follows_its_effective_dates_and_the_rule_order_does_not_matter() -> None:
    policy = override_policy()
    shuffled = replace(policy, rules=tuple(reversed(policy.rules)))
    impaired = elder(categories=frozenset({"impaired"}))
    for p in (policy, shuffled):
        assert status_of(impaired, p, [], D(2025, 12, 31)).rule_code == "plan_monthly"
        assert status_of(impaired, p, [], D(2026, 1, 1)).rule_code == "impaired_in_home"


def test_the_mode_requirement_decides_which_visits_satisfy() -> None:
    impaired = elder(categories=frozenset({"impaired"}))
    on = D(2026, 3, 11)
    phoned = status_of(impaired, override_policy(), [visit(D(2026, 3, 10))], on)
    assert not phoned.satisfied
    for mode in ("in_home", "combined"):
        seen = status_of(impaired, override_policy(), [visit(D(2026, 3, 10), mode)], on)
        assert seen.satisfied and seen.next_due_on == D(2026, 3, 16)


def test_a_week_with_only_a_phone_call_is_missed_under_an_in_home_rule() -> None:
    impaired = elder(categories=frozenset({"impaired"}))
    visits = [visit(D(2026, 2, 24), "in_home"), visit(D(2026, 3, 4))]
    status = status_of(impaired, override_policy(), visits, D(2026, 3, 11))
    assert status.overdue_since == D(2026, 3, 9)  # W10's phone call did not satisfy it
    plain = status_of(elder(), override_policy(), visits, D(2026, 3, 11))
    assert plain.overdue_since is None


def test_advanced_age_is_a_pseudo_category_for_rules() -> None:
    rule = PolicyRule(
        code="aged_weekly", effective_from=D(2024, 1, 1), effective_to=None,
        frequency=Frequency.WEEK, categories=frozenset({"advanced_age"}), priority=1,
    )  # fmt: skip
    policy = replace(default_policy(), rules=(*default_policy().rules, rule))
    on = D(2025, 6, 4)
    assert status_of(elder(advanced_age=True), policy, [], on).rule_code == "aged_weekly"
    assert status_of(elder(), policy, [], on).rule_code == "plan_monthly"


# --- surges -----------------------------------------------------------------------------


HEAT_WAVE = Surge(
    code="heat_fangshan_2026", reason="高温 heat wave", area_code=FANGSHAN,
    starts_on=D(2026, 7, 10), ends_on=D(2026, 7, 14), frequency=Frequency.DAY,
    mode=ModeRequirement.PHONE_OR_BETTER,
    categories_all=frozenset({"impaired", "living_alone"}),
)  # fmt: skip
ALONE_IMPAIRED = frozenset({"impaired", "living_alone"})


def heat_policy() -> VisitPolicy:
    return replace(default_policy(), surges=(HEAT_WAVE,))


def test_heat_wave_daily_phone_visit_for_impaired_elders_living_alone_in_fangshan() -> None:
    target = elder(area_codes=FANGSHAN_AREAS, categories=ALONE_IMPAIRED)
    got = obligations_of(target, heat_policy(), [], D(2026, 7, 12))
    assert kinds(got) == [("regular", "plan_weekly"), ("surge", "heat_fangshan_2026")]
    surge = got[1]
    assert (surge.period_start, surge.due_by, surge.frequency, surge.label) == (
        D(2026, 7, 12), D(2026, 7, 12), Frequency.DAY, "高温 heat wave",
    )  # fmt: skip
    status = status_of(target, heat_policy(), [], D(2026, 7, 12))
    assert status.next_due_on == D(2026, 7, 12)


@pytest.mark.parametrize(
    ("changes", "on"),
    [
        ({"area_codes": FANGSHAN_AREAS, "categories": frozenset({"impaired"})}, D(2026, 7, 12)),
        ({"area_codes": CHAOYANG_AREAS, "categories": ALONE_IMPAIRED}, D(2026, 7, 12)),
        ({"area_codes": FANGSHAN_AREAS, "categories": ALONE_IMPAIRED}, D(2026, 7, 9)),
        ({"area_codes": FANGSHAN_AREAS, "categories": ALONE_IMPAIRED}, D(2026, 7, 15)),
    ],
)
def test_heat_wave_spares_other_elders_areas_and_days(
    changes: dict[str, object], on: dt.date
) -> None:
    got = obligations_of(elder(**changes), heat_policy(), [], on)
    assert [o.kind for o in got] == ["regular"]


def test_heat_wave_visit_today_moves_the_next_due_day_to_tomorrow_until_the_wave_ends() -> None:
    target = elder(area_codes=FANGSHAN_AREAS, categories=ALONE_IMPAIRED)
    called = [visit(D(2026, 7, 13)), visit(D(2026, 7, 14))]
    mid = status_of(target, heat_policy(), called[:1], D(2026, 7, 13))
    assert mid.next_due_on == D(2026, 7, 14)
    # On the last day of the wave the weekly visit (week of 13–19 July) is satisfied too.
    last = status_of(target, heat_policy(), called, D(2026, 7, 14))
    assert last.next_due_on == D(2026, 7, 20)
    # Remote monitoring is not a phone visit, even where the counting policy lists it.
    monitoring = replace(
        heat_policy(),
        counting=(
            CountingPolicy(
                effective_from=D(2024, 1, 1), modes=frozenset({"phone", "remote_monitoring"})
            ),
        ),
    )
    watched = obligations_of(
        target, monitoring, [visit(D(2026, 7, 13), "remote_monitoring")], D(2026, 7, 13)
    )
    assert [o.satisfied for o in watched] == [True, False]


# --- holidays ---------------------------------------------------------------------------


SPRING = HolidaySurge(
    code="spring_festival", holidays=frozenset({"Spring Festival"}),
    mode=ModeRequirement.IN_HOME, days_before=7,
)  # fmt: skip


def test_spring_festival_2026_window_from_a_week_before_to_the_last_holiday_day() -> None:
    policy = replace(default_policy(), holiday_surges=(SPRING,))
    # chinese-calendar: Spring Festival 2026 is 15–23 February; the window opens 8 February.
    for on, expected in (
        (D(2026, 2, 7), False),
        (D(2026, 2, 8), True),
        (D(2026, 2, 23), True),
        (D(2026, 2, 24), False),
    ):
        got = obligations_of(elder(), policy, [], on)
        assert (("holiday", "spring_festival") in kinds(got)) is expected
    [_, holiday] = obligations_of(
        elder(), policy, [visit(D(2026, 2, 10), "in_home")], D(2026, 2, 16)
    )
    assert (holiday.period_start, holiday.due_by, holiday.label, holiday.satisfied) == (
        D(2026, 2, 8), D(2026, 2, 23), "Spring Festival", True,
    )  # fmt: skip


def test_an_open_holiday_window_brings_the_next_due_day_forward_until_satisfied() -> None:
    # Spring Festival 2025 (28 January – 4 February) under the monthly rule.
    policy = replace(default_policy(), holiday_surges=(SPRING,))
    on = D(2025, 2, 2)
    phoned = [visit(D(2025, 2, 1))]  # satisfies February, not the in-home holiday visit
    status = status_of(elder(), policy, phoned, on)
    assert status.satisfied and status.next_due_on == D(2025, 2, 4)
    seen = [visit(D(2025, 2, 1), "in_home")]
    status = status_of(elder(), policy, seen, on)
    assert status.next_due_on == D(2025, 3, 1)  # a satisfied window adds nothing


def test_years_without_holiday_data_give_no_windows_and_are_reported() -> None:
    policy = replace(default_policy(), holiday_surges=(SPRING,))
    assert CALENDAR.unknown_years(D(2026, 1, 1), D(2027, 12, 31)) == (2027,)
    assert CALENDAR.windows(2027) == ()
    got = obligations_of(elder(), policy, [], D(2027, 2, 8))
    assert [o.kind for o in got] == ["regular"]


def test_holiday_windows_follow_the_packages_arrangements() -> None:
    windows_2025 = {(w.name, w.first, w.last) for w in CALENDAR.windows(2025)}
    # The 2025 National Day break holds Mid-autumn Festival on 6 October.
    assert ("National Day", D(2025, 10, 1), D(2025, 10, 8)) in windows_2025
    assert ("Mid-autumn Festival", D(2025, 10, 6), D(2025, 10, 6)) in windows_2025
    # New Year's Day 2024 began on 30 December 2023: one window, in the year it starts.
    assert ("New Year's Day", D(2023, 12, 30), D(2024, 1, 1)) in {
        (w.name, w.first, w.last) for w in CALENDAR.windows(2023)
    }
    assert "New Year's Day" not in {w.name for w in CALENDAR.windows(2024) if w.first.month == 1}
    assert CALENDAR.holidays(D(2026, 2, 20), D(2026, 2, 28)) == {
        "Spring Festival": [D(2026, 2, 20), D(2026, 2, 21), D(2026, 2, 22), D(2026, 2, 23)]
    }


def test_unknown_holiday_names_are_refused() -> None:
    bad = replace(
        default_policy(),
        holiday_surges=(HolidaySurge(code="x", holidays=frozenset({"Spring festival"})),),
    )
    with pytest.raises(ValueError, match="unknown holidays"):
        status_of(elder(), bad, [], D(2026, 2, 1))


# --- station contracts ------------------------------------------------------------------


def test_station_contract_keeps_the_obligation_but_schedules_nothing() -> None:
    contracted = elder(station_contracts=((D(2025, 6, 1), None),))
    policy = replace(default_policy(), holiday_surges=(SPRING,))
    got = obligations_of(contracted, policy, [], D(2026, 2, 17))
    assert [(o.kind, o.scheduled) for o in got] == [("regular", False), ("holiday", False)]
    status = status_of(contracted, policy, [], D(2026, 2, 17))
    assert status.station and status.next_due_on is None
    # The station's own in-home visit satisfies both obligations.
    station_visit = [visit(D(2026, 2, 16), "in_home", station=True)]
    got = obligations_of(contracted, policy, station_visit, D(2026, 2, 17))
    assert all(o.satisfied for o in got)


def test_a_station_that_does_not_visit_leaves_the_elder_overdue_for_supervisors() -> None:
    contracted = elder(station_contracts=((D(2025, 6, 1), D(2026, 12, 31)),))
    status = status_of(contracted, default_policy(), [visit(D(2026, 2, 25))], D(2026, 3, 11))
    assert status.station and status.next_due_on is None and status.overdue_since == D(2026, 3, 9)


def test_after_the_contract_ends_the_visit_is_scheduled_again() -> None:
    ended = elder(station_contracts=((D(2025, 6, 1), D(2026, 3, 1)),))
    [regular] = obligations_of(ended, default_policy(), [], D(2026, 3, 2))
    assert regular.scheduled
    status = status_of(ended, default_policy(), [], D(2026, 3, 2))
    assert not status.station and status.next_due_on == D(2026, 3, 8)


# --- refusals and exclusions ------------------------------------------------------------


def test_a_refusal_is_not_due_and_is_reconfirmed_after_a_year() -> None:
    declined = elder(willing=False, willingness_recorded_on=D(2025, 3, 1))
    policy = default_policy()
    assert obligations_of(declined, policy, [], D(2026, 2, 28)) == []
    status = status_of(declined, policy, [], D(2026, 2, 28))
    assert (status.excluded, status.frequency, status.next_due_on, status.overdue_since) == (
        "declined", None, D(2026, 3, 1), None,
    )  # fmt: skip
    [reconfirm] = obligations_of(declined, policy, [], D(2026, 3, 1))
    assert (reconfirm.kind, reconfirm.due_by, reconfirm.scheduled, reconfirm.satisfied) == (
        "reconfirm", D(2026, 3, 1), True, False,
    )  # fmt: skip
    late = status_of(declined, policy, [visit(D(2026, 3, 5))], D(2026, 3, 10))
    assert late.overdue_since == D(2026, 3, 2)
    # Recording the refusal again starts a new year.
    renewed = replace(declined, willingness_recorded_on=D(2026, 3, 9))
    assert obligations_of(renewed, policy, [], D(2026, 3, 10)) == []


@pytest.mark.parametrize("life_status", ["deceased", "moved_away", "in_institution", "in_hospital"])
def test_elders_gone_from_home_are_not_due(life_status: str) -> None:
    gone = elder(life_status=life_status, willing=False, willingness_recorded_on=D(2020, 1, 1))
    assert obligations_of(gone, heat_policy(), [], D(2026, 7, 12)) == []
    status = status_of(gone, heat_policy(), [visit(D(2026, 7, 1))], D(2026, 7, 12))
    assert (status.excluded, status.next_due_on, status.overdue_since) == (life_status, None, None)
    assert status.last_counted_at == visit(D(2026, 7, 1)).at


# --- counting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "outcome", "counts"),
    [
        ("phone", "met", True),
        ("in_home", "in_hospital", True),
        ("combined", "met", True),
        ("in_home", "not_home", False),
        ("phone", "refused", False),
        ("in_home", "deceased", False),
        ("remote_monitoring", "met", False),
    ],
)
def test_default_counting(mode: str, outcome: str, counts: bool) -> None:
    v = visit(D(2026, 3, 10), mode, outcome)
    assert counts_for_rates(v, default_policy()) is counts
    status = status_of(elder(), default_policy(), [v], D(2026, 3, 11))
    assert status.satisfied is counts
    assert (status.last_counted_at is not None) is counts


def test_remote_monitoring_counts_only_from_when_the_counting_policy_lists_it() -> None:
    policy = replace(
        default_policy(),
        counting=(
            CountingPolicy(effective_from=D(2024, 1, 1)),
            CountingPolicy(
                effective_from=D(2026, 3, 1),
                modes=frozenset({"phone", "online", "in_home", "combined", "remote_monitoring"}),
            ),
        ),
    )
    assert not counts_for_rates(visit(D(2026, 2, 28), "remote_monitoring"), policy)
    assert counts_for_rates(visit(D(2026, 3, 1), "remote_monitoring"), policy)
    status = status_of(
        elder(), policy, [visit(D(2026, 3, 10), "remote_monitoring")], D(2026, 3, 11)
    )
    assert status.satisfied
    # Visits before the first counting policy do not count at all.
    assert not counts_for_rates(visit(D(2023, 12, 31)), policy)


# --- weeks and days in Asia/Shanghai ----------------------------------------------------


def test_iso_weeks_turn_at_shanghai_midnight() -> None:
    monday = PastVisit(
        at=dt.datetime(2026, 3, 8, 16, 30, tzinfo=dt.UTC),
        mode="phone",
        outcome="met",
        by_station=False,
    )
    sunday = replace(monday, at=dt.datetime(2026, 3, 8, 15, 59, tzinfo=dt.UTC))
    assert local_date(monday.at) == D(2026, 3, 9)
    assert period_of(local_date(monday.at), Frequency.WEEK) == (
        D(2026, 3, 9),
        D(2026, 3, 15),
        "2026-W11",
    )
    assert period_of(local_date(sunday.at), Frequency.WEEK)[2] == "2026-W10"
    in_w11 = status_of(elder(), default_policy(), [monday], D(2026, 3, 12))
    in_w10 = status_of(elder(), default_policy(), [sunday], D(2026, 3, 12))
    assert in_w11.satisfied and not in_w10.satisfied
    with pytest.raises(ValueError, match="naive"):
        local_date(dt.datetime(2026, 3, 8, 16, 30))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("day", "frequency", "expected"),
    [
        (D(2025, 12, 29), Frequency.WEEK, (D(2025, 12, 29), D(2026, 1, 4), "2026-W01")),
        (D(2027, 1, 1), Frequency.WEEK, (D(2026, 12, 28), D(2027, 1, 3), "2026-W53")),
        (D(2026, 2, 14), Frequency.MONTH, (D(2026, 2, 1), D(2026, 2, 28), "2026-02")),
        (D(2026, 12, 31), Frequency.QUARTER, (D(2026, 10, 1), D(2026, 12, 31), "2026-Q4")),
        (D(2026, 3, 5), Frequency.DAY, (D(2026, 3, 5), D(2026, 3, 5), "2026-03-05")),
    ],
)
def test_period_keys(day: dt.date, frequency: Frequency, expected: tuple) -> None:
    assert period_of(day, frequency) == expected
    assert period_from_key(expected[2]) == (expected[0], expected[1], frequency)


@pytest.mark.parametrize("key", ["2026-W54", "2025-W53", "2026-13", "2026-Q5", "2026-3", "W10"])
def test_bad_period_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        period_from_key(key)


# --- rates ------------------------------------------------------------------------------


def test_rate_membership_for_a_past_and_the_current_week() -> None:
    policy = default_policy()
    visits = [visit(D(2026, 3, 3)), visit(D(2026, 3, 10), "in_home", "not_home")]
    past = rate_status(
        elder=elder(), policy=policy, visits=visits, period_key="2026-W10", on=D(2026, 3, 11)
    )
    current = rate_status(
        elder=elder(), policy=policy, visits=visits, period_key="2026-W11", on=D(2026, 3, 11)
    )
    assert (past.due, past.visited) == (True, True)
    assert (current.due, current.visited) == (True, False)  # not home does not count
    future = rate_status(
        elder=elder(), policy=policy, visits=visits, period_key="2026-W12", on=D(2026, 3, 11)
    )
    assert not future.due
    month = rate_status(
        elder=elder(), policy=policy, visits=visits, period_key="2026-03", on=D(2026, 3, 11)
    )
    assert (month.period_key, month.due, month.visited) == ("2026-03", True, True)


def test_rate_denominator_excludes_and_includes_the_right_elders() -> None:
    policy = default_policy()
    on = D(2026, 3, 11)
    gone = rate_status(
        elder=elder(life_status="deceased"),
        policy=policy,
        visits=[visit(D(2026, 3, 3))],
        period_key="2026-W10",
        on=on,
    )
    assert (gone.due, gone.visited, gone.excluded) == (False, False, "deceased")
    station = elder(station_contracts=((D(2025, 1, 1), None),))
    counted = rate_status(
        elder=station,
        policy=policy,
        visits=[visit(D(2026, 3, 3), station=True)],
        period_key="2026-W10",
        on=on,
    )
    assert (counted.due, counted.visited) == (True, True)
    # Before the first rule there is no obligation, so no one is due.
    early = rate_status(elder=elder(), policy=policy, visits=[], period_key="2023-12", on=on)
    assert not early.due


def test_policy_rows_with_plain_strings_are_normalised() -> None:
    rule = PolicyRule(
        code="r", effective_from=D(2026, 1, 1), effective_to=None,
        frequency="day", mode="in_home", categories={"impaired"},  # type: ignore[arg-type]
    )  # fmt: skip
    assert rule.frequency is Frequency.DAY and rule.mode is ModeRequirement.IN_HOME
    assert isinstance(rule.categories, frozenset)
    with pytest.raises(ValueError):
        PolicyRule(
            code="r",
            effective_from=D(2026, 1, 1),
            effective_to=D(2025, 1, 1),
            frequency=Frequency.DAY,
        )
    with pytest.raises(ValueError):
        VisitPolicy(rules=(rule, rule))
