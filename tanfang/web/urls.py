"""Pages. Each area of the product keeps its own URL list; this only puts them together."""

from django.urls import include, path

urlpatterns = [
    path("", include("tanfang.web.urls_registry")),
    path("import/", include("tanfang.imports.urls")),
    path("", include("tanfang.web.urls_visits")),
    path("", include("tanfang.web.urls_supervision")),
    path("", include("tanfang.web.urls_monitoring")),
    path("", include("tanfang.web.urls_referrals")),
    path("", include("tanfang.web.urls_emergencies")),
    path("", include("tanfang.web.urls_notifications")),
]
