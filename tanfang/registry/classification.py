"""Who is an elder with special difficulties, and why: the rules of 京民养老发〔2024〕1号 二.(二).

A pure function over plain data, shared by the ``classify`` command, the web and batch jobs:
no Django at import time, no database, no gettext. docs/classification.md states the rules,
the input format and every interpretation made here.

The facts may be incomplete, so the rules use three-valued (Kleene) logic: each condition is
true, false or unknown. A category is assigned when its rule is definitely true and left out
when it is definitely false; when it is unknown it is left out too, and the facts that would
decide it are reported in ``missing_facts`` — the system says what it lacks instead of guessing.

How the missing facts are collected: every evaluation appends the paths of the facts it could
not read to one list, and keeps this invariant — an evaluation that reaches a definite answer
leaves the list as it found it (an AND that meets a false operand, or an OR that meets a true
one, cuts the list back to where it started). What remains are exactly the facts blocking an
undecided condition.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tanfang.registry.classification_text import (
    FACT_ERRORS,
    FACT_LABELS,
    FACT_SEPARATOR,
    LANGUAGES,
    PARAM_TABLES,
    RULE_SEPARATOR,
    TEMPLATES,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_BITS",
    "FOCUS_SOURCES",
    "RULE_FACTS",
    "RULE_OPS",
    "Classification",
    "FactsError",
    "OtherRule",
    "RuleError",
    "bits_of",
    "classify",
    "compile_other_rules",
    "missing_by_category",
    "parse_facts",
    "render_reason",
]

CATEGORIES: tuple[str, ...] = (
    "living_alone",
    "empty_nest",
    "left_behind",
    "impaired",
    "severely_disabled",
    "fp_special_family",
    "other",
)
CATEGORY_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(CATEGORIES)}
FOCUS_SOURCES: tuple[str, ...] = ("living_alone", "empty_nest", "left_behind")

ADVANCED_AGE = 80  # 高龄
ADULT_AGE = 18
ELDERLY_AGE = 60  # members of a 纯老年人家庭, and a child who may live with them
AWAY_MONTHS = 6  # 长期（半年及以上）
DISABILITY_TYPES: tuple[str, ...] = (
    "visual",
    "hearing",
    "speech",
    "physical",
    "intellectual",
    "mental",
    "multiple",
)
_GRADE_3_TYPES = frozenset({"intellectual", "mental"})
# Household relations that are not family; every other relation counts as a relative.
NON_RELATIVES = frozenset({"caregiver", "other"})

Reason = tuple[str, dict[str, Any]]
Facts = dict[str, Any]
# A category's evaluation: a reason when true, False when false, None when undecided.
Outcome = Reason | bool | None

_ABSENT: Any = object()  # a key that is not there, where None is a known value
_UNKNOWN: Any = object()  # a rule fact that cannot be read


class FactsError(ValueError):
    """An input object does not have the documented shape; ``field`` names the bad value."""

    def __init__(self, field: str, message: str, message_zh: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.message_zh = message_zh or message


class RuleError(ValueError):
    """A district's "other" rule is malformed; ``rule`` is its code (or ``#index``)."""

    def __init__(self, rule: str, field: str, message: str) -> None:
        where = f"rule {rule}" + (f", {field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.rule = rule
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True, slots=True)
class Classification:
    """The categories of one elder, each with the reason it was assigned."""

    id: object
    categories: tuple[str, ...]
    reason_codes: dict[str, Reason]
    missing_facts: tuple[str, ...]
    advanced_age: bool
    focus: bool

    def reasons(self, lang: str = "zh-hans") -> dict[str, str]:
        return {
            cat: render_reason(code, params, lang)
            for cat, (code, params) in self.reason_codes.items()
        }

    def as_json(self, lang: str = "zh-hans") -> dict[str, Any]:
        return {
            "id": self.id,
            "categories": list(self.categories),
            "reasons": self.reasons(lang),
            "missing_facts": list(self.missing_facts),
            "advanced_age": self.advanced_age,
            "focus": self.focus,
        }


