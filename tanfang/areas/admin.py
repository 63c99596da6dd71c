"""The administrative tree in the back office: read-only, except names for the city."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from tanfang.accounts.roles import Capability, can
from tanfang.admin_site import ScopedAdminMixin, admin_site
from tanfang.areas.models import Area

_FIELDS = ("code", "name", "name_en", "level", "parent", "subdistrict_kind", "community_kind")
_RENAMABLE = ("name", "name_en")


@admin.register(Area, site=admin_site)
class AreaAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Codes, levels and the shape of the tree come from the statistical division codes and
    are loaded by import; a city administrator may correct the names."""

    fields = _FIELDS
    list_display = ("code", "name", "name_en", "level", "parent")
    list_filter = ("level",)
    list_select_related = ("parent",)
    search_fields = ("code", "name", "name_en")
    ordering = ("code",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and not self.get_queryset(request).filter(pk=obj.pk).exists():
            return False
        return can(request.user, Capability.MANAGE_AREAS)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if can(request.user, Capability.MANAGE_AREAS):
            return tuple(f for f in _FIELDS if f not in _RENAMABLE)
        return _FIELDS

    def save_model(self, request: HttpRequest, obj: Area, form: Any, change: bool) -> None:
        # Only the names can reach here (every other field is read-only); save only those.
        obj.save(update_fields=list(_RENAMABLE))
