"""``elders/``: the registry through the API, scoped, masked, audited, written by services."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.base import ScopedAPIView
from tanfang.api.inputs import (
    CategoryOverrideInput,
    ElderCreateInput,
    ElderFacts,
    ElderFilterInput,
    RevealInput,
    elder_record_from,
)
from tanfang.api.pagination import KeysetPagination
from tanfang.api.selectors import elders_list
from tanfang.api.serializers import (
    CategoryOverrideSerializer,
    ElderClassificationSerializer,
    ElderDetailSerializer,
    ElderListSerializer,
    FirstContactSerializer,
    RevealedSerializer,
    elder_classification,
)
from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.core import crypto
from tanfang.registry.identity import gender_of
from tanfang.registry.models import CategoryOverride, Elder
from tanfang.registry.services import (
    category_override,
    elder_create,
    elder_edit,
    find_by_id_number,
    identifier_reveal,
)

_DETAIL_RELATED = ("community", "grid", "first_contact")
_DETAIL_PREFETCH = ("children", "household", "assessments", "contracts")


def _detail(user: Any, pk: int) -> Elder:
    return (
        Elder.objects.visible_to(user)
        .select_related(*_DETAIL_RELATED)
        .prefetch_related(*_DETAIL_PREFETCH)
        .get(pk=pk)
    )


def _check_places(user: Any, data: dict[str, Any], current: Area | None = None) -> None:
    """A community (and grid) given in the input must lie in the user's scope, and a grid
    in the elder's (new or ``current``) community."""
    visible = Area.objects.visible_to(user)
    community = current
    if "community_code" in data:
        community = visible.filter(code=data["community_code"], level=AreaLevel.COMMUNITY).first()
        if community is None:
            raise ValidationError({"community_code": [_("Unknown community code.")]})
    if data.get("grid_code"):
        grid = visible.filter(code=data["grid_code"], level=AreaLevel.GRID).first()
        if grid is None or (community is not None and grid.community_id != community.pk):
            raise ValidationError({"grid_code": [_("Unknown grid code.")]})


def _record(request: Request, values: dict[str, Any], id_number: str) -> Any:
    user: Any = request.user
    return elder_record_from(
        values, id_number=id_number, recorded_by_name=user.get_full_name() or user.username
    )


