"""API endpoints for monitoring alerts, meters and devices (issue 4)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
