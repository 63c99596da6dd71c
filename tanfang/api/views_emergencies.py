"""Emergencies through the API: the caller's cases, one case with its call list (masked)
and timeline, logging a call, confirming, closing.

Rows come only from ``emergencies.selectors.visible_to`` (outside: 404); changes go through
``emergencies.services``. Views of a case are audited like the elder's record.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.pagination import KeysetPagination
from tanfang.api.serializers_emergencies import (
    CallInput,
    ConfirmInput,
    EmergencyCloseInput,
    EmergencyDetailSerializer,
    EmergencyFilterInput,
    EmergencySerializer,
)
from tanfang.api.serializers_visits import ErrorsSerializer
from tanfang.api.views_visits import ERRORS, FieldAppView
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.emergencies.models import EmergencyCase
from tanfang.emergencies.selectors import case_visible, timeline, visible_to
from tanfang.emergencies.services import (
    EmergencyError,
    call_list,
    call_log,
    emergency_close,
    emergency_confirm,
)

CONFLICT = OpenApiResponse(
    ErrorsSerializer,
    description="Not possible in the case's current state (confirmed or closed meanwhile)",
)


class EmergencyPagination(KeysetPagination):
    """Newest first; a cursor on the opening time (ties by id)."""

    ordering = ("-opened_at", "-id")  # type: ignore[assignment]
    page_size = 50


class EmergencyView(FieldAppView):
    def case(self, pk: int) -> EmergencyCase:
        found = case_visible(user=self.request.user, pk=pk)
        if found is None:
            raise Http404
        return found

    def detail(self, pk: int, *, audit: bool = True) -> Response:
        case = self.case(pk)
        if audit:
            audit_record(
                actor=self.request.user,
                action=AuditAction.VIEW_RECORD,
                elder=case.elder,
                details={"via": "api", "part": "emergency", "emergency": case.pk},
                request=self.request._request,
            )
        context = {"calls": call_list(case, reveal=False), "timeline": timeline(case)}
        return Response(EmergencyDetailSerializer(case, context=context).data)


class EmergencyListView(EmergencyView):
    """The emergencies in the caller's scope."""

    required_capabilities = (Capability.VIEW_EMERGENCIES,)
    serializer_class = EmergencySerializer
    pagination_class = EmergencyPagination

    @extend_schema(
        parameters=[EmergencyFilterInput],
        responses={200: EmergencySerializer(many=True), 400: ERRORS},
        summary="The caller's emergencies",
        description="A visitor's elders' cases and those assigned to her; a community "
        "worker's, subdistrict's, district's or city's cases of their area. Newest first, a "
        "page at a time (follow `next`). `state`: `open`, `confirmed`, `closed` or `active` "
        "(not closed). One `VIEW_LIST` audit entry per request.",
    )
    def get(self, request: Request) -> Response:
        params = self.query(EmergencyFilterInput)
        cases = visible_to(request.user).select_related("elder", "community", "assigned_to")
        state = params.get("state", "")
        if state == "active":
            cases = cases.exclude(state="closed")
        elif state:
            cases = cases.filter(state=state)
        page: list[Any] = self.paginate_queryset(cases) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "emergencies",
                "shown": len(page),
                "elder_ids": sorted({c.elder_id for c in page}),
            },
            request=request._request,
        )
        return self.get_paginated_response(EmergencySerializer(page, many=True).data)


class EmergencyDetailView(EmergencyView):
    """One case with its call list and timeline."""

    required_capabilities = (Capability.VIEW_EMERGENCIES,)
    serializer_class = EmergencyDetailSerializer

    @extend_schema(
        responses=EmergencyDetailSerializer,
        summary="One emergency (audited)",
        description="With the call list in order (first contact, family, visitor, community "
        "worker, subdistrict staff; phones masked: the full numbers are on the case page) "
        "and the timeline: opened, joined, assigned, each message told (channel, masked "
        "address, its state now; `sent` and `delivered` lines from the outbox), calls, "
        "escalations, confirmation, closing. Audited as a `VIEW_RECORD` on the elder.",
    )
    def get(self, request: Request, pk: int) -> Response:
        return self.detail(pk)


