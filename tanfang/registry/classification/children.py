"""Three-valued tests over an elder's children, shared by the category rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tanfang.registry.classification.base import (
    _ABSENT,
    ADULT_AGE,
    AWAY_MONTHS,
)


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
