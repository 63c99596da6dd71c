"""Validating one input object into the facts the rules read (docs/classification.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tanfang.registry.classification.base import (
    DISABILITY_TYPES,
    Facts,
    FactsError,
)
from tanfang.registry.classification.other_rules import (
    _is_number,
)
from tanfang.registry.classification_text import (
    FACT_ERRORS,
)


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