class EmergencyCallView(EmergencyView):
    """Log one call from the call list and what came of it."""

    required_capabilities = (Capability.VIEW_EMERGENCIES,)
    write_capabilities = (Capability.HANDLE_EMERGENCIES,)
    serializer_class = EmergencyDetailSerializer

    @extend_schema(
        request=CallInput,
        responses={200: EmergencyDetailSerializer, 400: ERRORS, 409: CONFLICT},
        summary="Log a call",
        description="`contact`: a `ref` of the call list; `result`: `no_answer`, `busy`, "
        "`unreachable` or `answered`. An answered call does not confirm the case. Someone "
        "not on the list: `400`; a closed case: `409`. Recorded in the timeline, audited.",
    )
    def post(self, request: Request, pk: int) -> Response:
        case = self.case(pk)
        data = CallInput(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if d["contact"] not in {line.ref for line in call_list(case, reveal=False)}:
            return self.refuse(
                status.HTTP_400_BAD_REQUEST, "contact", "That person is not on the call list."
            )
        try:
            call_log(
                case=case,
                actor=request.user,  # type: ignore[arg-type]
                contact_ref=d["contact"],
                result=d["result"],
                note=d["note"],
                request=request._request,
            )
        except EmergencyError as exc:
            return self.refuse(status.HTTP_409_CONFLICT, "", str(exc))
        return self.detail(pk, audit=False)


class EmergencyConfirmView(EmergencyView):
    """A person confirms the emergency is being handled: it stops climbing."""

    required_capabilities = (Capability.VIEW_EMERGENCIES,)
    write_capabilities = (Capability.HANDLE_EMERGENCIES,)
    serializer_class = EmergencyDetailSerializer

    @extend_schema(
        request=ConfirmInput,
        responses={200: EmergencyDetailSerializer, 400: ERRORS, 409: CONFLICT},
        summary="Confirm an emergency is being handled",
        description="Stops the climb to the next level. Already confirmed or closed: `409`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        case = self.case(pk)
        data = ConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            emergency_confirm(
                case=case,
                actor=request.user,  # type: ignore[arg-type]
                note=data.validated_data["note"],
                request=request._request,
            )
        except EmergencyError as exc:
            return self.refuse(status.HTTP_409_CONFLICT, "", str(exc))
        return self.detail(pk, audit=False)


class EmergencyCloseView(EmergencyView):
    """What came of it; the case is closed."""

    required_capabilities = (Capability.VIEW_EMERGENCIES,)
    write_capabilities = (Capability.HANDLE_EMERGENCIES,)
    serializer_class = EmergencyDetailSerializer

    @extend_schema(
        request=EmergencyCloseInput,
        responses={200: EmergencyDetailSerializer, 400: ERRORS, 409: CONFLICT},
        summary="Close an emergency with its outcome",
        description="`outcome`: `false_alarm`, `all_well`, `helped_at_home`, `hospitalised`, "
        "`found_deceased` (the last two need a `note` and set the elder's life status). "
        "Closing an unconfirmed case confirms it too; the alert that opened it is closed "
        "with it. Already closed: `409`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        case = self.case(pk)
        data = EmergencyCloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if d["outcome"] in ("hospitalised", "found_deceased") and not d["note"].strip():
            return self.refuse(
                status.HTTP_400_BAD_REQUEST, "note", "Say what happened: a note is required."
            )
        try:
            emergency_close(
                case=case,
                actor=request.user,  # type: ignore[arg-type]
                outcome=d["outcome"],
                note=d["note"],
                request=request._request,
            )
        except EmergencyError as exc:
            return self.refuse(status.HTTP_409_CONFLICT, "", str(exc))
        return self.detail(pk, audit=False)
