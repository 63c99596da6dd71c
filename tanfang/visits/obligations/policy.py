"""The visit policy compiled for fast evaluation, the plan's default policy, and counting.

A ``VisitPolicy`` is data (the lead stores it as rows). Evaluating it a million times a run
must not redo per-policy work per elder, so ``compile_policy`` builds a ``CompiledPolicy``
once per policy object and keeps it:

1. regular rules are ranked once per day asked about (priority, then frequency, then mode,
   then code) and indexed: rules for everyone, rules by area code, rules by elder id — so
   an elder only looks at the rules that can concern her;
2. surges active on a day, and holiday windows open on a day (per calendar), are indexed the
   same way;
3. counting policies are sorted by start date, so a visit finds its own in one comparison.

The per-day caches are bounded; a recomputation over one day touches a handful of days
(that day and the last days of the few earlier periods looked back at).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from tanfang.visits.obligations.holiday_calendar import HOLIDAY_NAMES, Calendar
from tanfang.visits.obligations.periods import local_date
from tanfang.visits.obligations.types import (
    ADVANCED_AGE,
    FREQUENCY_RANK,
    REQUIREMENT_RANK,
    CountingPolicy,
    ElderFacts,
    Frequency,
    HolidaySurge,
    PastVisit,
    PolicyRule,
    Surge,
    VisitPolicy,
)

# The plan's dates (京民养老发〔2024〕1号: monthly visits by the end of 2024, weekly by the
# end of 2025). Editable: the lead stores them as policy rows.
MONTHLY_FROM = dt.date(2024, 1, 1)
WEEKLY_FROM = dt.date(2026, 1, 1)
_CACHE_LIMIT = 4096
_ONE_DAY = dt.timedelta(days=1)
_POLICY_CACHE_LIMIT = 64


def default_policy() -> VisitPolicy:
    """The plan's floor for everyone: monthly until 2025-12-31, weekly from 2026-01-01.

    Visits count in the modes phone, online, in-home and combined with the outcomes met and
    in hospital; remote monitoring and "not home" do not count.
    """
    return VisitPolicy(
        rules=(
            PolicyRule(
                code="plan_monthly",
                effective_from=MONTHLY_FROM,
                effective_to=WEEKLY_FROM - dt.timedelta(days=1),
                frequency=Frequency.MONTH,
            ),
            PolicyRule(
                code="plan_weekly",
                effective_from=WEEKLY_FROM,
                effective_to=None,
                frequency=Frequency.WEEK,
            ),
        ),
        counting=(CountingPolicy(effective_from=MONTHLY_FROM),),
    )


def _has_any(wanted: frozenset[str], elder: ElderFacts) -> bool:
    if not wanted.isdisjoint(elder.categories):
        return True
    return elder.advanced_age and ADVANCED_AGE in wanted


def _has_all(wanted: frozenset[str], elder: ElderFacts) -> bool:
    for category in wanted:
        if category == ADVANCED_AGE:
            if not elder.advanced_age:
                return False
        elif category not in elder.categories:
            return False
    return True


def rule_matches(rule: PolicyRule, elder: ElderFacts) -> bool:
    """Whether ``rule``'s selectors all match ``elder`` (dates are not checked here)."""
    if rule.elder_id is not None and rule.elder_id != elder.elder_id:
        return False
    if rule.area_code and rule.area_code not in elder.area_codes:
        return False
    if rule.risk_levels and elder.risk_level not in rule.risk_levels:
        return False
    return not rule.categories or _has_any(rule.categories, elder)


def surge_matches(surge: Surge | HolidaySurge, elder: ElderFacts) -> bool:
    """Whether a surge's area, categories (ALL) and risk levels match ``elder``."""
    if surge.area_code and surge.area_code not in elder.area_codes:
        return False
    if surge.risk_levels and elder.risk_level not in surge.risk_levels:
        return False
    return not surge.categories_all or _has_all(surge.categories_all, elder)


def _rule_sort_key(rule: PolicyRule) -> tuple[int, int, int, str]:
    return (
        -rule.priority,
        FREQUENCY_RANK[rule.frequency],
        -REQUIREMENT_RANK[rule.mode],
        rule.code,
    )


@dataclass(frozen=True, slots=True)
class ActiveHoliday:
    """A holiday surge's window that is open on a given day."""

    surge: HolidaySurge
    start: dt.date
    end: dt.date
    name: str

    @property
    def area_code(self) -> str:
        return self.surge.area_code


T = TypeVar("T", Surge, ActiveHoliday)


