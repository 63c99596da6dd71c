"""Referrals in the back office.

- Referral rules: the city's row and each district's (time limits per step, and the
  categories a district refers besides the plan's two). The city administrator edits every
  row, a district supervisor her district's; other back-office users read the city's row and
  their district's. Categories are checked against the classification's codes.
- Referrals are read-only here, with their history (steps are taken on the referral's page
  or through the API, where they are checked and audited); scoped like the pages.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.roles import Capability, can
from tanfang.admin_site import admin_site
from tanfang.areas.models import AreaLevel
from tanfang.core.district_admin import DistrictRowAdmin
from tanfang.referrals.models import Referral, ReferralEvent, ReferralRules
from tanfang.referrals.selectors import referrals_visible_to
from tanfang.registry.admin import ReadOnlyInline
from tanfang.registry.classification import CATEGORIES


class ReferralRulesForm(forms.ModelForm):
    """Time limits of at least one hour or day; extra categories known to the registry."""

    extra_categories = forms.MultipleChoiceField(
        label=_("also referred"),
        required=False,
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Categories whose needs are referred to the subdistrict besides the plan's two "
            "(extremely poor, bereaved/disabled only-child family)."
        ),
    )

    class Meta:
        model = ReferralRules
        fields = ("area", "accept_hours", "match_days", "done_days", "extra_categories")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from tanfang.web.labels import category_label

        field = self.fields["extra_categories"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [
            (code, category_label(code)) for code in CATEGORIES if code != "fp_special_family"
        ]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        area = cleaned.get("area")
        if area is not None and area.level != AreaLevel.DISTRICT:
            self.add_error("area", _("Referral rules are set for a district or the city."))
        elif area is None:
            city_rows = ReferralRules.objects.filter(area__isnull=True).exclude(pk=self.instance.pk)
            if city_rows.exists():
                self.add_error("area", _("The city's rules exist already: change that row."))
        for name in ("accept_hours", "match_days", "done_days"):
            value = cleaned.get(name)
            if value is not None and value < 1:
                self.add_error(name, _("At least 1."))
        cleaned["extra_categories"] = list(cleaned.get("extra_categories") or [])
        return cleaned


@admin.register(ReferralRules, site=admin_site)
class ReferralRulesAdmin(DistrictRowAdmin):
    form = ReferralRulesForm
    list_display = ("__str__", "accept_hours", "match_days", "done_days", "updated_at")
    list_select_related = ("area",)


class ReferralEventInline(ReadOnlyInline):
    model = ReferralEvent
    fields = ("at", "event", "from_state", "to_state", "by", "note")


@admin.register(Referral, site=admin_site)
class ReferralAdmin(admin.ModelAdmin):
    """Referrals of the user's scope, read-only, with their history; the elder by id."""

    list_display = (
        "created_at",
        "need",
        "state",
        "subdistrict",
        "due_at",
        "escalated_at",
        "elder_id",
    )
    list_filter = ("state", "source", "closed")
    list_select_related = ("subdistrict",)
    date_hierarchy = "created_at"
    inlines = (ReferralEventInline,)
    exclude = ("elder",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in Referral._meta.fields if f.name != "elder"] + ["elder_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Referral]:
        if not can(request.user, Capability.BACK_OFFICE) or not can(
            request.user, Capability.VIEW_REFERRALS
        ):
            return Referral.objects.none()
        return referrals_visible_to(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE) and can(
            request.user, Capability.VIEW_REFERRALS
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
