"""The visit policy rows turned into the pure engine's ``VisitPolicy``.

The engine never reads the database; this module reads the few policy rows once and builds
the frozen value the engine takes. Cached per process and dropped whenever a policy row is
saved or deleted (signals below), so an edit in the admin is seen by the next request.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from django.db.models.signals import post_delete, post_save

from tanfang.visits import models as m
from tanfang.visits.obligations import (
    CountingPolicy,
    Frequency,
    HolidaySurge,
    ModeRequirement,
    PolicyRule,
    Surge,
    VisitPolicy,
)

# How far back the engine must see visits to judge overdue periods: eight periods.
_LOOKBACK_DAYS = {"day": 8, "week": 8 * 7 + 7, "month": 8 * 31 + 31, "quarter": 8 * 92 + 92}


@lru_cache(maxsize=1)
def policy_load() -> VisitPolicy:
    """The policy in force, from the database rows (cached until a row changes)."""
    rules = tuple(
        PolicyRule(
            code=r.code,
            effective_from=r.effective_from,
            effective_to=r.effective_to,
            frequency=Frequency(r.frequency),
            mode=ModeRequirement(r.mode),
            categories=frozenset(r.categories or ()),
            risk_levels=frozenset(r.risk_levels or ()),
            area_code=r.area.code if r.area is not None else "",
            elder_id=r.elder_id,
            priority=r.priority,
        )
        for r in m.VisitRule.objects.filter(active=True).select_related("area")
    )
    surges = tuple(
        Surge(
            code=s.code,
            reason=s.reason,
            area_code=s.area.code,
            starts_on=s.starts_on,
            ends_on=s.ends_on,
            frequency=Frequency(s.frequency),
            mode=ModeRequirement(s.mode),
            categories_all=frozenset(s.categories_all or ()),
            risk_levels=frozenset(s.risk_levels or ()),
        )
        for s in m.VisitSurge.objects.filter(active=True).select_related("area")
    )
    holidays = tuple(
        HolidaySurge(
            code=h.code,
            holidays=frozenset(h.holidays or ()),
            mode=ModeRequirement(h.mode),
            categories_all=frozenset(h.categories_all or ()),
            days_before=h.days_before,
        )
        for h in m.HolidaySurge.objects.filter(active=True)
    )
    counting = tuple(
        CountingPolicy(
            effective_from=c.effective_from,
            modes=frozenset(c.modes or ()),
            outcomes=frozenset(c.outcomes or ()),
        )
        for c in m.CountingRule.objects.order_by("effective_from")
    )
    return VisitPolicy(rules=rules, surges=surges, holiday_surges=holidays, counting=counting)


def policy_forget(**_: object) -> None:
    policy_load.cache_clear()


def lookback_days(policy: VisitPolicy, on: dt.date) -> int:
    """Days of past visits the engine needs on ``on``: eight periods of the slowest rule."""
    days = 8
    for rule in policy.rules:
        if rule.effective_from <= on and (rule.effective_to is None or on <= rule.effective_to):
            days = max(days, _LOOKBACK_DAYS[str(rule.frequency)])
    for holiday in policy.holiday_surges:
        days = max(days, holiday.days_before + 15)
    return days


for _model in (m.VisitRule, m.VisitSurge, m.HolidaySurge, m.CountingRule):
    post_save.connect(policy_forget, sender=_model, dispatch_uid=f"policy-{_model.__name__}")
    post_delete.connect(policy_forget, sender=_model, dispatch_uid=f"policy-del-{_model.__name__}")