@dataclass(frozen=True, slots=True)
class AreaIndex(Generic[T]):
    """Items for everyone, and items by area code (in the order they were given)."""

    everywhere: tuple[T, ...]
    by_area: dict[str, tuple[T, ...]]

    @classmethod
    def build(cls, items: Iterable[T]) -> AreaIndex[T]:
        everywhere: list[T] = []
        by_area: dict[str, list[T]] = {}
        for item in items:
            if item.area_code:
                by_area.setdefault(item.area_code, []).append(item)
            else:
                everywhere.append(item)
        return cls(tuple(everywhere), {code: tuple(v) for code, v in by_area.items()})

    def for_elder(self, elder: ElderFacts) -> list[T]:
        """The items whose area is everywhere or one of the elder's areas."""
        if not self.by_area:
            return list(self.everywhere)
        out = list(self.everywhere)
        for code in elder.area_codes:
            found = self.by_area.get(code)
            if found:
                out.extend(found)
        return out


@dataclass(frozen=True, slots=True)
class RuleIndex:
    """The regular rules effective on one day, ranked, split by how they select elders.

    Each list holds (rank, unconditional, rule) in rank order; rank 0 is the strongest rule.
    ``since`` is the first day of the stretch over which the same rules are effective (no
    rule starts or ends between it and the day indexed), so an elder's winner is the same on
    every day of it.
    """

    everywhere: tuple[tuple[int, bool, PolicyRule], ...]
    by_area: dict[str, tuple[tuple[int, bool, PolicyRule], ...]]
    by_elder: dict[int, tuple[tuple[int, bool, PolicyRule], ...]]
    since: dt.date

    def winner(self, elder: ElderFacts) -> PolicyRule | None:
        """The strongest rule that matches ``elder``, or ``None``."""
        best_rank = 1 << 30
        best: PolicyRule | None = None
        for rank, unconditional, rule in self.everywhere:
            if unconditional or rule_matches(rule, elder):
                best_rank, best = rank, rule
                break
        if self.by_area:
            for code in elder.area_codes:
                candidates = self.by_area.get(code)
                if candidates:
                    for rank, _, rule in candidates:
                        if rank >= best_rank:
                            break
                        if rule_matches(rule, elder):
                            best_rank, best = rank, rule
                            break
        if self.by_elder:
            candidates = self.by_elder.get(elder.elder_id)
            if candidates:
                for rank, _, rule in candidates:
                    if rank >= best_rank:
                        break
                    if rule_matches(rule, elder):
                        best_rank, best = rank, rule
                        break
        return best


def _index_rules(rules: Iterable[PolicyRule], since: dt.date) -> RuleIndex:
    ranked = sorted(rules, key=_rule_sort_key)
    everywhere: list[tuple[int, bool, PolicyRule]] = []
    by_area: dict[str, list[tuple[int, bool, PolicyRule]]] = {}
    by_elder: dict[int, list[tuple[int, bool, PolicyRule]]] = {}
    for rank, rule in enumerate(ranked):
        unconditional = not (rule.categories or rule.risk_levels)
        entry = (rank, unconditional, rule)
        if rule.elder_id is not None:
            by_elder.setdefault(rule.elder_id, []).append(entry)
        elif rule.area_code:
            by_area.setdefault(rule.area_code, []).append(entry)
        else:
            everywhere.append(entry)
    return RuleIndex(
        tuple(everywhere),
        {code: tuple(v) for code, v in by_area.items()},
        {elder_id: tuple(v) for elder_id, v in by_elder.items()},
        since,
    )


