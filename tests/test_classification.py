"""The classification rules of 京民养老发〔2024〕1号 二.(二) as a pure function.

Unit tests pin each clause of each category, the age boundaries and every missing-fact path;
property tests (hypothesis) check, over arbitrary fact combinations, that the three-valued
logic behaves: removing a fact never flips a definite answer, a reported category never
carries missing facts of its own, complete facts leave nothing undecided, and nothing raises.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from copy import deepcopy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tanfang.registry.classification import (
    CATEGORIES,
    CATEGORY_BITS,
    DISABILITY_TYPES,
    FOCUS_SOURCES,
    RULE_FACTS,
    Classification,
    FactsError,
    OtherRule,
    RuleError,
    bits_of,
    classify,
    compile_other_rules,
    missing_by_category,
    parse_facts,
    render_reason,
)
from tanfang.registry.classification_text import FACT_LABELS, LANGUAGES, TEMPLATES

AS_OF = "2024-06-01"

# An elder about whom everything is known and who is in no category.
NOBODY: dict[str, Any] = {
    "id": 1,
    "as_of": AS_OF,
    "birth_date": "1950-03-01",
    "rural": False,
    "spouse": {"alive": True, "lives_with": True},
    "children": [
        {
            "alive": True,
            "age": 45,
            "lives_with": True,
            "same_subdistrict": True,
            "away_months": 0,
            "can_support": True,
            "disability_grade": None,
            "adopted": False,
        },
        {
            "alive": True,
            "age": 40,
            "lives_with": False,
            "same_subdistrict": True,
            "away_months": 0,
            "can_support": True,
            "disability_grade": None,
            "adopted": False,
        },
    ],
    "relatives_same_subdistrict": True,
    "household": [{"relation": "spouse", "age": 73}, {"relation": "child", "age": 45}],
    "daily_companionship": True,
    "capability_level": 0,
    "disability": None,
    "extremely_poor": False,
    "dementia": False,
}


def child(**kw: Any) -> dict[str, Any]:
    """A fully known adult child living apart, far away, able to support; override by kw."""
    base: dict[str, Any] = {
        "alive": True,
        "age": 45,
        "lives_with": False,
        "same_subdistrict": False,
        "away_months": 0,
        "can_support": True,
        "disability_grade": None,
        "adopted": False,
    }
    base.update(kw)
    return base


def run(rules: tuple[OtherRule, ...] = (), drop: tuple[str, ...] = (), **kw: Any) -> Classification:
    raw = {**NOBODY, **kw}
    for key in drop:
        raw.pop(key)
    return classify(parse_facts(raw), rules)


def blocking(rules: tuple[OtherRule, ...] = (), drop: tuple[str, ...] = (), **kw: Any) -> dict:
    raw = {**NOBODY, **kw}
    for key in drop:
        raw.pop(key)
    return missing_by_category(parse_facts(raw), rules)


def test_the_reference_elder_is_in_no_category_and_nothing_is_missing() -> None:
    result = run()
    assert result.categories == ()
    assert result.missing_facts == ()
    assert result.reason_codes == {}
    assert not result.advanced_age
    assert not result.focus


def test_module_imports_without_django() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TANFANG_"))}
    code = (
        "import sys, tanfang.registry.classification as c; "
        "assert 'django' not in sys.modules, 'django imported'; "
        "print(c.CATEGORIES[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "living_alone"


# --------------------------------------------------------------------------- constants


def test_categories_bits_and_focus_sources() -> None:
    assert CATEGORIES == (
        "living_alone",
        "empty_nest",
        "left_behind",
        "impaired",
        "severely_disabled",
        "fp_special_family",
        "other",
    )
    assert [CATEGORY_BITS[c] for c in CATEGORIES] == [1, 2, 4, 8, 16, 32, 64]
    assert FOCUS_SOURCES == ("living_alone", "empty_nest", "left_behind")
    assert bits_of(["impaired", "living_alone"]) == 9
    assert bits_of([]) == 0
    with pytest.raises(ValueError, match="unknown category"):
        bits_of(["lonely"])


# --------------------------------------------------------------------------- age and focus


@pytest.mark.parametrize(
    ("birth", "as_of", "advanced"),
    [
        ("1944-06-01", "2024-05-31", False),  # the day before the 80th birthday
        ("1944-06-01", "2024-06-01", True),  # on the birthday
        ("1944-06-02", "2024-06-01", False),
        ("1944-02-29", "2024-02-28", False),  # leap-day birthday, 80th falls in a leap year
        ("1944-02-29", "2024-02-29", True),
        ("1920-01-01", "2024-06-01", True),
        ("1960-01-01", "2024-06-01", False),
    ],
)
def test_advanced_age_starts_on_the_80th_birthday(birth: str, as_of: str, advanced: bool) -> None:
    assert run(birth_date=birth, as_of=as_of).advanced_age is advanced


AGE_81 = compile_other_rules(
    [{"code": "a81", "label": "81+", "all": [{"fact": "age", "op": ">=", "value": 81}]}]
)


@pytest.mark.parametrize(
    ("as_of", "is_81"),
    [("2025-02-28", False), ("2025-03-01", True), ("2028-02-28", True)],
)
def test_leap_day_birthday_counts_from_1_march_in_common_years(as_of: str, is_81: bool) -> None:
    result = run(AGE_81, birth_date="1944-02-29", as_of=as_of)
    assert ("other" in result.categories) is is_81


def test_missing_birth_date_means_not_advanced_and_is_reported() -> None:
    result = run(drop=("birth_date",))
    assert result.advanced_age is False
    assert result.missing_facts == ("birth_date",)
    assert run(birth_date=None).missing_facts == ("birth_date",)


def test_focus_is_advanced_age_with_living_alone_empty_nest_or_left_behind() -> None:
    old = "1940-01-01"
    alone = {"spouse": None, "children": []}
    assert run(birth_date=old, **alone).focus
    assert not run(birth_date="1950-01-01", **alone).focus
    impaired_only = run(birth_date=old, capability_level=1)
    assert impaired_only.categories == ("impaired",)
    assert impaired_only.advanced_age and not impaired_only.focus
    away = run(birth_date=old, children=[child()], household=[], relatives_same_subdistrict=False)
    assert away.categories == ("empty_nest",) and away.focus


# --------------------------------------------------------------------------- living alone


NOBODY_NEAR: dict[str, Any] = {
    "spouse": {"alive": True, "lives_with": False},
    "children": [child()],
    "relatives_same_subdistrict": False,
    "household": [{"relation": "caregiver", "age": 50}],
    "daily_companionship": False,
}


@pytest.mark.parametrize(
    "family",
    [
        {"spouse": None, "children": []},
        {"spouse": {"alive": False}, "children": []},
        {"spouse": None, "children": [child(alive=False), child(alive=False)]},
    ],
)
def test_living_alone_without_spouse_or_living_children(family: dict[str, Any]) -> None:
    result = run(**family)
    assert "living_alone" in result.categories
    assert result.reason_codes["living_alone"] == ("living_alone.no_spouse_no_children", {})
    # Clause 1 decides it: the facts of clause 2 are not asked for.
    assert "living_alone" not in missing_by_category(parse_facts({"as_of": AS_OF, **family}))
    bare = classify(parse_facts({"as_of": AS_OF, **family}))
    assert "daily_companionship" not in bare.missing_facts
    assert "relatives_same_subdistrict" not in bare.missing_facts


def test_living_alone_with_nobody_near_and_no_companionship() -> None:
    result = run(**NOBODY_NEAR)
    assert "living_alone" in result.categories
    assert result.reason_codes["living_alone"] == ("living_alone.no_one_nearby", {})


@pytest.mark.parametrize(
    "change",
    [
        {"daily_companionship": True},
        {"relatives_same_subdistrict": True},
        {"spouse": {"alive": True, "lives_with": True}},
        {"children": [child(), child(same_subdistrict=True)]},
        {"children": [child(lives_with=True, same_subdistrict=False)]},
        {"household": [{"relation": "caregiver", "age": 50}, {"relation": "grandchild"}]},
    ],
)
def test_someone_near_means_not_living_alone(change: dict[str, Any]) -> None:
    assert "living_alone" not in run(**{**NOBODY_NEAR, **change}).categories
    assert "living_alone" not in blocking(**{**NOBODY_NEAR, **change})


def test_dead_children_and_non_relatives_do_not_count_as_near() -> None:
    near_but_dead = [child(), child(alive=False, same_subdistrict=True, lives_with=True)]
    household = [{"relation": "caregiver"}, {"relation": "other", "age": 30}]
    result = run(**{**NOBODY_NEAR, "children": near_but_dead, "household": household})
    assert "living_alone" in result.categories


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"spouse": {"alive": True}}, ["spouse.lives_with"]),
        ({"spouse": {"lives_with": False}}, []),
        ({"children": [child(same_subdistrict=None)]}, ["children[0].same_subdistrict"]),
        ({"children": [child(alive=None)]}, []),
        ({"household": [{"age": 70}]}, ["household[0].relation"]),
        ({"daily_companionship": None}, ["daily_companionship"]),
        ({"relatives_same_subdistrict": None}, ["relatives_same_subdistrict"]),
    ],
)
def test_living_alone_undecided_names_the_blocking_fact(
    change: dict[str, Any], missing: list[str]
) -> None:
    facts = {**NOBODY_NEAR, **change}
    result = run(**facts)
    if not missing:  # still decided: the unknown fact did not matter
        assert "living_alone" in result.categories
        return
    assert "living_alone" not in result.categories
    assert list(blocking(**facts)["living_alone"]) == missing


def test_living_alone_unknown_spouse_and_children() -> None:
    result = blocking(
        drop=("spouse", "children"),
        **{k: v for k, v in NOBODY_NEAR.items() if k not in ("spouse", "children")},
    )
    assert result["living_alone"] == ("children", "spouse")


# --------------------------------------------------------------------------- empty nest


APART: dict[str, Any] = {"children": [child(), child(age=30)], "household": []}


def test_empty_nest_when_all_adult_children_live_apart_outside_the_subdistrict() -> None:
    result = run(**APART)
    assert "empty_nest" in result.categories
    assert result.reason_codes["empty_nest"] == ("empty_nest.children_left", {})


@pytest.mark.parametrize(
    "children",
    [
        [],
        [child(alive=False)],
        [child(), child(age=17)],
        [child(), child(same_subdistrict=True)],
        [child(), child(lives_with=True)],
    ],
)
def test_not_empty_nest_by_children(children: list[dict[str, Any]]) -> None:
    assert "empty_nest" not in run(children=children, household=[]).categories
    assert "empty_nest" not in blocking(children=children, household=[])


def test_empty_nest_ignores_dead_children() -> None:
    children = [child(), child(alive=False, age=10, lives_with=True)]
    assert "empty_nest" in run(children=children, household=[]).categories


@pytest.mark.parametrize(
    ("household", "expected"),
    [
        ([{"relation": "spouse", "age": 72}], True),
        ([{"relation": "spouse", "age": 72}, {"relation": "child", "age": 60}], True),
        ([{"relation": "spouse", "age": 72}, {"relation": "child", "age": 59}], False),
        ([{"relation": "grandchild", "age": 30}], False),
        ([], False),  # alone is not a "pure elderly household"
    ],
)
def test_empty_nest_household_of_old_people_only(
    household: list[dict[str, Any]], expected: bool
) -> None:
    children = [child(lives_with=True)]
    result = run(children=children, household=household)
    assert ("empty_nest" in result.categories) is expected
    if expected:
        assert result.reason_codes["empty_nest"] == ("empty_nest.elderly_household", {})
    assert "empty_nest" not in blocking(children=children, household=household)


@pytest.mark.parametrize(
    ("children", "household", "missing"),
    [
        ([child(age=None)], [], ["children[0].age"]),
        ([child(), child(alive=None, age=10)], [], ["children[1].alive"]),
        ([child(lives_with=True)], [{"relation": "spouse"}], ["household[0].age"]),
        ([child(lives_with=True)], None, ["household"]),
        (None, [], ["children"]),
    ],
)
def test_empty_nest_undecided(children: Any, household: Any, missing: list[str]) -> None:
    assert "empty_nest" not in run(children=children, household=household).categories
    assert list(blocking(children=children, household=household)["empty_nest"]) == missing


def test_empty_nest_by_household_needs_no_child_facts() -> None:
    result = blocking(children=None, household=[{"relation": "spouse", "age": 70}])
    assert "empty_nest" not in result


# --------------------------------------------------------------------------- left behind


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        ([child(away_months=6)], True),
        ([child(away_months=12), child(away_months=24)], True),
        ([child(away_months=12), child(away_months=0, can_support=False)], True),
        ([child(away_months=12), child(away_months=0, can_support=True)], False),
        ([child(away_months=5)], False),
        ([child(away_months=0, can_support=False)], False),  # nobody away
        ([child(away_months=12), child(alive=False, away_months=0)], True),
        ([], False),
        ([child(alive=False, away_months=12)], False),
    ],
)
def test_left_behind(children: list[dict[str, Any]], expected: bool) -> None:
    result = run(rural=True, children=children)
    assert ("left_behind" in result.categories) is expected
    assert "left_behind" not in blocking(rural=True, children=children)
    if expected:
        assert result.reason_codes["left_behind"] == ("left_behind.children_away", {})


def test_left_behind_only_in_rural_areas() -> None:
    children = [child(away_months=12)]
    assert "left_behind" not in run(rural=False, children=children).categories
    assert blocking(rural=None, children=children)["left_behind"] == ("rural",)
    assert "left_behind" not in blocking(rural=False, children=None)


@pytest.mark.parametrize(
    ("children", "missing"),
    [
        ([child(away_months=None)], ["children[0].away_months"]),
        (
            [child(away_months=12), child(away_months=None, can_support=None)],
            ["children[1].away_months", "children[1].can_support"],
        ),
        (
            [child(away_months=12), child(away_months=1, can_support=None)],
            ["children[1].can_support"],
        ),
        ([child(away_months=12), child(away_months=12, alive=None)], []),
        ([child(away_months=12), child(away_months=0, alive=None)], ["children[1].alive"]),
        (None, ["children"]),
    ],
)
def test_left_behind_undecided(children: Any, missing: list[str]) -> None:
    result = run(rural=True, children=children)
    if not missing:
        assert "left_behind" in result.categories
        return
    assert "left_behind" not in result.categories
    assert list(blocking(rural=True, children=children)["left_behind"]) == missing


# --------------------------------------------------------------------------- impaired


@pytest.mark.parametrize(("level", "expected"), [(0, False), (1, True), (2, True), (3, True)])
def test_impaired_by_assessment_level(level: int, expected: bool) -> None:
    result = run(capability_level=level)
    assert ("impaired" in result.categories) is expected
    if expected:
        assert result.reason_codes["impaired"] == ("impaired.level", {"level": level})


def test_no_assessment_is_a_missing_fact() -> None:
    assert run(capability_level=None).missing_facts == ("capability_level",)
    assert run(drop=("capability_level",)).missing_facts == ("capability_level",)


# --------------------------------------------------------------------------- severely disabled


@pytest.mark.parametrize(
    ("disability", "expected"),
    [
        (None, False),
        ({"grade": 1, "type": "visual"}, True),
        ({"grade": 2, "type": "physical"}, True),
        ({"grade": 2}, True),
        ({"grade": 3, "type": "intellectual"}, True),
        ({"grade": 3, "type": "mental"}, True),
        ({"grade": 3, "type": "physical"}, False),
        ({"grade": 3, "type": "multiple"}, False),
        ({"grade": 4, "type": "mental"}, False),
    ],
)
def test_severely_disabled(disability: Any, expected: bool) -> None:
    result = run(disability=disability)
    assert ("severely_disabled" in result.categories) is expected
    assert result.missing_facts == ()


def test_severely_disabled_reason_names_grade_and_type() -> None:
    result = run(disability={"grade": 3, "type": "intellectual"})
    assert result.reason_codes["severely_disabled"] == (
        "severely_disabled.grade_3_intellectual_mental",
        {"grade": 3, "type": "intellectual"},
    )
    assert result.reasons()["severely_disabled"].startswith("持有残疾人证，智力残疾三级")


@pytest.mark.parametrize(
    ("disability", "missing"),
    [
        ({"grade": 3}, ("disability.type",)),
        ({"type": "visual"}, ("disability.grade",)),
        ({"grade": None, "type": "mental"}, ("disability.grade",)),
        ({}, ("disability.grade", "disability.type")),
    ],
)
def test_severely_disabled_undecided(disability: dict[str, Any], missing: tuple) -> None:
    assert run(disability=disability).missing_facts == missing
    assert run(drop=("disability",)).missing_facts == ("disability",)


# --------------------------------------------------------------------------- fp special family


@pytest.mark.parametrize(
    ("children", "code"),
    [
        ([child(alive=False)], "fp_special_family.only_child_died"),
        ([child(alive=False, adopted=True)], "fp_special_family.only_child_died"),
        ([child(disability_grade=3)], "fp_special_family.only_child_disabled"),
        ([child(disability_grade=1, alive=None)], "fp_special_family.only_child_disabled"),
        ([child(disability_grade=4)], None),
        ([child()], None),
        ([child(alive=False), child()], None),  # a second child was born or adopted
        ([child(alive=False), child(alive=False)], None),
        ([], None),
    ],
)
def test_fp_special_family(children: list[dict[str, Any]], code: str | None) -> None:
    result = run(children=children)
    assert result.reason_codes.get("fp_special_family", (None,))[0] == code
    assert "fp_special_family" not in blocking(children=children)


def test_fp_special_family_undecided() -> None:
    assert blocking(children=[{"alive": True}])["fp_special_family"] == (
        "children[0].disability_grade",
    )
    assert blocking(children=[child(alive=None)])["fp_special_family"] == ("children[0].alive",)
    assert blocking(children=[{}])["fp_special_family"] == (
        "children[0].alive",
        "children[0].disability_grade",
    )
    assert blocking(drop=("children",))["fp_special_family"] == ("children",)


def test_fp_special_family_reason_in_both_languages() -> None:
    result = run(children=[child(disability_grade=2)])
    assert result.reasons()["fp_special_family"] == (
        "独生子女残疾等级为二级，且未再生育或收养子女（依据：子女）"
    )
    assert result.reasons("en")["fp_special_family"].startswith(
        "The only child has a grade 2 disability"
    )


# --------------------------------------------------------------------------- other


def rule(*conditions: tuple[str, str, Any], code: str = "r1", label: str = "规则") -> dict:
    return {
        "code": code,
        "label": label,
        "all": [{"fact": f, "op": op, "value": v} for f, op, v in conditions],
    }


def test_other_rule_assigns_and_explains() -> None:
    rules = compile_other_rules(
        [
            rule(
                ("dementia", "==", True),
                ("daily_companionship", "==", False),
                code="d",
                label="失智且无人陪伴",
            ),
            rule(("extremely_poor", "==", True), code="p", label="特困"),
        ]
    )
    result = run(rules, dementia=True, daily_companionship=False)
    assert result.categories == ("other",)
    code, params = result.reason_codes["other"]
    assert code == "other.rules"
    assert params == {
        "rules": [
            {"code": "d", "label": "失智且无人陪伴", "facts": ["dementia", "daily_companionship"]}
        ]
    }
    assert result.reasons()["other"] == "符合本区规定“失智且无人陪伴”（依据：失智、日常陪伴照顾）"
    assert result.reasons("en")["other"] == (
        "Meets the district rule “失智且无人陪伴” (facts: dementia, daily companionship)"
    )
    both = run(rules, dementia=True, daily_companionship=False, extremely_poor=True)
    assert [r["code"] for r in both.reason_codes["other"][1]["rules"]] == ["d", "p"]
    assert "；" in both.reasons()["other"]


def test_other_rule_missing_facts_are_tri_state() -> None:
    rules = compile_other_rules([rule(("dementia", "==", True), ("age", ">=", 80))])
    assert blocking(rules, drop=("dementia",), birth_date="1940-01-01")["other"] == ("dementia",)
    # A false condition decides the rule whatever else is missing.
    assert "other" not in blocking(rules, drop=("dementia",), birth_date="1990-01-01")
    undecided = blocking(rules, drop=("dementia", "birth_date"))
    assert undecided["other"] == ("birth_date", "dementia")


def test_other_rule_on_categories_inherits_their_missing_facts() -> None:
    rules = compile_other_rules([rule(("impaired", "==", True), ("dementia", "==", True))])
    assert run(rules, capability_level=2, dementia=True).categories == ("impaired", "other")
    assert blocking(rules, capability_level=None, dementia=True)["other"] == ("capability_level",)
    assert "other" not in run(rules, capability_level=0, dementia=True).categories


def test_other_rule_disability_facts_with_no_certificate() -> None:
    rules = compile_other_rules(
        [rule(("disability_grade", "==", None), ("disability_type", "==", None), ("age", ">", 70))]
    )
    assert "other" in run(rules, birth_date="1940-01-01").categories
    assert "other" not in run(rules, birth_date="1940-01-01", disability={"grade": 4}).categories
    low = compile_other_rules([rule(("disability_grade", "<=", 3))])
    assert "other" not in run(low).categories  # no certificate: no grade to compare
    assert "other" in run(low, disability={"grade": 3, "type": "visual"}).categories
    assert blocking(low, disability={"type": "visual"})["other"] == ("disability.grade",)
    kinds = compile_other_rules([rule(("disability_type", "in", ["visual", "hearing"]))])
    assert "other" in run(kinds, disability={"grade": 4, "type": "hearing"}).categories
    assert blocking(kinds, drop=("disability",))["other"] == ("disability",)


def test_other_rule_living_children_counts_over_what_is_known() -> None:
    rules = compile_other_rules([rule(("living_children", ">=", 1))])
    children = [child(alive=None), child(alive=True)]
    assert "other" in run(rules, children=children).categories  # 1 or 2: both >= 1
    none_known = [child(alive=None), child(alive=False)]
    assert blocking(rules, children=none_known)["other"] == ("children[0].alive",)
    exactly_one = compile_other_rules([rule(("living_children", "==", 0))])
    assert "other" not in blocking(exactly_one, children=children)
    assert "other" in run(exactly_one, children=[child(alive=False)]).categories
    assert blocking(rules, drop=("children",))["other"] == ("children",)


def test_other_rule_household_size_and_disabled_child_at_home() -> None:
    rules = compile_other_rules(
        [rule(("lives_with_disabled_child", "==", True), ("household_size", "<=", 2))]
    )
    carer = [child(lives_with=True, disability_grade=1)]
    assert "other" in run(rules, children=carer, household=[{"relation": "child"}]).categories
    grade_3 = [child(lives_with=True, disability_grade=3)]
    assert "other" not in run(rules, children=grade_3).categories
    assert blocking(
        rules, children=[child(lives_with=True, disability_grade=2)], drop=("household",)
    )["other"] == ("household",)
    unknown = [{"alive": True, "lives_with": True}]
    assert blocking(rules, children=unknown)["other"] == ("children[0].disability_grade",)


@pytest.mark.parametrize(
    ("raw", "rule_name", "field"),
    [
        ([{"label": "x", "all": []}], "#0", "code"),
        ([rule(("age", ">", 1)), rule(("age", ">", 1))], "r1", "code"),
        (
            [{"code": "c", "label": "", "all": [{"fact": "age", "op": ">", "value": 1}]}],
            "c",
            "label",
        ),
        ([{"code": "c", "label": "l", "all": []}], "c", "all"),
        ([{"code": "c", "label": "l", "any": []}], "c", "any"),
        ([rule(("wealth", "==", 1), code="c")], "c", "all[0].fact"),
        ([rule(("other", "==", True), code="c")], "c", "all[0].fact"),
        ([rule(("age", "~", 1), code="c")], "c", "all[0].op"),
        ([rule(("rural", "<", 1), code="c")], "c", "all[0].op"),
        ([rule(("rural", "==", 1), code="c")], "c", "all[0].value"),
        ([rule(("age", ">", "80"), code="c")], "c", "all[0].value"),
        ([rule(("age", "==", None), code="c")], "c", "all[0].value"),
        ([rule(("capability_level", "==", 4), code="c")], "c", "all[0].value"),
        ([rule(("disability_grade", "in", [1, 5]), code="c")], "c", "all[0].value[1]"),
        ([rule(("disability_type", "==", "blind"), code="c")], "c", "all[0].value"),
        ([rule(("age", "in", []), code="c")], "c", "all[0].value"),
        ([{"code": "c", "label": "l", "all": [{"fact": "age", "op": ">"}]}], "c", "all[0].value"),
        (
            [{"code": "c", "label": "l", "all": [{"fact": "age", "op": ">", "value": 1, "x": 1}]}],
            "c",
            "all[0].x",
        ),
        (["rule"], "#0", ""),
    ],
)
def test_malformed_rules_are_rejected_naming_rule_and_field(
    raw: list[Any], rule_name: str, field: str
) -> None:
    with pytest.raises(RuleError) as caught:
        compile_other_rules(raw)
    assert caught.value.rule == rule_name
    assert caught.value.field == field
    assert caught.value.message


def test_rules_must_be_a_list() -> None:
    with pytest.raises(RuleError):
        compile_other_rules({"code": "c"})  # type: ignore[arg-type]


# --------------------------------------------------------------------------- output


def test_reasons_render_in_both_languages_for_every_template() -> None:
    params: dict[str, dict[str, Any]] = {
        "impaired.level": {"level": 3},
        "severely_disabled.grade_1_2": {"grade": 1, "type": "visual"},
        "severely_disabled.grade_3_intellectual_mental": {"grade": 3, "type": "mental"},
        "fp_special_family.only_child_disabled": {"grade": 2},
        "other.rules": {"rules": [{"code": "x", "label": "标签", "facts": ["age", "rural"]}]},
    }
    assert set(TEMPLATES["zh-hans"]) == set(TEMPLATES["en"])
    assert set(FACT_LABELS["zh-hans"]) == set(FACT_LABELS["en"]) == set(RULE_FACTS)
    for lang in LANGUAGES:
        for code in TEMPLATES[lang]:
            text = render_reason(code, params.get(code, {}), lang)
            assert text and "{" not in text and code not in text
    assert render_reason("impaired.level", {"level": 1}, "zh-hans") == (
        "老年人能力评估为一级（重度）（依据：能力评估）"
    )
    assert render_reason("living_alone.no_spouse_no_children", {}, "zh-hans") == (
        "无配偶、无在世子女（依据：配偶、子女）"
    )
    assert render_reason("living_alone.no_spouse_no_children", {}, "en") == (
        "No spouse and no living children (facts: spouse, children)"
    )


def test_unknown_reason_code_renders_as_itself_and_unknown_language_fails() -> None:
    assert render_reason("retired.code", {}, "zh-hans") == "retired.code"
    assert render_reason("impaired.level", {}, "en") == "impaired.level"
    with pytest.raises(ValueError, match="language"):
        render_reason("impaired.level", {"level": 1}, "fr")


def test_as_json_shape() -> None:
    result = run(spouse=None, children=[], capability_level=1, id="E-7")
    out = result.as_json("en")
    assert out == {
        "id": "E-7",
        "categories": ["living_alone", "impaired"],
        "reasons": {
            "living_alone": "No spouse and no living children (facts: spouse, children)",
            "impaired": "Capability assessment level 1 (severe) (facts: capability assessment)",
        },
        "missing_facts": [],
        "advanced_age": False,
        "focus": False,
    }
    json.dumps(result.reason_codes)


# --------------------------------------------------------------------------- parse_facts


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"as_of": None}, "as_of"),
        ({"as_of": "2024-6-1"}, "as_of"),
        ({"birth_date": "2024-02-30"}, "birth_date"),
        ({"birth_date": "2030-01-01"}, "birth_date"),
        ({"birth_date": 1950}, "birth_date"),
        ({"id": {"a": 1}}, "id"),
        ({"id": True}, "id"),
        ({"rural": "yes"}, "rural"),
        ({"rural": 1}, "rural"),
        ({"spouse": True}, "spouse"),
        ({"spouse": {"alive": "no"}}, "spouse.alive"),
        ({"children": {}}, "children"),
        ({"children": [child(), child(), child(age="40")]}, "children[2].age"),
        ({"children": [child(age=-1)]}, "children[0].age"),
        ({"children": [child(age=40.0)]}, "children[0].age"),
        ({"children": [child(away_months="6")]}, "children[0].away_months"),
        ({"children": [child(away_months=-1)]}, "children[0].away_months"),
        ({"children": [child(disability_grade=5)]}, "children[0].disability_grade"),
        ({"children": [child(lives_with=0)]}, "children[0].lives_with"),
        ({"children": [3]}, "children[0]"),
        ({"household": [{"relation": ""}]}, "household[0].relation"),
        ({"household": [{"relation": "child", "age": True}]}, "household[0].age"),
        ({"household": "spouse"}, "household"),
        ({"capability_level": 4}, "capability_level"),
        ({"capability_level": "1"}, "capability_level"),
        ({"disability": {"grade": 0}}, "disability.grade"),
        ({"disability": {"grade": 1, "type": "blind"}}, "disability.type"),
        ({"disability": 2}, "disability"),
    ],
)
def test_parse_facts_names_the_bad_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(FactsError) as caught:
        parse_facts({**NOBODY, **change})
    assert caught.value.field == field
    assert caught.value.message and caught.value.message_zh
    assert caught.value.message != caught.value.message_zh


def test_parse_facts_rejects_non_objects() -> None:
    for value in ([], "x", None, 3):
        with pytest.raises(FactsError) as caught:
            parse_facts(value)
        assert caught.value.field == ""


def test_parse_facts_keeps_absent_and_null_apart_and_drops_unknown_keys() -> None:
    facts = parse_facts(
        {
            "as_of": AS_OF,
            "spouse": None,
            "disability": None,
            "children": [{"alive": True, "disability_grade": None, "nickname": "x"}, {}],
            "colour": "blue",
        }
    )
    assert facts == {
        "as_of": dt.date(2024, 6, 1),
        "spouse": None,
        "disability": None,
        "children": [{"alive": True, "disability_grade": None}, {}],
    }
    assert "household" not in facts


def test_parse_facts_dates_and_default_as_of() -> None:
    facts = parse_facts({"birth_date": "1944-02-29"}, default_as_of=dt.date(2024, 1, 1))
    assert facts == {"as_of": dt.date(2024, 1, 1), "birth_date": dt.date(1944, 2, 29)}
    assert parse_facts({"as_of": dt.date(2024, 1, 1)})["as_of"] == dt.date(2024, 1, 1)
    with pytest.raises(FactsError):
        parse_facts({"as_of": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)})


def test_classify_accepts_facts_without_as_of() -> None:
    result = classify({"birth_date": dt.date(1940, 1, 1)})
    assert not result.advanced_age
    assert "as_of" in result.missing_facts


# --------------------------------------------------------------------------- properties

maybe_bool = st.one_of(st.none(), st.booleans())


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict in which every key may be absent."""
    return st.fixed_dictionaries({}, optional=fields)


