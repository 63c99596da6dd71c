"""Care actions, their history, and the directory of services needs are connected to."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tanfang.care.rules import CareKind, CareState


class ServiceEntry(models.Model):
    """A service in the directory: who provides what need, where, and how to reach them."""

    name = models.CharField(_("name"), max_length=100)
    needs = models.JSONField(_("needs served"), default=list)
    area = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey(
        "visits.ServiceProvider", on_delete=models.SET_NULL, null=True, blank=True
    )
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    description = models.CharField(_("description"), max_length=300, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["area_id", "name"]
        verbose_name = _("service")
        verbose_name_plural = _("services")

    def __str__(self) -> str:
        return self.name


class CareAction(models.Model):
    """One thing to do for an elder after a visit, owned by someone, until it is closed."""

    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.PROTECT, related_name="care_actions"
    )
    community = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    visit = models.ForeignKey(
        "visits.Visit",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="care_actions",
    )
    kind = models.CharField(_("kind"), max_length=8, choices=[(k.value, k.value) for k in CareKind])
    subject = models.CharField(_("subject"), max_length=40)
    detail = models.CharField(_("detail"), max_length=200, blank=True)
    state = models.CharField(
        _("state"), max_length=12, choices=[(s.value, s.value) for s in CareState]
    )
    closed = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="care_actions"
    )
    due_on = models.DateField(_("due on"))
    service = models.ForeignKey(
        ServiceEntry, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    result = models.CharField(_("result"), max_length=300, blank=True)
    escalated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="care_actions_escalated",
    )
    escalated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["closed", "due_on", "id"]
        verbose_name = _("care action")
        verbose_name_plural = _("care actions")
        indexes = [
            models.Index(fields=["owner", "closed", "due_on"], name="care_owner_open"),
            models.Index(fields=["escalated_to", "closed"], name="care_escalated_open"),
            models.Index(fields=["community", "closed", "due_on"], name="care_community_open"),
            models.Index(fields=["elder", "closed"], name="care_elder_open"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["visit", "kind", "subject"], name="care_action_once_per_visit"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.subject} ({self.state})"


class CareActionEvent(models.Model):
    """A step of a care action: opened, moved on, escalated, reassigned."""

    action = models.ForeignKey(CareAction, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    from_state = models.CharField(max_length=12, blank=True)
    to_state = models.CharField(max_length=12, blank=True)
    event = models.CharField(max_length=12, default="moved")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["action_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.action_id}: {self.from_state} → {self.to_state}"
