"""Simplified Chinese unless the user chose otherwise."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class ChosenLanguageOnly:
    """Ignore the browser's Accept-Language header on pages (the API honours it).

    Workers often use browsers set up in English; the product's language is Chinese, and a
    user who wants English says so with the language switch (a cookie that Django's
    LocaleMiddleware, which runs next, honours).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/"):
            request.META.pop("HTTP_ACCEPT_LANGUAGE", None)
        return self.get_response(request)
