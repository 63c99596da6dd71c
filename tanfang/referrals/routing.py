"""Where the needs found for an elder go (DOMAIN.md, "Referral and emergencies").

For an elder on the referral route (extremely poor, a bereaved/disabled only-child family,
or a district's extra category) each need becomes a referral to her subdistrict, linked to
the care action the visit opened for it. For everyone else nothing is referred: the family
helper (``tanfang.notifications.family``) tells the first contact. Emergency rescue is never
referred: danger to life is an emergency case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tanfang.referrals import rules
from tanfang.referrals.models import Referral
from tanfang.referrals.services import referral_open, route_for, rules_for
from tanfang.registry.models import Elder


def _cause(visit: Any, alert: Any, cause: tuple[str, int] | None) -> str:
    if visit is not None:
        return f"visit:{visit.pk}"
    if alert is not None:
        return f"alert:{alert.pk}"
    if cause is not None:
        return f"{cause[0]}:{cause[1]}"
    raise ValueError("a referral needs its cause: a visit, an alert or cause=(kind, id)")


def _care_action_for(code: str, visit: Any, care_actions: Iterable[Any] | None) -> Any:
    """The visit's care action of kind SERVICE for the need, when there is one."""
    from tanfang.care.models import CareAction
    from tanfang.care.rules import CareKind

    if care_actions is not None:
        for action in care_actions:
            if action.kind == CareKind.SERVICE and action.subject == code:
                return action
    if visit is None:
        return None
    return CareAction.objects.filter(visit=visit, kind=CareKind.SERVICE, subject=code).first()


def needs_route(
    *,
    actor: Any,
    elder: Elder,
    needs: Sequence[tuple[str, str]],
    source: str,
    visit: Any = None,
    alert: Any = None,
    care_actions: Iterable[Any] | None = None,
    cause: tuple[str, int] | None = None,
) -> list[Referral]:
    """Open one referral per need for a referral-route elder (idempotent: the key is the
    cause and the need); ``[]`` for every other elder. Runs in the caller's transaction."""
    wanted = rules.referred_needs(needs)
    if not wanted:
        return []
    row = rules_for(elder.district_id)
    route = route_for(elder, row)
    if not route.referral:
        return []
    base = _cause(visit, alert, cause)
    actions = list(care_actions) if care_actions is not None else None
    opened = []
    for code, detail in wanted:
        referral, _created = referral_open(
            key=f"{base}:{code}",
            elder=elder,
            need=code,
            detail=detail,
            route_reason=route.reason,
            source=source,
            actor=actor,
            visit=visit,
            alert=alert,
            care_action=_care_action_for(code, visit, actions),
        )
        opened.append(referral)
    return opened


def visit_needs(sections: Any) -> list[tuple[str, str]]:
    """The needs a visit record lists, with the text of an "other" need as its detail."""
    from tanfang.visits.record_form import needs

    section = (sections or {}).get("needs") or {} if isinstance(sections, dict) else {}
    other = str(section.get("other", "") or "") if isinstance(section, dict) else ""
    return [(code, other if code == "other" else "") for code in needs(sections or {})]
