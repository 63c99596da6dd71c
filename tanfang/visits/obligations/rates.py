"""Who is in a visit rate's denominator and numerator: the exact definition, as a function.

For a period P (a week "2026-W10" or a month "2026-03", any key ``period_from_key`` reads) and
the day ``on`` the rate is computed:

- the reference day is P's last day, or ``on`` when P has not ended by then (the current
  period); a period that has not begun by ``on`` has no one due;
- **due** (the denominator): the elder is not excluded on the reference day and a regular rule
  gives her an obligation on it — whatever its frequency, so every elder with an obligation
  is in both the weekly and the monthly rate. Elders under a station contract are due: their
  station's visits count;
- **visited** (the numerator): due, and a counting visit (``counts_for_rates``) is dated in
  [P's first day, P's last day] in Asia/Shanghai. The rule's mode requirement plays no part:
  which visits count for the rates is the counting policy's business alone.

The facts passed in must be the elder's facts as of the reference day (life status and
willingness on that day), which the caller reads from the registry's history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from tanfang.visits.obligations.engine import exclusion_of
from tanfang.visits.obligations.periods import local_date, period_from_key, period_of
from tanfang.visits.obligations.policy import CompiledPolicy, compile_policy
from tanfang.visits.obligations.types import ElderFacts, PastVisit, RateStatus, VisitPolicy


def reference_day(period_key: str, on: dt.date) -> dt.date | None:
    """The day whose facts decide who is due in the period (``None`` before it begins)."""
    start, end, _ = period_from_key(period_key)
    if on < start:
        return None
    return end if end < on else on


def rate_status(
    *,
    elder: ElderFacts,
    policy: VisitPolicy | CompiledPolicy,
    visits: Iterable[PastVisit],
    period_key: str,
    on: dt.date,
) -> RateStatus:
    """Whether ``elder`` is due in the period and whether she was visited in it."""
    compiled = compile_policy(policy)
    start, end, frequency = period_from_key(period_key)
    key = period_of(start, frequency)[2]
    day = reference_day(period_key, on)
    if day is None:
        return RateStatus(key, False, False, "")
    excluded = exclusion_of(elder)
    if excluded:
        return RateStatus(key, False, False, excluded)
    if compiled.rules_on(day).winner(elder) is None:
        return RateStatus(key, False, False, "")
    counts = compiled.counts
    for visit in visits:
        local = local_date(visit.at)
        if start <= local <= end and counts(visit.mode, visit.outcome, local):
            return RateStatus(key, True, True, "")
    return RateStatus(key, True, False, "")
