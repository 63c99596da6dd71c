"""Properties of the visit-obligation engine over random policies, calendars and histories.

Random calendars stand in for chinese-calendar (a holiday-detail function of the same shape,
with some years unknown); random policies mix dated rules with selectors and priorities,
surges, holiday surges and counting policies. Checked: the satisfied flag is exactly "a
counting visit in the period meets the mode"; adding a counting visit never makes an elder
more overdue; results do not depend on the order of the visits or of the rules; an excluded
elder owes nothing but a re-confirmation; ``next_due_on`` is never before ``on`` unless the
elder is overdue; ``due_status`` condenses ``obligations_for`` exactly (these four share one
test, so they share the generated examples); a more frequent rule
never makes an elder less overdue; rate membership follows its definition.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    due_status,
    local_date,
    obligations_for,
    period_from_key,
    period_of,
    rate_status,
)
from tanfang.visits.obligations.types import MODE_RANK, REQUIREMENT_RANK

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FIRST, LAST = dt.date(2025, 6, 1), dt.date(2027, 3, 31)
SPAN = (LAST - FIRST).days
AREAS = ("110000", "110111", "110105", "110111001", "110105002")
CATEGORIES = ("living_alone", "empty_nest", "impaired", "fp_special_family", "advanced_age")
RISKS = ("high", "priority", "general", "")
HOLIDAYS = ("Spring Festival", "Mid-autumn Festival", "National Day", "Labour Day")
MODES = ("phone", "online", "in_home", "remote_monitoring", "combined")
OUTCOMES = ("met", "not_home", "refused", "in_hospital", "deceased")
FREQUENCIES = tuple(Frequency)
REQUIREMENTS = tuple(ModeRequirement)

days = st.integers(0, SPAN).map(lambda n: FIRST + dt.timedelta(days=n))
Scenario = tuple[ElderFacts, VisitPolicy, Calendar, list[PastVisit], dt.date]


# --- strategies -------------------------------------------------------------------------
# Everything is drawn relative to the day asked about (``on``), so that rules, surges, holiday
# windows and visits actually meet it. The strategies are built once, at import: building one
# per draw makes hypothesis validate it every time.

frequencies = st.sampled_from(FREQUENCIES)
requirements = st.sampled_from(REQUIREMENTS)
category_sets = st.frozensets(st.sampled_from(CATEGORIES), max_size=2)
risk_sets = st.frozensets(st.sampled_from(RISKS[:3]), max_size=2)
# Surges mostly apply to everyone, so that they meet the drawn elder often enough.
surge_categories = st.sampled_from(
    (frozenset(), frozenset(), frozenset({"impaired"}), frozenset({"advanced_age"}))
)
surge_risks = st.sampled_from((frozenset(), frozenset(), frozenset({"high", "priority"})))
rule_areas = st.sampled_from(("", "", *AREAS))
surge_areas = st.sampled_from(("", *AREAS))
holiday_names = st.sampled_from(HOLIDAYS)
small = st.integers(0, 3)
maybe_length = st.none() | st.integers(0, 900)
mode_sets = st.frozensets(st.sampled_from(MODES), min_size=1)
outcome_sets = st.frozensets(st.sampled_from(OUTCOMES), min_size=1)
visit_parts = st.tuples(
    st.integers(-14, 3) | st.integers(-120, 3),  # days from ``on``
    st.integers(0, 24 * 60 - 1),  # minute of the Shanghai day
    st.sampled_from((dt.UTC, SHANGHAI)),  # the zone the datetime is expressed in
    st.sampled_from(MODES),
    st.sampled_from(("met", "met", *OUTCOMES)),
    st.booleans(),
)
visit_lists = st.lists(visit_parts, max_size=8)
elder_categories = st.frozensets(st.sampled_from(CATEGORIES[:4]), max_size=3)
elder_areas = st.sampled_from((AREAS[:2] + AREAS[3:4], AREAS[0:1] + AREAS[2:3]))
life_statuses = st.sampled_from(("active",) * 9 + ("deceased", "moved_away", "in_hospital"))
willingness = st.sampled_from((True, True, True, None, False))


def shift(day: dt.date, days: int) -> dt.date:
    return day + dt.timedelta(days=days)


def make_visit(on: dt.date, parts: tuple) -> PastVisit:
    offset, minute, zone, mode, outcome, by_station = parts
    day = shift(on, offset)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    at = (midnight + dt.timedelta(minutes=minute)).astimezone(zone)
    return PastVisit(at=at, mode=mode, outcome=outcome, by_station=by_station)


class FakeCalendar(Calendar):
    """A ``Calendar`` over a drawn holiday table that keeps the table for the assertions."""

    def __init__(self, named: dict[dt.date, str], known: set[int]) -> None:
        def detail(day: dt.date) -> tuple[bool, str | None]:
            if day.year not in known:
                raise NotImplementedError(f"no data for {day.year}")
            name = named.get(day)
            return name is not None, name

        super().__init__(detail)
        self.named = named
        self.known = known


def draw_calendar(draw: st.DrawFn, on: dt.date) -> FakeCalendar:
    """A fake chinese-calendar: named holiday runs near ``on`` and elsewhere; maybe a year
    without data (it raises NotImplementedError, as the package does)."""
    known = {2025, 2026, 2027} - {draw(st.sampled_from((0, 0, 2026, 2027)))}
    named: dict[dt.date, str] = {}
    starts = [shift(on, draw(st.integers(-15, 10))) for _ in range(draw(small))]
    starts += [shift(FIRST, draw(st.integers(0, SPAN))) for _ in range(draw(small))]
    for start in starts:
        name = draw(holiday_names)
        for offset in range(draw(st.integers(1, 9))):
            if shift(start, offset).year in known:
                named[shift(start, offset)] = name
    return FakeCalendar(named, known)


def draw_rule(draw: st.DrawFn, on: dt.date, code: str, base: bool = False) -> PolicyRule:
    start = shift(on, -1000 if base else draw(st.integers(-800, 40)))
    length = None if base else draw(maybe_length)
    return PolicyRule(
        code=code,
        effective_from=start,
        effective_to=None if length is None else shift(start, length),
        frequency=draw(frequencies),
        mode=draw(requirements),
        categories=frozenset() if base else draw(category_sets),
        risk_levels=frozenset() if base else draw(risk_sets),
        area_code="" if base else draw(rule_areas),
        elder_id=None if base else draw(st.sampled_from((None, None, None, 1))),
        priority=0 if base else draw(st.integers(0, 2)),
    )


def draw_surge(draw: st.DrawFn, on: dt.date, code: str) -> Surge:
    start = shift(on, draw(st.integers(-25, 5)))
    return Surge(
        code=code,
        reason="weather",
        area_code=draw(surge_areas),
        starts_on=start,
        ends_on=shift(start, draw(st.integers(0, 20))),
        frequency=draw(frequencies),
        mode=draw(requirements),
        categories_all=draw(surge_categories),
        risk_levels=draw(surge_risks),
    )


def draw_holiday_surge(draw: st.DrawFn, code: str) -> HolidaySurge:
    return HolidaySurge(
        code=code,
        holidays=draw(st.frozensets(holiday_names, min_size=1, max_size=2)),
        mode=draw(requirements),
        categories_all=draw(surge_categories),
        days_before=draw(st.integers(0, 10)),
        area_code=draw(rule_areas),
        risk_levels=draw(surge_risks),
    )


def draw_counting(draw: st.DrawFn, on: dt.date) -> tuple[CountingPolicy, ...]:
    if draw(st.booleans()):
        return (CountingPolicy(effective_from=shift(on, -1000)),)
    first = CountingPolicy(
        shift(on, draw(st.integers(-900, -101))), draw(mode_sets), draw(outcome_sets)
    )
    if draw(st.booleans()):
        return (first,)
    later = CountingPolicy(
        shift(on, draw(st.integers(-100, 3))), draw(mode_sets), draw(outcome_sets)
    )
    return (first, later)


def draw_policy(draw: st.DrawFn, on: dt.date) -> VisitPolicy:
    rules = [draw_rule(draw, on, "base", base=True)] if draw(st.integers(0, 3)) else []
    rules += [draw_rule(draw, on, f"r{i}") for i in range(draw(small))]
    return VisitPolicy(
        rules=tuple(rules),
        surges=tuple(draw_surge(draw, on, f"s{i}") for i in range(draw(st.integers(0, 2)))),
        holiday_surges=tuple(
            draw_holiday_surge(draw, f"h{i}") for i in range(draw(st.integers(0, 2)))
        ),
        counting=draw_counting(draw, on),
        reconfirm_willingness_days=draw(st.sampled_from((30, 365))),
    )


def draw_elder(draw: st.DrawFn, on: dt.date, active: bool) -> ElderFacts:
    contracts: tuple[tuple[dt.date, dt.date | None], ...] = ()
    if not active and draw(st.integers(0, 3)) == 0:
        start = shift(on, draw(st.integers(-300, 30)))
        length = draw(st.none() | st.integers(0, 300))
        contracts = ((start, None if length is None else shift(start, length)),)
    recorded = draw(st.none() | st.integers(-800, 0))
    due_from = draw(st.none() | st.none() | st.integers(-200, 10))
    return ElderFacts(
        elder_id=draw(st.sampled_from((1, 2))),
        area_codes=draw(elder_areas),
        categories=draw(elder_categories),
        risk_level=draw(st.sampled_from(RISKS)),
        life_status="active" if active else draw(life_statuses),
        willing=True if active else draw(willingness),
        willingness_recorded_on=None if recorded is None else shift(on, recorded),
        station_contracts=contracts,
        advanced_age=draw(st.booleans()),
        due_from=None if due_from is None else shift(on, due_from),
    )


@st.composite
def scenario_st(draw: st.DrawFn, active: bool) -> Scenario:
    on = draw(days)
    return (
        draw_elder(draw, on, active),
        draw_policy(draw, on),
        draw_calendar(draw, on),
        [make_visit(on, parts) for parts in draw(visit_lists)],
        on,
    )


scenarios = scenario_st(active=False)
active_scenarios = scenario_st(active=True)


# --- helpers ----------------------------------------------------------------------------


def brute_satisfied(
    policy: VisitPolicy, visits: list[PastVisit], start: dt.date, end: dt.date, mode: str
) -> bool:
    return any(
        counts_for_rates(v, policy)
        and start <= local_date(v.at) <= end
        and MODE_RANK[v.mode] >= REQUIREMENT_RANK[mode]
        for v in visits
    )


def expected_next_due(policy: VisitPolicy, obligations: list[Obligation]) -> dt.date | None:
    """``next_due_on`` as documented, computed from the obligation list."""
    surge_ends = {s.code: s.ends_on for s in policy.surges}
    candidates: list[dt.date] = []
    for o in obligations:
        if not o.scheduled:
            continue
        if not o.satisfied:
            candidates.append(o.due_by)
        elif o.kind == "regular" or (o.kind == "surge" and o.period_end < surge_ends[o.code]):
            candidates.append(o.period_end + dt.timedelta(days=1))
    return min(candidates, default=None)


def regular_on(
    elder: ElderFacts,
    policy: VisitPolicy,
    calendar: Calendar,
    visits: list[PastVisit],
    day: dt.date,
) -> Obligation | None:
    found = obligations_for(elder=elder, policy=policy, calendar=calendar, visits=visits, on=day)
    return next((o for o in found if o.kind == "regular"), None)


def brute_overdue_since(
    elder: ElderFacts, policy: VisitPolicy, calendar: Calendar, visits: list[PastVisit], on: dt.date
) -> dt.date | None:
    """The documented definition, walked with ``obligations_for`` on earlier days."""
    current = regular_on(elder, policy, calendar, visits, on)
    if current is None or current.satisfied:
        return None
    missed: list[dt.date] = []
    cursor = shift(current.period_start, -1)
    for _ in range(8):
        past = regular_on(elder, policy, calendar, visits, cursor)
        if past is None or past.satisfied:
            break
        if elder.due_from is not None and past.period_start < elder.due_from:
            break
        if past.period_end < on:
            missed.append(past.period_end)
        cursor = shift(past.period_start, -1)
    return shift(min(missed), 1) if missed else None


def later_or_same(new: dt.date | None, old: dt.date | None) -> bool:
    """``new`` is no earlier than ``old``, with ``None`` meaning never."""
    return new is None or (old is not None and new >= old)


def evaluate(
    elder: ElderFacts, policy: VisitPolicy, calendar: Calendar, visits: list[PastVisit], on: dt.date
) -> tuple[list[Obligation], DueStatus]:
    return (
        obligations_for(elder=elder, policy=policy, calendar=calendar, visits=visits, on=on),
        due_status(elder=elder, policy=policy, calendar=calendar, visits=visits, on=on),
    )


# --- properties -------------------------------------------------------------------------


def check_satisfied_flags(
    policy: VisitPolicy, visits: list[PastVisit], on: dt.date, obligations: list[Obligation]
) -> None:
    """Each flag is exactly "a counting visit dated in the period meets the mode"."""
    for o in obligations:
        assert o.period_start <= o.period_end == o.due_by
        if o.kind == "reconfirm":
            assert not o.satisfied and o.due_by <= on
            continue
        assert o.period_start <= on <= o.period_end
        assert o.satisfied == brute_satisfied(policy, visits, o.period_start, o.period_end, o.mode)


def check_exclusions(elder: ElderFacts, obligations: list[Obligation], status: DueStatus) -> None:
    """Gone from home: nothing; declined: at most the re-confirmation; others never that."""
    if elder.life_status != "active":
        assert obligations == [] and status.excluded == elder.life_status
        assert status.next_due_on is None and status.overdue_since is None
    elif elder.willing is False:
        assert [o.kind for o in obligations] in ([], ["reconfirm"])
        assert status.excluded == "declined"
        assert status.next_due_on == status.reconfirm_due_on
    else:
        assert "reconfirm" not in [o.kind for o in obligations] and status.excluded == ""


def check_condensed(
    elder: ElderFacts,
    policy: VisitPolicy,
    calendar: Calendar,
    visits: list[PastVisit],
    on: dt.date,
    obligations: list[Obligation],
    status: DueStatus,
) -> None:
    """``due_status`` agrees with ``obligations_for`` and the documented definitions."""
    counting = [v.at for v in visits if counts_for_rates(v, policy)]
    assert status.last_counted_at == max(counting, default=None)
    if status.next_due_on is not None and status.next_due_on < on:
        assert status.overdue_since is not None
    if status.overdue_since is not None:
        assert status.overdue_since <= on
    if status.excluded:
        assert status.frequency is None and status.period_key == ""
        return
    regular = [o for o in obligations if o.kind == "regular"]
    assert len(regular) <= 1
    if regular:
        assert (status.frequency, status.rule_code, status.satisfied) == (
            regular[0].frequency, regular[0].code, regular[0].satisfied,
        )  # fmt: skip
        assert status.period_key == period_of(on, regular[0].frequency)[2]
        if status.satisfied:
            assert status.overdue_since is None
    else:
        assert status.frequency is None and status.overdue_since is None
    assert all(o.scheduled != status.station for o in obligations)
    assert status.next_due_on == expected_next_due(policy, obligations)
    assert status.overdue_since == brute_overdue_since(elder, policy, calendar, visits, on)


@PROPERTY_SETTINGS
@given(scenarios)
def test_obligations_and_due_status_keep_their_definitions(scenario: Scenario) -> None:
    elder, policy, calendar, visits, on = scenario
    obligations, status = evaluate(elder, policy, calendar, visits, on)
    check_satisfied_flags(policy, visits, on, obligations)
    check_exclusions(elder, obligations, status)
    check_condensed(elder, policy, calendar, visits, on, obligations, status)


@PROPERTY_SETTINGS
@given(scenarios, visit_parts)
def test_adding_a_counting_visit_never_makes_an_elder_more_overdue(
    scenario: Scenario, parts: tuple
) -> None:
    elder, policy, calendar, visits, on = scenario
    extra = make_visit(on, parts)
    before = due_status(elder=elder, policy=policy, calendar=calendar, visits=visits, on=on)
    after = due_status(
        elder=elder, policy=policy, calendar=calendar, visits=[*visits, extra], on=on
    )
    if not counts_for_rates(extra, policy):
        assert after == before
        return
    assert later_or_same(after.overdue_since, before.overdue_since)
    assert later_or_same(after.next_due_on, before.next_due_on)
    assert after.satisfied or not before.satisfied


@PROPERTY_SETTINGS
@given(scenarios, st.randoms(use_true_random=False))
def test_results_do_not_depend_on_the_order_of_visits_or_rules(
    scenario: Scenario, rnd: random.Random
) -> None:
    elder, policy, calendar, visits, on = scenario
    shuffled_visits = list(visits)
    rnd.shuffle(shuffled_visits)
    shuffled_policy = replace(
        policy,
        rules=tuple(reversed(policy.rules)),
        surges=tuple(reversed(policy.surges)),
        holiday_surges=tuple(reversed(policy.holiday_surges)),
        counting=tuple(reversed(policy.counting)),
    )
    assert evaluate(elder, policy, calendar, visits, on) == evaluate(
        elder, shuffled_policy, calendar, shuffled_visits, on
    )


FINER_COARSER = [
    (Frequency.DAY, Frequency.WEEK),
    (Frequency.DAY, Frequency.MONTH),
    (Frequency.DAY, Frequency.QUARTER),
    (Frequency.WEEK, Frequency.MONTH),
    (Frequency.WEEK, Frequency.QUARTER),
    (Frequency.MONTH, Frequency.QUARTER),
]
# Pairs whose finer periods always lie inside a coarser one.
NESTED = {(Frequency.DAY, f) for f in FREQUENCIES} | {(Frequency.MONTH, Frequency.QUARTER)}


@PROPERTY_SETTINGS
@given(active_scenarios, st.sampled_from(FINER_COARSER), requirements)
def test_a_more_frequent_rule_never_makes_an_elder_less_overdue(
    scenario: Scenario, pair: tuple[Frequency, Frequency], mode: ModeRequirement
) -> None:
    """Same visits (none after ``on``), one rule for everyone, two frequencies."""
    elder, policy, calendar, visits, on = scenario
    finer, coarser = pair
    past = [v for v in visits if local_date(v.at) <= on]

    def status_under(frequency: Frequency) -> DueStatus:
        rule = PolicyRule(
            code="only", effective_from=dt.date(2020, 1, 1), effective_to=None,
            frequency=frequency, mode=mode,
        )  # fmt: skip
        single = VisitPolicy(rules=(rule,), counting=policy.counting)
        return due_status(elder=elder, policy=single, calendar=calendar, visits=past, on=on)

    fine, coarse = status_under(finer), status_under(coarser)
    if coarse.overdue_since is not None:
        assert fine.overdue_since is not None
    if (finer, coarser) in NESTED:
        assert fine.next_due_on is not None and coarse.next_due_on is not None
        assert fine.next_due_on <= coarse.next_due_on
        assert fine.satisfied <= coarse.satisfied


@PROPERTY_SETTINGS
@given(scenarios, st.sampled_from((Frequency.WEEK, Frequency.MONTH)), st.integers(-70, 10))
def test_rate_membership_follows_its_definition(
    scenario: Scenario, frequency: Frequency, offset: int
) -> None:
    elder, policy, calendar, visits, on = scenario
    start, end, key = period_of(shift(on, offset), frequency)
    got = rate_status(elder=elder, policy=policy, visits=visits, period_key=key, on=on)
    reference = None if on < start else min(end, on)
    if elder.life_status != "active":
        excluded = elder.life_status
    else:
        excluded = "declined" if elder.willing is False else ""
    due = (
        reference is not None
        and not excluded
        and due_status(
            elder=elder, policy=policy, calendar=calendar, visits=[], on=reference
        ).frequency
        is not None
    )
    assert got.due == due
    assert got.visited == (due and brute_satisfied(policy, visits, start, end, "any"))
    assert got.excluded == ("" if reference is None else excluded)
    assert got.period_key == key


def brute_windows(calendar: FakeCalendar) -> list[tuple[str, dt.date, dt.date]]:
    """Holiday windows straight from the definition: per run of consecutive holiday days,
    each name's first and last day in it."""
    out: list[tuple[str, dt.date, dt.date]] = []
    run: list[dt.date] = []
    for day in [*sorted(calendar.named), None]:
        if day is not None and run and day == shift(run[-1], 1):
            run.append(day)
            continue
        for name in {calendar.named[d] for d in run}:
            named_days = [d for d in run if calendar.named[d] == name]
            out.append((name, named_days[0], named_days[-1]))
        run = [] if day is None else [day]
    return out


