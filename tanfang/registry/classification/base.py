"""Constants, errors and the result type shared by the classification modules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tanfang.registry.classification_text import (
    FACT_LABELS,
    FACT_SEPARATOR,
    LANGUAGES,
    PARAM_TABLES,
    RULE_SEPARATOR,
    TEMPLATES,
)

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
_CATEGORY_INDEX = {name: i for i, name in enumerate(CATEGORIES)}
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
