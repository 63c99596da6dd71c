"""Monitoring alerts through the API: the caller's alerts, one with its evidence and history,
acknowledging, closing with an outcome, and an elder's alerts.

Rows come only from ``monitoring.selectors`` (a visitor's elders and what is assigned to
her, an area's alerts for the levels above, a data partner's technical alerts without any
elder's personal data); an alert outside them is a 404. Changes go through
``monitoring.alerts``. Views of personal data are audited as the elder endpoints are.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.pagination import KeysetPagination
from tanfang.api.serializers_alerts import (
    AcknowledgeInput,
    AlertDetailSerializer,
    AlertFilterInput,
    AlertSerializer,
    CloseInput,
)
from tanfang.api.serializers_visits import ErrorsSerializer
from tanfang.api.views_visits import ERRORS, FieldAppView
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.monitoring.alerts import (
    TECHNICAL_OUTCOMES,
    AlertError,
    alert_acknowledge,
    alert_close,
)
from tanfang.monitoring.models import Alert
from tanfang.monitoring.selectors import alert_visible, alerts_list, is_partner_view

CONFLICT = OpenApiResponse(
    ErrorsSerializer,
    description="Not possible in the alert's current state (acknowledged or closed meanwhile)",
)


class AlertPagination(KeysetPagination):
    """Newest first; a cursor on the detection time (ties by id)."""

    ordering = ("-detected_at", "-id")  # type: ignore[assignment]
    page_size = 50


class AlertView(FieldAppView):
    """Base of the alert endpoints: the serializers know whether the caller is a partner."""

    def context(self) -> dict[str, Any]:
        return {"partner_view": is_partner_view(self.request.user)}

    def alert(self, pk: int) -> Alert:
        found = alert_visible(user=self.request.user, pk=pk)
        if found is None:
            raise Http404
        return found

    def audit_list(self, alerts: list[Alert], api: str, **details: Any) -> None:
        audit_record(
            actor=self.request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": api,
                "shown": len(alerts),
                "elder_ids": sorted({a.elder_id for a in alerts if a.elder_id is not None}),
                **details,
            },
            request=self.request._request,
        )

    def audit_alert(self, alert: Alert, part: str = "alert") -> None:
        if alert.elder is None or is_partner_view(self.request.user):
            return
        audit_record(
            actor=self.request.user,
            action=AuditAction.VIEW_RECORD,
            elder=alert.elder,
            details={"via": "api", "part": part, "alert": alert.pk},
            request=self.request._request,
        )

    def detail(self, pk: int) -> Response:
        alert = self.alert(pk)
        return Response(AlertDetailSerializer(alert, context=self.context()).data)


class AlertListView(AlertView):
    """The alerts in the caller's scope."""

    required_capabilities = (Capability.VIEW_ALERTS,)
    serializer_class = AlertSerializer
    pagination_class = AlertPagination

    @extend_schema(
        parameters=[AlertFilterInput],
        responses={200: AlertSerializer(many=True), 400: ERRORS},
        summary="The caller's alerts",
        description="A visitor's elders' alerts and those assigned to her; a community "
        "worker's, subdistrict's, district's or city's alerts of their area; a data "
        "partner's technical alerts (meters that stopped reporting) of its own meters, "
        "without elder or community. Newest first, a page at a time (follow `next`). "
        "Filters: `state` (`active` = not closed), `kind`, `area` (a code in the caller's "
        "scope: its subtree). One `VIEW_LIST` audit entry per request.",
    )
    def get(self, request: Request) -> Response:
        params = self.query(AlertFilterInput)
        area = None
        if params.get("area"):
            area = Area.objects.visible_to(request.user).filter(code=params["area"]).first()
            if area is None:
                return self.refuse(status.HTTP_400_BAD_REQUEST, "area", _("Unknown area code."))
        alerts = alerts_list(
            user=request.user,
            state=params.get("state", ""),
            kind=params.get("kind", ""),
            area=area,
        )
        page = self.paginate_queryset(alerts) or []
        self.audit_list(page, "alerts", filters={k: str(v) for k, v in params.items()})
        return self.get_paginated_response(
            AlertSerializer(page, many=True, context=self.context()).data
        )


