"""The visit record's sections as data: validation into the canonical dict, and its readers.

``validate_sections`` is what both the web form and the API go through, so its errors must
name the field a client sent, and two submissions meaning the same thing must give the same
canonical dict (a property test over the form's own definition checks that the canonical dict
is a fixed point). The readers ``hazards``, ``needs`` and ``benefit_hints`` feed the care
actions; each rule of ``benefit_hints`` is pinned.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from tanfang.visits.record_form import (
    BENEFIT_HINT_RULES,
    BENEFITS,
    SECTIONS,
    TEXT_MAX,
    Kind,
    SectionError,
    abnormal_conditions,
    benefit_hints,
    consented,
    hazards,
    needs,
    validate_sections,
)

SECTION_NAMES = [s.name for s in SECTIONS]


def paths(errors: list[SectionError]) -> list[tuple[str, str]]:
    return [(e.path, e.code) for e in errors]


def clean(data: dict[str, Any]) -> dict[str, Any]:
    result, errors = validate_sections(data)
    assert errors == [], [str(e) for e in errors]
    return result


# --- validation ----------------------------------------------------------------------------


def test_nothing_submitted_gives_every_section_empty() -> None:
    for data in (None, {}):
        result, errors = validate_sections(data)
        assert errors == []
        assert result == {name: {} for name in SECTION_NAMES}


def test_a_phone_visit_may_skip_safety_and_hygiene() -> None:
    result = clean({"health": {"mental_state": "good"}, "needs": {"kinds": ["emotional_comfort"]}})
    assert result["safety"] == {} and result["hygiene"] == {}
    assert result["health"] == {"mental_state": "good"}


def test_a_full_in_home_record_is_normalised() -> None:
    result = clean(
        {
            "health": {
                "expression": "clear",
                "mobility": " aided ",
                "reactions": "slow",
                "illnesses": ["stroke", "diabetes", "diabetes", "heart_disease"],
                "mental_state": "low",
                "note": "  walks\nwith a cane ",
            },
            "economy": {"difficulties": ["medical_care", "food"], "benefits": ["elder_allowance"]},
            "family": {"support": "yes", "visits": "rarely", "calls": "often"},
            "safety": {
                "gas": {"hazard": True, "what": "hose cracked"},
                "water": {"hazard": "false"},
                "heating": {},
            },
            "hygiene": {"household": {"status": "abnormal", "detail": "rubbish piled up"}},
            "environment": {"neighbours": {"status": "normal"}},
            "life_events": {"kinds": ["hospital_discharge"], "detail": "hip surgery"},
            "needs": {"kinds": ["rehabilitation_nursing"]},
            "consent": {"care_actions": "yes", "given_by": "elder"},
        }
    )
    assert result == {
        "health": {
            "expression": "clear",
            "mobility": "aided",
            "reactions": "slow",
            # de-duplicated, and in the order of the form
            "illnesses": ["diabetes", "heart_disease", "stroke"],
            "mental_state": "low",
            "note": "walks with a cane",
        },
        "economy": {"difficulties": ["food", "medical_care"], "benefits": ["elder_allowance"]},
        "family": {"support": "yes", "visits": "rarely", "calls": "often"},
        # an item with nothing filled in is not recorded
        "safety": {"gas": {"hazard": True, "what": "hose cracked"}, "water": {"hazard": False}},
        "hygiene": {"household": {"status": "abnormal", "detail": "rubbish piled up"}},
        "environment": {"neighbours": {"status": "normal"}},
        "life_events": {"kinds": ["hospital_discharge"], "detail": "hip surgery"},
        "needs": {"kinds": ["rehabilitation_nursing"]},
        "consent": {"care_actions": True, "given_by": "elder"},
    }


def test_empty_values_mean_not_recorded() -> None:
    result = clean(
        {
            "health": {"mobility": "", "illnesses": [], "note": "", "mental_state": None},
            "consent": {"care_actions": ""},
            "safety": None,
        }
    )
    assert result["health"] == {} and result["consent"] == {} and result["safety"] == {}


def test_serious_heart_disease_replaces_heart_disease() -> None:
    result = clean({"health": {"illnesses": ["serious_heart_disease", "heart_disease"]}})
    assert result["health"]["illnesses"] == ["serious_heart_disease"]


def test_typed_text_and_devices_imply_their_ticks() -> None:
    result = clean(
        {
            "health": {"illness_other": "glaucoma"},
            "needs": {"kinds": ["daily_life_care"], "devices": ["wheelchair"], "other": "meals"},
        }
    )
    assert result["health"]["illnesses"] == ["other"]
    assert result["needs"]["kinds"] == ["daily_life_care", "assistive_devices", "other"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"weather": {}}, [("weather", "unknown_section")]),
        ({"health": {"mood": "good"}}, [("health.mood", "unknown_field")]),
        ({"health": "fine"}, [("health", "not_an_object")]),
        ({"health": {"mobility": "flying"}}, [("health.mobility", "not_a_choice")]),
        ({"health": {"mobility": 3}}, [("health.mobility", "not_a_choice")]),
        ({"health": {"illnesses": "diabetes"}}, [("health.illnesses", "not_a_list")]),
        ({"health": {"illnesses": ["gout", "diabetes"]}}, [("health.illnesses", "not_a_choice")]),
        ({"health": {"note": 42}}, [("health.note", "not_text")]),
        ({"consent": {"care_actions": "maybe"}}, [("consent.care_actions", "not_a_boolean")]),
        ({"consent": {"given_by": "nobody"}}, [("consent.given_by", "not_a_choice")]),
        ({"safety": {"gas": True}}, [("safety.gas", "not_an_object")]),
        (
            {"safety": {"gas": {"hazard": True, "colour": "red"}}},
            [("safety.gas.colour", "unknown_field")],
        ),
        (
            {"safety": {"gas": {"hazard": True, "what": "x" * (TEXT_MAX + 1)}}},
            [("safety.gas.what", "too_long")],
        ),
        ({"safety": {"gas": {"what": "smell of gas"}}}, [("safety.gas.hazard", "hazard_required")]),
        ({"safety": {"gas": {"hazard": "abnormal"}}}, [("safety.gas.hazard", "not_a_boolean")]),
        (
            {"hygiene": {"personal": {"status": "dirty"}}},
            [("hygiene.personal.status", "not_a_choice")],
        ),
        ({"economy": {"benefits": ["none", "care_subsidy"]}}, [("economy.benefits", "exclusive")]),
        ({"life_events": {"kinds": ["none", "bereavement"]}}, [("life_events.kinds", "exclusive")]),
        ({"needs": {"kinds": ["other"]}}, [("needs.other", "other_text_required")]),
        ({"health": {"illnesses": ["other"]}}, [("health.illness_other", "other_text_required")]),
    ],
)
def test_errors_name_the_field_path(data: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    _result, errors = validate_sections(data)
    assert paths(errors) == expected


def test_the_valid_part_is_kept_beside_the_errors() -> None:
    result, errors = validate_sections(
        {"health": {"mobility": "bedridden", "reactions": "fast"}, "foo": 1}
    )
    assert paths(errors) == [("health.reactions", "not_a_choice"), ("foo", "unknown_section")]
    assert result["health"] == {"mobility": "bedridden"}


def test_the_whole_submission_must_be_an_object() -> None:
    _result, errors = validate_sections(["health"])  # type: ignore[arg-type]
    assert paths(errors) == [("", "not_an_object")]


def test_text_at_the_limit_is_accepted() -> None:
    text = "x" * TEXT_MAX
    assert clean({"needs": {"other": text}})["needs"]["other"] == text


def test_error_messages_are_translated() -> None:
    _result, errors = validate_sections({"health": {"mobility": "flying"}})
    with translation.override("en"):
        assert errors[0].message.startswith("“flying” is not one of the allowed values:")
        assert "bedridden" in errors[0].message
        assert str(errors[0]).startswith("health.mobility: ")
    with translation.override("zh-hans"):
        assert "不是允许的值" in errors[0].message
    _result, errors = validate_sections({"economy": {"benefits": ["none", "care_subsidy"]}})
    with translation.override("en"):
        assert errors[0].message == "“None” cannot be chosen together with other choices"
    with translation.override("zh-hans"):
        assert errors[0].message.startswith("“无”")
    _result, errors = validate_sections({"needs": {"other": "x" * (TEXT_MAX + 1)}})
    with translation.override("en"):
        assert errors[0].message == f"at most {TEXT_MAX} characters are allowed"


# --- the canonical dict is a fixed point -----------------------------------------------------


def _field_values(spec: Any) -> st.SearchStrategy[Any]:
    codes = [code for code, _label in spec.choices]
    text = st.text(alphabet="ab 探访\n", max_size=12)
    if spec.kind is Kind.ONE:
        return st.sampled_from([*codes, "", None])
    if spec.kind is Kind.MANY:
        return st.lists(st.sampled_from(codes), max_size=4)
    if spec.kind is Kind.BOOL:
        return st.sampled_from([True, False, None, "yes", "no", ""])
    if spec.kind is Kind.TEXT:
        return text
    flag = (
        st.sampled_from([True, False, None])
        if spec.kind is Kind.HAZARD
        else st.sampled_from([*codes, None])
    )
    keys = ("hazard", "what") if spec.kind is Kind.HAZARD else ("status", "detail")
    return st.fixed_dictionaries({}, optional={keys[0]: flag, keys[1]: text})


SUBMISSIONS = st.fixed_dictionaries(
    {},
    optional={
        section.name: st.fixed_dictionaries(
            {}, optional={spec.name: _field_values(spec) for spec in section.fields}
        )
        for section in SECTIONS
    },
)


@settings(max_examples=200, deadline=None)
@given(SUBMISSIONS)
def test_normalising_twice_changes_nothing(data: dict[str, Any]) -> None:
    once, errors = validate_sections(data)
    # Choices drawn from the form's own definition can only break the cross-field rules.
    assert {e.code for e in errors} <= {"exclusive", "other_text_required", "hazard_required"}
    twice, errors_again = validate_sections(once)
    assert twice == once
    # An exclusive choice is dropped, so only the other cross-field errors may remain.
    assert {e.code for e in errors_again} <= {"other_text_required", "hazard_required"}
    if not errors:
        assert errors_again == []


# --- readers --------------------------------------------------------------------------------


def test_hazards_lists_the_items_with_a_hazard_in_form_order() -> None:
    sections = clean(
        {
            "safety": {
                "heating": {"hazard": True},
                "water": {"hazard": False, "what": "checked the pipes"},
                "house": {"hazard": True, "what": "cracked wall"},
            }
        }
    )
    assert hazards(sections) == ["house", "heating"]
    assert hazards(clean({})) == []


def test_needs_and_consent_and_abnormal_conditions() -> None:
    sections = clean(
        {
            "needs": {"kinds": ["emergency_rescue", "daily_life_care"]},
            "consent": {"care_actions": True},
            "environment": {"outdoors": {"status": "abnormal"}, "indoors": {"status": "normal"}},
            "hygiene": {"surroundings": {"status": "abnormal"}, "personal": {"status": "abnormal"}},
        }
    )
    assert needs(sections) == ["daily_life_care", "emergency_rescue"]
    assert consented(sections) is True
    assert consented(clean({"consent": {"care_actions": False}})) is False
    assert consented(clean({})) is False
    assert abnormal_conditions(sections) == [
        "hygiene.personal",
        "hygiene.surroundings",
        "environment.outdoors",
    ]


def economy(difficulties: list[str] = (), benefits: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return clean({"economy": {"difficulties": list(difficulties), "benefits": list(benefits)}})


def test_no_hints_when_the_benefits_were_not_asked() -> None:
    sections = economy(difficulties=["food"])
    assert benefit_hints(sections, {"impaired"}, age=90, extremely_poor=True) == []


@pytest.mark.parametrize(
    ("sections", "categories", "kwargs", "expected"),
    [
        (economy(benefits=["none"]), set(), {"age": 80}, ["elder_allowance"]),
        (economy(benefits=["none"]), set(), {"age": 79}, []),
        (economy(benefits=["none"]), set(), {"age": None}, []),
        (economy(benefits=["elder_allowance"]), set(), {"age": 85}, []),
        (economy(benefits=["none"]), {"impaired"}, {}, ["care_subsidy"]),
        (economy(benefits=["care_subsidy"]), {"impaired"}, {}, []),
        (economy(benefits=["none"]), {"severely_disabled"}, {}, ["disability_allowance"]),
        (economy(benefits=["none"]), {"living_alone"}, {}, []),
        (economy(benefits=["none"]), set(), {"extremely_poor": True}, ["extremely_poor_support"]),
        (economy(benefits=["none"]), set(), {"extremely_poor": None}, []),
        (economy(["housing"], ["none"]), set(), {}, ["subsistence_allowance"]),
        (economy(["transport"], ["none"]), set(), {}, []),
        (
            economy(["food"], ["extremely_poor_support"]),
            set(),
            {},
            ["medical_assistance"],
        ),
        (economy(["medical_care"], ["none"]), set(), {}, ["medical_assistance"]),
        (
            economy(["medical_care"], ["subsistence_allowance", "medical_assistance"]),
            set(),
            {},
            [],
        ),
        (
            economy(["food", "medical_care"], ["none"]),
            {"impaired", "severely_disabled"},
            {"age": 92, "extremely_poor": True},
            [
                "subsistence_allowance",
                "extremely_poor_support",
                "elder_allowance",
                "disability_allowance",
                "care_subsidy",
                "medical_assistance",
            ],
        ),
    ],
)
def test_benefit_hints(
    sections: dict[str, Any], categories: set[str], kwargs: dict[str, Any], expected: list[str]
) -> None:
    assert benefit_hints(sections, categories, **kwargs) == expected


def test_every_hinted_benefit_has_its_rule_written_down() -> None:
    codes = {code for code, _label in BENEFITS} - {"none"}
    assert set(BENEFIT_HINT_RULES) == codes
