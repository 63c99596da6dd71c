"""The registry in the back office: elders read-only and scoped, districts' "other" rules.

An elder's record is changed through the web forms and imports (which call the services);
the back office only looks, with identifiers masked, and every look is audited as on the web.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can
from tanfang.admin_site import ScopedAdminMixin, admin_site
from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry import classification as rules
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    CategoryOverride,
    Child,
    Elder,
    ElderChange,
    FirstContact,
    HouseholdMember,
    OtherCategoryRule,
    VisitorAssignment,
    Willingness,
)
from tanfang.registry.selectors import search_for_audit, search_kind
from tanfang.registry.services import (
    RegistryError,
    find_by_id_number,
    find_by_phone,
    other_rule_editable_districts,
    other_rule_save,
)
from tanfang.web.elder_display import category_views
from tanfang.web.labels import category_label


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under an elder; the elder's own scope already let the user in."""

    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.fields or ()

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FirstContactInline(ReadOnlyInline):
    model = FirstContact
    fields = (
        "name",
        "relation",
        "phone_masked",
        "designated_by_community",
        "is_current",
        "valid_from",
        "valid_to",
        "confirmed_on",
        "note",
    )


class ChildInline(ReadOnlyInline):
    model = Child
    fields = (
        "name",
        "alive",
        "birth_year",
        "lives_with",
        "same_subdistrict",
        "away_months",
        "away_reason",
        "can_support",
        "disability_grade",
        "adopted",
        "source",
        "source_date",
    )


class HouseholdInline(ReadOnlyInline):
    model = HouseholdMember
    fields = ("relation", "age", "source", "source_date")


class AssessmentInline(ReadOnlyInline):
    model = CapabilityAssessment
    fields = ("scheme", "level", "beijing_level", "assessed_on", "source", "source_date")


class ContractInline(ReadOnlyInline):
    model = CareContract
    fields = ("kind", "provider_name", "recipient_group", "starts_on", "ends_on", "source")


class WillingnessInline(ReadOnlyInline):
    model = Willingness
    fields = ("willing", "recorded_on", "recorded_by_name", "note")


class CategoryOverrideInline(ReadOnlyInline):
    model = CategoryOverride
    fk_name = "elder"
    fields = ("category", "action", "reason", "created_by", "created_at", "revoked_at")


class AssignmentInline(ReadOnlyInline):
    model = VisitorAssignment
    fk_name = "elder"
    fields = ("visitor", "starts_on", "ends_on")


class ChangeInline(ReadOnlyInline):
    model = ElderChange
    fields = ("at", "by", "source", "changes", "note")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ElderChange]:
        return super().get_queryset(request).select_related("by")


class SubdistrictFilter(admin.SimpleListFilter):
    """Subdistricts the user may see (a select of every community would be too long)."""

    title = _("subdistrict")
    parameter_name = "subdistrict"

    def lookups(self, request: Any, model_admin: Any) -> Any:
        areas = Area.objects.visible_to(request.user).filter(level=AreaLevel.SUBDISTRICT)
        return [(str(a.pk), a.name) for a in areas.order_by("code")[:500]]

    def queryset(self, request: Any, queryset: Any) -> Any:
        if self.value() and self.value().isdigit():  # type: ignore[union-attr]
            return queryset.filter(subdistrict_id=int(self.value()))  # type: ignore[arg-type]
        return queryset


_ELDER_FIELDS = (
    "name",
    "gender",
    "birth_date",
    "id_number_masked",
    "phone_masked",
    "community",
    "grid",
    "address",
    "rural",
    "life_status",
    "life_status_since",
    "categories_with_reasons",
    "missing_facts",
    "advanced_age",
    "focus",
    "classified_on",
    "spouse_status",
    "spouse_lives_with",
    "relatives_same_subdistrict",
    "daily_companionship",
    "capability_level",
    "capability_assessed_on",
    "disability_status",
    "disability_grade",
    "disability_type",
    "extremely_poor",
    "dispersed_supported",
    "willing_to_be_visited",
    "willingness_recorded_on",
    "fact_sources",
    "created_at",
    "updated_at",
)


