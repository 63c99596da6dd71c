"""Referrals: a need of an extremely poor elder or a bereaved/disabled only-child family,
sent to the subdistrict of usual residence, which must match it to a service (二.(五).4).

A referral moves received -> accepted -> matched -> done, or is declined with a reason; each
step has a time limit (``ReferralRules``), and an overdue referral escalates to the district.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ReferralState(models.TextChoices):
    RECEIVED = "received", _("Received")
    ACCEPTED = "accepted", _("Accepted")
    MATCHED = "matched", _("Matched to a service")
    DONE = "done", _("Done")
    DECLINED = "declined", _("Declined")


class ReferralSource(models.TextChoices):
    VISIT = "visit", _("Visit")
    ALERT = "alert", _("Monitoring alert")
    EMERGENCY = "emergency", _("Emergency")
    MANUAL = "manual", _("Entered by a worker")


class ReferralRules(models.Model):
    """A district's time limits for each step, and any categories it adds to the two the plan
    names (``area`` null: the city's default)."""

    area = models.OneToOneField(
        "areas.Area",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="referral_rules",
    )
    accept_hours = models.PositiveIntegerField(_("hours to accept"), default=24)
    match_days = models.PositiveIntegerField(_("days to match to a service"), default=3)
    done_days = models.PositiveIntegerField(_("days to get it done"), default=14)
    # Categories referred besides the plan's two (extremely poor, fp_special_family).
    extra_categories = models.JSONField(_("also referred"), default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("referral rules")
        verbose_name_plural = _("referral rules")

    def __str__(self) -> str:
        return str(self.area_id or "city")


class Referral(models.Model):
    """One need of one elder, referred to her subdistrict, until it is done or declined."""

    key = models.CharField(max_length=120, unique=True)
    elder = models.ForeignKey("registry.Elder", on_delete=models.PROTECT, related_name="referrals")
    # The receiving subdistrict (of usual residence) and, for scope, its district.
    subdistrict = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, related_name="+", verbose_name=_("subdistrict")
    )
    district = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    community = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    need = models.CharField(_("need"), max_length=40)
    detail = models.CharField(_("detail"), max_length=300, blank=True)
    # Why the elder is referred: "extremely_poor", "fp_special_family", or a district's extra.
    route_reason = models.CharField(max_length=40)
    source = models.CharField(_("source"), max_length=10, choices=ReferralSource.choices)
    visit = models.ForeignKey(
        "visits.Visit", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    alert = models.ForeignKey(
        "monitoring.Alert", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    care_action = models.ForeignKey(
        "care.CareAction", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        _("state"), max_length=10, choices=ReferralState.choices, default=ReferralState.RECEIVED
    )
    closed = models.BooleanField(default=False)
    service = models.ForeignKey(
        "care.ServiceEntry", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decline_reason = models.CharField(_("reason for declining"), max_length=300, blank=True)
    result = models.CharField(_("result"), max_length=300, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The time limit of the current step; an open referral past it is overdue.
    due_at = models.DateTimeField(_("due"))
    escalated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["closed", "due_at", "id"]
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        indexes = [
            models.Index(fields=["subdistrict", "closed", "due_at"], name="referral_subdistrict"),
            models.Index(fields=["district", "closed", "due_at"], name="referral_district"),
            models.Index(fields=["closed", "escalated_at", "due_at"], name="referral_overdue"),
            models.Index(fields=["elder", "closed"], name="referral_elder"),
        ]

    def __str__(self) -> str:
        return f"{self.need} ({self.state})"


class ReferralEvent(models.Model):
    """A step of a referral: received, accepted, matched, done, declined, escalated."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    event = models.CharField(max_length=12)
    from_state = models.CharField(max_length=10, blank=True)
    to_state = models.CharField(max_length=10, blank=True)
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["referral_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.referral_id}: {self.event}"