def render_reason(code: str, params: dict[str, Any], lang: str) -> str:
    """The words of a stored reason. An unknown code (say, from an older version) is shown
    as the code itself rather than breaking the page that shows it."""
    if lang not in TEMPLATES:
        raise ValueError(f"unknown language {lang!r}; use one of {', '.join(LANGUAGES)}")
    template = TEMPLATES[lang].get(code)
    if template is None:
        return code
    if code == "other.rules":
        labels = FACT_LABELS[lang]
        sep = FACT_SEPARATOR[lang]
        return RULE_SEPARATOR[lang].join(
            template.format(
                label=rule.get("label", ""),
                facts=sep.join(labels.get(f, f) for f in rule.get("facts", ())),
            )
            for rule in params.get("rules", ())
        )
    tables = PARAM_TABLES[lang]
    words = {k: tables[k].get(v, v) if k in tables else v for k, v in params.items()}
    try:
        return template.format_map(words)
    except (KeyError, IndexError, ValueError):
        return code


def bits_of(categories: Iterable[str]) -> int:
    """The categories as one integer, a bit per category (for indexed filtering)."""
    bits = 0
    for name in categories:
        try:
            bits |= CATEGORY_BITS[name]
        except KeyError:
            raise ValueError(f"unknown category {name!r}") from None
    return bits


# --------------------------------------------------------------------------- children


def _cpath(i: int, key: str) -> str:
    return f"children[{i}].{key}"


ChildTest = Callable[[dict[str, Any], int, list[str]], bool | None]


def _no_living_child(children: list[dict[str, Any]], miss: list[str]) -> bool | None:
    mark = len(miss)
    result: bool | None = True
    for i, child in enumerate(children):
        alive = child.get("alive")
        if alive is True:
            del miss[mark:]
            return False
        if alive is None:
            miss.append(_cpath(i, "alive"))
            result = None
    return result


def _every_living_child(
    children: list[dict[str, Any]], miss: list[str], test: ChildTest
) -> bool | None:
    """For every child: not alive, or ``test`` holds."""
    mark = len(miss)
    result: bool | None = True
    for i, child in enumerate(children):
        alive = child.get("alive")
        if alive is False:
            continue
        held = test(child, i, miss)
        if held is True:
            continue
        if held is False and alive is True:
            del miss[mark:]
            return False
        if alive is None:
            miss.append(_cpath(i, "alive"))
        result = None
    return result


def _some_living_child(
    children: list[dict[str, Any]], miss: list[str], test: ChildTest
) -> bool | None:
    """For some child: alive, and ``test`` holds."""
    mark = len(miss)
    result: bool | None = False
    for i, child in enumerate(children):
        alive = child.get("alive")
        if alive is False:
            continue
        held = test(child, i, miss)
        if held is False:
            continue
        if held is True and alive is True:
            del miss[mark:]
            return True
        if alive is None:
            miss.append(_cpath(i, "alive"))
        result = None
    return result


def _apart(child: dict[str, Any], i: int, miss: list[str]) -> bool | None:
    """Neither lives with the elder nor in the same subdistrict."""
    lives_with = child.get("lives_with")
    same = child.get("same_subdistrict")
    if lives_with is True or same is True:
        return False
    if lives_with is None or same is None:
        if lives_with is None:
            miss.append(_cpath(i, "lives_with"))
        if same is None:
            miss.append(_cpath(i, "same_subdistrict"))
        return None
    return True


def _adult_and_apart(child: dict[str, Any], i: int, miss: list[str]) -> bool | None:
    age = child.get("age")
    if age is not None and age < ADULT_AGE:
        return False
    apart = _apart(child, i, miss)
    if apart is False:
        return False
    if age is None:
        miss.append(_cpath(i, "age"))
        return None
    return apart


