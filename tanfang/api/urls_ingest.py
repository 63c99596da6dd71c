"""API endpoints for data partners' pushes of readings and device events (issue 4)."""

from django.urls import URLPattern, path

from tanfang.api import views_ingest as ingest

urlpatterns: list[URLPattern] = [
    path("ingest/readings/", ingest.ReadingsIngestView.as_view(), name="ingest-readings"),
    path("ingest/device-events/", ingest.DeviceEventView.as_view(), name="ingest-device-events"),
]
