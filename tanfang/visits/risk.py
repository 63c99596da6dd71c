"""The risk level of an elder, computed from a visit record by documented rules.

Three tiers, after the risk-tiered visiting seen in Inner Mongolia (2022) and adapted to what
the visit record asks (docs/visit-record.md, "Risk level"):

- **high** — 80 or older and living alone, in an empty nest or left behind; dementia; serious
  heart disease; bedridden; a confused mental state; a gas or electricity hazard; a need of
  emergency rescue; a major life event (bereavement, serious illness, hospital discharge).
- **priority** — impaired; severely disabled; extremely poor (registry, or receives support
  for the extremely poor); a bereaved/disabled only-child family; a hazard of the house, water
  or heating; abnormal hygiene or living environment; low mood or anxiety; family members who
  do not support the elder; an economic difficulty; any other service need; in hospital.
- **general** — none of these.

The level is the highest tier with at least one reason, and ``reasons`` are the codes of that
tier that hold, in the order of ``REASONS`` (lower-tier reasons would only blur why). Facts
that are unknown (an age or a registry flag of ``None``) never raise the level: the rules
read only what is recorded. The sections are read whatever the outcome (a visitor who found
nobody at home may still have smelled gas at the door). A deceased elder is "general" with no
reasons: the registry's life status takes over and no visit falls due.

Pure: no ORM; ``sections`` is the canonical dict of ``record_form.validate_sections``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tanfang.visits.record_form import (
    ADVANCED_AGE,
    Outcome,
    abnormal_conditions,
    difficulties,
    hazards,
    needs,
)


class RiskLevel(StrEnum):
    HIGH = "high"
    PRIORITY = "priority"
    GENERAL = "general"


RISK_LEVEL_CHOICES: tuple[tuple[str, Promise], ...] = (
    (RiskLevel.HIGH, _("High risk")),
    (RiskLevel.PRIORITY, pgettext_lazy("risk level", "Priority")),
    (RiskLevel.GENERAL, pgettext_lazy("risk level", "General")),
)

# Reason code -> label, high-tier reasons first.
HIGH_REASONS: dict[str, Promise] = {
    "advanced_age_alone": _("80 or older and living alone, in an empty nest or left behind"),
    "dementia": _("Dementia"),
    "serious_heart_disease": _("Serious heart disease"),
    "bedridden": _("Bedridden"),
    "confused": _("Confused mental state"),
    "gas_hazard": _("Gas hazard"),
    "electricity_hazard": _("Electricity hazard"),
    "emergency_rescue": _("Needs emergency rescue"),
    "life_event": _("Major life event"),
}
PRIORITY_REASONS: dict[str, Promise] = {
    "impaired": _("Impaired"),
    "severely_disabled": _("Severely disabled"),
    "extremely_poor": _("Extremely poor"),
    "fp_special_family": _("Bereaved/disabled only-child family"),
    "other_hazard": _("House, water or heating hazard"),
    "living_conditions": _("Abnormal hygiene or living environment"),
    "low_mood": _("Low mood or anxiety"),
    "no_family_support": _("Family members living apart do not support the elder"),
    "economic_difficulty": _("Economic difficulty"),
    "service_need": _("Service needs"),
    "in_hospital": _("In hospital"),
}
REASONS: dict[str, Promise] = {**HIGH_REASONS, **PRIORITY_REASONS}

_ALONE = frozenset({"living_alone", "empty_nest", "left_behind"})


@dataclass(frozen=True, slots=True)
class RiskFacts:
    """What the registry knows about the elder that the rules need; ``None`` is unknown.

    ``dementia`` is the registry's fact (also used by the capability assessment); a dementia
    ticked on the visit record counts as well.
    """

    age: int | None
    categories: frozenset[str]
    extremely_poor: bool | None
    dementia: bool | None = None


@dataclass(frozen=True, slots=True)
class RiskResult:
    level: str  # a RiskLevel value
    reasons: tuple[str, ...]


def risk_level(*, sections: Mapping[str, Any], outcome: str, elder: RiskFacts) -> RiskResult:
    """The elder's risk level from a visit record and the registry's facts (module docstring)."""
    if outcome == Outcome.DECEASED:
        return RiskResult(RiskLevel.GENERAL, ())
    high = _high(sections, elder)
    if high:
        return RiskResult(RiskLevel.HIGH, _ordered(high))
    priority = _priority(sections, outcome, elder)
    if priority:
        return RiskResult(RiskLevel.PRIORITY, _ordered(priority))
    return RiskResult(RiskLevel.GENERAL, ())


def _high(sections: Mapping[str, Any], elder: RiskFacts) -> set[str]:
    health = sections.get("health") or {}
    illnesses = set(health.get("illnesses", ()))
    found_hazards = set(hazards(sections))
    events = set((sections.get("life_events") or {}).get("kinds", ())) - {"none"}
    checks = {
        "advanced_age_alone": (
            elder.age is not None and elder.age >= ADVANCED_AGE and bool(elder.categories & _ALONE)
        ),
        "dementia": elder.dementia is True or "dementia" in illnesses,
        "serious_heart_disease": "serious_heart_disease" in illnesses,
        "bedridden": health.get("mobility") == "bedridden",
        "confused": health.get("mental_state") == "confused",
        "gas_hazard": "gas" in found_hazards,
        "electricity_hazard": "electricity" in found_hazards,
        "emergency_rescue": "emergency_rescue" in needs(sections),
        "life_event": bool(events),
    }
    return {code for code, holds in checks.items() if holds}


def _priority(sections: Mapping[str, Any], outcome: str, elder: RiskFacts) -> set[str]:
    health = sections.get("health") or {}
    benefits = set((sections.get("economy") or {}).get("benefits", ()))
    family = sections.get("family") or {}
    checks = {
        "impaired": "impaired" in elder.categories,
        "severely_disabled": "severely_disabled" in elder.categories,
        "extremely_poor": elder.extremely_poor is True or "extremely_poor_support" in benefits,
        "fp_special_family": "fp_special_family" in elder.categories,
        "other_hazard": bool(set(hazards(sections)) - {"gas", "electricity"}),
        "living_conditions": bool(abnormal_conditions(sections)),
        "low_mood": health.get("mental_state") in ("low", "anxious"),
        "no_family_support": family.get("support") == "no",
        "economic_difficulty": bool(difficulties(sections)),
        "service_need": bool(set(needs(sections)) - {"emergency_rescue"}),
        "in_hospital": outcome == Outcome.IN_HOSPITAL,
    }
    return {code for code, holds in checks.items() if holds}


def _ordered(codes: set[str]) -> tuple[str, ...]:
    return tuple(code for code in REASONS if code in codes)


def reason_label(code: str) -> str:
    label = REASONS.get(code)
    return str(label) if label is not None else code