def _away(child: dict[str, Any], i: int, miss: list[str]) -> bool | None:
    months = child.get("away_months")
    if months is None:
        miss.append(_cpath(i, "away_months"))
        return None
    return bool(months >= AWAY_MONTHS)


def _away_or_cannot_support(child: dict[str, Any], i: int, miss: list[str]) -> bool | None:
    months = child.get("away_months")
    if months is not None and months >= AWAY_MONTHS:
        return True
    can_support = child.get("can_support")
    if can_support is False:
        return True
    if months is None or can_support is None:
        if months is None:
            miss.append(_cpath(i, "away_months"))
        if can_support is None:
            miss.append(_cpath(i, "can_support"))
        return None
    return False


def _lives_with_severely_disabled(child: dict[str, Any], i: int, miss: list[str]) -> bool | None:
    lives_with = child.get("lives_with")
    grade = child.get("disability_grade", _ABSENT)
    if lives_with is False or grade is None or (grade is not _ABSENT and grade > 2):
        return False
    if lives_with is True and grade is not _ABSENT:
        return True
    if lives_with is None:
        miss.append(_cpath(i, "lives_with"))
    if grade is _ABSENT:
        miss.append(_cpath(i, "disability_grade"))
    return None


# --------------------------------------------------------------------------- categories


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


_CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}


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


# --------------------------------------------------------------------------- "other" rules

# Fact name -> kind; the kind fixes which operators and values a condition may use.
RULE_FACTS: dict[str, str] = {
    "age": "number",
    "rural": "bool",
    "extremely_poor": "bool",
    "dementia": "bool",
    "daily_companionship": "bool",
    "relatives_same_subdistrict": "bool",
    "capability_level": "level",
    "disability_grade": "grade",
    "disability_type": "type",
    "living_children": "number",
    "household_size": "number",
    "lives_with_disabled_child": "bool",
    **{name: "bool" for name in CATEGORIES if name != "other"},
}


def _ordered(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    # A value that is known to be absent (no certificate, so no grade) is not below or above
    # anything.
    return lambda actual, expected: actual is not None and test(actual, expected)


RULE_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
    "in": lambda actual, expected: actual in expected,
    "not_in": lambda actual, expected: actual not in expected,
}
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})


class Condition(NamedTuple):
    fact: str
    op: str
    value: Any  # a tuple for in / not_in


@dataclass(frozen=True, slots=True)
class OtherRule:
    """A district's rule for the "other" category: it holds when all conditions hold."""

    code: str
    label: str
    conditions: tuple[Condition, ...]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_ok(kind: str, value: object, ordered: bool) -> str | None:
    """None when ``value`` suits a fact of ``kind``, else what is wrong."""
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "type":
        if value is None or value in DISABILITY_TYPES:
            return None
        return f"must be null or one of {', '.join(DISABILITY_TYPES)}"
    if kind == "grade" and value is None and not ordered:
        return None  # no certificate
    if not _is_number(value):
        return "must be a number"
    if not ordered and kind == "level" and value not in (0, 1, 2, 3):
        return "must be a capability level 0-3 (0 intact, 1 severe, 2 moderate, 3 mild)"
    if not ordered and kind == "grade" and value not in (1, 2, 3, 4):
        return "must be a disability grade 1-4 or null"
    return None


