"""Referrals: the subdistrict's worklist, the district's overdue ones, one referral and its steps.

Who sees which list (``referrals.selectors``): subdistrict staff and a community worker the
open referrals of their area, soonest due (so the overdue) first; a district supervisor the
district's overdue referrals and the counts per subdistrict; the city administrator every
open referral and the counts per district. A referral outside the user's scope answers 404.
Steps go through ``referrals.services.referral_move``; the page offers only the steps
``rules.next_states`` allows, each as its own small form.
"""

from __future__ import annotations

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
from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.care.models import ServiceEntry
from tanfang.notifications.stats import area_column
from tanfang.referrals import labels
from tanfang.referrals.models import Referral
from tanfang.referrals.rules import Step, next_states
from tanfang.referrals.selectors import (
    referral_counts,
    referral_visible,
    referrals_open,
    referrals_overdue,
)
from tanfang.referrals.services import ReferralError, referral_move, services_for
from tanfang.web.views.common import private
from tanfang.web.views.supervision import area_in_scope

LIST_LIMIT = 200
# A referral's columns holding its areas (its city through its community).
REFERRAL_AREAS = ("district", "subdistrict", "community")
STEP_LABELS = {
    Step.ACCEPTED: gettext_lazy("Accept"),
    Step.MATCHED: gettext_lazy("Match to a service"),
    Step.DONE: gettext_lazy("Done"),
    Step.DECLINED: gettext_lazy("Decline"),
}


