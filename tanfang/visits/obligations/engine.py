"""What visits an elder owes on a day, and her due status: the pure obligation engine.

``obligations_for`` lists the obligations open on a day; ``due_status`` condenses them into
the few values stored on the elder's row (next due day, overdue since) and is the hot path:
a million elders per recomputation, so it builds no ``Obligation`` objects and reads the
visits once. docs/visit-obligations.md defines every value; in short:

1. Excluded (deceased, moved away, in an institution, in hospital, declined) → no
   obligation, except that a refusal must be re-confirmed once it is
   ``reconfirm_willingness_days`` old.
2. The winning regular rule on the day gives the current period; the period is satisfied
   when a counting visit dated in it meets the rule's mode requirement.
3. Surges active on the day and holiday windows open on it add obligations of their own.
4. Under a station contract nothing is scheduled (the station visits), but the obligations
   exist, station visits satisfy them, and missing them still makes the elder overdue.
5. Overdue: the current regular period is unsatisfied and so is the one before it; the elder
   is overdue since the day after the earliest of the consecutive unsatisfied periods (at
   most ``LOOKBACK_PERIODS`` back, none beginning before ``elder.due_from``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from tanfang.visits.obligations.holiday_calendar import Calendar
from tanfang.visits.obligations.periods import ONE_DAY, SHANGHAI, period_of
from tanfang.visits.obligations.policy import (
    CompiledPolicy,
    compile_policy,
    surge_matches,
)
from tanfang.visits.obligations.types import (
    MODE_RANK,
    REQUIREMENT_RANK,
    DueStatus,
    ElderFacts,
    Frequency,
    ModeRequirement,
    Obligation,
    PastVisit,
    PolicyRule,
    Surge,
    VisitPolicy,
)

LOOKBACK_PERIODS = 8
_UTC = dt.UTC
_EIGHT_HOURS = dt.timedelta(hours=8)
_FIXED_OFFSET_SINCE = dt.datetime(1992, 1, 1, tzinfo=dt.UTC)
_LIFE_EXCLUSIONS = {
    "deceased": "deceased",
    "moved_away": "moved_away",
    "in_institution": "in_institution",
    "in_hospital": "in_hospital",
}
# A re-confirmation asks the elder; a phone call is enough.
RECONFIRM_MODE = ModeRequirement.PHONE_OR_BETTER

Counted = list[tuple[dt.date, int]]  # (local date, mode rank) of counting visits, newest first


def exclusion_of(elder: ElderFacts) -> str:
    """Why ``elder`` has no regular obligation ("" when she has one).

    Life status first (deceased, moved away, in an institution, in hospital), then a refusal.
    An unknown life status is treated as active: visiting too much is the safe mistake.
    """
    excluded = _LIFE_EXCLUSIONS.get(elder.life_status)
    if excluded is not None:
        return excluded
    return "declined" if elder.willing is False else ""


def under_station_contract(elder: ElderFacts, day: dt.date) -> bool:
    """Whether a station or home-care-bed contract covers ``day``."""
    for start, end in elder.station_contracts:
        if start <= day and (end is None or day <= end):
            return True
    return False


def reconfirm_due_on(compiled: CompiledPolicy, elder: ElderFacts, on: dt.date) -> dt.date:
    """When a declined elder's refusal must be re-confirmed (today if never dated)."""
    recorded = elder.willingness_recorded_on
    return on if recorded is None else recorded + compiled.reconfirm_days


def prepare_visits(
    compiled: CompiledPolicy, visits: Iterable[PastVisit]
) -> tuple[Counted, dt.datetime | None]:
    """The counting visits as (local date, mode rank), newest first, and the latest one's time.

    The hot loop of a recomputation. Asia/Shanghai has kept UTC+08:00 without daylight saving
    since September 1991, so a UTC datetime after that is shifted by eight hours instead of
    going through zoneinfo (same answer, a fraction of the cost); anything else is converted.
    """
    counted: Counted = []
    last: dt.datetime | None = None
    last_from = compiled.last_counting_from
    last_modes = compiled.last_counting_modes
    last_outcomes = compiled.last_counting_outcomes
    for visit in visits:
        at = visit.at
        if at.tzinfo is _UTC and at >= _FIXED_OFFSET_SINCE:
            day = (at + _EIGHT_HOURS).date()
        elif at.tzinfo is None:
            raise ValueError(f"naive datetime {at.isoformat()}: visits need a timezone")
        else:
            day = at.astimezone(SHANGHAI).date()
        mode = visit.mode
        if day >= last_from:
            if mode not in last_modes or visit.outcome not in last_outcomes:
                continue
        elif not compiled.counts(mode, visit.outcome, day):
            continue
        counted.append((day, MODE_RANK.get(mode, 0)))
        if last is None or at > last:
            last = at
    if len(counted) > 1:
        counted.sort(reverse=True)
    return counted, last