def _compile_condition(rule: str, where: str, raw: object) -> Condition:
    if not isinstance(raw, dict):
        raise RuleError(rule, where, "must be an object with fact, op and value")
    for key in raw:
        if key not in ("fact", "op", "value"):
            raise RuleError(rule, f"{where}.{key}", "unknown key")
    for key in ("fact", "op", "value"):
        if key not in raw:
            raise RuleError(rule, f"{where}.{key}", "is required")
    fact, op, value = raw["fact"], raw["op"], raw["value"]
    kind = RULE_FACTS.get(fact) if isinstance(fact, str) else None
    if kind is None:
        raise RuleError(rule, f"{where}.fact", f"unknown fact {fact!r}; see docs/classification.md")
    if not isinstance(op, str) or op not in RULE_OPS:
        raise RuleError(rule, f"{where}.op", f"unknown operator {op!r}; use {', '.join(RULE_OPS)}")
    ordered = op in _ORDER_OPS
    if ordered and kind in ("bool", "type"):
        raise RuleError(rule, f"{where}.op", f"{op} cannot compare {fact}")
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(rule, f"{where}.value", f"{op} needs a non-empty list")
        for j, item in enumerate(value):
            problem = _value_ok(kind, item, False)
            if problem:
                raise RuleError(rule, f"{where}.value[{j}]", problem)
        return Condition(fact, op, tuple(value))
    problem = _value_ok(kind, value, ordered)
    if problem:
        raise RuleError(rule, f"{where}.value", problem)
    return Condition(fact, op, value)


def compile_other_rules(raw: list[dict[str, Any]]) -> tuple[OtherRule, ...]:
    """Check a district's rules and turn them into ``OtherRule``; a RuleError names the rule
    and the field at fault."""
    if not isinstance(raw, list):
        raise RuleError("", "", "the rules must be a JSON list")
    compiled: list[OtherRule] = []
    seen: set[str] = set()
    for index, rule in enumerate(raw):
        name = f"#{index}"
        if not isinstance(rule, dict):
            raise RuleError(name, "", "must be an object with code, label and all")
        code = rule.get("code")
        if not isinstance(code, str) or not code.strip():
            raise RuleError(name, "code", "must be a non-empty string")
        if code in seen:
            raise RuleError(code, "code", "is used by another rule")
        seen.add(code)
        for key in rule:
            if key not in ("code", "label", "all"):
                raise RuleError(code, key, "unknown key (a rule has code, label and all)")
        label = rule.get("label")
        if not isinstance(label, str) or not label.strip():
            raise RuleError(code, "label", "must be a non-empty string")
        conditions = rule.get("all")
        if not isinstance(conditions, list) or not conditions:
            raise RuleError(code, "all", "must be a non-empty list of conditions")
        compiled.append(
            OtherRule(
                code,
                label,
                tuple(_compile_condition(code, f"all[{j}]", c) for j, c in enumerate(conditions)),
            )
        )
    return tuple(compiled)


# Rule facts read straight from the input, where None means unknown.
_PLAIN_RULE_FACTS = frozenset(
    {
        "rural",
        "extremely_poor",
        "dementia",
        "daily_companionship",
        "relatives_same_subdistrict",
        "capability_level",
    }
)


def _rule_fact(
    fact: str,
    facts: Facts,
    children: Any,
    age: int | None,
    outcomes: list[Outcome],
    bounds: list[int],
    miss: list[str],
) -> Any:
    """The value of a rule fact, or _UNKNOWN with the blocking facts appended to ``miss``."""
    if fact in _PLAIN_RULE_FACTS:
        value = facts.get(fact)
        if value is None:
            miss.append(fact)
            return _UNKNOWN
        return value
    if fact == "age":
        if age is None:
            miss.extend(miss[: bounds[0]])  # birth_date and/or as_of
            return _UNKNOWN
        return age
    index = _CATEGORY_INDEX.get(fact)
    if index is not None:
        outcome = outcomes[index]
        if outcome is None:
            miss.extend(miss[bounds[index] : bounds[index + 1]])
            return _UNKNOWN
        return bool(outcome)
    if fact in ("disability_grade", "disability_type"):
        disability = facts.get("disability", _ABSENT)
        if disability is None:
            return None
        if disability is _ABSENT:
            miss.append("disability")
            return _UNKNOWN
        key = "grade" if fact == "disability_grade" else "type"
        value = disability.get(key)
        if value is None:
            miss.append(f"disability.{key}")
            return _UNKNOWN
        return value
    if fact == "household_size":
        household = facts.get("household")
        if household is None:
            miss.append("household")
            return _UNKNOWN
        return len(household)
    if fact == "lives_with_disabled_child":
        if children is None:
            miss.append("children")
            return _UNKNOWN
        found = _some_living_child(children, miss, _lives_with_severely_disabled)
        return _UNKNOWN if found is None else found
    raise AssertionError(f"no resolver for rule fact {fact!r}")  # compile_other_rules checks


