"""Care actions: the user's open actions, one action with its history, and moving it on.

The list and the action come from ``selectors.care_actions_for`` (a visitor's own actions and
those escalated to her; a community worker's whole area), so an action outside the user's
reach answers 404. Each step goes through ``care_action_move``; the page offers only the steps
``rules.next_states`` allows from the current state.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.care.models import CareAction, ServiceEntry
from tanfang.care.rules import CareKind, next_states
from tanfang.care.services import CareError, care_action_move
from tanfang.visits.selectors import care_actions_for
from tanfang.web.views.common import private
from tanfang.web.visit_forms import CareMoveForm
from tanfang.web.visit_labels import (
    care_event_label,
    care_kind_label,
    care_state_label,
    care_subject_label,
)

LIST_LIMIT = 200


@requires(Capability.MANAGE_CARE_ACTIONS)
@private
def care_list(request: HttpRequest) -> HttpResponse:
    """Open actions, overdue first (the selector orders by due date), escalated ones marked."""
    today = timezone.localdate()
    actions = list(care_actions_for(user=request.user)[: LIST_LIMIT + 1])
    more = len(actions) > LIST_LIMIT
    actions = actions[:LIST_LIMIT]
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_LIST,
        details={
            "page": "care-list",
            "shown": len(actions),
            "elder_ids": sorted({a.elder_id for a in actions}),
        },
        request=request,
    )
    rows = [_row(a, today) for a in actions]
    return render(
        request,
        "care/care_list.html",
        {
            "rows": rows,
            "more": more,
            "limit": LIST_LIMIT,
            "overdue": sum(1 for r in rows if r["overdue"]),
        },
    )


def _row(action: CareAction, today: Any) -> dict[str, Any]:
    return {
        "action": action,
        "url": reverse("care-detail", args=[action.pk]),
        "kind": care_kind_label(action.kind),
        "subject": care_subject_label(action.kind, action.subject),
        "state": care_state_label(action.state),
        "overdue": not action.closed and action.due_on < today,
        "overdue_days": (today - action.due_on).days,
    }


def _action_or_404(request: HttpRequest, action_id: int) -> CareAction:
    action = (
        care_actions_for(user=request.user, include_closed=True)
        .select_related("visit", "elder__community", "community")
        .filter(pk=action_id)
        .first()
    )
    if action is None:
        raise Http404
    return action


def services_for(action: CareAction) -> list[ServiceEntry]:
    """The directory's services where the elder lives (her community or any area above it),
    those serving the action's need first."""
    elder = action.elder
    areas = [elder.community_id, elder.subdistrict_id, elder.district_id, elder.city_id]
    entries = list(
        ServiceEntry.objects.filter(active=True, area_id__in=areas).order_by("name", "id")
    )
    return sorted(entries, key=lambda e: action.subject not in (e.needs or ()))


def _move_form(action: CareAction, data: Any = None) -> CareMoveForm | None:
    steps = next_states(action.kind, action.state)
    if not steps:
        return None
    services = services_for(action) if action.kind == CareKind.SERVICE else None
    return CareMoveForm(data, steps=steps, services=services)


def _render(
    request: HttpRequest, action: CareAction, form: CareMoveForm | None, status: int = 200
) -> HttpResponse:
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=action.elder,
        request=request,
        details={"page": "care-detail", "care_action": action.pk},
    )
    today = timezone.localdate()
    events = [
        {
            "event": e,
            "label": care_event_label(e.event),
            "from": care_state_label(e.from_state) if e.from_state else "",
            "to": care_state_label(e.to_state) if e.to_state else "",
        }
        for e in action.events.select_related("by").order_by("at", "id")
    ]
    matching = set()
    if form is not None and "service" in form.fields:
        matching = {s.pk for s in services_for(action) if action.subject in (s.needs or ())}
    return render(
        request,
        "care/care_detail.html",
        {
            "row": _row(action, today),
            "action": action,
            "elder": action.elder,
            "events": events,
            "form": form,
            "matching": matching,
        },
        status=status,
    )


@requires(Capability.MANAGE_CARE_ACTIONS)
@private
def care_detail(request: HttpRequest, action_id: int) -> HttpResponse:
    action = _action_or_404(request, action_id)
    return _render(request, action, _move_form(action))


@requires(Capability.MANAGE_CARE_ACTIONS)
@private
@require_POST
def care_move(request: HttpRequest, action_id: int) -> HttpResponse:
    """One step on: the state chosen among those allowed, with a note, a result, a service."""
    action = _action_or_404(request, action_id)
    form = _move_form(action, request.POST)
    if form is None:
        messages.error(request, _("This care action is closed."))
        return redirect("care-detail", action.pk)
    if form.is_valid():
        data = form.cleaned_data
        try:
            moved = care_action_move(
                actor=request.user,
                action=action,
                to=data["to"],
                note=data.get("note", ""),
                result=data.get("result", ""),
                service=data.get("service"),
            )
        except CareError as exc:
            form.add_error(None, str(exc))
        else:
            if moved.closed:
                messages.success(request, _("The care action was closed."))
            else:
                messages.success(request, _("The care action moved on."))
            return redirect("care-detail", action.pk)
    return _render(request, action, form, status=400)
