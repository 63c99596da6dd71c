"""The visit policy and the service teams in the back office.

The policy (rules with effective dates, holiday surges, which visits count) is the city's:
the city administrator edits it, other back-office users read it. Service teams and the
services directory are kept by each area for itself. Saving a policy row drops the cached
policy (``policy.py``); ``tanfang obligations`` (nightly) recomputes every elder's status.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can
from tanfang.accounts.scope import elders_visible_to
from tanfang.admin_site import admin_site
from tanfang.areas.models import Area
from tanfang.care.models import ServiceEntry
from tanfang.registry.models import Elder
from tanfang.visits.models import (
    CountingRule,
    HolidaySurge,
    ServiceProvider,
    VisitorProfile,
    VisitRule,
    VisitSurge,
)


class CityPolicyAdmin(admin.ModelAdmin):
    """Readable by the back office, changed only by the city administrator."""

    def _city(self, request: HttpRequest) -> bool:
        user: Any = request.user
        return can(user, Capability.BACK_OFFICE) and user.role == Role.CITY_ADMIN

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._city(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._city(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class VisitRuleForm(forms.ModelForm):
    """The elder of an individual rule is named by id (a list of a million would not do),
    and only an elder the user may see can be named."""

    elder = forms.IntegerField(label=_("elder id"), required=False, min_value=1)

    class Meta:
        model = VisitRule
        fields = (
            "code",
            "name",
            "effective_from",
            "effective_to",
            "frequency",
            "mode",
            "categories",
            "risk_levels",
            "area",
            "priority",
            "active",
        )

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["area"].queryset = Area.objects.visible_to(user)  # type: ignore[attr-defined]
        if self.instance.pk and self.instance.elder_id:
            self.initial["elder"] = self.instance.elder_id

    def clean_elder(self) -> Elder | None:
        elder_id = self.cleaned_data.get("elder")
        if not elder_id:
            return None
        elder = elders_visible_to(self.user, Elder.objects.filter(pk=elder_id)).first()
        if elder is None:
            raise forms.ValidationError(_("No elder with this id in your area."))
        return elder

    def save(self, commit: bool = True) -> VisitRule:
        self.instance.elder = self.cleaned_data.get("elder")
        saved: VisitRule = super().save(commit=commit)
        return saved


@admin.register(VisitRule, site=admin_site)
class VisitRuleAdmin(CityPolicyAdmin):
    form = VisitRuleForm
    list_display = ("code", "name", "frequency", "mode", "effective_from", "effective_to", "active")
    list_filter = ("active", "frequency")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        user = request.user

        class ScopedForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, user=user, **kwargs)

        return ScopedForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[VisitRule]:
        # A rule for one elder names a person: only rules of the user's subtree are listed.
        user: Any = request.user
        if not can(user, Capability.BACK_OFFICE):
            return VisitRule.objects.none()
        visible = Area.objects.visible_to(user)
        area = user.area
        above = [area.city_id, area.district_id, area.subdistrict_id, area.community_id]
        return VisitRule.objects.filter(
            Q(area__isnull=True) | Q(area__in=visible) | Q(area_id__in=[a for a in above if a]),
            Q(elder__isnull=True) | Q(elder__community__in=visible),
        ).select_related("area")


@admin.register(HolidaySurge, site=admin_site)
class HolidaySurgeAdmin(CityPolicyAdmin):
    list_display = ("code", "holidays", "days_before", "mode", "active")


@admin.register(CountingRule, site=admin_site)
class CountingRuleAdmin(CityPolicyAdmin):
    list_display = ("effective_from", "modes", "outcomes")


class AreaOwnedAdmin(admin.ModelAdmin):
    """Rows that belong to an area: back-office users keep those of their own subtree."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        user: Any = request.user
        if not can(user, Capability.BACK_OFFICE):
            return self.model.objects.none()
        return self.model.objects.filter(area__in=Area.objects.visible_to(user))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return can(request.user, Capability.BACK_OFFICE)
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        visible = Area.objects.visible_to(request.user)
        if db_field.name == "area":
            kwargs["queryset"] = visible
        elif db_field.name == "provider":
            kwargs["queryset"] = ServiceProvider.objects.filter(area__in=visible)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ServiceProvider, site=admin_site)
class ServiceProviderAdmin(AreaOwnedAdmin):
    list_display = ("name", "kind", "area", "active")
    list_filter = ("kind", "active")
    list_select_related = ("area",)


@admin.register(ServiceEntry, site=admin_site)
class ServiceEntryAdmin(AreaOwnedAdmin):
    list_display = ("name", "needs", "area", "active")
    list_select_related = ("area",)


@admin.register(VisitSurge, site=admin_site)
class VisitSurgeAdmin(AreaOwnedAdmin):
    """Surges are declared on their page (``surge_declare``); here they are only read."""

    list_display = ("code", "reason", "area", "starts_on", "ends_on", "frequency", "active")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(VisitorProfile, site=admin_site)
class VisitorProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "provider", "volunteer", "capacity", "active")

    def get_queryset(self, request: HttpRequest) -> QuerySet[VisitorProfile]:
        user: Any = request.user
        if not can(user, Capability.BACK_OFFICE):
            return VisitorProfile.objects.none()
        return VisitorProfile.objects.filter(
            user__area__in=Area.objects.visible_to(user)
        ).select_related("user", "provider")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return can(request.user, Capability.BACK_OFFICE)
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
