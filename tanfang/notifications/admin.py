"""Notifications in the back office.

- Message templates and notification rules (quiet hours, confirmation minutes): the city's
  row and each district's. The city administrator edits every row, a district supervisor
  her district's; other back-office users read the city's row and their district's. A
  template must use only the placeholders of its built-in default and must render.
- WeCom groups: of an area the user may see; the robot's key is typed once and stored
  encrypted, never shown again (only whether one is set).
- Family contacts: read here, masked, for the elders the user may see; they are added and
  taken off the list on the elder's page (audited).
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
from tanfang.areas.models import Area, AreaLevel
from tanfang.core import crypto
from tanfang.core.district_admin import DistrictRowAdmin
from tanfang.notifications.models import (
    FamilyContact,
    MessageTemplate,
    NotificationRules,
    WeComGroup,
)
from tanfang.notifications.templates import DEFAULTS, known_placeholders, placeholders
from tanfang.registry.models import Elder


def _back_office(request: HttpRequest) -> bool:
    return can(request.user, Capability.BACK_OFFICE)


# --------------------------------------------------------------------------- templates


class MessageTemplateForm(forms.ModelForm):
    code = forms.ChoiceField(label=_("template"), choices=())

    class Meta:
        model = MessageTemplate
        fields = ("code", "area", "text", "sms_template_code", "active")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["code"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(code, code) for code in sorted(DEFAULTS)]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        area = cleaned.get("area")
        if area is not None and area.level != AreaLevel.DISTRICT:
            self.add_error("area", _("Templates are set for a district or the city."))
        code, text = cleaned.get("code"), cleaned.get("text")
        if code and text:
            problem = template_problem(code, text)
            if problem:
                self.add_error("text", problem)
        return cleaned


def template_problem(code: str, text: str) -> str:
    """Why ``text`` cannot be the wording of ``code`` ("" when it can): placeholders not
    known to the template, or a text that does not render."""
    known = known_placeholders(code)
    try:
        used = placeholders(text)
    except ValueError:
        return str(_("The text has an unmatched { or }: write {{ and }} for braces."))
    unknown = sorted(used - known)
    if unknown:
        return str(
            _("Unknown placeholders: %(unknown)s. This template knows: %(known)s.")
            % {"unknown": ", ".join(unknown), "known": ", ".join(sorted(known))}
        )
    try:
        text.format(**{name: "x" for name in known})
    except (KeyError, IndexError, ValueError, AttributeError):
        return str(_("The text does not render: use plain {name} placeholders."))
    return ""


@admin.register(MessageTemplate, site=admin_site)
class MessageTemplateAdmin(DistrictRowAdmin):
    form = MessageTemplateForm
    list_display = ("code", "area", "sms_template_code", "active", "updated_at")
    list_filter = ("code", "active")
    list_select_related = ("area",)


# --------------------------------------------------------------------------- rules


class NotificationRulesForm(forms.ModelForm):
    class Meta:
        model = NotificationRules
        fields = ("area", "quiet_start", "quiet_end", "confirm_minutes")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        area = cleaned.get("area")
        if area is not None and area.level != AreaLevel.DISTRICT:
            self.add_error("area", _("Notification rules are set for a district or the city."))
        elif area is None:
            rows = NotificationRules.objects.filter(area__isnull=True).exclude(pk=self.instance.pk)
            if rows.exists():
                self.add_error("area", _("The city's rules exist already: change that row."))
        minutes = cleaned.get("confirm_minutes")
        if minutes is not None and minutes < 1:
            self.add_error("confirm_minutes", _("At least 1."))
        return cleaned


@admin.register(NotificationRules, site=admin_site)
class NotificationRulesAdmin(DistrictRowAdmin):
    form = NotificationRulesForm
    list_display = ("__str__", "quiet_start", "quiet_end", "confirm_minutes", "updated_at")
    list_select_related = ("area",)


# --------------------------------------------------------------------------- WeCom groups


class WeComGroupForm(forms.ModelForm):
    key = forms.CharField(
        label=_("robot key"),
        required=False,
        max_length=200,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("The key of the group robot's webhook. Stored encrypted, never shown."),
    )

    class Meta:
        model = WeComGroup
        fields = ("area", "name", "key", "active")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not self.instance.pk and not cleaned.get("key"):
            self.add_error("key", _("A new group needs its robot key."))
        return cleaned

    def save(self, commit: bool = True) -> Any:
        key = (self.cleaned_data.get("key") or "").strip()
        if key:
            self.instance.key_cipher = crypto.encrypt(key)
        return super().save(commit=commit)


@admin.register(WeComGroup, site=admin_site)
class WeComGroupAdmin(admin.ModelAdmin):
    """Groups of the areas the user may see; added and changed by those who manage the
    area's monitoring (city administrator, district supervisor, subdistrict staff)."""

    form = WeComGroupForm
    list_display = ("name", "area", "active", "key_set")
    list_select_related = ("area",)

    @admin.display(description=_("robot key"), boolean=True)
    def key_set(self, group: WeComGroup) -> bool:
        return bool(group.key_cipher)

    def _areas(self, request: HttpRequest) -> QuerySet[Area]:
        if not _back_office(request):
            return Area.objects.none()
        return Area.objects.visible_to(request.user)

    def _manages(self, request: HttpRequest) -> bool:
        return _back_office(request) and can(request.user, Capability.MANAGE_MONITORING)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WeComGroup]:
        return WeComGroup.objects.filter(area__in=self._areas(request))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _back_office(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _back_office(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._manages(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self._manages(request)
        return self._manages(request) and self._areas(request).filter(pk=obj.area_id).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "area":
            kwargs["queryset"] = self._areas(request).exclude(level=AreaLevel.GRID)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


# --------------------------------------------------------------------------- family


@admin.register(FamilyContact, site=admin_site)
class FamilyContactAdmin(admin.ModelAdmin):
    list_display = ("name", "relation", "elder_id", "phone_masked", "email_masked", "active")
    list_filter = ("active",)
    fields = ("elder_id", "name", "relation", "phone_masked", "email_masked", "position", "active")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[FamilyContact]:
        if not _back_office(request):
            return FamilyContact.objects.none()
        elders = Elder.objects.visible_to(request.user).values("pk")
        return FamilyContact.objects.filter(elder_id__in=elders)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _back_office(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _back_office(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