child_strategy = optional(
    alive=maybe_bool,
    age=st.one_of(st.none(), st.integers(0, 100)),
    lives_with=maybe_bool,
    same_subdistrict=maybe_bool,
    away_months=st.one_of(st.none(), st.integers(0, 30), st.floats(0, 30)),
    can_support=maybe_bool,
    disability_grade=st.one_of(st.none(), st.integers(1, 4)),
    adopted=maybe_bool,
)
member_strategy = optional(
    relation=st.one_of(
        st.none(), st.sampled_from(["spouse", "child", "grandchild", "caregiver", "other"])
    ),
    age=st.one_of(st.none(), st.integers(0, 110)),
)
as_of_strategy = st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31))

facts_strategy = st.builds(
    lambda as_of, born, rest: {"id": 1, "as_of": as_of.isoformat(), **born, **rest},
    as_of_strategy,
    optional(birth_date=st.dates(dt.date(1900, 1, 1), dt.date(2019, 12, 31)).map(str)),
    optional(
        rural=maybe_bool,
        relatives_same_subdistrict=maybe_bool,
        daily_companionship=maybe_bool,
        extremely_poor=maybe_bool,
        dementia=maybe_bool,
        spouse=st.one_of(st.none(), optional(alive=maybe_bool, lives_with=maybe_bool)),
        children=st.one_of(st.none(), st.lists(child_strategy, max_size=4)),
        household=st.one_of(st.none(), st.lists(member_strategy, max_size=3)),
        capability_level=st.one_of(st.none(), st.integers(0, 3)),
        disability=st.one_of(
            st.none(),
            optional(
                grade=st.one_of(st.none(), st.integers(1, 4)),
                type=st.one_of(st.none(), st.sampled_from(DISABILITY_TYPES)),
            ),
        ),
    ),
)

