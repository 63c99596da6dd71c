"""Pages of monitoring: alerts, meters and devices, data partners' reports (issue 4)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
