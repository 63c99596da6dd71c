"""API endpoints for data partners' pushes of readings and device events (issue 4)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