@admin.register(Elder, site=admin_site)
class ElderAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Elders in the user's scope, read-only; no cipher or hash column is ever shown."""

    fields = _ELDER_FIELDS
    readonly_fields = _ELDER_FIELDS
    list_display = (
        "name",
        "id_number_masked",
        "community",
        "category_list",
        "focus",
        "life_status",
    )
    list_filter = ("life_status", "focus", "advanced_age", SubdistrictFilter)
    list_select_related = ("community",)
    search_fields = ("name",)
    search_help_text = _("A name, a full resident ID number or a phone number.")
    show_full_result_count = False
    list_per_page = 50
    inlines = (
        FirstContactInline,
        ChildInline,
        HouseholdInline,
        AssessmentInline,
        ContractInline,
        WillingnessInline,
        CategoryOverrideInline,
        AssignmentInline,
        ChangeInline,
    )

    @admin.display(description=_("categories"))
    def category_list(self, elder: Elder) -> str:
        return ", ".join(category_label(c) for c in elder.categories or [])

    @admin.display(description=_("categories and reasons"))
    def categories_with_reasons(self, elder: Elder) -> str:
        return format_html_join(
            "\n",
            "<p><strong>{}</strong>: {}</p>",
            ((view.label, view.reason) for view in category_views(elder)),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: Any, search_term: str
    ) -> tuple[Any, bool]:
        text = search_term.strip()
        if text:
            kind = search_kind(text)
            if kind == "id_number":
                return find_by_id_number(queryset, text.replace(" ", "")), False
            if kind == "phone":
                return find_by_phone(queryset, text), False
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            shown = [elder.pk for elder in changelist.result_list]
            audit_record(
                actor=request.user,
                action=AuditAction.VIEW_LIST,
                details={
                    "admin": "elders",
                    "filters": {
                        k: (search_for_audit(str(v)) if k == "q" else v)
                        for k, v in request.GET.items()
                    },
                    "shown": len(shown),
                    "elder_ids": shown,
                },
                request=request,
            )
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200 and object_id.isdigit():
            elder = (
                self.get_queryset(request)
                .select_related("community")
                .filter(pk=int(object_id))
                .first()
            )
            if elder is not None:
                audit_record(
                    actor=request.user,
                    action=AuditAction.VIEW_RECORD,
                    elder=elder,
                    details={"admin": "elder"},
                    request=request,
                )
        return response


class OtherCategoryRuleForm(forms.ModelForm):
    """Conditions are checked by the classification's own compiler before anything is saved."""

    conditions = forms.JSONField(
        label=_("conditions"),
        help_text=_(
            'An object {"all": [{"fact": ..., "op": ..., "value": ...}, ...]}; '
            "see docs/classification.md for the facts and operators."
        ),
    )

    class Meta:
        model = OtherCategoryRule
        fields = ("district", "code", "label", "conditions", "active")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        conditions = cleaned.get("conditions")
        if conditions is None or not cleaned.get("code") or not cleaned.get("label"):
            return cleaned
        if not isinstance(conditions, dict) or set(conditions) != {"all"}:
            self.add_error("conditions", _('The conditions are an object with one key, "all".'))
            return cleaned
        try:
            rules.compile_other_rules(
                [{"code": cleaned["code"], "label": cleaned["label"], **conditions}]
            )
        except rules.RuleError as exc:
            self.add_error("conditions", str(exc))
        return cleaned


@admin.register(OtherCategoryRule, site=admin_site)
class OtherCategoryRuleAdmin(admin.ModelAdmin):
    """A district's own rules for the "other" category. The city administrator edits any
    district's, a district supervisor her own; back-office users below see their district's.
    Saving reclassifies every elder of the district. Rules are switched off, never deleted."""

    form = OtherCategoryRuleForm
    list_display = ("district", "code", "label", "active", "created_at")
    list_filter = ("active",)
    list_select_related = ("district",)
    ordering = ("district__code", "code")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OtherCategoryRule]:
        user: Any = request.user
        if not can(user, Capability.BACK_OFFICE):
            return OtherCategoryRule.objects.none()
        if user.role in (Role.CITY_ADMIN, Role.DISTRICT_SUPERVISOR):
            districts = Area.objects.visible_to(user).filter(level=AreaLevel.DISTRICT)
            return OtherCategoryRule.objects.filter(district__in=districts)
        return OtherCategoryRule.objects.filter(district_id=user.area.district_id)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return other_rule_editable_districts(request.user).exists()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = other_rule_editable_districts(request.user)
        if obj is not None:
            return editable.filter(pk=obj.district_id).exists()
        return editable.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "district":
            kwargs["queryset"] = other_rule_editable_districts(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self, request: HttpRequest, obj: OtherCategoryRule, form: Any, change: bool
    ) -> None:
        try:
            saved = other_rule_save(
                actor=request.user,
                rule=obj if change else None,
                district=form.cleaned_data["district"],
                code=form.cleaned_data["code"],
                label=form.cleaned_data["label"],
                conditions=form.cleaned_data["conditions"],
                active=form.cleaned_data["active"],
            )
        except RegistryError as exc:  # the form checked; this is a race with another edit
            raise forms.ValidationError(str(exc)) from exc
        obj.pk = saved.pk
