from django.urls import include, path

from tanfang.admin_site import admin_site

urlpatterns = [
    path("admin/", admin_site.urls),
    path("api/", include("tanfang.api.urls")),
    path("", include("tanfang.web.urls")),
]
