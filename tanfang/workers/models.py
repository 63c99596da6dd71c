"""What the background workers did: one row per run of a periodic job (for operators).

The coordination itself (who runs a job now, when it is next due, the queue) lives in the
backend: the database (``JobLease``) in the embedded default, Redis in production.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class JobLease(models.Model):
    """The embedded backend's lock and schedule of one periodic job, claimed with a
    conditional UPDATE so that two worker processes never run the same job at once."""

    name = models.CharField(max_length=60, primary_key=True)
    holder = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("job lease")

    def __str__(self) -> str:
        return self.name


class JobRun(models.Model):
    name = models.CharField(_("job"), max_length=60)
    worker = models.CharField(_("worker"), max_length=80)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    ok = models.BooleanField(null=True)
    summary = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        indexes = [models.Index(fields=["name", "started_at"], name="jobrun_name_started")]

    def __str__(self) -> str:
        return f"{self.name} @ {self.started_at:%Y-%m-%d %H:%M}"


class QueuedJob(models.Model):
    """A queued job of the embedded (database) backend: inserted in the caller's transaction,
    claimed by a worker with a conditional UPDATE (``holder``, ``lease_until``), deleted when
    done; a dead worker's job is claimed again once its lease ran out. With Redis the queue
    lives in Redis instead (docs/workers.md)."""

    name = models.CharField(max_length=120)
    kwargs = models.JSONField(default=dict)
    enqueued_at = models.DateTimeField()
    holder = models.CharField(max_length=80, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        verbose_name = _("queued job")

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"
