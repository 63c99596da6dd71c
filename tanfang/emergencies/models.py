"""Emergencies: danger to life, the family told at once, the worker's call list, the case
climbing until a person confirms it is handled (二.(五).4, "危及生命").

An ``EmergencyCase`` is opened by an SOS or fall alarm, a severe inactivity alert nobody
acknowledged, or a visitor's report. Its timeline is the ``EmergencyEvent`` rows (opened,
told, delivered, call logged, escalated, confirmed, closed); each call is a ``CallAttempt``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Trigger(models.TextChoices):
    SOS = "sos", _("SOS button")
    FALL = "fall", _("Fall detected")
    INACTIVITY = "inactivity", _("Severe inactivity alert not answered")
    VISITOR_REPORT = "visitor_report", _("Reported by a visitor")
    OTHER = "other", _("Other")


class CaseState(models.TextChoices):
    OPEN = "open", _("Open")
    CONFIRMED = "confirmed", _("Being handled")
    CLOSED = "closed", _("Closed")


class CaseLevel(models.TextChoices):
    VISITOR = "visitor", _("Visitor")
    COMMUNITY = "community", _("Community worker")
    SUBDISTRICT = "subdistrict", _("Subdistrict")
    DISTRICT = "district", _("District")


class CaseOutcome(models.TextChoices):
    FALSE_ALARM = "false_alarm", _("False alarm")
    ALL_WELL = "all_well", _("All well")
    HELPED_AT_HOME = "helped_at_home", _("Helped at home")
    HOSPITALISED = "hospitalised", _("Taken to hospital")
    FOUND_DECEASED = "found_deceased", _("Found deceased")


class EmergencyRules(models.Model):
    """How long a case waits at each level for a person to confirm it is handled
    (``area`` null: the city's default)."""

    area = models.OneToOneField(
        "areas.Area",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="emergency_rules",
    )
    visitor_minutes = models.PositiveIntegerField(_("minutes at the visitor"), default=5)
    community_minutes = models.PositiveIntegerField(_("minutes at the community"), default=10)
    subdistrict_minutes = models.PositiveIntegerField(_("minutes at the subdistrict"), default=15)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("emergency rules")
        verbose_name_plural = _("emergency rules")

    def __str__(self) -> str:
        return str(self.area_id or "city")


class EmergencyCase(models.Model):
    key = models.CharField(max_length=160, unique=True)
    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.PROTECT, related_name="emergencies"
    )
    community = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    subdistrict = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    district = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    summary = models.CharField(_("what happened"), max_length=300, blank=True)
    alert = models.ForeignKey(
        "monitoring.Alert", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    visit = models.ForeignKey(
        "visits.Visit", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        _("state"), max_length=10, choices=CaseState.choices, default=CaseState.OPEN
    )
    level = models.CharField(_("level"), max_length=12, choices=CaseLevel.choices)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="emergencies_assigned",
    )
    escalate_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(_("opened at"))
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(_("outcome"), max_length=16, choices=CaseOutcome.choices, blank=True)
    outcome_note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = _("emergency")
        verbose_name_plural = _("emergencies")
        indexes = [
            models.Index(
                fields=["escalate_at"],
                condition=Q(state="open", escalate_at__isnull=False),
                name="emergency_escalate_due",
            ),
            models.Index(fields=["community", "state"], name="emergency_community"),
            models.Index(fields=["district", "opened_at"], name="emergency_district"),
            models.Index(fields=["assigned_to", "state"], name="emergency_assigned"),
        ]
        constraints = [
            # One open case per elder at a time: a second alarm joins the open case.
            models.UniqueConstraint(
                fields=["elder"],
                condition=~Q(state="closed"),
                name="one_open_emergency_per_elder",
            )
        ]

    def __str__(self) -> str:
        return f"{self.trigger} #{self.pk}"


class CallResult(models.TextChoices):
    NO_ANSWER = "no_answer", _("No answer")
    BUSY = "busy", _("Busy")
    UNREACHABLE = "unreachable", _("Unreachable or wrong number")
    ANSWERED = "answered", _("Answered")


class CallAttempt(models.Model):
    """A call the worker made from the call list, and what came of it."""

    case = models.ForeignKey(EmergencyCase, on_delete=models.CASCADE, related_name="calls")
    # Which line of the call list: "first_contact:12", "family:4", "user:9".
    contact_ref = models.CharField(max_length=40)
    contact_name = models.CharField(_("whom"), max_length=80)
    contact_role = models.CharField(_("relation or role"), max_length=40, blank=True)
    phone_masked = models.CharField(_("phone"), max_length=20, blank=True)
    result = models.CharField(_("result"), max_length=12, choices=CallResult.choices)
    note = models.CharField(_("note"), max_length=300, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["case_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.contact_name}: {self.result}"


class EmergencyEvent(models.Model):
    """A line of a case's timeline: who was told when, who answered, what was done."""

    case = models.ForeignKey(EmergencyCase, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    kind = models.CharField(max_length=12)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    level = models.CharField(max_length=12, blank=True)
    message = models.ForeignKey(
        "notifications.Message",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    call = models.ForeignKey(
        CallAttempt, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    text = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["case_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.kind}"
