"""Monitoring on the pages of others: the worklist's open alerts, the elder page's section
(meters, devices, absences, recent alerts) and the absence form posted from it.

``worklist_alerts`` and ``elder_monitoring_context`` are called by the worklist and the elder
page; each costs a fixed number of queries (one on the worklist, four on the elder page) and
nothing without ``VIEW_ALERTS``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability, can
from tanfang.monitoring.absences import (
    AbsenceError,
    absence_end,
    absence_record,
    absences_current,
)
from tanfang.monitoring.models import Absence, Alert, AlertKind, AlertState
from tanfang.monitoring.selectors import alerts_open_for
from tanfang.registry.models import Elder
from tanfang.web import monitoring_labels as labels
from tanfang.web.monitoring_forms import AbsenceForm
from tanfang.web.views.common import elder_or_404, private
from tanfang.web.views.monitoring import alert_row

WORKLIST_LIMIT = 20
ELDER_ALERTS = 10


def worklist_alerts(request: HttpRequest) -> dict[str, Any] | None:
    """The open alerts of the user's elders, most urgent first (None without the right):
    those assigned to her, then not yet acknowledged before acknowledged, the most severe
    first, the newest first (``selectors.alerts_open_for`` with the severity added)."""
    user = request.user
    if not can(user, Capability.VIEW_ALERTS):
        return None
    found = alerts_open_for(user=user, limit=WORKLIST_LIMIT + 1)
    found.sort(
        key=lambda a: (
            a.assigned_to_id != user.pk,
            a.state != AlertState.OPEN,
            labels.SEVERITY_RANK.get(a.severity, 5),
            -a.detected_at.timestamp(),
        )
    )
    return {
        "rows": [alert_row(a) for a in found[:WORKLIST_LIMIT]],
        "more": len(found) > WORKLIST_LIMIT,
    }


def elder_monitoring_context(
    request: HttpRequest, elder: Elder, *, absence_form: AbsenceForm | None = None
) -> dict[str, Any]:
    """What ``monitoring/_elder_monitoring.html`` shows: meters (flagged when they stopped
    reporting), devices, absences now and ahead, the latest alerts, the absence form."""
    user = request.user
    if not can(user, Capability.VIEW_ALERTS):
        return {"monitoring_section": None}
    meters = list(elder.meters.filter(active=True).select_related("partner"))
    devices = list(elder.devices.filter(active=True).select_related("partner"))
    # ``elder`` comes from the scoped ``elder_or_404``: her alerts are read directly rather
    # than through ``selectors.elder_alerts``, whose scope check would only repeat that one.
    recent = list(
        Alert.objects.filter(elder=elder)
        .select_related("meter", "device", "assigned_to")
        .order_by("-detected_at", "-id")[:ELDER_ALERTS]
    )
    silent = {
        a.meter_id: a
        for a in recent
        if a.kind == AlertKind.DATA_SILENCE and a.state != AlertState.CLOSED and a.meter_id
    }
    handle = can(user, Capability.HANDLE_ALERTS)
    return {
        "monitoring_section": {
            "meters": [
                {
                    "meter": m,
                    "utility": labels.utility_noun(m.utility),
                    "silent": silent.get(m.pk),
                }
                for m in meters
            ],
            "devices": devices,
            "alerts": [alert_row(a) for a in recent if not a.technical],
            "absences": absences_current(elder),
            "absence_form": (absence_form or AbsenceForm(initial={"reason": "away"}))
            if handle
            else None,
            "today": timezone.localdate(),
        }
    }


@requires(Capability.VIEW_ELDERS, Capability.HANDLE_ALERTS)
@private
@require_POST
def elder_absence(request: HttpRequest, elder_id: int) -> HttpResponse:
    """Record an absence (away, in hospital) or end one (``end`` = the absence's id)."""
    from tanfang.web.views.elder_page import render_elder

    elder = elder_or_404(request, elder_id)
    target = reverse("elder-detail", args=[elder.pk]) + "#monitoring"
    if "end" in request.POST:
        absence_id = _int(request.POST["end"])
        absence = Absence.objects.filter(elder=elder, pk=absence_id).first() if absence_id else None
        if absence is None:
            messages.error(request, _("That absence was not found."))
        else:
            absence_end(actor=request.user, absence=absence, request=request)
            messages.success(request, _("The elder is back home: monitoring alerts resume."))
        return redirect(target)
    form = AbsenceForm(request.POST)
    if form.is_valid():
        d = form.cleaned_data
        try:
            absence_record(
                actor=request.user,
                elder=elder,
                reason=d["reason"],
                starts_on=d["starts_on"],
                ends_on=d["ends_on"],
                note=d["note"],
                request=request,
            )
        except AbsenceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request, _("The absence was recorded: no inactivity alerts in that time.")
            )
            return redirect(target)
    return render_elder(request, elder, absence_form=form, status=400)


def _int(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) < 19 else None