def _living_children_condition(condition: Condition, children: Any, miss: list[str]) -> bool | None:
    """The count of living children is known to lie in a range; the condition is decided
    when it has the same answer over the whole range."""
    if children is None:
        miss.append("children")
        return None
    mark = len(miss)
    low = high = 0
    for i, child in enumerate(children):
        alive = child.get("alive")
        if alive is True:
            low += 1
            high += 1
        elif alive is None:
            high += 1
            miss.append(_cpath(i, "alive"))
    test = RULE_OPS[condition.op]
    answers = {test(n, condition.value) for n in range(low, high + 1)}
    if len(answers) == 1:
        del miss[mark:]
        return answers.pop()
    return None


def _rule_holds(
    rule: OtherRule,
    facts: Facts,
    children: Any,
    age: int | None,
    outcomes: list[Outcome],
    bounds: list[int],
    miss: list[str],
) -> bool | None:
    mark = len(miss)
    result: bool | None = True
    for condition in rule.conditions:
        if condition.fact == "living_children":
            held = _living_children_condition(condition, children, miss)
        else:
            actual = _rule_fact(condition.fact, facts, children, age, outcomes, bounds, miss)
            held = None if actual is _UNKNOWN else RULE_OPS[condition.op](actual, condition.value)
        if held is False:
            del miss[mark:]
            return False
        if held is None:
            result = None
    return result


def _other(
    facts: Facts,
    children: Any,
    age: int | None,
    outcomes: list[Outcome],
    bounds: list[int],
    rules: tuple[OtherRule, ...],
    miss: list[str],
) -> Outcome:
    """其他: any district rule holds. The reason names every rule that holds."""
    mark = len(miss)
    matched: list[dict[str, Any]] = []
    undecided = False
    for rule in rules:
        held = _rule_holds(rule, facts, children, age, outcomes, bounds, miss)
        if held is True:
            matched.append(
                {
                    "code": rule.code,
                    "label": rule.label,
                    "facts": list(dict.fromkeys(c.fact for c in rule.conditions)),
                }
            )
        elif held is None:
            undecided = True
    if matched:
        del miss[mark:]
        return ("other.rules", {"rules": matched})
    return None if undecided else False


# --------------------------------------------------------------------------- input


def _error(field: str, key: str, **params: object) -> FactsError:
    english, chinese = FACT_ERRORS[key]
    return FactsError(field, english.format(**params), chinese.format(**params))


def _date(field: str, value: object) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _error(field, "not_date")


