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

from tanfang.registry.classification.base import (
    CATEGORIES,
    CATEGORY_BITS,
    DISABILITY_TYPES,
    FOCUS_SOURCES,
    Classification,
    Facts,
    FactsError,
    Reason,
    RuleError,
    bits_of,
    render_reason,
)
from tanfang.registry.classification.categories import (
    classify,
    missing_by_category,
)
from tanfang.registry.classification.facts_input import (
    parse_facts,
)
from tanfang.registry.classification.other_rules import (
    RULE_FACTS,
    RULE_OPS,
    Condition,
    OtherRule,
    compile_other_rules,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_BITS",
    "DISABILITY_TYPES",
    "FOCUS_SOURCES",
    "RULE_FACTS",
    "RULE_OPS",
    "Classification",
    "Condition",
    "Facts",
    "FactsError",
    "OtherRule",
    "Reason",
    "RuleError",
    "bits_of",
    "classify",
    "compile_other_rules",
    "missing_by_category",
    "parse_facts",
    "render_reason",
]
