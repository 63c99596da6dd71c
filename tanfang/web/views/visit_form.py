"""Recording a visit, and its correction by the author within 24 hours.

The form is rendered with a fresh ``client_uuid``; the same submission sent twice (a double
tap, a retry on a weak connection) is one visit, because ``visit_record`` is idempotent on it.
Errors come back next to their fields and in a summary that names each field.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder, LifeStatus
from tanfang.visits.models import Visit, VisitMode, VisitSource
from tanfang.visits.selectors import elder_status, visit_visible
from tanfang.visits.services import VisitError, visit_correct, visit_record
from tanfang.web.views.common import private
from tanfang.web.visit_forms import VisitForm, initial_from_visit, initial_new
from tanfang.web.visit_labels import (
    exclusion_label,
    mode_requirement_label,
    obligation_kind_label,
)


def _elder(request: HttpRequest, elder_id: int) -> Elder:
    """The elder, if the user may see her (404 otherwise, as for one that does not exist)."""
    elder = (
        Elder.objects.visible_to(request.user)
        .select_related("community", "subdistrict")
        .filter(pk=elder_id)
        .first()
    )
    if elder is None:
        raise Http404
    return elder


def correction_refused(user: Any, visit: Visit) -> str:
    """Why ``user`` may not correct ``visit`` now ("" when she may)."""
    if visit.recorded_by_id is None or visit.recorded_by_id != user.pk:
        return _("Only the author may correct a visit record.")
    if timezone.now() >= visit.locked_after:
        return _("This record is locked: it is more than 24 hours old.")
    return ""


def _render(
    request: HttpRequest,
    form: VisitForm,
    *,
    elder: Elder,
    visit: Visit | None = None,
    status: int = 200,
) -> HttpResponse:
    due = elder_status(user=request.user, elder=elder)
    obligations = [
        {
            "label": obligation_kind_label(str(o.get("kind", ""))),
            "mode": mode_requirement_label(str(o.get("mode", ""))),
            "due_by": o.get("due_by", ""),
        }
        for o in ((due.open_obligations or []) if due is not None else [])
    ]
    return render(
        request,
        "visits/visit_form.html",
        {
            "form": form,
            "elder": elder,
            "visit": visit,
            "groups": form.section_groups(),
            "summary": form.error_summary() if form.is_bound else [],
            "obligations": obligations,
            "excluded": exclusion_label(due.excluded) if due is not None and due.excluded else "",
            "not_active": elder.life_status != LifeStatus.ACTIVE,
        },
        status=status,
    )


@requires(Capability.RECORD_VISITS)
@private
def visit_new(request: HttpRequest, elder_id: int) -> HttpResponse:
    elder = _elder(request, elder_id)
    if request.method == "POST":
        form = VisitForm(request.POST)
        if form.is_valid():
            try:
                visit, created = visit_record(
                    actor=request.user,
                    elder=elder,
                    data=form.visit_input(),
                    source=VisitSource.WEB,
                )
            except VisitError as exc:
                form.add_service_errors(exc.errors)
            else:
                if created:
                    messages.success(request, _("The visit was recorded."))
                else:
                    messages.info(request, _("This visit had already been recorded."))
                return redirect("visit-detail", visit.pk)
        return _render(request, form, elder=elder, status=400)
    mode = request.GET.get("mode", "")
    form = VisitForm(initial=initial_new(mode=mode if mode in VisitMode.values else ""))
    return _render(request, form, elder=elder)


@requires(Capability.RECORD_VISITS)
@private
def visit_edit(request: HttpRequest, visit_id: int) -> HttpResponse:
    """The author corrects her record within 24 hours; others are sent back to the record."""
    visit = visit_visible(user=request.user, visit_id=visit_id)
    if visit is None:
        raise Http404
    refused = correction_refused(request.user, visit)
    if refused:
        messages.error(request, refused)
        return redirect("visit-detail", visit.pk)
    if request.method == "POST":
        form = VisitForm(request.POST, correcting=True)
        if form.is_valid():
            try:
                corrected = visit_correct(
                    actor=request.user, visit=visit, changes=form.changes(visit)
                )
            except VisitError as exc:
                form.add_service_errors(exc.errors)
            else:
                if corrected.revision != visit.revision:
                    messages.success(request, _("The record was corrected."))
                else:
                    messages.info(request, _("Nothing had changed."))
                return redirect("visit-detail", visit.pk)
        return _render(request, form, elder=visit.elder, visit=visit, status=400)
    # The form shows the whole record: a view of personal data.
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=visit.elder,
        request=request,
        details={"page": "visit-edit", "visit": visit.pk},
    )
    form = VisitForm(initial=initial_from_visit(visit), correcting=True)
    return _render(request, form, elder=visit.elder, visit=visit)