# Everything known: no key absent and no unknown null.
complete_child = st.fixed_dictionaries(
    {
        "alive": st.booleans(),
        "age": st.integers(0, 100),
        "lives_with": st.booleans(),
        "same_subdistrict": st.booleans(),
        "away_months": st.integers(0, 30),
        "can_support": st.booleans(),
        "disability_grade": st.one_of(st.none(), st.integers(1, 4)),
    }
)
complete_facts = st.fixed_dictionaries(
    {
        "as_of": st.just(AS_OF),
        "birth_date": st.dates(dt.date(1900, 1, 1), dt.date(2000, 1, 1)).map(str),
        "rural": st.booleans(),
        "relatives_same_subdistrict": st.booleans(),
        "daily_companionship": st.booleans(),
        "extremely_poor": st.booleans(),
        "dementia": st.booleans(),
        "spouse": st.one_of(
            st.none(),
            st.fixed_dictionaries({"alive": st.booleans(), "lives_with": st.booleans()}),
        ),
        "children": st.lists(complete_child, max_size=4),
        "household": st.lists(
            st.fixed_dictionaries(
                {
                    "relation": st.sampled_from(["spouse", "child", "caregiver", "other"]),
                    "age": st.integers(0, 110),
                }
            ),
            max_size=3,
        ),
        "capability_level": st.integers(0, 3),
        "disability": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"grade": st.integers(1, 4), "type": st.sampled_from(DISABILITY_TYPES)}
            ),
        ),
    }
)


