"""The supervisors' worklist: overdue elders by child area and visitors' workloads.

For an area (the user's own by default, or one below it chosen with ``?area=``): each child
area with its elders due and overdue (``selectors.overdue_by_area``), and — for a subdistrict
or a community, where the visitors work — each visitor's elders, how many were visited this
week and how many are overdue (``selectors.visitor_workload``). A district or the city has
thousands of visitors: their table appears once a subdistrict is chosen.

Drill-downs: a child area opens the same page for that area; a community lists its overdue
elders, and a visitor her assigned elders with their state. Lists of elders are audited like
the elder list (one ``VIEW_LIST`` entry with the ids shown).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from tanfang.accounts.access import requires
from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import Capability, can
from tanfang.accounts.scope import elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder, VisitorAssignment
from tanfang.registry.selectors import area_choices, visible_area
from tanfang.visits.models import ElderVisitStatus
from tanfang.visits.obligations import Frequency, period_of
from tanfang.visits.selectors import AreaOverdue, overdue_by_area, visitor_workload
from tanfang.web.labels import category_label
from tanfang.web.views.common import int_param, private

# Levels whose visitors are listed (a district's or the city's would be thousands of rows).
WORKLOAD_LEVELS = (AreaLevel.SUBDISTRICT, AreaLevel.COMMUNITY)
LIST_LIMIT = 200


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a percentage with at most one decimal ("87.5%"), rounded down
    so that an unmet target never shows as 100%; a dash when there is nothing to divide."""
    if whole <= 0:
        return "—"
    tenths = part * 1000 // whole
    return f"{tenths // 10}%" if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10}%"


def area_in_scope(request: HttpRequest, name: str = "area") -> Area:
    """The area chosen with ``?area=`` when the user may see it; the user's own without one.

    An area outside the user's scope (or a malformed id) answers 404, like an area that does
    not exist, so the page never tells whether it exists."""
    user: Any = request.user
    area_id = int_param(request, name)
    if area_id is None:
        if request.GET.get(name):
            raise Http404
        area: Area = user.area
        return area
    found = visible_area(user=user, area_id=area_id)
    if found is None:
        raise Http404
    return found


def area_filter(area: Area, prefix: str = "") -> Q:
    """Rows whose area (``prefix`` + ``community`` etc.) lies in ``area``'s subtree."""
    if area.level == AreaLevel.COMMUNITY:
        return Q(**{f"{prefix}community_id": area.pk})
    return Q(**{f"{prefix}{area.level}_id": area.pk})


def visitors_in_scope(user: Any, area: Area) -> QuerySet[User]:
    """Active visitors working in ``area``'s subtree, when the user may see the area."""
    areas = Area.objects.visible_to(user).filter(Q(pk=area.pk) | area_filter(area))
    return User.objects.filter(role=Role.VISITOR, is_active=True, area__in=areas)


def _status_rows(statuses: list[ElderVisitStatus], on: dt.date) -> list[dict[str, Any]]:
    return [
        {
            "elder": s.elder,
            "url": reverse("elder-detail", args=[s.elder_id]),
            "community": s.community.name,
            "categories": [category_label(c) for c in s.elder.categories or ()],
            "overdue_since": s.overdue_since,
            "overdue_days": (on - s.overdue_since).days if s.overdue_since else 0,
            "next_due_on": s.next_due_on,
            "last_counted_at": s.last_counted_at,
            "risk_level": s.risk_level,
            "excluded": s.excluded,
        }
        for s in statuses
    ]


def _overdue_elders(user: Any, area: Area) -> list[ElderVisitStatus]:
    """The overdue elders of ``area`` the user may see, longest overdue first."""
    elders = elders_visible_to(user, Elder.objects.filter(area_filter(area)))
    return list(
        ElderVisitStatus.objects.filter(
            elder__in=elders.values("pk"), excluded="", overdue_since__isnull=False
        )
        .select_related("elder", "community")
        .order_by("overdue_since", "-urgency", "elder_id")[:LIST_LIMIT]
    )


def _visitor_elders(user: Any, visitor: User, on: dt.date) -> list[ElderVisitStatus]:
    """The elders currently assigned to ``visitor`` that the user may see, most urgent first."""
    current = VisitorAssignment.objects.filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=on), visitor=visitor, starts_on__lte=on
    ).values("elder_id")
    elders = elders_visible_to(user, Elder.objects.filter(pk__in=current))
    return list(
        ElderVisitStatus.objects.filter(elder__in=elders.values("pk"))
        .select_related("elder", "community")
        .order_by("excluded", "-urgency", "elder_id")[:LIST_LIMIT]
    )


def _community_counts(user: Any, area: Area) -> AreaOverdue:
    elders = elders_visible_to(user, Elder.objects.filter(community_id=area.pk))
    counts = ElderVisitStatus.objects.filter(elder__in=elders.values("pk"), excluded="").aggregate(
        due=Count("elder_id"), overdue=Count("elder_id", filter=Q(overdue_since__isnull=False))
    )
    return AreaOverdue(area=area, due=counts["due"], overdue=counts["overdue"])


def audit_list(request: HttpRequest, area: Area, what: str, ids: list[int], **extra: Any) -> None:
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_LIST,
        area_code=area.code,
        details={"page": what, "area": area.code, "shown": len(ids), "elder_ids": ids, **extra},
        request=request,
    )


