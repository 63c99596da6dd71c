"""API endpoints for emergencies (issue 5): views_emergencies.py has what each one does."""

from django.urls import URLPattern, path

from tanfang.api import views_emergencies as emergencies

urlpatterns: list[URLPattern] = [
    path("emergencies/", emergencies.EmergencyListView.as_view(), name="emergency-list"),
    path(
        "emergencies/<int:pk>/",
        emergencies.EmergencyDetailView.as_view(),
        name="emergency-detail",
    ),
    path(
        "emergencies/<int:pk>/calls/",
        emergencies.EmergencyCallView.as_view(),
        name="emergency-calls",
    ),
    path(
        "emergencies/<int:pk>/confirm/",
        emergencies.EmergencyConfirmView.as_view(),
        name="emergency-confirm",
    ),
    path(
        "emergencies/<int:pk>/close/",
        emergencies.EmergencyCloseView.as_view(),
        name="emergency-close",
    ),
]
