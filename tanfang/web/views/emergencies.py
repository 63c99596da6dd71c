"""Emergency pages: the cases of one's scope, one case with its call list and timeline, the
one-tap call log, confirming and closing, and "report an emergency" from the elder page.

Cases come from ``emergencies.selectors`` (outside the user's scope: 404, like a case that
does not exist); every change goes through ``emergencies.services``. Each rendering of a
case is audited like the elder's record, and showing the call list's full phone numbers
once more (``call_list_audit``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.emergencies.models import (
    CallResult,
    CaseLevel,
    CaseOutcome,
    CaseState,
    EmergencyCase,
    Trigger,
)
from tanfang.emergencies.selectors import (
    case_visible,
    cases_list,
    cases_open_for,
    minutes_to_confirm,
    timeline,
)
from tanfang.emergencies.services import (
    EVENT_LABELS,
    NEEDS_NOTE,
    EmergencyError,
    call_list,
    call_list_audit,
    call_log,
    emergency_close,
    emergency_confirm,
)
from tanfang.emergencies.stats import late_cases
from tanfang.emergencies.triggers import visitor_report
from tanfang.notifications.models import Channel, MessageState
from tanfang.notifications.stats import area_column
from tanfang.registry.models import Elder
from tanfang.web.views.common import elder_or_404, private
from tanfang.web.views.supervision import RESPONSE_DAYS, area_in_scope

LIST_LIMIT = 100
# A case's columns holding its areas (its city through its community).
CASE_AREAS = ("district", "subdistrict", "community")
WORKLIST_LIMIT = 10
SUPERVISORS = {Role.DISTRICT_SUPERVISOR, Role.SUBDISTRICT_STAFF, Role.CITY_ADMIN}


# -- forms ---------------------------------------------------------------------------------
class CallForm(forms.Form):
    contact = forms.CharField(max_length=40)
    result = forms.ChoiceField(choices=CallResult.choices)
    note = forms.CharField(required=False, max_length=300)


class ConfirmForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Note"),
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("Who is going, what is done")}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "confirm_%s")
        super().__init__(*args, **kwargs)


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(
        label=gettext_lazy("What came of it"),
        choices=CaseOutcome.choices,
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        label=gettext_lazy("Note"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Required when taken to hospital or found deceased."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "close_%s")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("outcome") in NEEDS_NOTE and not (data.get("note") or "").strip():
            self.add_error("note", _("Say what happened."))
        return data


class ReportForm(forms.Form):
    description = forms.CharField(
        label=gettext_lazy("What is happening"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "report_%s")
        super().__init__(*args, **kwargs)


# -- labels --------------------------------------------------------------------------------
def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def case_row(case: EmergencyCase) -> dict[str, Any]:
    return {
        "case": case,
        "url": reverse("emergency-detail", args=[case.pk]),
        "trigger": _label(Trigger, case.trigger),
        "state": _label(CaseState, case.state),
        "level": _label(CaseLevel, case.level),
        "outcome": _label(CaseOutcome, case.outcome) if case.outcome else "",
        "to_confirm": minutes_to_confirm(case),
    }


def _timeline_rows(case: EmergencyCase) -> list[dict[str, Any]]:
    rows = []
    for r in timeline(case):
        e, m = r["event"], r["message"]
        kind = r["kind"]
        if kind in ("sent", "delivered"):
            label = _("Message sent") if kind == "sent" else _("Message delivered")
        else:
            label = str(EVENT_LABELS.get(kind, kind))
        rows.append(
            {
                **r,
                "label": label,
                "level": _label(CaseLevel, e.level) if e.level else "",
                "channel": _label(Channel, m.channel) if m is not None else "",
                "message_state": _label(MessageState, m.state) if m is not None else "",
                "call_result": _label(CallResult, e.call.result) if e.call_id else "",
            }
        )
    return rows


# -- list ----------------------------------------------------------------------------------
@requires(Capability.VIEW_EMERGENCIES)
@private
def emergency_list(request: HttpRequest) -> HttpResponse:
    """Open cases first; supervisors see the closed ones of their tree too, with the
    minutes it took a person to confirm.

    The supervision page's drill-down: ``?area=`` (an area in the user's scope, else 404)
    keeps the cases of that area's subtree; ``late=1`` only those handled late, closed or
    not, among the cases opened in the supervision page's window (``RESPONSE_DAYS``), by the
    definition its count uses (``emergencies.stats.late_cases``)."""
    user = request.user
    area = area_in_scope(request) if request.GET.get("area") else None
    late = request.GET.get("late") == "1"
    show_closed = (
        late or getattr(user, "role", "") in SUPERVISORS or request.GET.get("state") == "all"
    )
    cases = cases_list(user=user, state="" if show_closed else "active")
    filters = []
    if area is not None:
        cases = cases.filter(**{area_column(area.level, CASE_AREAS): area.pk})
        filters.append(_("Area: %(name)s") % {"name": area.name})
    if late:
        now = timezone.now()
        since = now - dt.timedelta(days=RESPONSE_DAYS)
        cases = late_cases(cases.filter(opened_at__gte=since, opened_at__lt=now), now=now)
        filters.append(_("Late only (opened in the last %(days)d days)") % {"days": RESPONSE_DAYS})
    found = list(cases[: LIST_LIMIT + 1])
    more = len(found) > LIST_LIMIT
    found = found[:LIST_LIMIT]
    audit_record(
        actor=user,
        action=AuditAction.VIEW_LIST,
        area_code=area.code if area is not None else "",
        details={
            "page": "emergencies",
            "shown": len(found),
            "elder_ids": sorted({c.elder_id for c in found}),
            **({"area": area.code} if area is not None else {}),
            **({"late": True} if late else {}),
        },
        request=request,
    )
    return render(
        request,
        "emergencies/list.html",
        {
            "rows": [case_row(c) for c in found],
            "more": more,
            "show_closed": show_closed,
            "area": area,
            "filter_text": " · ".join(filters),
        },
    )


# -- one case ------------------------------------------------------------------------------
def _case_or_404(request: HttpRequest, case_id: int) -> EmergencyCase:
    case = case_visible(user=request.user, pk=case_id)
    if case is None:
        raise Http404
    return case


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _render_case(
    request: HttpRequest,
    case: EmergencyCase,
    *,
    confirm_form: ConfirmForm | None = None,
    close_form: CloseForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    handle = can(user, Capability.HANDLE_EMERGENCIES) and case.state != CaseState.CLOSED
    audit_record(
        actor=user,
        action=AuditAction.VIEW_RECORD,
        elder=case.elder,
        request=request,
        details={"page": "emergency", "emergency": case.pk},
    )
    lines = call_list(case, reveal=handle)
    call_list_audit(case=case, actor=user, lines=lines, request=request)
    return render(
        request,
        "emergencies/detail.html",
        {
            "row": case_row(case),
            "case": case,
            "elder": case.elder,
            "lines": lines,
            "results": CallResult.choices,
            "can_handle": handle,
            "confirm_form": confirm_form or ConfirmForm(),
            "close_form": close_form or CloseForm(),
            "timeline": _timeline_rows(case),
        },
        status=status,
    )


@requires(Capability.VIEW_EMERGENCIES)
@private
def emergency_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    return _render_case(request, _case_or_404(request, case_id))


def _back(case: EmergencyCase, anchor: str = "") -> HttpResponse:
    return redirect(reverse("emergency-detail", args=[case.pk]) + anchor)


@requires(Capability.VIEW_EMERGENCIES, Capability.HANDLE_EMERGENCIES)
@private
@require_POST
def emergency_call(request: HttpRequest, case_id: int) -> HttpResponse:
    """One tap on the call list: whom she called and what came of it."""
    case = _case_or_404(request, case_id)
    form = CallForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose what came of the call."))
        return _back(case, "#calls")
    d = form.cleaned_data
    try:
        call_log(
            case=case,
            actor=_user(request),
            contact_ref=d["contact"],
            result=d["result"],
            note=d["note"],
            request=request,
        )
    except EmergencyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Call logged."))
    return _back(case, "#calls")


@requires(Capability.VIEW_EMERGENCIES, Capability.HANDLE_EMERGENCIES)
@private
@require_POST
def emergency_confirm_view(request: HttpRequest, case_id: int) -> HttpResponse:
    """A person confirms the emergency is being handled: it stops climbing."""
    case = _case_or_404(request, case_id)
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return _render_case(request, case, confirm_form=form, status=400)
    try:
        emergency_confirm(
            case=case, actor=_user(request), note=form.cleaned_data["note"], request=request
        )
    except EmergencyError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Confirmed: the emergency no longer climbs."))
    return _back(case)


@requires(Capability.VIEW_EMERGENCIES, Capability.HANDLE_EMERGENCIES)
@private
@require_POST
def emergency_close_view(request: HttpRequest, case_id: int) -> HttpResponse:
    case = _case_or_404(request, case_id)
    form = CloseForm(request.POST)
    if form.is_valid():
        try:
            emergency_close(
                case=case,
                actor=_user(request),
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"],
                request=request,
            )
        except EmergencyError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("The emergency was closed."))
            return _back(case)
    return _render_case(request, case, close_form=form, status=400)


# -- reporting -----------------------------------------------------------------------------
@requires(Capability.VIEW_ELDERS, Capability.HANDLE_EMERGENCIES)
@private
@require_POST
def emergency_report(request: HttpRequest, elder_id: int) -> HttpResponse:
    """A worker reports an emergency for an elder she sees: a case opens (or she joins the
    one already open) and everyone is told."""
    elder = elder_or_404(request, elder_id)
    form = ReportForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Say briefly what is happening."))
        return redirect(reverse("elder-detail", args=[elder.pk]) + "#emergency")
    case, created = visitor_report(
        actor=_user(request), elder=elder, description=form.cleaned_data["description"]
    )
    messages.success(
        request,
        _("Emergency opened: the family and the community are being told.")
        if created
        else _("An emergency was already open for this elder: your report was added to it."),
    )
    return _back(case)


# -- on other pages ------------------------------------------------------------------------
def worklist_emergencies(request: HttpRequest) -> dict[str, Any] | None:
    """The open cases of the user's elders for the top of the worklist (one query)."""
    if not can(request.user, Capability.VIEW_EMERGENCIES):
        return None
    return {"rows": [case_row(c) for c in cases_open_for(user=request.user, limit=WORKLIST_LIMIT)]}


def elder_emergency_context(request: HttpRequest, elder: Elder) -> dict[str, Any]:
    """The elder page's emergency section: her open case, and the report form."""
    if not can(request.user, Capability.VIEW_EMERGENCIES):
        return {"emergency_section": None}
    open_case = (
        EmergencyCase.objects.filter(elder=elder)
        .exclude(state=CaseState.CLOSED)
        .select_related("assigned_to")
        .first()
    )
    return {
        "emergency_section": {
            "open": case_row(open_case) if open_case is not None else None,
            "report_form": ReportForm()
            if can(request.user, Capability.HANDLE_EMERGENCIES)
            else None,
        }
    }
