"""The districts' "other" category: rules as data, compiled and evaluated (其他)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tanfang.registry.classification.base import (
    _ABSENT,
    _CATEGORY_INDEX,
    _UNKNOWN,
    CATEGORIES,
    DISABILITY_TYPES,
    Facts,
    Outcome,
    RuleError,
)
from tanfang.registry.classification.children import (
    _cpath,
    _lives_with_severely_disabled,
    _some_living_child,
)

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
