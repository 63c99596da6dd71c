"""The back-office admin site, scoped like every other door to the data."""

from __future__ import annotations

from typing import Any

from django.contrib.admin import AdminSite
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from tanfang.accounts.roles import Capability, can


class TanfangAdminSite(AdminSite):
    site_header = _("Tanfang back office")
    site_title = _("Tanfang")

    def has_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)


admin_site = TanfangAdminSite(name="admin")


class ScopedAdminMixin:
    """ModelAdmins whose rows carry personal data show only what ``visible_to`` allows.

    Users with the back-office capability may use the admin even without Django's
    per-model permissions; what they see and may change is decided by scope and role.
    """

    def get_queryset(self, request: HttpRequest) -> Any:
        return self.model.objects.visible_to(request.user)  # type: ignore[attr-defined]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can(request.user, Capability.BACK_OFFICE)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
