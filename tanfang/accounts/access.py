"""Declaring who may reach a view. A view that declares nothing is refused (see middleware).

``@requires(Capability.VIEW_ELDERS)`` lets in signed-in users whose role has the capability;
``@public`` marks the few pages open to everyone (login, language switch).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from tanfang.accounts.roles import Capability, can

V = TypeVar("V", bound=Callable[..., Any])

ACCESS_ATTRIBUTE = "tanfang_access"


def public(view: V) -> V:
    setattr(view, ACCESS_ATTRIBUTE, "public")
    return view


def requires(*capabilities: Capability) -> Callable[[V], V]:
    """Let in a signed-in user whose role has every one of ``capabilities``."""

    def decorate(view: V) -> V:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not all(can(request.user, capability) for capability in capabilities):
                raise PermissionDenied
            response: HttpResponse = view(request, *args, **kwargs)
            return response

        setattr(wrapper, ACCESS_ATTRIBUTE, tuple(capabilities))
        return wrapper  # type: ignore[return-value]

    return decorate


def declared_access(view: Callable[..., Any]) -> Any:
    """What a resolved view declared: a tuple of capabilities, "public", or None."""
    declared = getattr(view, ACCESS_ATTRIBUTE, None)
    if declared is None and hasattr(view, "view_class"):
        declared = getattr(view.view_class, ACCESS_ATTRIBUTE, None)
    return declared
