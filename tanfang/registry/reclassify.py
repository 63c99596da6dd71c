"""Recomputing elders' categories from their facts, district rules and hand overrides."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from tanfang.registry import classification as rules
from tanfang.registry.facts import elder_facts
from tanfang.registry.models import (
    CategoryOverride,
    Elder,
    OtherCategoryRule,
    OverrideAction,
)


def other_rules_for(district_ids: Iterable[int]) -> dict[int, tuple[rules.OtherRule, ...]]:
    """The compiled "other" rules of each district."""
    by_district: dict[int, list[dict[str, Any]]] = {}
    for rule in OtherCategoryRule.objects.filter(district_id__in=set(district_ids), active=True):
        by_district.setdefault(rule.district_id, []).append(
            {"code": rule.code, "label": rule.label, **rule.conditions}
        )
    return {d: rules.compile_other_rules(raw) for d, raw in by_district.items()}


def elders_reclassify(*, elders: Sequence[Elder], as_of: dt.date | None = None) -> None:
    """Recompute categories, reasons, missing facts and flags, then apply hand overrides."""
    on = as_of or timezone.localdate()
    compiled = other_rules_for(e.district_id for e in elders)
    overrides: dict[int, list[CategoryOverride]] = {}
    for o in CategoryOverride.objects.filter(
        elder__in=[e.pk for e in elders], revoked_at__isnull=True
    ).order_by("created_at"):
        overrides.setdefault(o.elder_id, []).append(o)
    for elder in elders:
        result = rules.classify(elder_facts(elder, as_of=on), compiled.get(elder.district_id, ()))
        computed = list(result.categories)
        final = set(computed)
        reasons: dict[str, Any] = {c: list(result.reason_codes[c]) for c in computed}
        for o in overrides.get(elder.pk, []):
            if o.action == OverrideAction.ADD:
                final.add(o.category)
                reasons[o.category] = ["manual_add", {"reason": o.reason}]
            else:
                final.discard(o.category)
                reasons.pop(o.category, None)
        ordered = [c for c in rules.CATEGORIES if c in final]
        elder.computed_categories = computed
        elder.categories = ordered
        elder.category_bits = rules.bits_of(ordered)
        elder.category_reasons = reasons
        elder.missing_facts = list(result.missing_facts)
        elder.advanced_age = result.advanced_age
        elder.focus = result.advanced_age and bool(final & set(rules.FOCUS_SOURCES))
        elder.classified_on = on
    Elder.objects.bulk_update(
        elders,
        [
            "computed_categories",
            "categories",
            "category_bits",
            "category_reasons",
            "missing_facts",
            "advanced_age",
            "focus",
            "classified_on",
        ],
        batch_size=500,
    )
