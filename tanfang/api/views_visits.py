"""The field app's visit endpoints: the worklist, an elder's summary, recording a visit
(idempotent on the app's ``client_uuid``), reading and correcting one.

Views only call the visits selectors and services; every 400 of these endpoints answers
``{"errors": [{"field", "label", "message"}]}`` in the request's language.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.base import ScopedAPIView
from tanfang.api.serializers_visits import (
    ElderSummarySerializer,
    ErrorsSerializer,
    VisitCorrectInput,
    VisitSerializer,
    VisitSubmitInput,
    WorklistSerializer,
    elder_summary,
    errors_body,
    flatten_errors,
)
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder
from tanfang.visits.models import Visit
from tanfang.visits.selectors import (
    care_actions_for,
    elder_status,
    elder_visits,
    visit_visible,
    worklist,
)
from tanfang.visits.services import (
    Location,
    VisitError,
    VisitInput,
    visit_correct,
    visit_record,
)

ERRORS = OpenApiResponse(ErrorsSerializer, description="What is wrong, field by field")
LAST_VISITS = 5


class FieldAppView(ScopedAPIView):
    """Base of the field app's endpoints: one error envelope for every 400, field paths as
    sent with their names and messages in the request's language (``Accept-Language``)."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, VisitError):
            return Response(errors_body(exc.errors), status=status.HTTP_400_BAD_REQUEST)
        response = super().handle_exception(exc)
        data = response.data
        if response.status_code == status.HTTP_400_BAD_REQUEST and not (
            isinstance(data, dict) and "errors" in data
        ):
            response.data = errors_body(flatten_errors(data))
        return response

    def refuse(self, code: int, name: str, message: str) -> Response:
        return Response(errors_body([(name, message)]), status=code)


def _visit_for_response(pk: int) -> Visit:
    """The visit as stored (not as built in memory), so a replay answers the same body."""
    return Visit.objects.prefetch_related("care_actions").get(pk=pk)


class WorklistView(FieldAppView):
    """Whom the caller must visit or call: overdue, due today, due this week."""

    required_capabilities = (Capability.VIEW_VISITS,)
    serializer_class = WorklistSerializer

    @extend_schema(
        responses=WorklistSerializer,
        summary="The caller's worklist",
        description="A visitor's own elders (and those of a visitor she stands in for); a "
        "community worker's and higher roles' due elders of their area. Most urgent first "
        "(overdue days, risk, open care actions, advanced age), at most 200 rows. Names and "
        "elder ids only, no identifiers. One `VIEW_LIST` audit entry per request.",
    )
    def get(self, request: Request) -> Response:
        found = worklist(user=request.user)
        shown = [*found.overdue, *found.today, *found.week]
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "worklist",
                "shown": len(shown),
                "elder_ids": [row.elder_id for row in shown],
            },
            request=request._request,
        )
        return Response(WorklistSerializer(found).data)


class ElderSummaryView(FieldAppView):
    """What the visit screen needs about one elder."""

    required_capabilities = (Capability.VIEW_ELDERS, Capability.VIEW_VISITS)
    serializer_class = ElderSummarySerializer

    @extend_schema(
        responses=ElderSummarySerializer,
        summary="An elder's summary for the visit screen (audited)",
        description="Name, age, categories, masked phone, address, the first contact's "
        "relation and masked phone, the visit status (next due, overdue since, open "
        "obligations), the last five visits and the open care actions the caller works on. "
        "Audited as a `VIEW_RECORD` on the elder.",
    )
    def get(self, request: Request, pk: int) -> Response:
        user: Any = request.user
        elder = (
            Elder.objects.visible_to(user)
            .select_related("community", "first_contact")
            .filter(pk=pk)
            .first()
        )
        if elder is None:
            raise Http404
        visits = list(elder_visits(user=user, elder=elder, limit=LAST_VISITS))
        actions = care_actions_for(user=user).filter(elder=elder)
        summary = elder_summary(elder, elder_status(user=user, elder=elder), visits, actions)
        audit_record(
            actor=user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api", "part": "summary"},
            request=request._request,
        )
        return Response(ElderSummarySerializer(summary).data)


