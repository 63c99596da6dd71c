"""Back office of emergencies: the timers of each level (``EmergencyRules``), per district
or for the whole city. The city administrator edits every row, a district supervisor her
district's; other back-office users read the city's row and their district's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can
from tanfang.admin_site import admin_site
from tanfang.areas.models import Area, AreaLevel
from tanfang.emergencies.models import EmergencyRules

# A case must reach a person well within the hour: longer waits are refused.
MAX_MINUTES = 120


class EmergencyRulesForm(forms.ModelForm):
    class Meta:
        model = EmergencyRules
        fields = ("area", "visitor_minutes", "community_minutes", "subdistrict_minutes")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        area = cleaned.get("area")
        if area is not None and area.level != AreaLevel.DISTRICT:
            self.add_error("area", _("Emergency timers are set for a district or the city."))
        others = EmergencyRules.objects.exclude(pk=self.instance.pk)
        if area is None and others.filter(area__isnull=True).exists():
            self.add_error("area", _("The city's timers exist already: change that row."))
        for name in ("visitor_minutes", "community_minutes", "subdistrict_minutes"):
            value = cleaned.get(name)
            if value is not None and not 1 <= value <= MAX_MINUTES:
                self.add_error(
                    name,
                    _("Between 1 and %(max)s minutes: an emergency cannot wait longer.")
                    % {"max": MAX_MINUTES},
                )
        return cleaned


def _manages(request: HttpRequest) -> bool:
    user = request.user
    return can(user, Capability.BACK_OFFICE) and can(user, Capability.HANDLE_EMERGENCIES)


@admin.register(EmergencyRules, site=admin_site)
class EmergencyRulesAdmin(admin.ModelAdmin):
    form = EmergencyRulesForm
    list_display = (
        "__str__",
        "visitor_minutes",
        "community_minutes",
        "subdistrict_minutes",
        "updated_at",
    )
    list_select_related = ("area",)

    def _editable(self, request: HttpRequest) -> QuerySet[Area]:
        user: Any = request.user
        if not _manages(request) or user.role not in (Role.CITY_ADMIN, Role.DISTRICT_SUPERVISOR):
            return Area.objects.none()
        return Area.objects.visible_to(user).filter(level=AreaLevel.DISTRICT)

    def get_queryset(self, request: HttpRequest) -> QuerySet[EmergencyRules]:
        user: Any = request.user
        if not can(user, Capability.BACK_OFFICE):
            return EmergencyRules.objects.none()
        if user.role == Role.CITY_ADMIN:
            return EmergencyRules.objects.filter(
                Q(area__isnull=True) | Q(area__in=Area.objects.visible_to(user))
            )
        return EmergencyRules.objects.filter(
            Q(area__isnull=True) | Q(area_id=user.area.district_id)
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._editable(request).exists()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self._editable(request).exists()
        if obj.area_id is None:
            return _manages(request) and getattr(request.user, "role", "") == Role.CITY_ADMIN
        return self._editable(request).filter(pk=obj.area_id).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "area":
            kwargs["queryset"] = self._editable(request)
            kwargs["required"] = getattr(request.user, "role", "") != Role.CITY_ADMIN
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
