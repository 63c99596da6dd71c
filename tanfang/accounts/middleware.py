"""Refuse every request to a view that has not declared who may reach it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from tanfang.accounts.access import declared_access


class DenyByDefaultMiddleware:
    """Web views must declare access (``@requires``/``@public``).

    Two families check access themselves and are let through to do so: the REST API, whose
    default permission class denies everything an endpoint does not allow, and the admin
    site, whose ``has_permission`` and scoped querysets apply the same roles.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: Any,
        view_kwargs: Any,
    ) -> None:
        match = request.resolver_match
        if match is not None and match.namespaces and match.namespaces[0] == "admin":
            return None
        if hasattr(view_func, "cls"):  # a Django REST framework view
            return None
        if declared_access(view_func) is None:
            raise PermissionDenied("this view declares no access")
        return None
