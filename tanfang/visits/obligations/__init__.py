"""The visit-obligation engine: elder facts, policy, calendar, past visits → what is due by when.

Pure functions over frozen dataclasses, no Django: the web, the API, the commands and the
nightly recomputation share them. docs/visit-obligations.md defines the policy model, how a
rule wins, surges, holidays, station contracts, exclusions, counting, weeks and the rates.
"""

from __future__ import annotations

from tanfang.visits.obligations.engine import (
    LOOKBACK_PERIODS,
    due_status,
    exclusion_of,
    obligations_for,
    under_station_contract,
)
from tanfang.visits.obligations.holiday_calendar import HOLIDAY_NAMES, Calendar, HolidayWindow
from tanfang.visits.obligations.periods import (
    SHANGHAI,
    local_date,
    period_from_key,
    period_of,
    periods_back,
)
from tanfang.visits.obligations.policy import (
    CompiledPolicy,
    compile_policy,
    counts_for_rates,
    default_policy,
)
from tanfang.visits.obligations.rates import rate_status, reference_day
from tanfang.visits.obligations.types import (
    ADVANCED_AGE,
    EXCLUSIONS,
    LIFE_STATUSES,
    MODES,
    OBLIGATION_KINDS,
    OUTCOMES,
    RISK_LEVELS,
    CountingPolicy,
    DueStatus,
    ElderFacts,
    Frequency,
    HolidaySurge,
    ModeRequirement,
    Obligation,
    PastVisit,
    PolicyRule,
    RateStatus,
    Surge,
    VisitPolicy,
)

__all__ = [
    "ADVANCED_AGE",
    "EXCLUSIONS",
    "HOLIDAY_NAMES",
    "LIFE_STATUSES",
    "LOOKBACK_PERIODS",
    "MODES",
    "OBLIGATION_KINDS",
    "OUTCOMES",
    "RISK_LEVELS",
    "SHANGHAI",
    "Calendar",
    "CompiledPolicy",
    "CountingPolicy",
    "DueStatus",
    "ElderFacts",
    "Frequency",
    "HolidaySurge",
    "HolidayWindow",
    "ModeRequirement",
    "Obligation",
    "PastVisit",
    "PolicyRule",
    "RateStatus",
    "Surge",
    "VisitPolicy",
    "compile_policy",
    "counts_for_rates",
    "default_policy",
    "due_status",
    "exclusion_of",
    "local_date",
    "obligations_for",
    "period_from_key",
    "period_of",
    "periods_back",
    "rate_status",
    "reference_day",
    "under_station_contract",
]
