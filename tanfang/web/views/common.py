"""Small helpers shared by the page views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import add_never_cache_headers

from tanfang.registry.models import Elder
from tanfang.registry.selectors import elder_detail


def int_param(request: HttpRequest, name: str) -> int | None:
    """A positive integer query parameter, or None when absent or malformed."""
    raw = request.GET.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


R = TypeVar("R", bound=HttpResponseBase)


def private(view: Callable[..., R]) -> Callable[..., R]:
    """Pages with personal data are never stored by the browser or a proxy (shared phones)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> R:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    return wrapper


def elder_or_404(request: HttpRequest, elder_id: int) -> Elder:
    """The elder when the user may see it; 404 otherwise, so that an elder outside the
    user's scope is indistinguishable from one that does not exist."""
    try:
        return elder_detail(user=request.user, elder_id=elder_id)
    except Elder.DoesNotExist:
        raise Http404 from None
