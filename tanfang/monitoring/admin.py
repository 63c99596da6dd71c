"""Monitoring in the back office: partners, meters, devices, absences, rules and alerts.

Scoped like the rest of the back office (admin_site.py, visits/admin.py):

- data partners are the city's: every user with ``MANAGE_MONITORING`` reads them, the city
  administrator edits them; the token's hash is never shown (only its first characters);
- meters and devices are listed for the elders the user may see (unlinked ones only for the
  city administrator); an elder is named by id and must be in the user's scope; every link
  change is kept as an installation event (shown under the meter or device);
- absences are recorded on the elder's page; here they are read;
- monitoring rules: the city's row and each district's, validated as the live tick will
  merge them (invalid JSON or an unknown rule, parameter or type is refused with the reason);
  the city administrator edits every row, a district supervisor her district's;
- alerts are read-only here (acknowledge and close them on their page or through the API),
  with their history;
- ingest batches (the partners' deliveries) are read-only, with the readings set aside that
  were kept: every user who manages monitoring reads every partner's (partners are the
  city's; a batch names meters, never an elder).
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
from tanfang.areas.models import AreaLevel
from tanfang.core.district_admin import DistrictRowAdmin
from tanfang.monitoring.detection.config import RuleBookError
from tanfang.monitoring.installations import installation_save
from tanfang.monitoring.models import (
    Absence,
    Alert,
    AlertEvent,
    DataPartner,
    Device,
    DistrictRules,
    IngestBatch,
    InstallationEvent,
    Meter,
    QuarantinedReading,
)
from tanfang.monitoring.selectors import alerts_visible_to
from tanfang.monitoring.tick import rules_validate
from tanfang.registry.admin import ReadOnlyInline
from tanfang.registry.models import Elder


def _manages(request: HttpRequest) -> bool:
    user = request.user
    return can(user, Capability.BACK_OFFICE) and can(user, Capability.MANAGE_MONITORING)


def _city(request: HttpRequest) -> bool:
    return _manages(request) and getattr(request.user, "role", "") == Role.CITY_ADMIN


class MonitoringAdmin(admin.ModelAdmin):
    """Readable by the users who manage monitoring; what they may change is per model."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _manages(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _manages(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------- partners


