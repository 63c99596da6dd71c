"""``areas/``, ``first-contacts/``, ``classify/`` and ``me/``."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from tanfang.accounts.roles import Capability
from tanfang.api.base import ScopedAPIView
from tanfang.api.inputs import AreaFilterInput, FirstContactFilterInput, FirstContactSetInput
from tanfang.api.pagination import AreaPagination, KeysetPagination
from tanfang.api.permissions import ANY_ROLE
from tanfang.api.selectors import areas_list, first_contacts_list
from tanfang.api.serializers import (
    AreaSerializer,
    ClassifyErrorSerializer,
    ClassifyResultSerializer,
    FirstContactSerializer,
    MeSerializer,
)
from tanfang.areas.models import Area
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry import classification as rules
from tanfang.registry.models import Elder, FirstContact
from tanfang.registry.services import first_contact_set
from tanfang.web.labels import reason_language

CLASSIFY_MAX_ITEMS = 1000


class AreaListView(ScopedAPIView):
    """The nodes of the administrative tree at and under the caller's area (no personal data)."""

    required_capabilities = (Capability.VIEW_AREAS,)
    serializer_class = AreaSerializer
    pagination_class = AreaPagination

    def get_queryset(self) -> Any:
        return Area.objects.visible_to(self.request.user)

    @extend_schema(
        parameters=[AreaFilterInput], responses=AreaSerializer(many=True), summary="List areas"
    )
    def get(self, request: Request) -> Response:
        queryset = areas_list(request.user, self.query(AreaFilterInput))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(AreaSerializer(page, many=True).data)


class AreaDetailView(ScopedAPIView):
    required_capabilities = (Capability.VIEW_AREAS,)
    serializer_class = AreaSerializer
    lookup_field = "code"

    def get_queryset(self) -> Any:
        return Area.objects.visible_to(self.request.user).select_related("parent")

    @extend_schema(responses=AreaSerializer, summary="One area")
    def get(self, request: Request, code: str) -> Response:
        return Response(AreaSerializer(self.get_object()).data)


class FirstContactListView(ScopedAPIView):
    """Current first contacts of the elders in scope; POST sets an elder's first contact."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    write_capabilities = (Capability.EDIT_ELDERS,)
    serializer_class = FirstContactSerializer
    pagination_class = KeysetPagination

    def get_queryset(self) -> Any:
        return FirstContact.objects.filter(
            elder__in=Elder.objects.visible_to(self.request.user).values("pk")
        )

    @extend_schema(
        parameters=[FirstContactFilterInput],
        responses=FirstContactSerializer(many=True),
        summary="List current first contacts",
    )
    def get(self, request: Request) -> Response:
        queryset, logged = first_contacts_list(request.user, self.query(FirstContactFilterInput))
        page = self.paginate_queryset(queryset) or []
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_LIST,
            details={
                "api": "first_contacts",
                "filters": logged,
                "shown": len(page),
                "elder_ids": [contact.elder_id for contact in page],
            },
            request=request._request,
        )
        return self.get_paginated_response(FirstContactSerializer(page, many=True).data)

    @extend_schema(
        request=FirstContactSetInput,
        responses={201: FirstContactSerializer},
        summary="Set an elder's first contact",
        description="The new contact becomes the current one; the previous one is kept as "
        "history. Audited.",
    )
    def post(self, request: Request) -> Response:
        data = FirstContactSetInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        elder = Elder.objects.visible_to(request.user).filter(pk=values.pop("elder")).first()
        if elder is None:
            raise ValidationError({"elder": [_("Unknown elder.")]})
        child_id = values.pop("child")
        child = None
        if child_id is not None:
            child = elder.children.filter(pk=child_id).first()
            if child is None:
                raise ValidationError({"child": [_("This child is not recorded for the elder.")]})
        with transaction.atomic():
            contact = first_contact_set(actor=request.user, elder=elder, child=child, **values)
        return Response(FirstContactSerializer(contact).data, status=status.HTTP_201_CREATED)


class FirstContactDetailView(ScopedAPIView):
    """One first contact (current or past) of an elder in scope; audited."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    serializer_class = FirstContactSerializer

    def get_queryset(self) -> Any:
        return FirstContact.objects.filter(
            elder__in=Elder.objects.visible_to(self.request.user).values("pk")
        ).select_related("elder__community")

    @extend_schema(responses=FirstContactSerializer, summary="One first contact")
    def get(self, request: Request, pk: int) -> Response:
        contact = self.get_queryset().filter(pk=pk).first()
        if contact is None:
            raise Http404
        audit_record(
            actor=request.user,
            action=AuditAction.VIEW_RECORD,
            elder=contact.elder,
            details={"via": "api", "part": "first_contact", "first_contact": contact.pk},
            request=request._request,
        )
        return Response(FirstContactSerializer(contact).data)


