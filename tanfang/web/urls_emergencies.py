"""Pages of emergencies (issue 5): the cases, one case with its call list, the call log,
confirming, closing, and reporting an emergency for an elder."""

from django.urls import path

from tanfang.web.views.emergencies import (
    emergency_call,
    emergency_close_view,
    emergency_confirm_view,
    emergency_detail,
    emergency_list,
    emergency_report,
)

urlpatterns = [
    path("emergencies/", emergency_list, name="emergency-list"),
    path("emergencies/<int:case_id>/", emergency_detail, name="emergency-detail"),
    path("emergencies/<int:case_id>/calls/", emergency_call, name="emergency-call"),
    path("emergencies/<int:case_id>/confirm/", emergency_confirm_view, name="emergency-confirm"),
    path("emergencies/<int:case_id>/close/", emergency_close_view, name="emergency-close"),
    path("elders/<int:elder_id>/emergency/", emergency_report, name="emergency-report"),
]
