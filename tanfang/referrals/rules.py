"""Referral rules as plain functions over plain data (DOMAIN.md, "Referral and emergencies").

- Route: an extremely poor elder, or a bereaved/disabled only-child family
  (``fp_special_family``), or an elder in one of the district's extra categories, has each
  need found referred to the subdistrict of usual residence; every other elder's needs are
  told to her first contact (the family helper does that).
- Steps: received -> accepted -> matched (to a service) -> done; any open step may be
  declined, with a reason. Done and declined close the referral.
- Time limits: each open step has one (hours to accept, days to match, days to get it
  done); past it the referral is overdue and escalates to the district once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    """The states of a referral (the same values as ``models.ReferralState``)."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    MATCHED = "matched"
    DONE = "done"
    DECLINED = "declined"


class RouteKind(StrEnum):
    REFERRAL = "referral"
    FAMILY = "family"


# The plan's two groups whose needs go to the subdistrict (二.(五).4).
EXTREMELY_POOR = "extremely_poor"
PLAN_CATEGORIES = ("fp_special_family",)
# Needs that are not referred: danger to life is an emergency (an emergency case), not a
# referral that waits for a service.
NOT_REFERRED = frozenset({"emergency_rescue"})
# The need a monitoring alert closed as "needed help" stands for.
ALERT_HELP = "alert_help"

TRANSITIONS: dict[Step, tuple[Step, ...]] = {
    Step.RECEIVED: (Step.ACCEPTED, Step.DECLINED),
    Step.ACCEPTED: (Step.MATCHED, Step.DECLINED),
    Step.MATCHED: (Step.DONE, Step.DECLINED),
}
CLOSED = frozenset({Step.DONE, Step.DECLINED})


@dataclass(frozen=True)
class Route:
    """Where an elder's needs go, and why (``reason``: the category that sends them)."""

    kind: RouteKind
    reason: str = ""

    @property
    def referral(self) -> bool:
        return self.kind == RouteKind.REFERRAL


@dataclass(frozen=True)
class TimeLimits:
    accept_hours: int = 24
    match_days: int = 3
    done_days: int = 14


def route_of(
    *,
    extremely_poor: bool | None,
    categories: Iterable[str],
    extra_categories: Iterable[str] = (),
) -> Route:
    """The route of an elder's needs: referral (with the first reason that applies, the plan's
    before the district's) or family. An unknown ``extremely_poor`` (None) is not a reason."""
    if extremely_poor is True:
        return Route(RouteKind.REFERRAL, EXTREMELY_POOR)
    held = set(categories)
    for code in (*PLAN_CATEGORIES, *extra_categories):
        if code in held:
            return Route(RouteKind.REFERRAL, code)
    return Route(RouteKind.FAMILY)


def referred_needs(needs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The needs that become referrals, in order, each once (emergencies are left out)."""
    seen: set[str] = set()
    kept = []
    for code, detail in needs:
        if not code or code in NOT_REFERRED or code in seen:
            continue
        seen.add(code)
        kept.append((code, detail))
    return kept


def next_states(state: str) -> tuple[Step, ...]:
    """The steps possible from ``state`` (none once closed)."""
    try:
        return TRANSITIONS.get(Step(state), ())
    except ValueError:
        return ()


def can_move(state: str, to: str) -> bool:
    return to in next_states(state)


def is_closed(state: str) -> bool:
    return state in CLOSED


def step_limit(state: str, limits: TimeLimits) -> dt.timedelta | None:
    """How long the step ``state`` may take: to accept, to match, to get it done."""
    if state == Step.RECEIVED:
        return dt.timedelta(hours=limits.accept_hours)
    if state == Step.ACCEPTED:
        return dt.timedelta(days=limits.match_days)
    if state == Step.MATCHED:
        return dt.timedelta(days=limits.done_days)
    return None


def due_after(state: str, at: dt.datetime, limits: TimeLimits) -> dt.datetime | None:
    """When the step ``state``, entered at ``at``, is due (None: a closed referral)."""
    limit = step_limit(state, limits)
    return at + limit if limit is not None else None


def is_overdue(*, state: str, due_at: dt.datetime, now: dt.datetime) -> bool:
    return not is_closed(state) and due_at < now


def step_problem(*, state: str, to: str, reason: str, result: str, has_service: bool) -> str:
    """What is missing for the step (a code, empty when the step may be taken):
    ``not_possible``, ``reason`` (declining needs one), ``service`` (matching names the
    service), ``result`` (done says what was done)."""
    if not can_move(state, to):
        return "not_possible"
    if to == Step.DECLINED and not reason.strip():
        return "reason"
    if to == Step.MATCHED and not has_service:
        return "service"
    if to == Step.DONE and not result.strip():
        return "result"
    return ""
