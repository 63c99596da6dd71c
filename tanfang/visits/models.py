"""Service teams, the visit policy as data, visits, each elder's visit status and rate snapshots.

The policy rows are turned into the pure engine's ``VisitPolicy`` by ``policy_load``; the engine
never reads the database. ``ElderVisitStatus`` stores what the engine concluded for each elder
(next due day, overdue since, exclusion) so that worklists and rates are indexed queries, the
way healthchecks stores ``alert_after`` on a check.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ProviderKind(models.TextChoices):
    COMMUNITY_COMMITTEE = "community_committee", _("Community committee")
    REGIONAL_CENTRE = "regional_centre", _("Regional elder-care centre")
    COMMUNITY_STATION = "community_station", _("Community elder-care station")
    ELDER_ASSOCIATION = "elder_association", _("Elder association")
    PROPERTY_MANAGEMENT = "property_management", _("Property-management company")
    SOCIAL_WORK = "social_work", _("Social-work organisation")
    FAMILY_DOCTOR = "family_doctor", _("Family-doctor team")
    VOLUNTEERS = "volunteers", _("Volunteers")
    NEIGHBOURS = "neighbours", _("Neighbours")


class ServiceProvider(models.Model):
    """A service team that visits: a station, a social-work organisation, volunteers..."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=24, choices=ProviderKind.choices)
    area = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, related_name="providers", verbose_name=_("area")
    )
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["area_id", "name"]
        verbose_name = _("service team")
        verbose_name_plural = _("service teams")

    def __str__(self) -> str:
        return self.name


class VisitorProfile(models.Model):
    """What a visitor is beyond her account: her team, whether a volunteer, her capacity."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="visitor_profile",
    )
    provider = models.ForeignKey(
        ServiceProvider,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="visitors",
        verbose_name=_("service team"),
    )
    volunteer = models.BooleanField(_("volunteer"), default=False)
    capacity = models.PositiveIntegerField(_("elders at most"), default=40)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("visitor profile")
        verbose_name_plural = _("visitor profiles")

    def __str__(self) -> str:
        return str(self.user)


class Substitution(models.Model):
    """A visitor who is away hands her elders to a substitute for a period."""

    visitor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="substitutions_away"
    )
    substitute = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="substitutions_covering"
    )
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"))
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on"]
        indexes = [models.Index(fields=["substitute", "starts_on"], name="substitution_cover")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__gte=models.F("starts_on")), name="substitution_dates"
            ),
            models.CheckConstraint(
                condition=~models.Q(visitor=models.F("substitute")), name="substitution_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.visitor_id} → {self.substitute_id} ({self.starts_on}–{self.ends_on})"


class Frequency(models.TextChoices):
    DAY = "day", _("Daily")
    WEEK = "week", _("Weekly")
    MONTH = "month", _("Monthly")
    QUARTER = "quarter", _("Quarterly")


class ModeRequirement(models.TextChoices):
    ANY = "any", _("Any mode")
    PHONE = "phone", _("Phone or better")
    IN_HOME = "in_home", _("In-home")


class VisitRule(models.Model):
    """One rule of the visit policy, effective for a period; the winning rule sets the frequency.

    With no category, risk, area or elder the rule applies to everyone (the plan's baseline);
    otherwise it is an override for those it matches. The highest priority wins.
    """

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=100)
    effective_from = models.DateField(_("effective from"))
    effective_to = models.DateField(_("effective to"), null=True, blank=True)
    frequency = models.CharField(_("frequency"), max_length=8, choices=Frequency.choices)
    mode = models.CharField(
        _("mode required"), max_length=8, choices=ModeRequirement.choices, default="any"
    )
    categories = models.JSONField(_("categories (any of)"), default=list, blank=True)
    risk_levels = models.JSONField(_("risk levels (any of)"), default=list, blank=True)
    area = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    priority = models.IntegerField(_("priority"), default=0)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["-priority", "effective_from"]
        verbose_name = _("visit rule")
        verbose_name_plural = _("visit rules")

    def __str__(self) -> str:
        return self.name


class VisitSurge(models.Model):
    """A temporary surge declared by a supervisor: extreme weather in an area for some days."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    reason = models.CharField(_("reason"), max_length=200)
    area = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"))
    frequency = models.CharField(
        _("frequency"), max_length=8, choices=Frequency.choices, default="day"
    )
    mode = models.CharField(
        _("mode required"), max_length=8, choices=ModeRequirement.choices, default="phone"
    )
    categories_all = models.JSONField(_("categories (all of)"), default=list, blank=True)
    risk_levels = models.JSONField(_("risk levels (any of)"), default=list, blank=True)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["-starts_on"]
        verbose_name = _("visit surge")
        verbose_name_plural = _("visit surges")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_on__gte=models.F("starts_on")), name="surge_dates"
            )
        ]

    def __str__(self) -> str:
        return self.reason