class CompiledPolicy:
    """A ``VisitPolicy`` prepared for evaluating many elders; see the module docstring."""

    __slots__ = (
        "_boundaries",
        "_counting_froms",
        "_counting_sets",
        "_extras",
        "_last_extras",
        "_rules",
        "last_counting_from",
        "last_counting_modes",
        "last_counting_outcomes",
        "policy",
        "reconfirm_days",
    )

    def __init__(self, policy: VisitPolicy) -> None:
        for holiday_surge in policy.holiday_surges:
            unknown = holiday_surge.holidays - HOLIDAY_NAMES
            if unknown:
                raise ValueError(f"{holiday_surge.code}: unknown holidays {sorted(unknown)}")
        self.policy = policy
        self.reconfirm_days = dt.timedelta(days=policy.reconfirm_willingness_days)
        counting = sorted(policy.counting, key=lambda c: c.effective_from)
        self._counting_froms = [c.effective_from for c in counting]
        self._counting_sets = [(c.modes, c.outcomes) for c in counting]
        # The latest counting policy, read inline by the hot loop over visits.
        self.last_counting_from = counting[-1].effective_from
        self.last_counting_modes = counting[-1].modes
        self.last_counting_outcomes = counting[-1].outcomes
        # Days on which the set of effective rules changes.
        boundaries = {rule.effective_from for rule in policy.rules}
        boundaries |= {
            rule.effective_to + _ONE_DAY
            for rule in policy.rules
            if rule.effective_to is not None and rule.effective_to < dt.date.max
        }
        self._boundaries = sorted(boundaries)
        self._rules: dict[dt.date, RuleIndex] = {}
        self._last_extras: (
            tuple[dt.date, Calendar, tuple[AreaIndex[Surge], AreaIndex[ActiveHoliday]]] | None
        ) = None
        self._extras: dict[
            tuple[dt.date, Calendar], tuple[AreaIndex[Surge], AreaIndex[ActiveHoliday]]
        ] = {}

    def rules_on(self, day: dt.date) -> RuleIndex:
        """The regular rules effective on ``day``, ranked and indexed."""
        index = self._rules.get(day)
        if index is None:
            if len(self._rules) >= _CACHE_LIMIT:
                self._rules.clear()
            position = bisect.bisect_right(self._boundaries, day)
            since = self._boundaries[position - 1] if position else dt.date.min
            index = _index_rules(
                (
                    rule
                    for rule in self.policy.rules
                    if rule.effective_from <= day
                    and (rule.effective_to is None or day <= rule.effective_to)
                ),
                since,
            )
            self._rules[day] = index
        return index

    def winner(self, elder: ElderFacts, day: dt.date) -> PolicyRule | None:
        """The rule that sets ``elder``'s regular obligation on ``day``, if any."""
        return self.rules_on(day).winner(elder)

    def extras_on(
        self, day: dt.date, calendar: Calendar
    ) -> tuple[AreaIndex[Surge], AreaIndex[ActiveHoliday]]:
        """The surges active on ``day`` and the holiday windows open on it, indexed by area."""
        last = self._last_extras
        if last is not None and last[0] == day and last[1] is calendar:
            return last[2]
        key = (day, calendar)
        found = self._extras.get(key)
        if found is None:
            if len(self._extras) >= _CACHE_LIMIT:
                self._extras.clear()
            surges = sorted(
                (s for s in self.policy.surges if s.starts_on <= day <= s.ends_on),
                key=lambda s: s.code,
            )
            holidays: list[ActiveHoliday] = []
            if self.policy.holiday_surges:
                windows = calendar.windows_near(day)
                for surge in sorted(self.policy.holiday_surges, key=lambda s: s.code):
                    for window in windows:
                        start = window.first - dt.timedelta(days=surge.days_before)
                        if window.name in surge.holidays and start <= day <= window.last:
                            holidays.append(ActiveHoliday(surge, start, window.last, window.name))
            found = (AreaIndex.build(surges), AreaIndex.build(holidays))
            self._extras[key] = found
        self._last_extras = (day, calendar, found)
        return found

    def counting_sets(self, day: dt.date) -> tuple[frozenset[str], frozenset[str]] | None:
        """(modes, outcomes) of the counting policy effective on ``day``, if any."""
        froms = self._counting_froms
        if day >= froms[-1]:
            return self._counting_sets[-1]
        position = bisect.bisect_right(froms, day) - 1
        return self._counting_sets[position] if position >= 0 else None

    def counts(self, mode: str, outcome: str, day: dt.date) -> bool:
        """Whether a visit of ``mode`` and ``outcome`` on local ``day`` counts."""
        sets = self.counting_sets(day)
        return sets is not None and mode in sets[0] and outcome in sets[1]


_compiled: dict[int, tuple[VisitPolicy, CompiledPolicy]] = {}


def compile_policy(policy: VisitPolicy | CompiledPolicy) -> CompiledPolicy:
    """The ``CompiledPolicy`` of ``policy``, built once per policy object and kept.

    Keyed by identity (hashing a policy would cost more than evaluating an elder); the entry
    holds the policy itself, so its id cannot be reused while the entry lives.
    """
    if isinstance(policy, CompiledPolicy):
        return policy
    entry = _compiled.get(id(policy))
    if entry is not None and entry[0] is policy:
        return entry[1]
    if len(_compiled) >= _POLICY_CACHE_LIMIT:
        _compiled.clear()
    compiled = CompiledPolicy(policy)
    _compiled[id(policy)] = (policy, compiled)
    return compiled


def counts_for_rates(visit: PastVisit, policy: VisitPolicy | CompiledPolicy) -> bool:
    """Whether ``visit`` counts, under the counting policy effective on its local date."""
    return compile_policy(policy).counts(visit.mode, visit.outcome, local_date(visit.at))
