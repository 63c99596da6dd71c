"""Managing users in the back office, within one's own part of the tree.

City administrators and district supervisors manage the users whose area lies in their
subtree (``Area.objects.visible_to``). Nobody gives a role above their own; data partners and
auditors are appointed by the city only (an auditor must not be chosen by those she audits).
Passwords go through Django's own forms; nobody is deleted (deactivate instead), and the
superuser, staff and permission flags are not in the forms at all.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm, UsernameField
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.models import Role, User
from tanfang.accounts.roles import Capability, can
from tanfang.admin_site import ScopedAdminMixin, admin_site
from tanfang.areas.models import Area, AreaLevel

# Roles each managing role may give; everyone else manages nobody.
ASSIGNABLE_ROLES: dict[str, tuple[str, ...]] = {
    Role.CITY_ADMIN: tuple(Role.values),
    Role.DISTRICT_SUPERVISOR: (
        Role.DISTRICT_SUPERVISOR,
        Role.SUBDISTRICT_STAFF,
        Role.COMMUNITY_WORKER,
        Role.VISITOR,
    ),
}

# The levels of the tree at which each role works (scope.py reads the area at that level).
ROLE_LEVELS: dict[str, tuple[str, ...]] = {
    Role.CITY_ADMIN: (AreaLevel.CITY,),
    Role.DISTRICT_SUPERVISOR: (AreaLevel.DISTRICT,),
    Role.SUBDISTRICT_STAFF: (AreaLevel.SUBDISTRICT,),
    Role.COMMUNITY_WORKER: (AreaLevel.COMMUNITY,),
    Role.VISITOR: (AreaLevel.SUBDISTRICT, AreaLevel.COMMUNITY, AreaLevel.GRID),
    Role.DATA_PARTNER: (AreaLevel.CITY, AreaLevel.DISTRICT),
    Role.AUDITOR: (AreaLevel.CITY, AreaLevel.DISTRICT, AreaLevel.SUBDISTRICT),
}


def assignable_roles(actor: Any) -> tuple[str, ...]:
    if not can(actor, Capability.BACK_OFFICE):
        return ()
    return ASSIGNABLE_ROLES.get(actor.role, ())


def managed_users(actor: Any) -> QuerySet[User]:
    """The users ``actor`` may see and change: in her subtree, with a role she may give."""
    roles = assignable_roles(actor)
    if not roles:
        return User.objects.none()
    return User.objects.filter(area__in=Area.objects.visible_to(actor), role__in=roles)


class RoleAreaChecks(forms.ModelForm):
    """The role must be one the actor may give, the area one she sees, at the role's level."""

    actor: Any = None

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        role, area = cleaned.get("role"), cleaned.get("area")
        if role and role not in assignable_roles(self.actor):
            self.add_error("role", _("You cannot give this role."))
        if "area" in self.fields and area is None:
            self.add_error("area", _("Every user works in an area."))
        elif area is not None:
            if not Area.objects.visible_to(self.actor).filter(pk=area.pk).exists():
                self.add_error("area", _("This area is outside your own."))
            elif role and area.level not in ROLE_LEVELS.get(role, ()):
                self.add_error(
                    "area",
                    _("A user with this role works at the level of: %(levels)s.")
                    % {
                        "levels": ", ".join(
                            str(AreaLevel(level).label) for level in ROLE_LEVELS[role]
                        )
                    },
                )
        return cleaned


class TanfangUserCreationForm(RoleAreaChecks, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "role", "area", "first_name", "last_name", "phone")


class TanfangUserChangeForm(RoleAreaChecks, UserChangeForm):
    class Meta:
        model = User
        field_classes = {"username": UsernameField}
        fields = (
            "username",
            "password",
            "first_name",
            "last_name",
            "email",
            "phone",
            "role",
            "area",
            "is_active",
        )


@admin.register(User, site=admin_site)
class UserAdmin(ScopedAdminMixin, DjangoUserAdmin):
    form = TanfangUserChangeForm
    add_form = TanfangUserCreationForm
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Person"), {"fields": ("first_name", "last_name", "email", "phone")}),
        (_("Role and area"), {"fields": ("role", "area", "is_active")}),
        (_("Dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "usable_password",
                    "password1",
                    "password2",
                    "role",
                    "area",
                    "first_name",
                    "last_name",
                    "phone",
                ),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("username", "first_name", "last_name", "role", "area", "is_active")
    list_filter = ("role", "is_active")
    list_select_related = ("area",)
    search_fields = ("username", "first_name", "last_name")
    autocomplete_fields = ("area",)
    filter_horizontal = ()
    ordering = ("username",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return managed_users(request.user)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(assignable_roles(request.user))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(assignable_roles(request.user))

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(assignable_roles(request.user))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not managed_users(request.user).filter(pk=obj.pk).exists():
            return False
        return bool(assignable_roles(request.user))

    def get_form(self, request: Any, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "area":
            kwargs["queryset"] = Area.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "role":
            allowed = assignable_roles(request.user)
            kwargs["choices"] = [(v, label) for v, label in Role.choices if v in allowed]
        return super().formfield_for_choice_field(db_field, request, **kwargs)