class HolidaySurge(models.Model):
    """A visit due around traditional holidays (dates from the chinese-calendar package)."""

    code = models.SlugField(_("code"), max_length=40, unique=True)
    holidays = models.JSONField(_("holidays"), default=list)
    days_before = models.PositiveSmallIntegerField(_("days before"), default=3)
    mode = models.CharField(
        _("mode required"), max_length=8, choices=ModeRequirement.choices, default="any"
    )
    categories_all = models.JSONField(_("categories (all of)"), default=list, blank=True)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("holiday surge")
        verbose_name_plural = _("holiday surges")

    def __str__(self) -> str:
        return self.code


class CountingRule(models.Model):
    """Which visit modes and outcomes count for the visit rates, from a date on."""

    effective_from = models.DateField(_("effective from"), unique=True)
    modes = models.JSONField(_("modes that count"), default=list)
    outcomes = models.JSONField(_("outcomes that count"), default=list)

    class Meta:
        ordering = ["effective_from"]
        verbose_name = _("counting rule")
        verbose_name_plural = _("counting rules")

    def __str__(self) -> str:
        return str(self.effective_from)


class VisitMode(models.TextChoices):
    PHONE = "phone", _("Phone")
    ONLINE = "online", _("Online (video)")
    IN_HOME = "in_home", _("In-home")
    REMOTE_MONITORING = "remote_monitoring", _("Remote monitoring")
    COMBINED = "combined", _("Combined")


class PersonMet(models.TextChoices):
    ELDER = "elder", _("The elder")
    FAMILY = "family", _("A family member")
    NOBODY = "nobody", _("Nobody")


class VisitOutcome(models.TextChoices):
    MET = "met", _("Met")
    NOT_HOME = "not_home", _("Not at home")
    REFUSED = "refused", _("Refused")
    IN_HOSPITAL = "in_hospital", _("In hospital")
    DECEASED = "deceased", _("Deceased")


class OrganisedBy(models.TextChoices):
    GOVERNMENT = "government", _("Government-purchased visit")
    STATION = "station", _("Station under contract")
    SOCIAL = "social", _("Social forces (spontaneous)")


class VisitSource(models.TextChoices):
    APP = "app", _("Field app")
    WEB = "web", _("Web form")
    IMPORT = "import", _("Imported")
    MONITORING = "monitor", _("Remote monitoring")


