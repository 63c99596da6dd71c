"""The six categories of 二.(二) and the classification of one elder."""

from __future__ import annotations

from typing import Any

from tanfang.registry.classification.base import (
    _ABSENT,
    _GRADE_3_TYPES,
    ADVANCED_AGE,
    CATEGORIES,
    ELDERLY_AGE,
    NON_RELATIVES,
    Classification,
    Facts,
    Outcome,
    Reason,
)
from tanfang.registry.classification.children import (
    _adult_and_apart,
    _apart,
    _away,
    _away_or_cannot_support,
    _every_living_child,
    _no_living_child,
    _some_living_child,
)
from tanfang.registry.classification.other_rules import (
    OtherRule,
    _other,
)


def _living_alone(facts: Facts, children: Any, miss: list[str]) -> Outcome:
    """独居: (a) no spouse and no living child; or (b) no living child, spouse or relative
    with the elder or in the same subdistrict, and no daily companionship and care."""
    mark = len(miss)
    spouse = facts.get("spouse", _ABSENT)
    # (a)
    if spouse is None:
        no_spouse: bool | None = True
    elif spouse is _ABSENT:
        no_spouse = None
        miss.append("spouse")
    else:
        alive = spouse.get("alive")
        if alive is None:
            no_spouse = None
            miss.append("spouse.alive")
        else:
            no_spouse = not alive
    a: bool | None = False
    if no_spouse is not False:
        if children is None:
            miss.append("children")
            a = None
        else:
            no_child = _no_living_child(children, miss)
            if no_child is True and no_spouse is True:
                return ("living_alone.no_spouse_no_children", {})
            a = False if no_child is False else None
        if a is False:
            del miss[mark:]
    # (b)
    b_mark = len(miss)
    b = _nobody_near(facts, spouse, children, miss)
    if b is True:
        del miss[mark:]
        return ("living_alone.no_one_nearby", {})
    if b is False:
        del miss[b_mark:]
        return None if a is None else False
    return None


def _nobody_near(facts: Facts, spouse: Any, children: Any, miss: list[str]) -> bool | None:
    mark = len(miss)
    result: bool | None = True
    companionship = facts.get("daily_companionship")
    if companionship is True:
        return False
    if companionship is None:
        miss.append("daily_companionship")
        result = None
    relatives = facts.get("relatives_same_subdistrict")
    if relatives is True:
        del miss[mark:]
        return False
    if relatives is None:
        miss.append("relatives_same_subdistrict")
        result = None
    # A spouse living with the elder.
    if spouse is _ABSENT:
        miss.append("spouse")
        result = None
    elif spouse is not None:
        alive = spouse.get("alive")
        lives_with = spouse.get("lives_with")
        if alive is not False and lives_with is not False:
            if alive is True and lives_with is True:
                del miss[mark:]
                return False
            if alive is None:
                miss.append("spouse.alive")
            if lives_with is None:
                miss.append("spouse.lives_with")
            result = None
    # A relative in the household.
    household = facts.get("household")
    if household is None:
        miss.append("household")
        result = None
    else:
        for i, member in enumerate(household):
            relation = member.get("relation")
            if relation is None:
                miss.append(f"household[{i}].relation")
                result = None
            elif relation not in NON_RELATIVES:
                del miss[mark:]
                return False
    # A living child with the elder or in the same subdistrict.
    if children is None:
        miss.append("children")
        return None
    apart = _every_living_child(children, miss, _apart)
    if apart is False:
        del miss[mark:]
        return False
    return result if apart is True else None


def _empty_nest(facts: Facts, children: Any, miss: list[str]) -> Outcome:
    """空巢: (a) every living child (at least one) is adult and lives apart, outside the
    subdistrict; or (b) a household of old people only (60+, at least one other member)."""
    mark = len(miss)
    if children is None:
        miss.append("children")
        a: bool | None = None
    else:
        no_child = _no_living_child(children, miss)
        if no_child is True:
            a = False
        else:
            apart = _every_living_child(children, miss, _adult_and_apart)
            if apart is False:
                del miss[mark:]
                a = False
            elif apart is True and no_child is False:
                return ("empty_nest.children_left", {})
            else:
                a = None
    household = facts.get("household")
    if household is None:
        miss.append("household")
        return None
    if not household:
        return None if a is None else False
    b_mark = len(miss)
    b: bool | None = True
    for i, member in enumerate(household):
        age = member.get("age")
        if age is None:
            miss.append(f"household[{i}].age")
            b = None
        elif age < ELDERLY_AGE:
            del miss[b_mark:]
            return None if a is None else False
    if b is True:
        del miss[mark:]
        return ("empty_nest.elderly_household", {})
    return None


def _left_behind(facts: Facts, children: Any, miss: list[str]) -> Outcome:
    """留守: rural; every living child away half a year or more or unable to support, with
    at least one away."""
    rural = facts.get("rural")
    if rural is False:
        return False
    mark = len(miss)
    if rural is None:
        miss.append("rural")
    if children is None:
        miss.append("children")
        return None
    some_away = _some_living_child(children, miss, _away)
    if some_away is False:
        del miss[mark:]
        return False
    all_away = _every_living_child(children, miss, _away_or_cannot_support)
    if all_away is False:
        del miss[mark:]
        return False
    if rural is True and some_away is True and all_away is True:
        return ("left_behind.children_away", {})
    return None


