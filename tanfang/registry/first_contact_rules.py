"""Who should be an elder's first contact (二.(一).2), as a pure rule over plain data.

- An elder with living children: a child is the first contact (and is reminded of the legal
  duty of support). We prefer a child who lives with the elder, then one in the same
  subdistrict, then one able to support, then the eldest.
- No children and nobody living with them: the community designates a first contact.
- No children but someone living with them: the community still designates, and may choose a
  member of the household.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FirstContactAdvice:
    kind: str  # "child" | "community_designates" | "unknown"
    child_index: int | None = None


def advise_first_contact(children: list[dict[str, Any]] | None) -> FirstContactAdvice:
    """``children``: the classification's child facts (None when the registry lacks them)."""
    if children is None:
        return FirstContactAdvice("unknown")
    living = [(i, c) for i, c in enumerate(children) if c.get("alive") is not False]
    if not living:
        return FirstContactAdvice("community_designates")

    def rank(item: tuple[int, dict[str, Any]]) -> tuple[int, int, int, int]:
        _, c = item
        return (
            0 if c.get("lives_with") else 1,
            0 if c.get("same_subdistrict") else 1,
            0 if c.get("can_support") is not False else 1,
            -(c.get("age") or 0),
        )

    best, _ = min(living, key=rank)
    return FirstContactAdvice("child", best)


def first_contact_problem(
    *, has_current: bool, is_child: bool, advice: FirstContactAdvice, confirmed_days_ago: int | None
) -> str | None:
    """A data-quality problem with the first contact, or None.

    ``missing``: none recorded. ``not_a_child``: the elder has living children but the first
    contact is not one of them. ``stale``: not confirmed for more than a year.
    """
    if not has_current:
        return "missing"
    if advice.kind == "child" and not is_child:
        return "not_a_child"
    if confirmed_days_ago is not None and confirmed_days_ago > 365:
        return "stale"
    return None
