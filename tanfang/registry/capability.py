"""Capability assessment levels in the two schemes Beijing meets, and the mapping between them.

The plan numbers impairment 1 severe, 2 moderate, 3 mild (0: not impaired). The national
standard GB/T 42195-2022 scores 90 points and numbers the other way: 0 intact (90), 1 mild
(66–89), 2 moderate (46–65), 3 severe (30–45), 4 total (0–29); coma means total, and dementia or
two care-risk events (falls, choking, wandering) within 30 days raise the level by one.
"""

from __future__ import annotations

BEIJING = "beijing"
GBT42195 = "gbt42195"

# GB/T 42195 level → the plan's level. "Total" has no Beijing level of its own: it is severe.
_GBT_TO_BEIJING = {0: 0, 1: 3, 2: 2, 3: 1, 4: 1}


class CapabilityError(ValueError):
    pass


def to_beijing_level(scheme: str, level: int) -> int:
    """The plan's numbering for a level given in ``scheme``."""
    if scheme == BEIJING:
        if level not in (0, 1, 2, 3):
            raise CapabilityError(f"Beijing capability levels are 0–3, not {level}")
        return level
    if scheme == GBT42195:
        if level not in _GBT_TO_BEIJING:
            raise CapabilityError(f"GB/T 42195-2022 capability levels are 0–4, not {level}")
        return _GBT_TO_BEIJING[level]
    raise CapabilityError(f"unknown assessment scheme {scheme!r}")


def gbt42195_level(
    score: int, *, coma: bool = False, dementia: bool = False, care_risk_events_30d: int = 0
) -> int:
    """The GB/T 42195-2022 level from the 90-point score and the standard's adjustments."""
    if not 0 <= score <= 90:
        raise CapabilityError(f"a GB/T 42195-2022 score is 0–90, not {score}")
    if coma:
        return 4
    if score == 90:
        level = 0
    elif score >= 66:
        level = 1
    elif score >= 46:
        level = 2
    elif score >= 30:
        level = 3
    else:
        level = 4
    if dementia or care_risk_events_30d >= 2:
        level = min(level + 1, 4)
    return level