class Visit(models.Model):
    """One visit (the plan's attachment 2). Idempotent on ``client_uuid``; locked after 24 h."""

    client_uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    # No single-column indexes on elder and visitor: the composite indexes below lead with
    # them (at 50 million visits each duplicate costs about 1 GB).
    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.PROTECT, related_name="visits", db_index=False
    )
    community = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    visitor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="visits",
        db_index=False,
    )
    visitor_name = models.CharField(_("visitor"), max_length=64)
    provider = models.ForeignKey(
        ServiceProvider, on_delete=models.SET_NULL, null=True, blank=True, related_name="visits"
    )
    organised_by = models.CharField(
        _("organised by"), max_length=12, choices=OrganisedBy.choices, default="government"
    )
    mode = models.CharField(_("mode"), max_length=20, choices=VisitMode.choices)
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"))
    person_met = models.CharField(_("person met"), max_length=8, choices=PersonMet.choices)
    outcome = models.CharField(_("outcome"), max_length=12, choices=VisitOutcome.choices)
    sections = models.JSONField(_("findings"), default=dict, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    consent = models.BooleanField(_("consents to care actions"), default=False)
    risk_level = models.CharField(_("risk level"), max_length=10, blank=True)
    risk_reasons = models.JSONField(default=list, blank=True)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    location_accuracy_m = models.PositiveIntegerField(null=True, blank=True)
    counts = models.BooleanField(_("counts for the rates"), default=False)
    local_date = models.DateField(_("date"))
    week_key = models.CharField(max_length=8)
    month_key = models.CharField(max_length=7)
    source = models.CharField(max_length=8, choices=VisitSource.choices, default="app")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    locked_after = models.DateTimeField()
    revision = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        indexes = [
            models.Index(fields=["elder", "-started_at"], name="visit_elder_time"),
            models.Index(fields=["week_key", "community", "elder"], name="visit_week"),
            models.Index(fields=["month_key", "community", "elder"], name="visit_month"),
            models.Index(fields=["visitor", "-started_at"], name="visit_visitor_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ended_at__gte=models.F("started_at")), name="visit_times"
            )
        ]

    def __str__(self) -> str:
        return f"{self.elder_id} {self.local_date} {self.mode}"


class VisitRevision(models.Model):
    """A correction of a visit by its author within 24 hours: what changed, kept for ever."""

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(default=dict)

    class Meta:
        ordering = ["visit_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["visit", "number"], name="visit_revision_number")
        ]

    def __str__(self) -> str:
        return f"{self.visit_id} r{self.number}"


class ElderVisitStatus(models.Model):
    """What the obligation engine concluded for one elder, stored so that lists are queries."""

    elder = models.OneToOneField(
        "registry.Elder", on_delete=models.CASCADE, primary_key=True, related_name="visit_status"
    )
    # No index of its own: status_rate and status_overdue lead with it, and every index is
    # one more write for each of a million rows on the night a new week begins.
    community = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    excluded = models.CharField(_("not due because"), max_length=16, blank=True)
    frequency = models.CharField(_("frequency"), max_length=8, blank=True)
    period_key = models.CharField(max_length=10, blank=True)
    scheduled = models.BooleanField(default=True)
    next_due_on = models.DateField(_("next due"), null=True, blank=True)
    overdue_since = models.DateField(_("overdue since"), null=True, blank=True)
    open_obligations = models.JSONField(default=list, blank=True)
    last_visit_at = models.DateTimeField(null=True, blank=True)
    last_counted_at = models.DateTimeField(null=True, blank=True)
    # The latest counting visit by phone/online or better, and in person: with
    # ``last_counted_at`` these sum up all history before the recent window, so the nightly
    # recomputation reads only recent visits (status_bulk.py).
    last_contact_at = models.DateTimeField(null=True, blank=True)
    last_in_home_at = models.DateTimeField(null=True, blank=True)
    risk_level = models.CharField(_("risk level"), max_length=10, blank=True)
    urgency = models.IntegerField(default=0)
    computed_on = models.DateField()

    class Meta:
        indexes = [
            models.Index(fields=["community", "excluded", "last_counted_at"], name="status_rate"),
            models.Index(fields=["next_due_on"], name="status_next_due"),
            models.Index(fields=["community", "overdue_since"], name="status_overdue"),
        ]

    def __str__(self) -> str:
        return f"{self.elder_id}: {self.next_due_on}"


class RateSnapshot(models.Model):
    """The visit rate of one node for one closed period, kept as it was when the period closed."""

    area = models.ForeignKey("areas.Area", on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=10)
    due = models.PositiveIntegerField()
    visited = models.PositiveIntegerField()
    excluded = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["area_id", "period"]
        constraints = [
            models.UniqueConstraint(fields=["area", "period"], name="rate_snapshot_area_period")
        ]

    def __str__(self) -> str:
        return f"{self.area_id} {self.period}: {self.visited}/{self.due}"
