"""Pages of the registry, plus signing in, the language switch and the audit log."""

from django.urls import path

from tanfang.web.views.audit_log import audit_log
from tanfang.web.views.auth import home, language_set, login_view, logout_view
from tanfang.web.views.elder_forms import elder_change, elder_new
from tanfang.web.views.elder_page import (
    elder_detail,
    elder_first_contact,
    elder_override,
    elder_reveal,
)
from tanfang.web.views.elders import elder_export, elder_list
from tanfang.web.views.quality import quality

urlpatterns = [
    path("", home, name="home"),
    path("login/", login_view, name="login"),
    path("logout/", logout_view, name="logout"),
    path("language/", language_set, name="set-language"),
    path("elders/", elder_list, name="elder-list"),
    path("elders/export.csv", elder_export, name="elder-export"),
    path("elders/new/", elder_new, name="elder-new"),
    path("elders/<int:elder_id>/", elder_detail, name="elder-detail"),
    path("elders/<int:elder_id>/edit/", elder_change, name="elder-edit"),
    path("elders/<int:elder_id>/reveal/", elder_reveal, name="elder-reveal"),
    path("elders/<int:elder_id>/categories/", elder_override, name="elder-override"),
    path("elders/<int:elder_id>/first-contact/", elder_first_contact, name="elder-first-contact"),
    path("quality/", quality, name="quality"),
    path("audit/", audit_log, name="audit-log"),
]