def _values_for(fact: str, op: str) -> st.SearchStrategy[Any]:
    kind = RULE_FACTS[fact]
    if kind == "bool":
        one: st.SearchStrategy[Any] = st.booleans()
    elif kind == "type":
        one = st.one_of(st.none(), st.sampled_from(DISABILITY_TYPES))
    elif kind == "level":
        one = st.integers(0, 3)
    elif kind == "grade":
        one = (
            st.integers(1, 4)
            if op in ("<", "<=", ">", ">=")
            else st.one_of(st.none(), st.integers(1, 4))
        )
    else:
        one = st.integers(0, 100)
    if op in ("in", "not_in"):
        return st.lists(one, min_size=1, max_size=3)
    return one


@st.composite
def condition_strategy(draw: st.DrawFn) -> dict[str, Any]:
    fact = draw(st.sampled_from(sorted(RULE_FACTS)))
    ops = ["==", "!=", "in", "not_in"]
    if RULE_FACTS[fact] not in ("bool", "type"):
        ops += ["<", "<=", ">", ">="]
    op = draw(st.sampled_from(ops))
    return {"fact": fact, "op": op, "value": draw(_values_for(fact, op))}


rules_strategy = st.lists(st.lists(condition_strategy(), min_size=1, max_size=3), max_size=3).map(
    lambda rules: compile_other_rules(
        [{"code": f"r{i}", "label": f"rule {i}", "all": c} for i, c in enumerate(rules)]
    )
)