@admin.register(DataPartner, site=admin_site)
class DataPartnerAdmin(MonitoringAdmin):
    list_display = ("code", "name", "kind", "contact", "active", "token_shown")
    list_filter = ("kind", "active")
    fields = ("code", "name", "kind", "contact", "column_mapping", "active", "token_shown")
    readonly_fields = ("token_shown",)

    @admin.display(description=_("API token"))
    def token_shown(self, partner: DataPartner) -> str:
        return f"{partner.token_prefix}…" if partner.token_prefix else "—"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return _city(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _city(request)

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "contact":
            from tanfang.accounts.models import User

            kwargs["queryset"] = User.objects.filter(role=Role.DATA_PARTNER, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --------------------------------------------------------------------------- meters, devices


class InstallationInline(admin.TabularInline):
    model = InstallationEvent
    extra = 0
    can_delete = False
    fields = ("at", "action", "elder", "by", "note")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _manages(request)


class MeterInstallations(InstallationInline):
    fk_name = "meter"


class DeviceInstallations(InstallationInline):
    fk_name = "device"


class ElderByIdForm(forms.ModelForm):
    """The elder is named by id (a list of a million would not do), and only an elder the
    user may see can be named."""

    elder = forms.IntegerField(label=_("elder id"), required=False, min_value=1)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
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

    def save(self, commit: bool = True) -> Any:
        self.instance.elder = self.cleaned_data.get("elder")
        return super().save(commit=commit)


class MeterForm(ElderByIdForm):
    class Meta:
        model = Meter
        fields = (
            "meter_id",
            "partner",
            "utility",
            "register",
            "unit",
            "interval_minutes",
            "rollover",
            "tz",
            "installed_on",
            "active",
        )


class DeviceForm(ElderByIdForm):
    class Meta:
        model = Device
        fields = ("device_id", "partner", "kind", "installed_on", "active")


class InstalledAdmin(MonitoringAdmin):
    """Meters and devices: those of the elders the user may see (the city administrator also
    sees unlinked ones); adding and linking through ``installation_save``."""

    list_select_related = ("partner", "elder")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        user: Any = request.user
        if not _manages(request):
            return self.model.objects.none()
        elders = elders_visible_to(user, Elder.objects.all()).values("pk")
        scope = Q(elder__in=elders)
        if user.role == Role.CITY_ADMIN:
            scope |= Q(elder__isnull=True)
        return self.model.objects.filter(scope)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return _manages(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return _manages(request)
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kw)
        user = request.user

        class ScopedForm(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, user=user, **kwargs)

        return ScopedForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = None
        if change:
            before = type(obj).objects.select_related("elder").get(pk=obj.pk).elder
        installation_save(actor=request.user, thing=obj, elder_before=before, created=not change)


@admin.register(Meter, site=admin_site)
class MeterAdmin(InstalledAdmin):
    form = MeterForm
    list_display = ("meter_id", "partner", "utility", "register", "unit", "elder_id", "active")
    list_filter = ("utility", "register", "active")
    search_fields = ("meter_id",)
    inlines = (MeterInstallations,)


@admin.register(Device, site=admin_site)
class DeviceAdmin(InstalledAdmin):
    form = DeviceForm
    list_display = ("device_id", "partner", "kind", "elder_id", "last_seen_at", "active")
    list_filter = ("kind", "active")
    search_fields = ("device_id",)
    inlines = (DeviceInstallations,)


@admin.register(Absence, site=admin_site)
class AbsenceAdmin(MonitoringAdmin):
    """Read here; recorded on the elder's page (``absences.absence_record``)."""

    list_display = ("elder_id", "reason", "starts_on", "ends_on", "note")
    list_filter = ("reason",)
    fields = ("elder_id", "reason", "starts_on", "ends_on", "note", "by", "created_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Absence]:
        if not _manages(request):
            return Absence.objects.none()
        elders = elders_visible_to(request.user, Elder.objects.all()).values("pk")
        return Absence.objects.filter(elder__in=elders)


# --------------------------------------------------------------------------- rules


class DistrictRulesForm(forms.ModelForm):
    """The rules are checked as the live tick merges them, before anything is saved."""

    rules = forms.JSONField(
        label=_("rules"),
        required=False,
        help_text=_(
            "A rule book fragment: only what differs from the defaults, e.g. "
            '{"rules": {"routine_missed": {"params": {"night_min_hours": 10}}}}; '
            "see docs/detection.md for every rule and parameter."
        ),
    )

    class Meta:
        model = DistrictRules
        fields = (
            "area",
            "rules",
            "escalate_visitor_minutes",
            "escalate_community_minutes",
            "remote_visit_counts",
        )

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        area = cleaned.get("area")
        if area is not None and area.level != AreaLevel.DISTRICT:
            self.add_error("area", _("Monitoring rules are set for a district or the city."))
            return cleaned
        city_rows = DistrictRules.objects.filter(area__isnull=True).exclude(pk=self.instance.pk)
        if area is None and city_rows.exists():
            self.add_error("area", _("The city's rules exist already: change that row."))
            return cleaned
        rules = cleaned.get("rules")
        if "rules" in self.errors:
            return cleaned
        if rules is None:
            rules = cleaned["rules"] = {}
        if not isinstance(rules, dict):
            self.add_error("rules", _("The rules are a JSON object."))
            return cleaned
        candidate = DistrictRules(pk=self.instance.pk, area=area, rules=rules)
        try:
            rules_validate(candidate)
        except RuleBookError as exc:
            self.add_error("rules", _("These rules cannot be used: %(error)s") % {"error": exc})
        return cleaned


@admin.register(DistrictRules, site=admin_site)
class DistrictRulesAdmin(DistrictRowAdmin):
    """The city administrator edits every row, a district supervisor her district's; other
    back-office users read the city's row and their district's."""

    form = DistrictRulesForm
    edit_capability = Capability.MANAGE_MONITORING
    list_display = (
        "__str__",
        "escalate_visitor_minutes",
        "escalate_community_minutes",
        "remote_visit_counts",
        "updated_at",
    )
    list_select_related = ("area",)

    def save_model(self, request: HttpRequest, obj: DistrictRules, form: Any, change: bool) -> None:
        obj.updated_by = request.user if getattr(request.user, "pk", None) else None  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


# --------------------------------------------------------------------------- alerts


class AlertEventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ("at", "action", "level", "to_user", "by", "note")


@admin.register(Alert, site=admin_site)
class AlertAdmin(admin.ModelAdmin):
    """Alerts of the user's scope, read-only, with their history."""

    list_display = (
        "detected_at",
        "kind",
        "rule",
        "severity",
        "state",
        "level",
        "assigned_to",
        "elder_id",
        "outcome",
    )
    list_filter = ("state", "kind", "severity", "level", "outcome", "technical")
    list_select_related = ("assigned_to",)
    date_hierarchy = "detected_at"
    inlines = (AlertEventInline,)
    exclude = ("elder",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in Alert._meta.fields if f.name != "elder"] + ["elder_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        if not can(request.user, Capability.BACK_OFFICE):
            return Alert.objects.none()
        return alerts_visible_to(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------- ingest batches


class QuarantinedReadingInline(admin.TabularInline):
    model = QuarantinedReading
    extra = 0
    can_delete = False
    fields = ("row", "meter_id", "ts", "value", "reason", "detail")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _manages(request)


@admin.register(IngestBatch, site=admin_site)
class IngestBatchAdmin(MonitoringAdmin):
    """The partners' deliveries, read-only (``MonitoringAdmin``), with what was set aside."""

    list_display = (
        "received_at",
        "partner",
        "source",
        "name",
        "rows",
        "stored",
        "duplicates",
        "quarantined",
    )
    list_filter = ("source", "partner")
    list_select_related = ("partner",)
    search_fields = ("name", "content_sha256")
    date_hierarchy = "received_at"
    fields = (
        "partner",
        "source",
        "name",
        "content_sha256",
        "received_at",
        "rows",
        "stored",
        "duplicates",
        "quarantined",
        "reasons",
        "first_ts",
        "last_ts",
        "store_paths",
        "by",
    )
    readonly_fields = fields
    inlines = (QuarantinedReadingInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestBatch]:
        if not _manages(request):
            return IngestBatch.objects.none()
        return IngestBatch.objects.all()
