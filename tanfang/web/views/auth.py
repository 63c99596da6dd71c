"""Signing in and out, the language switch, and the start page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from tanfang.accounts.access import public
from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability, can

login_view = public(
    auth_views.LoginView.as_view(
        template_name="web/login.html", redirect_authenticated_user=True, next_page="home"
    )
)
logout_view = public(auth_views.LogoutView.as_view())


@public
@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Django's ``set_language``: remembers the choice in a cookie and goes back."""
    return set_language(request)


@public
def home(request: HttpRequest) -> HttpResponse:
    """Send each role to its first page."""
    user = request.user
    if not user.is_authenticated:
        return redirect("login")
    if getattr(user, "role", "") == Role.VISITOR:
        return redirect("worklist")
    if can(user, Capability.VIEW_ELDERS):
        return redirect("elder-list")
    if can(user, Capability.READ_AUDIT_LOG):
        return redirect("audit-log")
    return render(request, "web/home.html")