_EXAMPLE = {
    "client_uuid": "3f1c6a7e-2b7d-4a51-9a0e-6f7d8c9b0a12",
    "elder": 123,
    "mode": "in_home",
    "started_at": "2026-03-05T09:30:00+08:00",
    "ended_at": "2026-03-05T09:52:00+08:00",
    "person_met": "elder",
    "outcome": "met",
    "sections": {
        "health": {"mobility": "aided"},
        "safety": {"gas": {"hazard": True, "what": "hose cracked"}},
        "needs": {"kinds": ["rehabilitation_nursing"]},
    },
    "notes": "",
    "consent": True,
    "location": {"latitude": 39.9288, "longitude": 116.4166, "accuracy_m": 15},
}


class VisitCreateView(FieldAppView):
    """Record a visit; the same ``client_uuid`` again is the same visit."""

    required_capabilities = (Capability.RECORD_VISITS,)
    serializer_class = VisitSerializer

    @extend_schema(
        request=VisitSubmitInput,
        responses={
            201: OpenApiResponse(VisitSerializer, description="Recorded now"),
            200: OpenApiResponse(
                VisitSerializer,
                description="This `client_uuid` was recorded before: nothing new is stored "
                "and the visit is answered as it is now (the same body as the first answer "
                "unless it was corrected or its care actions moved on since)",
            ),
            400: ERRORS,
        },
        summary="Record a visit (idempotent)",
        description="Submit again with the same `client_uuid` whenever the answer did not "
        "arrive: the visit is stored once. Times are ISO 8601 with their UTC offset. The "
        "elder must be in the caller's scope (otherwise `elder` is reported unknown, as for "
        "one that does not exist). What follows from the visit happens in the same "
        "transaction: the elder's life status (in hospital, deceased), the care actions "
        "the elder consented to, the elder's visit status, an audit entry.",
        examples=[OpenApiExample("In-home visit", value=_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = VisitSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        elder = (
            Elder.objects.visible_to(request.user)
            .select_related("community")
            .filter(pk=values.pop("elder"))
            .first()
        )
        if elder is None:
            return self.refuse(status.HTTP_400_BAD_REQUEST, "elder", _("Unknown elder."))
        location = values.pop("location")
        visit, created = visit_record(
            actor=request.user,
            elder=elder,
            data=VisitInput(**values, location=None if location is None else Location(**location)),
        )
        return Response(
            VisitSerializer(_visit_for_response(visit.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class VisitDetailView(FieldAppView):
    """One visit of an elder in scope; its author corrects it within 24 hours."""

    required_capabilities = (Capability.VIEW_VISITS,)
    write_capabilities = (Capability.RECORD_VISITS,)
    serializer_class = VisitSerializer

    def _visit(self, pk: int) -> Visit:
        visit = visit_visible(user=self.request.user, visit_id=pk)
        if visit is None:
            raise Http404
        return visit

    @extend_schema(responses=VisitSerializer, summary="One visit (audited)")
    def get(self, request: Request, pk: int) -> Response:
        visit = self._visit(pk)
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=visit.elder,
            details={"via": "api", "part": "visit", "visit": visit.pk},
            request=request._request,
        )
        return Response(VisitSerializer(_visit_for_response(visit.pk)).data)

    @extend_schema(
        request=VisitCorrectInput,
        responses={
            200: VisitSerializer,
            400: ERRORS,
            403: OpenApiResponse(ErrorsSerializer, description="The caller is not the author"),
            409: OpenApiResponse(
                ErrorsSerializer, description="Locked: recorded more than 24 hours ago"
            ),
        },
        summary="Correct a visit (author, within 24 hours)",
        description="Only the fields sent change (`sections` as a whole). Every correction "
        "is kept as a revision and audited; `revision` counts them. After `locked_after` "
        "the record is locked: `409 Conflict`. Someone else's record: `403`.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        visit = self._visit(pk)
        data = VisitCorrectInput(data=request.data)
        data.is_valid(raise_exception=True)
        unknown = sorted(set(request.data) - set(data.fields))
        if unknown:
            message = _("This field cannot be corrected.")
            return Response(
                errors_body([(name, message) for name in unknown]),
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            corrected = visit_correct(
                actor=request.user, visit=visit, changes=dict(data.validated_data)
            )
        except VisitError as exc:
            if any(name == "visit" for name, _message in exc.errors):
                code = (
                    status.HTTP_403_FORBIDDEN
                    if visit.recorded_by_id != request.user.pk
                    else status.HTTP_409_CONFLICT
                    if timezone.now() >= visit.locked_after
                    else status.HTTP_400_BAD_REQUEST
                )
                return Response(errors_body(exc.errors), status=code)
            raise
        return Response(VisitSerializer(_visit_for_response(corrected.pk)).data)