class ReferralStepForm(forms.Form):
    """One step of a referral: the step, and what it needs (service, result, reason)."""

    to = forms.ChoiceField(widget=forms.HiddenInput)
    service = forms.ModelChoiceField(
        label=gettext_lazy("Service"), required=False, queryset=ServiceEntry.objects.none()
    )
    result = forms.CharField(label=gettext_lazy("Result"), required=False, max_length=300)
    reason = forms.CharField(
        label=gettext_lazy("Reason for declining"),
        required=False,
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(
        self, *args: Any, steps: tuple[str, ...], services: list[ServiceEntry], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        to = self.fields["to"]
        assert isinstance(to, forms.ChoiceField)
        to.choices = [(s, s) for s in steps]
        field = self.fields["service"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = ServiceEntry.objects.filter(pk__in=[s.pk for s in services])
        field.choices = [("", "—"), *((s.pk, _service_text(s)) for s in services)]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        to = data.get("to")
        if to == Step.MATCHED and data.get("service") is None:
            self.add_error("service", _("Choose the service the need is matched to."))
        if to == Step.DONE and not (data.get("result") or "").strip():
            self.add_error("result", _("Say what was done."))
        if to == Step.DECLINED and not (data.get("reason") or "").strip():
            self.add_error("reason", _("Say why the referral is declined."))
        return data


def _service_text(entry: ServiceEntry) -> str:
    return f"{entry.name} · {entry.phone}" if entry.phone else entry.name


def _row(referral: Referral, now: Any) -> dict[str, Any]:
    overdue = not referral.closed and referral.due_at < now
    late = now - referral.due_at
    return {
        "referral": referral,
        "url": reverse("referral-detail", args=[referral.pk]),
        "need": labels.need_label(referral.need),
        "state": labels.state_label(referral.state),
        "source": labels.source_label(referral.source),
        "overdue": overdue,
        "overdue_hours": int(late.total_seconds() // 3600) if overdue else 0,
        "overdue_days": late.days if overdue else 0,
    }


@requires(Capability.VIEW_REFERRALS)
@private
def referral_list(request: HttpRequest) -> HttpResponse:
    """The open referrals in scope (a district supervisor: the overdue ones).

    The supervision page's drill-down: ``?area=`` (an area in the user's scope, else 404)
    keeps the referrals of that area's subtree; ``overdue=1`` only the overdue ones (open
    and past ``due_at``), as the page's "overdue now" count."""
    user: Any = request.user
    now = timezone.now()
    district_view = user.role == Role.DISTRICT_SUPERVISOR
    area = area_in_scope(request) if request.GET.get("area") else None
    overdue_only = district_view or request.GET.get("overdue") == "1"
    found = referrals_overdue(user=user, now=now) if overdue_only else referrals_open(user=user)
    filters = []
    if area is not None:
        found = found.filter(**{area_column(area.level, REFERRAL_AREAS): area.pk})
        filters.append(_("Area: %(name)s") % {"name": area.name})
    if overdue_only and not district_view:
        filters.append(_("Overdue only"))
    referrals = list(found[: LIST_LIMIT + 1])
    more = len(referrals) > LIST_LIMIT
    referrals = referrals[:LIST_LIMIT]
    audit_record(
        actor=user,
        action=AuditAction.VIEW_LIST,
        area_code=area.code if area is not None else "",
        details={
            "page": "referral-list",
            "shown": len(referrals),
            "elder_ids": sorted({r.elder_id for r in referrals}),
            **({"area": area.code} if area is not None else {}),
            **({"overdue": True} if overdue_only else {}),
        },
        request=request,
    )
    rows = [_row(r, now) for r in referrals]
    return render(
        request,
        "referrals/referral_list.html",
        {
            "rows": rows,
            "more": more,
            "limit": LIST_LIMIT,
            "district_view": district_view,
            "overdue_only": overdue_only,
            "overdue": sum(1 for r in rows if r["overdue"]),
            "counts": referral_counts(user=user, now=now),
            "filter_text": " · ".join(filters),
        },
    )


def _referral_or_404(request: HttpRequest, referral_id: int) -> Referral:
    referral = referral_visible(user=request.user, pk=referral_id)
    if referral is None:
        raise Http404
    return referral


def _forms(
    request: HttpRequest, referral: Referral, bound: ReferralStepForm | None = None
) -> list[dict[str, Any]]:
    """One small form per possible step (none for a user who only views)."""
    if not can(request.user, Capability.HANDLE_REFERRALS):
        return []
    steps = next_states(referral.state)
    services = services_for(referral) if Step.MATCHED in steps else []
    found = []
    for step in steps:
        chosen = bound is not None and bound.data.get("to") == step
        form = bound if chosen else ReferralStepForm(steps=steps, services=services)
        assert form is not None
        found.append({"step": step, "label": STEP_LABELS[step], "form": form, "services": services})
    return found


def _render(
    request: HttpRequest,
    referral: Referral,
    bound: ReferralStepForm | None = None,
    status: int = 200,
) -> HttpResponse:
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=referral.elder,
        request=request,
        details={"page": "referral-detail", "referral": referral.pk},
    )
    events = [
        {
            "event": e,
            "label": labels.event_label(e.event),
            "from": labels.state_label(e.from_state) if e.from_state else "",
            "to": labels.state_label(e.to_state) if e.to_state else "",
        }
        for e in referral.events.all()
    ]
    elder = referral.elder
    today = timezone.localdate()
    born = elder.birth_date
    return render(
        request,
        "referrals/referral_detail.html",
        {
            "row": _row(referral, timezone.now()),
            "referral": referral,
            "elder": elder,
            "age": today.year - born.year - ((today.month, today.day) < (born.month, born.day)),
            "reason": labels.reason_label(referral.route_reason),
            "events": events,
            "steps": _forms(request, referral, bound),
        },
        status=status,
    )


@requires(Capability.VIEW_REFERRALS)
@private
def referral_detail(request: HttpRequest, referral_id: int) -> HttpResponse:
    return _render(request, _referral_or_404(request, referral_id))


@requires(Capability.HANDLE_REFERRALS)
@private
@require_POST
def referral_step(request: HttpRequest, referral_id: int) -> HttpResponse:
    """One step on: accept, match to a service, done with a result, decline with a reason."""
    referral = _referral_or_404(request, referral_id)
    steps = next_states(referral.state)
    if not steps:
        messages.error(request, _("This referral is closed."))
        return redirect("referral-detail", referral.pk)
    services = services_for(referral) if Step.MATCHED in steps else []
    form = ReferralStepForm(request.POST, steps=steps, services=services)
    if form.is_valid():
        data = form.cleaned_data
        try:
            moved = referral_move(
                request.user,
                referral,
                data["to"],
                service=data.get("service"),
                reason=data.get("reason", ""),
                result=data.get("result", ""),
                request=request,
            )
        except ReferralError as exc:
            form.add_error(None, str(exc))
        else:
            if moved.closed:
                messages.success(request, _("The referral was closed."))
            else:
                messages.success(request, _("The referral moved on."))
            return redirect("referral-detail", referral.pk)
    return _render(request, referral, form, status=400)


def elder_referral_context(request: HttpRequest, elder: Any) -> dict[str, Any]:
    """The elder page's referrals (for users who see referrals), open first."""
    if not can(request.user, Capability.VIEW_REFERRALS):
        return {"elder_referrals": None}
    from tanfang.referrals.selectors import elder_referrals

    now = timezone.now()
    found = elder_referrals(user=request.user, elder=elder, elder_checked=True)
    return {"elder_referrals": [_row(r, now) for r in found]}
