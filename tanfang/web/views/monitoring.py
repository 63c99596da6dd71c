"""Monitoring pages: the alerts a user may see, one alert with its chart and history, and
acknowledging and closing it.

The alerts come from ``selectors.alerts_visible_to`` (a visitor's own elders, a community
worker's community and so on up; technical alerts to the data partner they concern), so an
alert outside the user's reach answers 404, exactly like one that does not exist. Every
change goes through the services of ``monitoring/alerts.py``; every page showing an elder's
alert is audited like the elder's record.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib import messages
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.models import User
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.monitoring.alerts import AlertError, alert_acknowledge, alert_close, visitor_of
from tanfang.monitoring.detection.engine import UNITS as CANONICAL_UNITS
from tanfang.monitoring.models import Alert, AlertKind, AlertState
from tanfang.monitoring.selectors import alert_visible, alerts_list, is_partner_view
from tanfang.web import monitoring_labels as labels
from tanfang.web.alert_chart import Series, chart, series_from_evidence
from tanfang.web.monitoring_forms import AlertAcknowledgeForm, AlertCloseForm, AlertFilterForm
from tanfang.web.views.common import private

log = logging.getLogger(__name__)

LIST_LIMIT = 100
LIST_FIELDS = (
    "id",
    "kind",
    "rule",
    "severity",
    "technical",
    "state",
    "level",
    "started_at",
    "detected_at",
    "acknowledged_at",
    "resolved_at",
    "closed_at",
    "outcome",
    "escalate_at",
    "evidence",
    "elder__id",
    "elder__name",
    "community__id",
    "community__name",
    "assigned_to__id",
    "assigned_to__username",
    "assigned_to__first_name",
    "assigned_to__last_name",
    "meter__id",
    "meter__meter_id",
    "meter__utility",
    "device__id",
    "device__device_id",
    "device__kind",
)


# -- reads ---------------------------------------------------------------------------------
def alerts_for(user: Any, *, state: str = "", kind: str = "") -> QuerySet[Alert]:
    """The alerts of ``user``'s scope (``selectors.alerts_list``) that a list shows: a
    meter that stopped reporting is the data partner's business, so the others see such a
    technical alert only when it is assigned to them or when they ask for that kind."""
    alerts = alerts_list(user=user, state="" if state == "all" else state, kind=kind)
    if not is_partner_view(user) and kind != AlertKind.DATA_SILENCE:
        alerts = alerts.filter(Q(technical=False) | Q(assigned_to=user))
    return alerts


def ordered(queryset: QuerySet[Alert]) -> QuerySet[Alert]:
    """Open first, then acknowledged, then closed; most severe first; newest first."""
    state_rank = Case(
        When(state=AlertState.OPEN, then=Value(0)),
        When(state=AlertState.ACKNOWLEDGED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    severity_rank = Case(
        *(When(severity=k, then=Value(v)) for k, v in labels.SEVERITY_RANK.items()),
        default=Value(5),
        output_field=IntegerField(),
    )
    return queryset.annotate(state_rank=state_rank, severity_rank=severity_rank).order_by(
        "state_rank", "severity_rank", "-detected_at", "-id"
    )


def _alert_or_404(request: HttpRequest, alert_id: int) -> Alert:
    alert = alert_visible(user=request.user, pk=alert_id)
    if alert is None:
        raise Http404
    return alert


def alert_row(alert: Alert) -> dict[str, Any]:
    """What a list, the worklist and the elder page show of one alert."""
    utility = alert.meter.utility if alert.meter_id and alert.meter else ""
    return {
        "alert": alert,
        "url": reverse("alert-detail", args=[alert.pk]),
        "severity": labels.severity_label(alert.severity),
        "severity_class": labels.severity_class(alert.severity),
        # A device alarm is named by the device: "SOS button", "Smoke detector".
        "kind": labels.device_label(alert.device.kind)
        if alert.device_id and alert.device
        else labels.kind_label(alert.kind),
        "state": _state_label(alert.state),
        "text": labels.rule_text(alert.rule, alert.kind, alert.evidence, utility),
        "level": labels.level_label(alert.level),
        "outcome": labels.outcome_label(alert.outcome) if alert.outcome else "",
    }


def _user(request: HttpRequest) -> User:
    """The signed-in user (``@requires`` let only such a user in)."""
    assert isinstance(request.user, User)
    return request.user


def _state_label(state: str) -> str:
    try:
        return str(AlertState(state).label)
    except ValueError:
        return state


# -- the list ------------------------------------------------------------------------------
@requires(Capability.VIEW_ALERTS)
@private
def alert_list(request: HttpRequest) -> HttpResponse:
    """The alerts the user may see, open first (``ordered``), filtered, at most 100."""
    form = AlertFilterForm(request.GET or None)
    f = form.filters()
    alerts = alerts_for(request.user, state=f["state"], kind=f["kind"])
    if f["severity"]:
        alerts = alerts.filter(severity=f["severity"])
    if f["mine"]:
        alerts = alerts.filter(assigned_to_id=request.user.pk)
    found = list(
        ordered(alerts)
        .select_related(None)
        .select_related("elder", "community", "assigned_to", "meter", "device")
        .only(*LIST_FIELDS)[: LIST_LIMIT + 1]
    )
    more = len(found) > LIST_LIMIT
    found = found[:LIST_LIMIT]
    partner = is_partner_view(request.user)
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_LIST,
        details={
            "page": "alerts",
            "filters": {k: v for k, v in f.items() if v},
            "shown": len(found),
            "elder_ids": [] if partner else sorted({a.elder_id for a in found if a.elder_id}),
        },
        request=request,
    )
    return render(
        request,
        "monitoring/alert_list.html",
        {
            # A data partner sees meters, never the elder or her community.
            "subject": "meter" if partner else "elder",
            "form": form,
            "filters": f,
            "rows": [alert_row(a) for a in found],
            "more": more,
            "limit": LIST_LIMIT,
        },
    )


# -- one alert -----------------------------------------------------------------------------
def _series(alert: Alert) -> Series | None:
    utility = alert.meter.utility if alert.meter is not None else ""
    unit = CANONICAL_UNITS.get(utility, "")
    found = series_from_evidence(alert.evidence, unit=unit)
    if found is not None or alert.meter is None:
        return found
    return _series_from_store(alert)


def _series_from_store(alert: Alert) -> Series | None:
    """The 48 hours up to the detection, from the reading store, for an alert raised without
    a series in its evidence (raw readings expire: None once they are gone)."""
    from tanfang.monitoring.chart import chart_series

    try:
        raw = chart_series(alert.meter, end=alert.detected_at)
    except Exception:  # the chart is a help, never a reason for the page to fail
        log.exception("chart of alert %s", alert.pk)
        return None
    return series_from_evidence({"series": raw}) if raw else None


def _render_alert(
    request: HttpRequest,
    alert: Alert,
    *,
    ack_form: AlertAcknowledgeForm | None = None,
    close_form: AlertCloseForm | None = None,
    status: int = 200,
) -> HttpResponse:
    # A data partner sees the meter and what it did, never the elder or her community.
    partner = is_partner_view(request.user)
    elder = None if partner else alert.elder
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=elder,
        request=request,
        details={"page": "alert", "alert": alert.pk},
    )
    series = _series(alert)
    drawn = None
    if series is not None:
        tz = alert.meter.tz if alert.meter is not None else "Asia/Shanghai"
        drawn = chart(series, started_at=alert.started_at, detected_at=alert.detected_at, tz=tz)
    today = timezone.localdate()
    events = [
        {
            "event": e,
            "label": labels.action_label(e.action),
            "level": labels.level_label(e.level) if e.level else "",
        }
        for e in alert.events.all()  # prefetched by ``alert_visible``, in time order
    ]
    handle = can(request.user, Capability.HANDLE_ALERTS)
    return render(
        request,
        "monitoring/alert_detail.html",
        {
            "row": alert_row(alert),
            "alert": alert,
            "elder": elder,
            "show_elder": not partner,
            "visitor": visitor_of(elder, today) if elder is not None else None,
            "also": alert.evidence.get("also") if isinstance(alert.evidence, dict) else None,
            "chart": drawn,
            "events": events,
            "can_handle": handle and alert.state != AlertState.CLOSED,
            "ack_form": ack_form or AlertAcknowledgeForm(),
            "close_form": close_form or AlertCloseForm(technical=alert.technical),
            "waited_minutes": _waited_minutes(alert),
        },
        status=status,
    )


def _waited_minutes(alert: Alert) -> int | None:
    """How long the alert waited for someone to acknowledge it."""
    if alert.acknowledged_at is None:
        return None
    waited: dt.timedelta = alert.acknowledged_at - alert.detected_at
    return max(0, int(waited.total_seconds() // 60))


@requires(Capability.VIEW_ALERTS)
@private
def alert_detail(request: HttpRequest, alert_id: int) -> HttpResponse:
    return _render_alert(request, _alert_or_404(request, alert_id))


@requires(Capability.VIEW_ALERTS, Capability.HANDLE_ALERTS)
@private
@require_POST
def alert_acknowledge_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    """The person on duty has seen the alert and is acting: the escalation stops."""
    alert = _alert_or_404(request, alert_id)
    form = AlertAcknowledgeForm(request.POST)
    if not form.is_valid():
        return _render_alert(request, alert, ack_form=form, status=400)
    try:
        alert_acknowledge(
            alert, actor=_user(request), note=form.cleaned_data["note"], request=request
        )
    except AlertError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Acknowledged: the alert no longer climbs."))
    return redirect(reverse("alert-detail", args=[alert.pk]) + "#alert-handle")


@requires(Capability.VIEW_ALERTS, Capability.HANDLE_ALERTS)
@private
@require_POST
def alert_close_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    """What was found, with a note: the alert is closed and its outcome counted."""
    alert = _alert_or_404(request, alert_id)
    form = AlertCloseForm(request.POST, technical=alert.technical)
    if form.is_valid():
        try:
            alert_close(
                alert,
                actor=_user(request),
                outcome=form.cleaned_data["outcome"],
                note=form.cleaned_data["note"].strip(),
                request=request,
            )
        except AlertError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("The outcome was recorded and the alert closed."))
            return redirect(reverse("alert-detail", args=[alert.pk]))
    return _render_alert(request, alert, close_form=form, status=400)