def satisfied(counted: Counted, start: dt.date, end: dt.date, need: int) -> bool:
    """Whether a counting visit dated in [start, end] has a mode rank of at least ``need``."""
    for day, rank in counted:
        if day > end:
            continue
        if day < start:
            return False
        if rank >= need:
            return True
    return False


def surge_period(surge: Surge, on: dt.date) -> tuple[dt.date, dt.date]:
    """The surge's period containing ``on``, clipped to the surge's days."""
    start, end, _ = period_of(on, surge.frequency)
    return max(start, surge.starts_on), min(end, surge.ends_on)


def overdue_since(
    compiled: CompiledPolicy,
    elder: ElderFacts,
    counted: Counted,
    current_start: dt.date,
    on: dt.date,
    rule: PolicyRule,
    since: dt.date,
) -> dt.date | None:
    """Walk back over the regular periods before the current (unsatisfied) one.

    Steps: take the day before the current period; find the rule winning on it and its period;
    stop at a satisfied period, at a period beginning before ``due_from``, at a day without a
    rule, or after ``LOOKBACK_PERIODS`` periods; otherwise note the period as missed (when it
    ended before ``on`` — a period cut short by a rule change is not) and step back again.
    The answer is the day after the end of the earliest missed period.

    ``rule`` wins on ``on``; ``since`` begins the stretch of days with the same effective
    rules as ``on`` (``RuleIndex.since``). While the walk stays in that stretch the winner
    cannot change, so the periods are those of one rule and "satisfied" reduces to "the
    latest qualifying visit before the current period falls in it": no rule lookups, one
    pass over the visits. Before that stretch, each day is asked.
    """
    cursor = current_start - ONE_DAY
    missed_end: dt.date | None = None
    due_from = elder.due_from
    need = REQUIREMENT_RANK[rule.mode]
    latest = None
    for day, rank in counted:
        if day < current_start and rank >= need:
            latest = day
            break
    frequency = rule.frequency
    steps = 0
    while steps < LOOKBACK_PERIODS and cursor >= since:
        start, end, _ = period_of(cursor, frequency)
        if (due_from is not None and start < due_from) or (latest is not None and latest >= start):
            return None if missed_end is None else missed_end + ONE_DAY
        missed_end = end
        cursor = start - ONE_DAY
        steps += 1
    while steps < LOOKBACK_PERIODS:
        past_rule = compiled.rules_on(cursor).winner(elder)
        if past_rule is None:
            break
        start, end, _ = period_of(cursor, past_rule.frequency)
        if due_from is not None and start < due_from:
            break
        if satisfied(counted, start, end, REQUIREMENT_RANK[past_rule.mode]):
            break
        if end < on and (missed_end is None or end < missed_end):
            missed_end = end
        cursor = start - ONE_DAY
        steps += 1
    return None if missed_end is None else missed_end + ONE_DAY


def _earlier(a: dt.date | None, b: dt.date | None) -> dt.date | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a <= b else b