def _impaired(facts: Facts, miss: list[str]) -> Outcome:
    """失能: capability assessment level 1 (severe), 2 (moderate) or 3 (mild)."""
    level = facts.get("capability_level")
    if level is None:
        miss.append("capability_level")
        return None
    if 1 <= level <= 3:
        return ("impaired.level", {"level": level})
    return False


def _severely_disabled(facts: Facts, miss: list[str]) -> Outcome:
    """重残: certificate grade 1 or 2; or grade 3 for intellectual or mental disability."""
    disability = facts.get("disability", _ABSENT)
    if disability is None:
        return False
    if disability is _ABSENT:
        miss.append("disability")
        return None
    grade = disability.get("grade")
    kind = disability.get("type")
    if grade is None:
        miss.append("disability.grade")
        if kind is None:
            miss.append("disability.type")
        return None
    if grade == 1 or grade == 2:
        return ("severely_disabled.grade_1_2", {"grade": grade, "type": kind})
    if grade != 3:
        return False
    if kind is None:
        miss.append("disability.type")
        return None
    if kind in _GRADE_3_TYPES:
        return ("severely_disabled.grade_3_intellectual_mental", {"grade": 3, "type": kind})
    return False


def _fp_special_family(children: Any, miss: list[str]) -> Outcome:
    """计划生育特殊家庭: exactly one child ever, who died or is disabled grade 1-3."""
    if children is None:
        miss.append("children")
        return None
    if len(children) != 1:
        return False
    child = children[0]
    alive = child.get("alive")
    if alive is False:
        return ("fp_special_family.only_child_died", {})
    grade = child.get("disability_grade", _ABSENT)
    if grade is not _ABSENT and grade is not None and grade <= 3:
        return ("fp_special_family.only_child_disabled", {"grade": grade})
    if grade is _ABSENT:
        miss.append("children[0].disability_grade")
    elif alive is True:
        return False
    if alive is None:
        miss.append("children[0].alive")
    return None


def _age(facts: Facts, miss: list[str]) -> int | None:
    """Full years on ``as_of``; a 29 February birthday falls on 1 March in common years."""
    birth = facts.get("birth_date")
    as_of = facts.get("as_of")
    if birth is None or as_of is None:
        if birth is None:
            miss.append("birth_date")
        if as_of is None:
            miss.append("as_of")
        return None
    return int(as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day)))


def _evaluate(
    facts: Facts, other_rules: tuple[OtherRule, ...]
) -> tuple[int | None, list[Outcome], list[str], list[int]]:
    """Age, each category's outcome, the missing facts, and where each category's missing
    facts start and end in that list (``bounds[i]:bounds[i + 1]``)."""
    miss: list[str] = []
    age = _age(facts, miss)
    children = facts.get("children")
    bounds = [len(miss)]
    outcomes: list[Outcome] = [_living_alone(facts, children, miss)]
    bounds.append(len(miss))
    outcomes.append(_empty_nest(facts, children, miss))
    bounds.append(len(miss))
    outcomes.append(_left_behind(facts, children, miss))
    bounds.append(len(miss))
    outcomes.append(_impaired(facts, miss))
    bounds.append(len(miss))
    outcomes.append(_severely_disabled(facts, miss))
    bounds.append(len(miss))
    outcomes.append(_fp_special_family(children, miss))
    bounds.append(len(miss))
    if other_rules:
        outcomes.append(_other(facts, children, age, outcomes, bounds, other_rules, miss))
    else:
        outcomes.append(False)
    bounds.append(len(miss))
    return age, outcomes, miss, bounds


def classify(facts: Facts, other_rules: tuple[OtherRule, ...] = ()) -> Classification:
    """Classify one elder. ``facts`` is trusted: validate outside input with ``parse_facts``."""
    if other_rules:
        age, outcomes, miss, _ = _evaluate(facts, other_rules)
    else:
        # The same as _evaluate without the bookkeeping only district rules need.
        miss = []
        age = _age(facts, miss)
        children = facts.get("children")
        outcomes = [
            _living_alone(facts, children, miss),
            _empty_nest(facts, children, miss),
            _left_behind(facts, children, miss),
            _impaired(facts, miss),
            _severely_disabled(facts, miss),
            _fp_special_family(children, miss),
            False,
        ]
    categories: list[str] = []
    reason_codes: dict[str, Reason] = {}
    for name, outcome in zip(CATEGORIES, outcomes):  # noqa: B905 - both have 7 items
        if outcome:
            categories.append(name)
            reason_codes[name] = outcome  # type: ignore[assignment]
    advanced = age is not None and age >= ADVANCED_AGE
    return Classification(
        facts.get("id"),
        tuple(categories),
        reason_codes,
        tuple(sorted(set(miss))) if miss else (),
        advanced,
        advanced and bool(outcomes[0] or outcomes[1] or outcomes[2]),
    )


def missing_by_category(
    facts: Facts, other_rules: tuple[OtherRule, ...] = ()
) -> dict[str, tuple[str, ...]]:
    """For each undecided category, the facts that block it (decided ones are left out)."""
    _, outcomes, miss, bounds = _evaluate(facts, other_rules)
    return {
        name: tuple(sorted(set(miss[bounds[i] : bounds[i + 1]])))
        for i, name in enumerate(CATEGORIES)
        if outcomes[i] is None
    }
