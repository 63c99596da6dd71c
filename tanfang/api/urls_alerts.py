"""API endpoints for monitoring alerts (issue 4): views_alerts.py has what each one does."""

from django.urls import URLPattern, path

from tanfang.api import views_alerts as alerts

urlpatterns: list[URLPattern] = [
    path("alerts/", alerts.AlertListView.as_view(), name="alert-list"),
    path("alerts/<int:pk>/", alerts.AlertDetailView.as_view(), name="alert-detail"),
    path(
        "alerts/<int:pk>/acknowledge/",
        alerts.AlertAcknowledgeView.as_view(),
        name="alert-acknowledge",
    ),
    path("alerts/<int:pk>/close/", alerts.AlertCloseView.as_view(), name="alert-close"),
    path("elders/<int:pk>/alerts/", alerts.ElderAlertsView.as_view(), name="elder-alerts"),
]
