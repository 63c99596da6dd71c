"""The REST API, versioned by URL namespace: ``/api/v1/...`` (see docs/api.md)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tanfang.api import views_care as care
from tanfang.api import views_elders as elders
from tanfang.api import views_other as other
from tanfang.api import views_visits as visits
from tanfang.api.urls_alerts import urlpatterns as alert_urls
from tanfang.api.urls_emergencies import urlpatterns as emergency_urls
from tanfang.api.urls_ingest import urlpatterns as ingest_urls
from tanfang.api.urls_referrals import urlpatterns as referral_urls

v1 = [
    path("elders/", elders.ElderListView.as_view(), name="elder-list"),
    path("elders/<int:pk>/", elders.ElderDetailView.as_view(), name="elder-detail"),
    path("elders/<int:pk>/reveal/", elders.ElderRevealView.as_view(), name="elder-reveal"),
    path(
        "elders/<int:pk>/classification/",
        elders.ElderClassificationView.as_view(),
        name="elder-classification",
    ),
    path(
        "elders/<int:pk>/category-overrides/",
        elders.ElderCategoryOverridesView.as_view(),
        name="elder-category-overrides",
    ),
    path(
        "elders/<int:pk>/first-contacts/",
        elders.ElderFirstContactsView.as_view(),
        name="elder-first-contacts",
    ),
    path("areas/", other.AreaListView.as_view(), name="area-list"),
    path("areas/<str:code>/", other.AreaDetailView.as_view(), name="area-detail"),
    path("first-contacts/", other.FirstContactListView.as_view(), name="first-contact-list"),
    path(
        "first-contacts/<int:pk>/",
        other.FirstContactDetailView.as_view(),
        name="first-contact-detail",
    ),
    path("classify/", other.ClassifyView.as_view(), name="classify"),
    path("me/", other.MeView.as_view(), name="me"),
    path("worklist/", visits.WorklistView.as_view(), name="worklist"),
    path("elders/<int:pk>/summary/", visits.ElderSummaryView.as_view(), name="elder-summary"),
    path("visits/", visits.VisitCreateView.as_view(), name="visit-list"),
    path("visits/<int:pk>/", visits.VisitDetailView.as_view(), name="visit-detail"),
    path("care-actions/", care.CareActionListView.as_view(), name="care-action-list"),
    path("care-actions/<int:pk>/", care.CareActionDetailView.as_view(), name="care-action-detail"),
    path(
        "care-actions/<int:pk>/move/",
        care.CareActionMoveView.as_view(),
        name="care-action-move",
    ),
    *ingest_urls,
    *alert_urls,
    *emergency_urls,
    *referral_urls,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="v1:schema"), name="docs"),
]

urlpatterns = [
    path("v1/", include((v1, "v1"), namespace="v1")),
]
