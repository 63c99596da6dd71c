"""The worklist: whom the signed-in visitor (or community worker) must visit or call.

Overdue first, then due today, then due this week, each most urgent first (the order of
``selectors.worklist``: overdue days, risk level, open care actions, advanced age). The page is
made for a phone: one card per elder with what the visitor needs before she calls or knocks.
Audited like the elder list: one ``VIEW_LIST`` entry per page view with the elders' ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.visits.models import HolidaySurge, VisitSurge
from tanfang.visits.selectors import WorklistRow, worklist
from tanfang.web.labels import category_label
from tanfang.web.views.common import private
from tanfang.web.views.monitoring_elder import worklist_alerts
from tanfang.web.visit_labels import (
    mode_requirement_label,
    obligation_kind_label,
    risk_label,
)


@requires(Capability.RECORD_VISITS)
@private
def worklist_page(request: HttpRequest) -> HttpResponse:
    work = worklist(user=request.user)
    rows = work.rows
    surges = _surge_reasons(rows)
    groups = [
        ("overdue", _("Overdue"), work.overdue),
        ("today", _("Due today"), work.today),
        ("week", _("Due this week"), work.week),
        ("later", _("Due later"), work.later),
    ]
    # Monitoring (issue 4): the open alerts of her elders, at the top of the page.
    alert_section = worklist_alerts(request)
    alert_elders = sorted({r["alert"].elder_id for r in (alert_section or {}).get("rows", [])})
    # Emergencies (issue 5): her open cases, above everything else.
    from tanfang.web.views.emergencies import worklist_emergencies

    emergency_section = worklist_emergencies(request)
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_LIST,
        details={
            "page": "worklist",
            "shown": len(rows),
            "elder_ids": [row.elder_id for row in rows],
            **({"alert_elder_ids": alert_elders} if alert_elders else {}),
        },
        request=request,
    )
    return render(
        request,
        "visits/worklist.html",
        {
            "on": work.on,
            "groups": [
                {"key": key, "title": title, "cards": [_card(r, work.on, surges) for r in items]}
                for key, title, items in groups
                if items or key != "later"
            ],
            "total": len(rows),
            "alert_section": alert_section,
            "emergency_section": emergency_section,
        },
    )


def _surge_reasons(rows: list[WorklistRow]) -> dict[tuple[str, str], str]:
    """What each surge or holiday obligation on the page is for, in two queries at most."""
    codes: dict[str, set[str]] = {"surge": set(), "holiday": set()}
    for row in rows:
        for item in row.obligations:
            if item.get("kind") in codes:
                codes[item["kind"]].add(str(item.get("code", "")))
    found: dict[tuple[str, str], str] = {}
    if codes["surge"]:
        for code, reason in VisitSurge.objects.filter(code__in=codes["surge"]).values_list(
            "code", "reason"
        ):
            found["surge", code] = reason
    if codes["holiday"]:
        for code, holidays in HolidaySurge.objects.filter(code__in=codes["holiday"]).values_list(
            "code", "holidays"
        ):
            found["holiday", code] = ", ".join(str(h) for h in holidays or ())
    return found


def _card(row: WorklistRow, on: dt.date, surges: dict[tuple[str, str], str]) -> dict[str, Any]:
    due_in = (row.next_due_on - on).days if row.next_due_on else None
    return {
        "row": row,
        "elder_url": reverse("elder-detail", args=[row.elder_id]),
        "record_url": reverse("visit-new", args=[row.elder_id]),
        "categories": [(code, category_label(code)) for code in row.categories],
        "risk": risk_label(row.risk_level),
        "due_in": due_in,
        "obligations": [_obligation(item, surges) for item in row.obligations],
        "in_home": any(item.get("mode") == "in_home" for item in row.obligations),
    }


def _obligation(item: dict[str, Any], surges: dict[tuple[str, str], str]) -> dict[str, Any]:
    kind = str(item.get("kind", ""))
    due_by = item.get("due_by")
    return {
        "kind": kind,
        "label": obligation_kind_label(kind),
        "reason": surges.get((kind, str(item.get("code", ""))), ""),
        "mode": mode_requirement_label(str(item.get("mode", ""))),
        "due_by": dt.date.fromisoformat(due_by) if isinstance(due_by, str) else due_by,
        "scheduled": item.get("scheduled", True),
    }
