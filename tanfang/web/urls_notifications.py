"""Pages of family notifications: the public confirm link, the inbox, the contact list."""

from django.urls import path

from tanfang.web.views.notifications import (
    elder_family_contact_add,
    elder_family_contact_deactivate,
    inbox,
    inbox_read,
    notification_confirm_page,
)

urlpatterns = [
    path("n/<str:token>/", notification_confirm_page, name="notification-confirm"),
    path("inbox/", inbox, name="inbox"),
    path("inbox/read/", inbox_read, name="inbox-read"),
    path(
        "elders/<int:elder_id>/family-contacts/",
        elder_family_contact_add,
        name="elder-family-contact-add",
    ),
    path(
        "elders/<int:elder_id>/family-contacts/deactivate/",
        elder_family_contact_deactivate,
        name="elder-family-contact-deactivate",
    ),
]