def _removable_paths(facts: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every key whose removal turns a known fact into an unknown one."""
    paths: list[tuple[Any, ...]] = []
    for key, value in facts.items():
        if key in ("id", "as_of"):
            continue
        paths.append((key,))
        if isinstance(value, dict):
            paths += [(key, sub) for sub in value]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                paths += [(key, i, sub) for sub in item]
    return paths


def _without(facts: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    copy = deepcopy(facts)
    target: Any = copy
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return copy


def _answers(facts: dict[str, Any], rules: tuple[OtherRule, ...]) -> dict[str, bool | None]:
    """Each category: True, False, or None when undecided."""
    result = classify(facts, rules)
    undecided = missing_by_category(facts, rules)
    return {c: None if c in undecided else c in result.categories for c in CATEGORIES}


PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(facts_strategy, rules_strategy)
def test_any_valid_input_classifies_into_json(raw: dict[str, Any], rules: tuple) -> None:
    result = classify(parse_facts(raw), rules)
    for lang in LANGUAGES:
        text = json.dumps(result.as_json(lang), ensure_ascii=False)
        assert json.loads(text)["categories"] == list(result.categories)
    json.dumps(result.reason_codes)
    assert list(result.categories) == [c for c in CATEGORIES if c in result.categories]
    assert set(result.reason_codes) == set(result.categories)
    assert list(result.missing_facts) == sorted(set(result.missing_facts))


@PROPERTY_SETTINGS
@given(facts_strategy, rules_strategy)
def test_focus_is_advanced_age_and_a_focus_category(raw: dict[str, Any], rules: tuple) -> None:
    result = classify(parse_facts(raw), rules)
    assert result.focus == (
        result.advanced_age and any(c in result.categories for c in FOCUS_SOURCES)
    )


@PROPERTY_SETTINGS
@given(facts_strategy, rules_strategy)
def test_missing_facts_belong_to_undecided_categories(raw: dict[str, Any], rules: tuple) -> None:
    facts = parse_facts(raw)
    result = classify(facts, rules)
    undecided = missing_by_category(facts, rules)
    for category, missing in undecided.items():
        assert category not in result.categories
        assert missing, f"{category} undecided without a missing fact"
    reported = set().union(*undecided.values()) if undecided else set()
    age_facts = {"birth_date"} if facts.get("birth_date") is None else set()
    assert set(result.missing_facts) == reported | age_facts


@PROPERTY_SETTINGS
@given(facts_strategy, rules_strategy)
def test_removing_a_fact_never_changes_a_definite_answer(raw: dict[str, Any], rules: tuple) -> None:
    facts = parse_facts(raw)
    before = _answers(facts, rules)
    for path in _removable_paths(facts):
        after = _answers(_without(facts, path), rules)
        for category in CATEGORIES:
            if before[category] is not None and after[category] is not None:
                assert before[category] == after[category], (category, path)


@PROPERTY_SETTINGS
@given(complete_facts, rules_strategy)
def test_complete_facts_decide_everything(raw: dict[str, Any], rules: tuple) -> None:
    facts = parse_facts(raw)
    assert classify(facts, rules).missing_facts == ()
    assert missing_by_category(facts, rules) == {}


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 200),
        st.floats(allow_nan=False),
        st.text(alphabet="ab-0123456789", max_size=12),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["alive", "age", "grade", "type", "x"]), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    facts_strategy,
    st.sampled_from(
        [
            "id",
            "as_of",
            "birth_date",
            "rural",
            "spouse",
            "children",
            "household",
            "capability_level",
            "disability",
            "dementia",
        ]
    ),
    json_values,
)
def test_garbage_values_raise_only_facts_error(raw: dict[str, Any], key: str, value: Any) -> None:
    raw[key] = value
    try:
        facts = parse_facts(raw)
    except FactsError as exc:
        assert exc.field.split(".")[0].split("[")[0] == key
        return
    classify(facts)