class ElderListView(ScopedAPIView):
    """The elders the user may see; POST registers a new one."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    write_capabilities = (Capability.EDIT_ELDERS,)
    serializer_class = ElderListSerializer
    pagination_class = KeysetPagination

    @extend_schema(
        parameters=[ElderFilterInput],
        responses=ElderListSerializer(many=True),
        summary="List elders",
        description="The elders in the caller's scope, filtered and searched like the web "
        "list, a page at a time (follow `next`). One audit entry per request records the "
        "filters (identifiers masked) and the elders shown.",
    )
    def get(self, request: Request) -> Response:
        queryset, logged = elders_list(request.user, self.query(ElderFilterInput))
        page = self.paginate_queryset(queryset) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "elders",
                "filters": logged,
                "shown": len(page),
                "elder_ids": [elder.pk for elder in page],
            },
            request=request._request,
        )
        return self.get_paginated_response(ElderListSerializer(page, many=True).data)

    @extend_schema(
        request=ElderCreateInput,
        responses={201: ElderDetailSerializer},
        summary="Register an elder",
        description="Registers the elder through the registry's services (a change row, "
        "the classification, an audit entry). Facts are recorded with the caller as their "
        "source and today as their date. A resident ID number that is already registered "
        "is refused.",
    )
    def post(self, request: Request) -> Response:
        data = ElderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        _check_places(request.user, values)
        number = values.pop("id_number")
        existing = find_by_id_number(Elder.objects.select_related("community"), number).first()
        if existing is not None:
            if not Elder.objects.visible_to(request.user).filter(pk=existing.pk).exists():
                # The other area's auditor should know someone tried to register its elder.
                audit_record(
                    actor=request.user,
                    action=AuditAction.ACCESS_DENIED,
                    elder=existing,
                    details={"via": "api", "attempt": "create"},
                    request=request._request,
                )
            raise ValidationError(
                {"id_number": [_("An elder with this resident ID number is already registered.")]}
            )
        values.setdefault("gender", gender_of(number))
        elder = elder_create(
            actor=request.user, record=_record(request, values, number), request=request._request
        )
        return Response(
            ElderDetailSerializer(_detail(request.user, elder.pk)).data,
            status=status.HTTP_201_CREATED,
        )


class ElderDetailView(ScopedAPIView):
    """One elder; PATCH changes facts through the registry's upsert."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    write_capabilities = (Capability.EDIT_ELDERS,)
    serializer_class = ElderDetailSerializer

    @extend_schema(responses=ElderDetailSerializer, summary="One elder (audited)")
    def get(self, request: Request, pk: int) -> Response:
        try:
            elder = _detail(request.user, pk)
        except Elder.DoesNotExist as exc:
            raise Http404 from exc
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api"},
            request=request._request,
        )
        return Response(ElderDetailSerializer(elder).data)

    @extend_schema(
        request=ElderFacts,
        responses=ElderDetailSerializer,
        summary="Change an elder's facts",
        description="Only the fields given are changed; null records a fact as not known. "
        "The change is recorded (caller as source, today as date), audited, and the elder "
        "is reclassified. A new life status is dated today.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        data = ElderFacts(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        _check_places(request.user, values, current=elder.community)
        life_status = values.pop("life_status", "")
        elder_edit(
            actor=request.user,
            elder=elder,
            record=_record(request, values, crypto.decrypt(elder.id_number_cipher)),
            life_status=life_status,
            request=request._request,
        )
        return Response(ElderDetailSerializer(_detail(request.user, pk)).data)


class ElderRevealView(ScopedAPIView):
    """Show one identifier in full, with a reason; every reveal is audited."""

    required_capabilities = (Capability.VIEW_ELDERS, Capability.REVEAL_IDENTIFIERS)
    serializer_class = RevealedSerializer

    @extend_schema(
        request=RevealInput, responses=RevealedSerializer, summary="Reveal an identifier"
    )
    def post(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        data = RevealInput(data=request.data)
        data.is_valid(raise_exception=True)
        value = identifier_reveal(
            actor=request.user,
            elder=elder,
            field_name=data.validated_data["field"],
            reason=data.validated_data["reason"],
            request=request._request,
        )
        return Response({"field": data.validated_data["field"], "value": value})


class ElderClassificationView(ScopedAPIView):
    """The categories with their reasons in the request's language, and the missing facts."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    serializer_class = ElderClassificationSerializer

    @extend_schema(responses=ElderClassificationSerializer, summary="An elder's classification")
    def get(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        active = list(CategoryOverride.objects.filter(elder=elder, revoked_at__isnull=True))
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api", "part": "classification"},
            request=request._request,
        )
        return Response(elder_classification(elder, active))


class ElderCategoryOverridesView(ScopedAPIView):
    """Categories added or removed by hand; POST adds one (a reason is required)."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    write_capabilities = (Capability.OVERRIDE_CATEGORY,)
    serializer_class = CategoryOverrideSerializer
    pagination_class = None

    @extend_schema(
        responses=CategoryOverrideSerializer(many=True), summary="Hand changes of categories"
    )
    def get(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        overrides = CategoryOverride.objects.filter(elder=elder).select_related(
            "created_by", "revoked_by"
        )
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api", "part": "category_overrides"},
            request=request._request,
        )
        return Response(CategoryOverrideSerializer(overrides, many=True).data)

    @extend_schema(
        request=CategoryOverrideInput,
        responses={201: ElderClassificationSerializer},
        summary="Add or remove a category by hand",
    )
    def post(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        data = CategoryOverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        category_override(actor=request.user, elder=elder, **data.validated_data)
        elder.refresh_from_db()
        active = list(CategoryOverride.objects.filter(elder=elder, revoked_at__isnull=True))
        return Response(elder_classification(elder, active), status=status.HTTP_201_CREATED)


class ElderFirstContactsView(ScopedAPIView):
    """Every first contact the elder has had, the current one first."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    serializer_class = FirstContactSerializer
    pagination_class = None

    @extend_schema(
        responses=FirstContactSerializer(many=True), summary="An elder's first-contact history"
    )
    def get(self, request: Request, pk: int) -> Response:
        elder = self.get_elder(pk)
        contacts = elder.first_contacts.order_by("-is_current", "-valid_from", "-id")
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=elder,
            details={"via": "api", "part": "first_contacts"},
            request=request._request,
        )
        return Response(FirstContactSerializer(contacts, many=True).data)