def brute_matches(surge: HolidaySurge, elder: ElderFacts) -> bool:
    has = elder.categories | ({"advanced_age"} if elder.advanced_age else set())
    return (
        (not surge.area_code or surge.area_code in elder.area_codes)
        and surge.categories_all <= has
        and (not surge.risk_levels or elder.risk_level in surge.risk_levels)
    )


@PROPERTY_SETTINGS
@given(active_scenarios)
def test_holiday_obligations_are_the_known_windows_around_the_day(scenario: Scenario) -> None:
    elder, policy, calendar, _, on = scenario
    assert isinstance(calendar, FakeCalendar)
    unknown = set(calendar.unknown_years(FIRST, LAST))
    assert unknown == {2025, 2026, 2027} - calendar.known
    for year in unknown:
        assert calendar.windows(year) == ()
    expected = {
        (surge.code, shift(first, -surge.days_before), last, name)
        for surge in policy.holiday_surges
        if brute_matches(surge, elder)
        for name, first, last in brute_windows(calendar)
        if name in surge.holidays and shift(first, -surge.days_before) <= on <= last
    }
    got = {
        (o.code, o.period_start, o.period_end, o.label)
        for o in obligations_for(elder=elder, policy=policy, calendar=calendar, visits=[], on=on)
        if o.kind == "holiday"
    }
    assert got == expected


@PROPERTY_SETTINGS
@given(days, st.sampled_from(FREQUENCIES))
def test_periods_tile_the_calendar(day: dt.date, frequency: Frequency) -> None:
    start, end, key = period_of(day, frequency)
    assert start <= day <= end
    assert period_of(start, frequency) == period_of(end, frequency) == (start, end, key)
    following = period_of(end + dt.timedelta(days=1), frequency)
    assert following[0] == end + dt.timedelta(days=1) and following[2] != key
    assert period_from_key(key) == (start, end, frequency)
