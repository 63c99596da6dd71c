"""The field app's care actions: the caller's open ones, one with its history, a step on.

Rows come from ``visits.selectors.care_actions_for`` (a visitor's own actions and those
escalated to her; a community worker and above, every action of the elders in her area);
an action outside it is a 404. Steps go through ``care.services.care_action_move``.
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
from tanfang.api.serializers_visits import (
    CareActionDetailSerializer,
    CareActionSerializer,
    CareMoveInput,
    ErrorsSerializer,
    errors_body,
)
from tanfang.api.views_visits import ERRORS, FieldAppView
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.care.models import CareAction, ServiceEntry
from tanfang.care.rules import CareKind
from tanfang.care.services import CareError, care_action_move
from tanfang.visits.selectors import care_actions_for


class CareActionPagination(KeysetPagination):
    """Soonest due first. A cursor on the due date (ties by id), never OFFSET/COUNT pages."""

    ordering = ("due_on", "id")  # type: ignore[assignment]
    page_size = 100


def _actions(user: Any, *, include_closed: bool) -> Any:
    return care_actions_for(user=user, include_closed=include_closed)


class CareActionListView(FieldAppView):
    """The open care actions the caller works on."""

    required_capabilities = (Capability.MANAGE_CARE_ACTIONS,)
    serializer_class = CareActionSerializer
    pagination_class = CareActionPagination

    @extend_schema(
        responses=CareActionSerializer(many=True),
        summary="The caller's open care actions",
        description="A visitor's own actions and those escalated to her; a community worker "
        "(and above) every open action of the elders in her area. Soonest due first, a page "
        "at a time (follow `next`). One `VIEW_LIST` audit entry per request.",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(_actions(request.user, include_closed=False)) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "care_actions",
                "shown": len(page),
                "elder_ids": sorted({action.elder_id for action in page}),
            },
            request=request._request,
        )
        return self.get_paginated_response(CareActionSerializer(page, many=True).data)


def _detail(user: Any, pk: int) -> CareAction:
    action = (
        _actions(user, include_closed=True)
        .select_related("elder__community")
        .prefetch_related("events__by")
        .filter(pk=pk)
        .first()
    )
    if action is None:
        raise Http404
    return action


class CareActionDetailView(FieldAppView):
    """One care action with its history."""

    required_capabilities = (Capability.MANAGE_CARE_ACTIONS,)
    serializer_class = CareActionDetailSerializer

    @extend_schema(responses=CareActionDetailSerializer, summary="One care action (audited)")
    def get(self, request: Request, pk: int) -> Response:
        action = _detail(request.user, pk)
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=action.elder,
            details={"via": "api", "part": "care_action", "care_action": action.pk},
            request=request._request,
        )
        return Response(CareActionDetailSerializer(action).data)


class CareActionMoveView(FieldAppView):
    """Move a care action one step on (its `next_states`)."""

    required_capabilities = (Capability.MANAGE_CARE_ACTIONS,)
    serializer_class = CareActionDetailSerializer

    @extend_schema(
        request=CareMoveInput,
        responses={
            200: CareActionDetailSerializer,
            400: ERRORS,
            409: OpenApiResponse(
                ErrorsSerializer,
                description="The step is not possible from the action's current state "
                "(it was closed or moved on meanwhile)",
            ),
        },
        summary="Move a care action one step on",
        description="`to` is one of the action's `next_states`; a closing step (granted, "
        "not granted, removed, served, declined) closes it. `service` (a service of the "
        "directory serving the elder's area) connects a service need. Every step is kept "
        "in the action's history.",
    )
    def post(self, request: Request, pk: int) -> Response:
        action = _detail(request.user, pk)
        data = CareMoveInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        service = None
        if values["service"] is not None:
            if action.kind != CareKind.SERVICE:
                return self.refuse(
                    status.HTTP_400_BAD_REQUEST,
                    "service",
                    _("Only a service need is connected to a service."),
                )
            service = _service(action, values["service"])
            if service is None:
                return self.refuse(status.HTTP_400_BAD_REQUEST, "service", _("Unknown service."))
        try:
            care_action_move(
                actor=request.user,
                action=action,
                to=values["to"],
                note=values["note"],
                result=values["result"],
                service=service,
            )
        except CareError as exc:
            return Response(errors_body([("to", str(exc))]), status=status.HTTP_409_CONFLICT)
        return Response(CareActionDetailSerializer(_detail(request.user, pk)).data)


def _service(action: CareAction, pk: int) -> ServiceEntry | None:
    """An active service of the directory whose area holds the elder's community."""
    community = action.elder.community
    ancestors = (community.city_id, community.district_id, community.subdistrict_id, community.pk)
    places = [place for place in ancestors if place is not None]
    return ServiceEntry.objects.filter(pk=pk, active=True, area_id__in=places).first()
