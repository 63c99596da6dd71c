"""Pages of monitoring: alerts, meters and devices, data partners' reports (issue 4)."""

from django.urls import path

from tanfang.web.views.monitoring import (
    alert_acknowledge_view,
    alert_close_view,
    alert_detail,
    alert_list,
)
from tanfang.web.views.monitoring_batches import ingest_batch_detail, ingest_batch_list
from tanfang.web.views.monitoring_elder import elder_absence

urlpatterns = [
    path("alerts/", alert_list, name="alert-list"),
    path("alerts/<int:alert_id>/", alert_detail, name="alert-detail"),
    path("alerts/<int:alert_id>/acknowledge/", alert_acknowledge_view, name="alert-acknowledge"),
    path("alerts/<int:alert_id>/close/", alert_close_view, name="alert-close"),
    path("elders/<int:elder_id>/absences/", elder_absence, name="elder-absence"),
    path("monitoring/batches/", ingest_batch_list, name="ingest-batch-list"),
    path("monitoring/batches/<int:batch_id>/", ingest_batch_detail, name="ingest-batch-detail"),
]
