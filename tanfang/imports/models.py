"""The record of every file imported: who, when, which file, what it changed.

A run is written before the file is read and finished afterwards, outside the transaction
that writes the data, so a rejected or crashed import is still on record.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ImportStatus(models.TextChoices):
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Imported")
    REJECTED = "rejected", _("Rejected: the file has errors")
    DRY_RUN = "dry_run", _("Checked only (dry run)")
    FAILED = "failed", _("Failed")


class ImportVia(models.TextChoices):
    COMMAND = "command", _("Command line")
    WEB = "web", _("Upload page")


class ImportRun(models.Model):
    kind = models.CharField(_("kind"), max_length=20)
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.RUNNING
    )
    via = models.CharField(_("via"), max_length=8, choices=ImportVia.choices)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    by_name = models.CharField(_("by"), max_length=150)
    file_name = models.CharField(_("file name"), max_length=255)
    file_sha256 = models.CharField(_("SHA-256 of the file"), max_length=64, db_index=True)
    file_size = models.BigIntegerField(_("file size"), default=0)
    source = models.CharField(_("source"), max_length=64, blank=True)
    source_date = models.DateField(_("source date"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    # The first errors as shown to the user: [{"row", "column", "message"}]; never cell values
    # of identifiers.
    errors = models.JSONField(_("first errors"), default=list, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("import run")
        verbose_name_plural = _("import runs")

    def __str__(self) -> str:
        return f"{self.kind} {self.file_name} ({self.status})"
