"""REST API access: denied unless an endpoint names the capabilities it needs.

Every API view declares ``required_capabilities`` (needed for every method) and may add
``write_capabilities`` (needed in addition for POST, PUT, PATCH and DELETE). A view that
declares nothing, or an empty tuple, is refused. ``ANY_ROLE`` is the one spelled-out
exception: any signed-in user with a role and an area (``me/``, the schema).
Which rows a permitted user then sees is decided by ``visible_to`` in the view's queryset.
"""

from __future__ import annotations

from typing import Any, Final

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from tanfang.accounts.models import Role
from tanfang.accounts.roles import ROLE_CAPABILITIES, can

ANY_ROLE: Final = "any_role"


def has_role(user: object) -> bool:
    """Signed in, active, with a known role and a place in the tree."""
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_active", False)
        and getattr(user, "area_id", None) is not None
        and getattr(user, "role", "") in Role.values
        and ROLE_CAPABILITIES.get(getattr(user, "role", ""))
    )


class DenyByDefault(BasePermission):
    """Allow only when the view declares ``required_capabilities`` and the user has them all."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_capabilities", None)
        if not needed:
            return False
        if needed == ANY_ROLE:
            allowed = has_role(request.user)
        else:
            allowed = all(can(request.user, capability) for capability in needed)
        if allowed and request.method not in SAFE_METHODS:
            writes = getattr(view, "write_capabilities", ())
            allowed = all(can(request.user, capability) for capability in writes)
        return allowed


class SignedInWithRole(BasePermission):
    """For views that carry no data of their own (the OpenAPI schema and its docs page)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return has_role(request.user)
