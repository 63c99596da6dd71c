"""The risk level computed from a visit record: every rule of each tier, and how tiers combine.

Each high and priority reason is pinned alone, on an elder who otherwise has no risk, so a
rule that stops firing (or starts firing for the wrong tier) fails its own case.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation

from tanfang.visits.record_form import validate_sections
from tanfang.visits.risk import (
    HIGH_REASONS,
    PRIORITY_REASONS,
    REASONS,
    RiskFacts,
    RiskLevel,
    RiskResult,
    reason_label,
    risk_level,
)

NOBODY_SPECIAL = RiskFacts(age=70, categories=frozenset(), extremely_poor=False)


def sections(data: dict[str, Any]) -> dict[str, Any]:
    result, errors = validate_sections(data)
    assert errors == []
    return result


def facts(**kwargs: Any) -> RiskFacts:
    base: dict[str, Any] = {"age": 70, "categories": frozenset(), "extremely_poor": False}
    base.update(kwargs)
    return RiskFacts(**base)


def level(
    data: dict[str, Any], elder: RiskFacts = NOBODY_SPECIAL, outcome: str = "met"
) -> RiskResult:
    return risk_level(sections=sections(data), outcome=outcome, elder=elder)


def test_nothing_found_is_general() -> None:
    assert level({}) == RiskResult("general", ())
    assert level({"health": {"mobility": "independent", "mental_state": "good"}}).level == "general"


@pytest.mark.parametrize(
    ("data", "elder", "reason"),
    [
        ({}, facts(age=80, categories=frozenset({"living_alone"})), "advanced_age_alone"),
        ({}, facts(age=93, categories=frozenset({"empty_nest"})), "advanced_age_alone"),
        ({}, facts(age=81, categories=frozenset({"left_behind"})), "advanced_age_alone"),
        ({}, facts(dementia=True), "dementia"),
        ({"health": {"illnesses": ["dementia"]}}, NOBODY_SPECIAL, "dementia"),
        (
            {"health": {"illnesses": ["serious_heart_disease"]}},
            NOBODY_SPECIAL,
            "serious_heart_disease",
        ),
        ({"health": {"mobility": "bedridden"}}, NOBODY_SPECIAL, "bedridden"),
        ({"health": {"mental_state": "confused"}}, NOBODY_SPECIAL, "confused"),
        ({"safety": {"gas": {"hazard": True}}}, NOBODY_SPECIAL, "gas_hazard"),
        ({"safety": {"electricity": {"hazard": True}}}, NOBODY_SPECIAL, "electricity_hazard"),
        ({"needs": {"kinds": ["emergency_rescue"]}}, NOBODY_SPECIAL, "emergency_rescue"),
        ({"life_events": {"kinds": ["bereavement"]}}, NOBODY_SPECIAL, "life_event"),
        ({"life_events": {"kinds": ["illness"]}}, NOBODY_SPECIAL, "life_event"),
        ({"life_events": {"kinds": ["hospital_discharge"]}}, NOBODY_SPECIAL, "life_event"),
    ],
)
def test_each_high_rule(data: dict[str, Any], elder: RiskFacts, reason: str) -> None:
    assert level(data, elder) == RiskResult("high", (reason,))


@pytest.mark.parametrize(
    ("data", "elder", "outcome", "reason"),
    [
        ({}, facts(categories=frozenset({"impaired"})), "met", "impaired"),
        ({}, facts(categories=frozenset({"severely_disabled"})), "met", "severely_disabled"),
        ({}, facts(extremely_poor=True), "met", "extremely_poor"),
        (
            {"economy": {"benefits": ["extremely_poor_support"]}},
            NOBODY_SPECIAL,
            "met",
            "extremely_poor",
        ),
        ({}, facts(categories=frozenset({"fp_special_family"})), "met", "fp_special_family"),
        ({"safety": {"house": {"hazard": True}}}, NOBODY_SPECIAL, "met", "other_hazard"),
        ({"safety": {"water": {"hazard": True}}}, NOBODY_SPECIAL, "met", "other_hazard"),
        ({"safety": {"heating": {"hazard": True}}}, NOBODY_SPECIAL, "met", "other_hazard"),
        (
            {"hygiene": {"personal": {"status": "abnormal"}}},
            NOBODY_SPECIAL,
            "met",
            "living_conditions",
        ),
        (
            {"environment": {"neighbours": {"status": "abnormal"}}},
            NOBODY_SPECIAL,
            "met",
            "living_conditions",
        ),
        ({"health": {"mental_state": "low"}}, NOBODY_SPECIAL, "met", "low_mood"),
        ({"health": {"mental_state": "anxious"}}, NOBODY_SPECIAL, "met", "low_mood"),
        ({"family": {"support": "no"}}, NOBODY_SPECIAL, "met", "no_family_support"),
        (
            {"economy": {"difficulties": ["transport"]}},
            NOBODY_SPECIAL,
            "met",
            "economic_difficulty",
        ),
        ({"needs": {"kinds": ["rehabilitation_nursing"]}}, NOBODY_SPECIAL, "met", "service_need"),
        ({"needs": {"other": "someone to shop"}}, NOBODY_SPECIAL, "met", "service_need"),
        ({}, NOBODY_SPECIAL, "in_hospital", "in_hospital"),
    ],
)
def test_each_priority_rule(
    data: dict[str, Any], elder: RiskFacts, outcome: str, reason: str
) -> None:
    assert level(data, elder, outcome) == RiskResult("priority", (reason,))


@pytest.mark.parametrize(
    "elder",
    [
        facts(age=79, categories=frozenset({"living_alone"})),  # not yet 80
        facts(age=None, categories=frozenset({"living_alone"})),  # age unknown
        facts(age=90, categories=frozenset({"other"})),  # 80+ but not alone
        facts(age=90),
        facts(extremely_poor=None, dementia=None),  # unknown facts never raise the level
        facts(dementia=False, categories=frozenset({"living_alone", "empty_nest"})),
    ],
)
def test_no_risk_without_the_facts(elder: RiskFacts) -> None:
    assert level({}, elder) == RiskResult("general", ())


def test_answers_that_are_not_risks() -> None:
    data = {
        "health": {"illnesses": ["heart_disease", "hypertension"], "reactions": "slow"},
        "safety": {"gas": {"hazard": False, "what": "checked"}},
        "hygiene": {"personal": {"status": "normal"}},
        "family": {"support": "unknown", "visits": "never"},
        "economy": {"benefits": ["none"]},
        "life_events": {"kinds": ["none"]},
    }
    assert level(data) == RiskResult("general", ())


def test_high_wins_and_reasons_are_those_of_the_tier_in_rule_order() -> None:
    data = {
        "safety": {
            "electricity": {"hazard": True},
            "gas": {"hazard": True},
            "water": {"hazard": True},
        },
        "health": {"mobility": "bedridden"},
        "needs": {"kinds": ["daily_life_care"]},
    }
    elder = facts(age=85, categories=frozenset({"living_alone", "impaired"}), extremely_poor=True)
    result = level(data, elder)
    assert result.level == RiskLevel.HIGH
    assert result.reasons == ("advanced_age_alone", "bedridden", "gas_hazard", "electricity_hazard")


def test_priority_reasons_accumulate() -> None:
    elder = facts(categories=frozenset({"impaired", "fp_special_family"}))
    result = level({"economy": {"difficulties": ["food"]}}, elder)
    assert result == RiskResult(
        "priority", ("impaired", "fp_special_family", "economic_difficulty")
    )


def test_sections_count_whatever_the_outcome() -> None:
    # Nobody opened the door, but the visitor smelled gas on the landing.
    result = level({"safety": {"gas": {"hazard": True}}}, outcome="not_home")
    assert result == RiskResult("high", ("gas_hazard",))
    assert level({}, outcome="refused") == RiskResult("general", ())


def test_a_deceased_elder_has_no_risk_level_of_her_own() -> None:
    elder = facts(age=88, categories=frozenset({"living_alone"}))
    assert level({"health": {"mobility": "bedridden"}}, elder, "deceased") == RiskResult(
        "general", ()
    )


def test_every_reason_has_a_label_and_tiers_do_not_overlap() -> None:
    assert not set(HIGH_REASONS) & set(PRIORITY_REASONS)
    with translation.override("en"):
        assert reason_label("gas_hazard") == "Gas hazard"
        assert reason_label("no_such_reason") == "no_such_reason"
    with translation.override("zh-hans"):
        assert reason_label("impaired") == "失能"
    assert all(str(label) for label in REASONS.values())
