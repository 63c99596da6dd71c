"""Referrals through the API: the caller's referrals, one with its history, a step on.

Rows come only from ``referrals.selectors`` (subdistrict staff their subdistrict's, a
community worker her community's, a district supervisor her district's, the city
administrator her city's); a referral outside them is a 404. Steps go through
``referrals.services.referral_move``. Views of personal data are audited.
"""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.pagination import KeysetPagination
from tanfang.api.serializers_referrals import (
    ReferralDetailSerializer,
    ReferralFilterInput,
    ReferralSerializer,
    ReferralStepInput,
)
from tanfang.api.serializers_visits import ErrorsSerializer, errors_body
from tanfang.api.views_visits import ERRORS, FieldAppView
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.referrals.models import Referral
from tanfang.referrals.selectors import referral_visible, referrals_list
from tanfang.referrals.services import ReferralError, referral_move, services_for


class ReferralPagination(KeysetPagination):
    """Soonest due first (so the overdue first); a cursor on the due time (ties by id)."""

    ordering = ("due_at", "id")  # type: ignore[assignment]
    page_size = 100


class ReferralView(FieldAppView):
    def referral(self, pk: int) -> Referral:
        found = referral_visible(user=self.request.user, pk=pk)
        if found is None:
            raise Http404
        return found

    def audit_referral(self, referral: Referral) -> None:
        audit_record(
            actor=self.request.user,
            action=AuditAction.VIEW_RECORD,
            elder=referral.elder,
            details={"via": "api", "part": "referral", "referral": referral.pk},
            request=self.request._request,
        )


class ReferralListView(ReferralView):
    """The referrals in the caller's scope."""

    required_capabilities = (Capability.VIEW_REFERRALS,)
    serializer_class = ReferralSerializer
    pagination_class = ReferralPagination

    @extend_schema(
        parameters=[ReferralFilterInput],
        responses={200: ReferralSerializer(many=True), 400: ERRORS},
        summary="The caller's referrals",
        description="Subdistrict staff: the referrals their subdistrict received; a community "
        "worker: her community's; a district supervisor: her district's; the city "
        "administrator: her city's. Open ones by default, soonest due (so the overdue) "
        "first, a page at a time (follow `next`). Filters: `state` (one state, or `all`), "
        "`overdue`. One `VIEW_LIST` audit entry per request.",
    )
    def get(self, request: Request) -> Response:
        params = self.query(ReferralFilterInput)
        found = referrals_list(
            user=request.user, state=params.get("state", ""), overdue=params["overdue"]
        )
        page = self.paginate_queryset(found) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "referrals",
                "shown": len(page),
                "elder_ids": sorted({r.elder_id for r in page}),
            },
            request=request._request,
        )
        return self.get_paginated_response(ReferralSerializer(page, many=True).data)


class ReferralDetailView(ReferralView):
    """One referral with its history."""

    required_capabilities = (Capability.VIEW_REFERRALS,)
    serializer_class = ReferralDetailSerializer

    @extend_schema(responses=ReferralDetailSerializer, summary="One referral (audited)")
    def get(self, request: Request, pk: int) -> Response:
        referral = self.referral(pk)
        self.audit_referral(referral)
        return Response(ReferralDetailSerializer(referral).data)


class ReferralStepView(ReferralView):
    """Move a referral one step on (its `next_states`)."""

    required_capabilities = (Capability.HANDLE_REFERRALS,)
    serializer_class = ReferralDetailSerializer

    @extend_schema(
        request=ReferralStepInput,
        responses={
            200: ReferralDetailSerializer,
            400: ERRORS,
            409: OpenApiResponse(
                ErrorsSerializer,
                description="The step is not possible from the referral's current state "
                "(it was closed or moved on meanwhile)",
            ),
        },
        summary="Move a referral one step on",
        description="`to`: `accepted`, `matched` (with `service`, a service of the directory "
        "serving the elder's area), `done` (with `result`) or `declined` (with `reason`). "
        "Each open step gets its time limit from the district's referral rules; `done` and "
        "`declined` close the referral. Every step is kept in its history and audited.",
    )
    def post(self, request: Request, pk: int) -> Response:
        referral = self.referral(pk)
        data = ReferralStepInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        service = None
        if values["service"] is not None:
            service = next((s for s in services_for(referral) if s.pk == values["service"]), None)
            if service is None:
                return self.refuse(status.HTTP_400_BAD_REQUEST, "service", _("Unknown service."))
        try:
            referral_move(
                request.user,
                referral,
                values["to"],
                service=service,
                reason=values["reason"],
                result=values["result"],
                request=request._request,
            )
        except ReferralError as exc:
            if exc.code == "not_possible":
                return Response(errors_body([("to", str(exc))]), status=status.HTTP_409_CONFLICT)
            if exc.code == "forbidden":
                return self.refuse(status.HTTP_403_FORBIDDEN, "", str(exc))
            name = {"reason": "reason", "service": "service", "result": "result"}.get(exc.code, "")
            return self.refuse(status.HTTP_400_BAD_REQUEST, name, str(exc))
        return Response(ReferralDetailSerializer(self.referral(pk)).data)
