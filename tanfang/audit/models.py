"""The append-only audit log: who saw, revealed, exported or changed whose personal data.

Rows are never updated or deleted: the model refuses it and database triggers (see the
migration) refuse it for anyone who goes around the model.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    VIEW_RECORD = "view_record", _("Viewed a record")
    VIEW_LIST = "view_list", _("Viewed a list")
    REVEAL_IDENTIFIER = "reveal_identifier", _("Revealed an identifier")
    EXPORT = "export", _("Exported data")
    IMPORT = "import", _("Imported data")
    CREATE_RECORD = "create_record", _("Created a record")
    UPDATE_RECORD = "update_record", _("Changed a record")
    OVERRIDE_CATEGORY = "override_category", _("Changed a category by hand")
    SET_FIRST_CONTACT = "set_first_contact", _("Set the first contact")
    ACCESS_DENIED = "access_denied", _("Was refused access")


class AppendOnlyError(RuntimeError):
    pass


class AuditEntry(models.Model):
    at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    actor_username = models.CharField(_("user"), max_length=150)
    actor_role = models.CharField(_("role"), max_length=24, blank=True)
    action = models.CharField(_("action"), max_length=24, choices=AuditAction.choices)
    # No foreign key: the log outlives the records it speaks of.
    elder_id = models.BigIntegerField(_("elder"), null=True, blank=True, db_index=True)
    elder_label = models.CharField(_("whom"), max_length=100, blank=True)
    area_code = models.CharField(_("area"), max_length=15, blank=True, db_index=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_username} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("audit entries are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("audit entries are never deleted")
