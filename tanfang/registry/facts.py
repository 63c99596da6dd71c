"""An elder's stored facts in the shape the classification rules read (docs/classification.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tanfang.registry.models import Elder, SpouseStatus


def elder_facts(elder: Elder, *, as_of: dt.date) -> dict[str, Any]:
    """The classification input for ``elder``; absent keys are facts the registry lacks.

    Expects ``children`` and ``household`` to be prefetched when called in bulk.
    """
    facts: dict[str, Any] = {"id": elder.pk, "as_of": as_of, "birth_date": elder.birth_date}
    if elder.rural is not None:
        facts["rural"] = elder.rural
    if elder.spouse_status == SpouseStatus.NONE:
        facts["spouse"] = None
    elif elder.spouse_status in (SpouseStatus.ALIVE, SpouseStatus.DECEASED):
        spouse: dict[str, Any] = {"alive": elder.spouse_status == SpouseStatus.ALIVE}
        if elder.spouse_status == SpouseStatus.DECEASED:
            spouse["lives_with"] = False
        elif elder.spouse_lives_with is not None:
            spouse["lives_with"] = elder.spouse_lives_with
        facts["spouse"] = spouse
    if elder.children_known:
        facts["children"] = [_child_facts(child, as_of) for child in elder.children.all()]
    if elder.household_known:
        facts["household"] = [
            {"relation": member.relation, "age": member.age}
            if member.age is not None
            else {"relation": member.relation}
            for member in elder.household.all()
        ]
    for name in ("relatives_same_subdistrict", "daily_companionship", "extremely_poor"):
        value = getattr(elder, name)
        if value is not None:
            facts[name] = value
    if elder.capability_level is not None:
        facts["capability_level"] = elder.capability_level
    if elder.disability_status == "none":
        facts["disability"] = None
    elif elder.disability_status == "certified":
        disability: dict[str, Any] = {}
        if elder.disability_grade is not None:
            disability["grade"] = elder.disability_grade
        if elder.disability_type:
            disability["type"] = elder.disability_type
        facts["disability"] = disability
    return facts


def _child_facts(child: Any, as_of: dt.date) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (
        "alive",
        "lives_with",
        "same_subdistrict",
        "away_months",
        "can_support",
        "adopted",
    ):
        value = getattr(child, name)
        if value is not None:
            out[name] = value
    # A recorded child without a certificate grade has none: the grade is known to be absent.
    out["disability_grade"] = child.disability_grade
    if child.birth_year is not None:
        out["age"] = as_of.year - child.birth_year
    return out