def _bool(field: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _error(field, "not_bool")


def _int(field: str, value: object, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _error(field, "not_int")
    if not low <= value <= high:
        raise _error(field, "out_of_range", low=low, high=high)
    return value


def _object(field: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _error(field, "not_object")
    return value


def _list(field: str, value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _error(field, "not_list")
    return value


_TOP_BOOLS = (
    "rural",
    "relatives_same_subdistrict",
    "daily_companionship",
    "extremely_poor",
    "dementia",
)
_CHILD_BOOLS = ("alive", "lives_with", "same_subdistrict", "can_support", "adopted")
MAX_AGE = 150


def _child(i: int, raw: object) -> dict[str, Any]:
    where = f"children[{i}]"
    child = _object(where, raw)
    out: dict[str, Any] = {}
    for key in _CHILD_BOOLS:
        if key in child:
            out[key] = _bool(f"{where}.{key}", child[key])
    if "age" in child:
        out["age"] = _int(f"{where}.age", child["age"], 0, MAX_AGE)
    if "disability_grade" in child:
        out["disability_grade"] = _int(f"{where}.disability_grade", child["disability_grade"], 1, 4)
    if "away_months" in child:
        months = child["away_months"]
        if months is not None:
            if not _is_number(months):
                raise _error(f"{where}.away_months", "not_number")
            if not 0 <= months <= MAX_AGE * 12:
                raise _error(f"{where}.away_months", "out_of_range", low=0, high=MAX_AGE * 12)
        out["away_months"] = months
    return out


def _household_member(i: int, raw: object) -> dict[str, Any]:
    where = f"household[{i}]"
    member = _object(where, raw)
    out: dict[str, Any] = {}
    if "relation" in member:
        relation = member["relation"]
        if relation is not None and (not isinstance(relation, str) or not relation.strip()):
            raise _error(f"{where}.relation", "not_text")
        out["relation"] = relation
    if "age" in member:
        out["age"] = _int(f"{where}.age", member["age"], 0, MAX_AGE)
    return out


def parse_facts(obj: object, *, default_as_of: dt.date | None = None) -> Facts:
    """Validate one input object and return the facts ``classify`` reads.

    Dates become ``datetime.date``; unknown keys are dropped. A key that is absent stays
    absent and a null stays null, because they can mean different things (``spouse: null`` is
    "no spouse", a missing ``spouse`` is "not known"). ``as_of`` is required unless
    ``default_as_of`` is given. Raises FactsError naming the field, e.g. ``children[2].age``.
    """
    data = _object("", obj)
    out: Facts = {}
    if "id" in data:
        ident = data["id"]
        if ident is not None and (not isinstance(ident, str | int) or isinstance(ident, bool)):
            raise _error("id", "bad_id")
        out["id"] = ident
    if data.get("as_of") is not None:
        as_of = _date("as_of", data["as_of"])
    elif default_as_of is not None:
        as_of = default_as_of
    else:
        raise _error("as_of", "required")
    out["as_of"] = as_of
    if "birth_date" in data:
        birth = data["birth_date"]
        if birth is not None:
            birth = _date("birth_date", birth)
            if birth > as_of:
                raise _error("birth_date", "after_as_of")
        out["birth_date"] = birth
    for key in _TOP_BOOLS:
        if key in data:
            out[key] = _bool(key, data[key])
    if "spouse" in data:
        spouse = data["spouse"]
        if spouse is not None:
            spouse = _object("spouse", spouse)
            spouse = {
                k: _bool(f"spouse.{k}", spouse[k]) for k in ("alive", "lives_with") if k in spouse
            }
        out["spouse"] = spouse
    if "children" in data:
        children = data["children"]
        if children is not None:
            children = [_child(i, c) for i, c in enumerate(_list("children", children))]
        out["children"] = children
    if "household" in data:
        household = data["household"]
        if household is not None:
            household = [
                _household_member(i, m) for i, m in enumerate(_list("household", household))
            ]
        out["household"] = household
    if "capability_level" in data:
        out["capability_level"] = _int("capability_level", data["capability_level"], 0, 3)
    if "disability" in data:
        out["disability"] = _disability(data["disability"])
    return out


def _disability(raw: object) -> dict[str, Any] | None:
    if raw is None:
        return None
    disability = _object("disability", raw)
    out: dict[str, Any] = {}
    if "grade" in disability:
        out["grade"] = _int("disability.grade", disability["grade"], 1, 4)
    if "type" in disability:
        kind = disability["type"]
        if kind is not None and kind not in DISABILITY_TYPES:
            raise _error("disability.type", "not_choice", choices=", ".join(DISABILITY_TYPES))
        out["type"] = kind
    return out