class ClassifyView(ScopedAPIView):
    """Classify facts without the database: the plan's categories, their reasons, what is
    missing. Districts' own "other" rules are not applied (they live in the database)."""

    required_capabilities = (Capability.VIEW_ELDERS,)
    serializer_class = ClassifyResultSerializer
    pagination_class = None

    @extend_schema(
        request={
            "application/json": {
                "oneOf": [
                    {"type": "object", "additionalProperties": True},
                    {"type": "array", "items": {"type": "object", "additionalProperties": True}},
                ]
            }
        },
        responses={
            200: PolymorphicProxySerializer(
                component_name="ClassifyResponse",
                serializers=[
                    ClassifyResultSerializer,
                    PolymorphicProxySerializer(
                        component_name="ClassifyItem",
                        serializers=[ClassifyResultSerializer, ClassifyErrorSerializer],
                        resource_type_field_name=None,
                        many=True,
                    ),
                ],
                resource_type_field_name=None,
                many=False,
            )
        },
        summary="Classify facts (no database)",
        description="The body is one facts object (docs/classification.md) or a list of up to "
        f"{CLASSIFY_MAX_ITEMS}. One object: its result, or 400 naming the bad field. A list: "
        "a list of results in the same order, where an unreadable item becomes "
        "{index, id, error: {field, message}}. `as_of` defaults to today.",
        examples=[
            OpenApiExample(
                "One elder",
                value={"id": "a1", "birth_date": "1940-03-02", "spouse": None, "children": []},
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        body = request.data
        language = reason_language()
        today = timezone.localdate()
        if isinstance(body, list):
            if len(body) > CLASSIFY_MAX_ITEMS:
                raise ValidationError(
                    {"detail": [_("Send at most %(n)d items.") % {"n": CLASSIFY_MAX_ITEMS}]}
                )
            return Response(
                [_classify_item(i, item, today, language) for i, item in enumerate(body)]
            )
        try:
            facts = rules.parse_facts(body, default_as_of=today)
        except rules.FactsError as exc:
            raise ValidationError({exc.field or "detail": [_message(exc, language)]}) from exc
        return Response(rules.classify(facts).as_json(language))


def _message(exc: rules.FactsError, language: str) -> str:
    return exc.message_zh if language == "zh-hans" else exc.message


def _classify_item(index: int, item: Any, today: Any, language: str) -> dict[str, Any]:
    try:
        facts = rules.parse_facts(item, default_as_of=today)
    except rules.FactsError as exc:
        ident = item.get("id") if isinstance(item, dict) else None
        return {
            "index": index,
            "id": ident if isinstance(ident, str | int) else None,
            "error": {"field": exc.field, "message": _message(exc, language)},
        }
    return rules.classify(facts).as_json(language)


class MeView(ScopedAPIView):
    """Who the caller is: role, area and what the role may do."""

    required_capabilities = ANY_ROLE
    serializer_class = MeSerializer
    pagination_class = None

    @extend_schema(responses=MeSerializer, summary="The signed-in user")
    def get(self, request: Request) -> Response:
        user: Any = request.user
        return Response(MeSerializer(user).data)
