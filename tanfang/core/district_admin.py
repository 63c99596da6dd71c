"""The back office of a district's settings: rows that belong to a district (``area``) or to
the city (``area`` null) — monitoring, referral, emergency and notification rules, templates.

Every back-office user reads the city's row and her district's (a city administrator: every
district of her city). Who may also hold ``edit_capability`` edits: the city administrator
every row (the city's included), a district supervisor her district's. Rows are never
deleted: a district without its own row follows the city's.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can
from tanfang.areas.models import Area, AreaLevel

EDITORS = (Role.CITY_ADMIN, Role.DISTRICT_SUPERVISOR)


class DistrictRowAdmin(admin.ModelAdmin):
    # Needed besides the back office to change a row (None: the back office is enough).
    edit_capability: Capability | None = None

    def manages(self, request: HttpRequest) -> bool:
        user = request.user
        return can(user, Capability.BACK_OFFICE) and (
            self.edit_capability is None or can(user, self.edit_capability)
        )

    def city(self, request: HttpRequest) -> bool:
        return self.manages(request) and getattr(request.user, "role", "") == Role.CITY_ADMIN

    def editable_areas(self, request: HttpRequest) -> QuerySet[Area]:
        user: Any = request.user
        if not self.manages(request) or user.role not in EDITORS:
            return Area.objects.none()
        return Area.objects.visible_to(user).filter(level=AreaLevel.DISTRICT)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        user: Any = request.user
        rows = self.model.objects.all()
        if not can(user, Capability.BACK_OFFICE):
            return rows.none()
        if user.role == Role.CITY_ADMIN:
            # Every district of her city (a deployment may hold more than one city).
            return rows.filter(Q(area__isnull=True) | Q(area__in=Area.objects.visible_to(user)))
        return rows.filter(Q(area__isnull=True) | Q(area_id=user.area.district_id))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.editable_areas(request).exists()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.editable_areas(request).exists()
        if obj.area_id is None:
            return self.city(request)
        return self.editable_areas(request).filter(pk=obj.area_id).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "area":
            kwargs["queryset"] = self.editable_areas(request)
            kwargs["required"] = not self.city(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