@requires(Capability.VIEW_RATES)
@private
def supervision(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    area = area_in_scope(request)
    on = timezone.localdate()
    week_start, week_end, week_key = period_of(on, Frequency.WEEK)
    # A community's children are grids, which elders do not belong to: it is its own row.
    children = (
        [_community_counts(user, area)]
        if area.level == AreaLevel.COMMUNITY
        else overdue_by_area(user=user, area=area, on=on)
    )
    context: dict[str, Any] = {
        "area": area,
        "areas": area_choices(user=user, current=area),
        "on": on,
        "week_key": week_key,
        "week_start": week_start,
        "week_end": week_end,
        "children": [
            {
                "area": c.area,
                "due": c.due,
                "overdue": c.overdue,
                "share": percent(c.overdue, c.due),
            }
            for c in children
        ],
        "children_total": {
            "due": sum(c.due for c in children),
            "overdue": sum(c.overdue for c in children),
        },
        "show_workload": area.level in WORKLOAD_LEVELS,
        "loads": [],
        "overdue_rows": None,
        "visitor": None,
        "visitor_rows": None,
    }
    if area.level in WORKLOAD_LEVELS:
        context["loads"] = [
            {
                "visitor": load.visitor,
                "elders": load.elders,
                "visited": load.visited_this_week,
                "overdue": load.overdue,
                "completion": percent(load.visited_this_week, load.elders),
            }
            for load in visitor_workload(user=user, area=area, on=on)
        ]
    visitor_id = int_param(request, "visitor")
    if visitor_id is not None:
        visitor = visitors_in_scope(user, area).filter(pk=visitor_id).first()
        if visitor is None:
            raise Http404
        statuses = _visitor_elders(user, visitor, on)
        context.update(visitor=visitor, visitor_rows=_status_rows(statuses, on))
        audit_list(
            request,
            area,
            "supervision-visitor",
            [s.elder_id for s in statuses],
            visitor=visitor.username,
        )
    elif area.level == AreaLevel.COMMUNITY:
        statuses = _overdue_elders(user, area)
        context["overdue_rows"] = _status_rows(statuses, on)
        audit_list(request, area, "supervision-overdue", [s.elder_id for s in statuses])
    context["list_limit"] = LIST_LIMIT
    context["alert_outcomes"] = _alert_outcomes(user, area)
    context.update(_response_sections(user, area, [c.area for c in children]))
    return render(request, "supervision/supervision.html", context)


ALERT_OUTCOME_DAYS = 30


def _alert_outcomes(user: Any, area: Any) -> dict[str, Any] | None:
    """Monitoring alerts of the last 30 days below the user's own area: raised, still open,
    and how the closed ones ended (issue 4: "the outcome recorded and counted")."""
    from tanfang.monitoring.models import AlertOutcome
    from tanfang.monitoring.selectors import outcome_counts

    if area.pk != getattr(user, "area_id", None) or not can(user, Capability.VIEW_ALERTS):
        return None
    until = timezone.now()
    rows = outcome_counts(
        user=user, since=until - dt.timedelta(days=ALERT_OUTCOME_DAYS), until=until
    )
    return {
        "days": ALERT_OUTCOME_DAYS,
        "outcomes": AlertOutcome.choices,
        "rows": [
            {
                "row": row,
                "counts": [row.outcomes.get(value, 0) for value, _label in AlertOutcome.choices],
            }
            for row in rows
        ],
    }


RESPONSE_DAYS = 30


def _response_sections(user: Any, area: Area, children: list[Area]) -> dict[str, Any]:
    """Emergencies, referrals and family notifications of the last 30 days per child area
    of the area shown (突发事件处置不及时: evidence of late handling, docs/supervision.md).
    Counts only, no personal data; a section is left out (None) for a user without its
    capability. Constant queries whatever the number of areas (five, the child areas
    being those already read for the overdue table)."""
    from tanfang.emergencies.models import CaseOutcome
    from tanfang.emergencies.stats import emergency_stats
    from tanfang.notifications.stats import family_stats
    from tanfang.referrals.stats import referral_stats

    until = timezone.now()
    since = until - dt.timedelta(days=RESPONSE_DAYS)
    window = {"user": user, "area": area, "since": since, "until": until, "children": children}
    sections: dict[str, Any] = {
        "response_days": RESPONSE_DAYS,
        "emergency_stats": None,
        "referral_stats": None,
        "family_stats": None,
    }
    if can(user, Capability.VIEW_EMERGENCIES):
        emergency_list = reverse("emergency-list")
        sections["emergency_stats"] = {
            "outcomes": CaseOutcome.choices,
            "rows": [
                {
                    "row": row,
                    "counts": [
                        (label, row.outcomes.get(value, 0)) for value, label in CaseOutcome.choices
                    ],
                    "late_url": f"{emergency_list}?area={row.area_id}&late=1",
                }
                for row in emergency_stats(**window)
            ],
        }
    if can(user, Capability.VIEW_REFERRALS):
        referral_list = reverse("referral-list")
        sections["referral_stats"] = [
            {"row": row, "overdue_url": f"{referral_list}?area={row.area_id}&overdue=1"}
            for row in referral_stats(**window)
        ]
    sections["family_stats"] = family_stats(**window)
    return sections