def obligations_for(
    *,
    elder: ElderFacts,
    policy: VisitPolicy | CompiledPolicy,
    calendar: Calendar,
    visits: Iterable[PastVisit],
    on: dt.date,
) -> list[Obligation]:
    """The obligations open on ``on``: regular, surges, holiday windows, re-confirmation.

    An excluded elder has none, except the re-confirmation of a refusal once it falls due.
    """
    compiled = compile_policy(policy)
    excluded = exclusion_of(elder)
    if excluded:
        if excluded != "declined":
            return []
        due = reconfirm_due_on(compiled, elder, on)
        if due > on:
            return []
        return [
            Obligation(
                elder.elder_id, "reconfirm", "reconfirm_willingness", due, due, due,
                RECONFIRM_MODE, None, False, True,
            )
        ]  # fmt: skip
    counted, _ = prepare_visits(compiled, visits)
    scheduled = not under_station_contract(elder, on)
    out: list[Obligation] = []
    rule = compiled.rules_on(on).winner(elder)
    if rule is not None:
        start, end, _ = period_of(on, rule.frequency)
        done = satisfied(counted, start, end, REQUIREMENT_RANK[rule.mode])
        out.append(
            Obligation(
                elder.elder_id, "regular", rule.code, start, end, end, rule.mode,
                rule.frequency, done, scheduled,
            )
        )  # fmt: skip
    surges, holidays = compiled.extras_on(on, calendar)
    for surge in surges.for_elder(elder):
        if surge_matches(surge, elder):
            start, end = surge_period(surge, on)
            done = satisfied(counted, start, end, REQUIREMENT_RANK[surge.mode])
            out.append(
                Obligation(
                    elder.elder_id, "surge", surge.code, start, end, end, surge.mode,
                    surge.frequency, done, scheduled, surge.reason,
                )
            )  # fmt: skip
    for active in holidays.for_elder(elder):
        holiday_surge = active.surge
        if surge_matches(holiday_surge, elder):
            done = satisfied(
                counted, active.start, active.end, REQUIREMENT_RANK[holiday_surge.mode]
            )
            out.append(
                Obligation(
                    elder.elder_id, "holiday", holiday_surge.code, active.start, active.end,
                    active.end, holiday_surge.mode, None, done, scheduled, active.name,
                )
            )  # fmt: skip
    return out


def due_status(
    *,
    elder: ElderFacts,
    policy: VisitPolicy | CompiledPolicy,
    calendar: Calendar,
    visits: Iterable[PastVisit],
    on: dt.date,
) -> DueStatus:
    """The elder's due status on ``on``; the same answer as condensing ``obligations_for``.

    ``next_due_on`` is the earliest, over scheduled obligations open on ``on``, of: its
    ``due_by`` when unsatisfied; the start of its next period when satisfied and recurring
    (regular, or a surge that goes on); nothing for a satisfied holiday window. A declined
    elder's is the re-confirmation day. ``overdue_since``: see ``overdue_since``.
    """
    compiled = compile_policy(policy)
    counted, last = prepare_visits(compiled, visits)
    station = bool(elder.station_contracts) and under_station_contract(elder, on)
    if elder.life_status != "active" or elder.willing is False:
        excluded = exclusion_of(elder)
        if excluded and excluded != "declined":
            return DueStatus(excluded, None, "", None, None, last, station)
        if excluded:
            due = reconfirm_due_on(compiled, elder, on)
            late = due + ONE_DAY if due < on else None
            return DueStatus(excluded, None, "", due, late, last, station, reconfirm_due_on=due)

    next_due: dt.date | None = None
    late_since: dt.date | None = None
    frequency: Frequency | None = None
    mode: ModeRequirement | None = None
    key = ""
    code = ""
    current_done = False
    index = compiled.rules_on(on)
    rule = index.winner(elder)
    if rule is not None:
        frequency, mode, code = rule.frequency, rule.mode, rule.code
        start, end, key = period_of(on, frequency)
        current_done = satisfied(counted, start, end, REQUIREMENT_RANK[mode])
        if not station:
            next_due = end + ONE_DAY if current_done else end
        if not current_done:
            late_since = overdue_since(compiled, elder, counted, start, on, rule, index.since)

    if not station:
        surges, holidays = compiled.extras_on(on, calendar)
        if surges.everywhere or surges.by_area:
            for surge in surges.for_elder(elder):
                if surge_matches(surge, elder):
                    start, end = surge_period(surge, on)
                    if not satisfied(counted, start, end, REQUIREMENT_RANK[surge.mode]):
                        next_due = _earlier(next_due, end)
                    elif end < surge.ends_on:
                        next_due = _earlier(next_due, end + ONE_DAY)
        if holidays.everywhere or holidays.by_area:
            for active in holidays.for_elder(elder):
                holiday_surge = active.surge
                if surge_matches(holiday_surge, elder) and not satisfied(
                    counted, active.start, active.end, REQUIREMENT_RANK[holiday_surge.mode]
                ):
                    next_due = _earlier(next_due, active.end)

    return DueStatus(
        "", frequency, key, next_due, late_since, last, station, mode, code, current_done
    )
