"""REST API access: denied unless an endpoint names the capabilities it needs."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from tanfang.accounts.roles import can


class DenyByDefault(BasePermission):
    """Allow only when the view declares ``required_capabilities`` and the user has them all."""

    def has_permission(self, request: Request, view: Any) -> bool:
        needed = getattr(view, "required_capabilities", None)
        if not needed:
            return False
        return all(can(request.user, capability) for capability in needed)
