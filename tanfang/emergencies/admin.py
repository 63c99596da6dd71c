"""Back office of emergencies: the timers of each level (``EmergencyRules``), per district
or for the whole city. The city administrator edits every row, a district supervisor her
district's; other back-office users read the city's row and their district's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.roles import Capability
from tanfang.admin_site import admin_site
from tanfang.areas.models import AreaLevel
from tanfang.core.district_admin import DistrictRowAdmin
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


@admin.register(EmergencyRules, site=admin_site)
class EmergencyRulesAdmin(DistrictRowAdmin):
    form = EmergencyRulesForm
    edit_capability = Capability.HANDLE_EMERGENCIES
    list_display = (
        "__str__",
        "visitor_minutes",
        "community_minutes",
        "subdistrict_minutes",
        "updated_at",
    )
    list_select_related = ("area",)