class AlertDetailView(AlertView):
    """One alert with its evidence and history."""

    required_capabilities = (Capability.VIEW_ALERTS,)
    serializer_class = AlertDetailSerializer

    @extend_schema(
        responses=AlertDetailSerializer,
        summary="One alert (audited)",
        description="With the rule's evidence (and, for meter alerts, `evidence.series`: the "
        "48 hours before detection, hour by hour, against the home's usual use at the same "
        "hours of the week) and every event: raised, assigned, escalated, acknowledged, "
        "activity resumed, closed. Audited as a `VIEW_RECORD` on the elder.",
    )
    def get(self, request: Request, pk: int) -> Response:
        alert = self.alert(pk)
        self.audit_alert(alert)
        return Response(AlertDetailSerializer(alert, context=self.context()).data)


class AlertAcknowledgeView(AlertView):
    """The person on duty has seen the alert and acts on it: the escalation stops."""

    required_capabilities = (Capability.VIEW_ALERTS,)
    write_capabilities = (Capability.HANDLE_ALERTS,)
    serializer_class = AlertDetailSerializer

    @extend_schema(
        request=AcknowledgeInput,
        responses={200: AlertDetailSerializer, 400: ERRORS, 409: CONFLICT},
        summary="Acknowledge an alert",
        description="Stops the climb to the next level. An alert already acknowledged or "
        "closed: `409 Conflict`. Recorded in the alert's history and audited.",
    )
    def post(self, request: Request, pk: int) -> Response:
        alert = self.alert(pk)
        data = AcknowledgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            alert_acknowledge(
                alert,
                actor=request.user,  # type: ignore[arg-type]
                note=data.validated_data["note"],
                request=request._request,
            )
        except AlertError as exc:
            return self.refuse(status.HTTP_409_CONFLICT, "", str(exc))
        return self.detail(pk)


class AlertCloseView(AlertView):
    """Record what was found; the alert is closed and its outcome counted."""

    required_capabilities = (Capability.VIEW_ALERTS,)
    write_capabilities = (Capability.HANDLE_ALERTS,)
    serializer_class = AlertDetailSerializer

    @extend_schema(
        request=CloseInput,
        responses={200: AlertDetailSerializer, 400: ERRORS, 409: CONFLICT},
        summary="Close an alert with its outcome",
        description="`outcome`: false alarm, all well, needed help, emergency handled, "
        "hospitalised, found deceased (the last two set the elder's life status, and so her "
        "visit obligations). A meter that stopped reporting closes only as a false alarm or "
        "all well. Closing an alert nobody acknowledged acknowledges it too. An alert "
        "already closed: `409 Conflict`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        alert = self.alert(pk)
        data = CloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = data.validated_data["outcome"]
        if alert.technical and outcome not in TECHNICAL_OUTCOMES:
            return self.refuse(
                status.HTTP_400_BAD_REQUEST,
                "outcome",
                _("A meter that stopped reporting is closed as a false alarm or as all well."),
            )
        try:
            alert_close(
                alert,
                actor=request.user,  # type: ignore[arg-type]
                outcome=outcome,
                note=data.validated_data["note"],
                request=request._request,
            )
        except AlertError as exc:
            return self.refuse(status.HTTP_409_CONFLICT, "", str(exc))
        return self.detail(pk)


class ElderAlertsView(AlertView):
    """An elder's alerts, for the elder's page in the app."""

    required_capabilities = (Capability.VIEW_ELDERS, Capability.VIEW_ALERTS)
    serializer_class = AlertSerializer
    pagination_class = AlertPagination

    @extend_schema(
        responses=AlertSerializer(many=True),
        summary="An elder's alerts (audited)",
        description="Every alert of an elder in the caller's scope, newest first, a page at "
        "a time. Audited as a `VIEW_RECORD` on the elder.",
    )
    def get(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        page = self.paginate_queryset(alerts_list(user=request.user, elder=elder)) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api", "part": "alerts", "shown": len(page)},
            request=request._request,
        )
        return self.get_paginated_response(
            AlertSerializer(page, many=True, context=self.context()).data
        )
