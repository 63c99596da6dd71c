"""Meters, devices, data partners, ingestion batches and monitoring alerts (issue 4).

Raw readings are not rows here: they land in the reading store (Parquet files, ``store.py``),
which the detection engines read directly (docs/monitoring.md explains the choice). The
database holds what people act on and what must be audited: which meter belongs to which
home, who sent which batch and what was set aside, and the alerts with their history.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class PartnerKind(models.TextChoices):
    WATER_UTILITY = "water_utility", _("Water utility")
    POWER_UTILITY = "power_utility", _("Power utility")
    GAS_UTILITY = "gas_utility", _("Gas utility")
    DEVICE_VENDOR = "device_vendor", _("Device vendor")
    OTHER = "other", _("Other")


class DataPartner(models.Model):
    """A utility or vendor that sends readings or device events.

    ``token_hash`` is the SHA-256 of the partner's API token (the token itself is shown once,
    when it is issued). ``column_mapping`` maps the partner's file columns onto ours, per
    utility: ``{"water": {"meter_id": "表号", "ts": "抄表时间", "value": "读数",
    "unit": "m3", "ts_format": "%Y-%m-%d %H:%M:%S", "tz": "Asia/Shanghai"}, "*": {...}}``.
    """

    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=PartnerKind.choices)
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_prefix = models.CharField(max_length=8, blank=True)
    column_mapping = models.JSONField(_("column mapping"), default=dict, blank=True)
    # Who receives this partner's technical alerts (a user with the data partner role).
    contact = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="partners",
        verbose_name=_("contact"),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("data partner")
        verbose_name_plural = _("data partners")

    def __str__(self) -> str:
        return self.name


class Utility(models.TextChoices):
    WATER = "water", _("Water")
    ELECTRICITY = "electricity", _("Electricity")
    GAS = "gas", _("Gas")


class Register(models.TextChoices):
    INTERVAL = "interval", _("Usage per interval")
    CUMULATIVE = "cumulative", _("Cumulative register")


class Unit(models.TextChoices):
    LITRE = "L", "L"
    CUBIC_METRE = "m3", "m³"
    CUBIC_FOOT = "ft3", "ft³"
    KWH = "kWh", "kWh"
    WH = "Wh", "Wh"


class Meter(models.Model):
    """A water, electricity or gas meter of an elder's household.

    ``meter_id`` is the identifier in the readings (unique across partners); readings from a
    partner for a meter that is not theirs are quarantined as unknown. A meter without an
    elder (unlinked) is kept with its history; its readings are stored but raise no alerts.
    """

    meter_id = models.CharField(_("meter id"), max_length=64, unique=True)
    partner = models.ForeignKey(
        DataPartner, on_delete=models.PROTECT, related_name="meters", verbose_name=_("partner")
    )
    elder = models.ForeignKey(
        "registry.Elder",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="meters",
        verbose_name=_("elder"),
    )
    utility = models.CharField(_("utility"), max_length=12, choices=Utility.choices)
    register = models.CharField(_("register"), max_length=10, choices=Register.choices)
    unit = models.CharField(_("unit"), max_length=4, choices=Unit.choices)
    interval_minutes = models.PositiveIntegerField(_("reading interval (minutes)"), default=60)
    rollover = models.FloatField(_("register capacity"), null=True, blank=True)
    tz = models.CharField(_("time zone"), max_length=40, default="Asia/Shanghai")
    installed_on = models.DateField(_("installed on"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["meter_id"]
        verbose_name = _("meter")
        verbose_name_plural = _("meters")

    def __str__(self) -> str:
        return self.meter_id


class DeviceKind(models.TextChoices):
    SOS = "sos", _("SOS button")
    FALL = "fall", _("Fall detector")
    SMOKE = "smoke", _("Smoke detector")
    GAS = "gas", _("Gas detector")
    WATCH = "watch", _("Location watch")


class Device(models.Model):
    """An alarm or monitoring device in an elder's home (or worn by the elder)."""

    device_id = models.CharField(_("device id"), max_length=64, unique=True)
    partner = models.ForeignKey(
        DataPartner, on_delete=models.PROTECT, related_name="devices", verbose_name=_("partner")
    )
    elder = models.ForeignKey(
        "registry.Elder",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="devices",
        verbose_name=_("elder"),
    )
    kind = models.CharField(_("kind"), max_length=8, choices=DeviceKind.choices)
    installed_on = models.DateField(_("installed on"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["device_id"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")

    def __str__(self) -> str:
        return self.device_id


class LinkAction(models.TextChoices):
    INSTALLED = "installed", _("Installed")
    LINKED = "linked", _("Linked to the elder")
    UNLINKED = "unlinked", _("Unlinked")
    REPLACED = "replaced", _("Replaced")
    REMOVED = "removed", _("Removed")


class InstallationEvent(models.Model):
    """History of meters and devices: who installed, linked, unlinked or replaced what."""

    meter = models.ForeignKey(
        Meter, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="events"
    )
    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    action = models.CharField(_("action"), max_length=10, choices=LinkAction.choices)
    at = models.DateTimeField(_("at"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("installation event")
        verbose_name_plural = _("installation events")

    def __str__(self) -> str:
        return f"{self.action} @ {self.at:%Y-%m-%d}"


class AbsenceReason(models.TextChoices):
    AWAY = "away", _("Away (with family, travelling)")
    HOSPITAL = "hospital", _("In hospital")


class Absence(models.Model):
    """The elder is known to be away from home: no inactivity alerts in the period."""

    elder = models.ForeignKey("registry.Elder", on_delete=models.CASCADE, related_name="absences")
    reason = models.CharField(_("reason"), max_length=10, choices=AbsenceReason.choices)
    starts_on = models.DateField(_("from"))
    ends_on = models.DateField(_("until"), null=True, blank=True)
    note = models.CharField(_("note"), max_length=200, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_on"]
        verbose_name = _("absence")
        verbose_name_plural = _("absences")

    def __str__(self) -> str:
        return f"{self.reason} {self.starts_on}"


class IngestSource(models.TextChoices):
    FILE = "file", _("File")
    HTTP = "http", _("HTTP push")
    MQTT = "mqtt", _("MQTT")


class IngestBatch(models.Model):
    """One delivery of readings from a partner, with what was stored and what was set aside.

    A file is identified by its content hash: the same file twice is one batch (the second
    delivery stores nothing and says so). ``reasons`` counts quarantined readings by reason.
    """

    partner = models.ForeignKey(DataPartner, on_delete=models.PROTECT, related_name="batches")
    source = models.CharField(_("source"), max_length=6, choices=IngestSource.choices)
    name = models.CharField(_("name"), max_length=255, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(_("received at"))
    rows = models.PositiveIntegerField(_("rows"), default=0)
    stored = models.PositiveIntegerField(_("stored"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    quarantined = models.PositiveIntegerField(_("quarantined"), default=0)
    reasons = models.JSONField(default=dict, blank=True)
    store_paths = models.JSONField(default=list, blank=True)
    first_ts = models.DateTimeField(null=True, blank=True)
    last_ts = models.DateTimeField(null=True, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = _("ingest batch")
        verbose_name_plural = _("ingest batches")
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "content_sha256"],
                condition=~models.Q(content_sha256=""),
                name="ingest_batch_partner_content",
            )
        ]

    def __str__(self) -> str:
        return f"{self.partner_id}/{self.pk}"


class QuarantinedReading(models.Model):
    """A reading set aside, with the row it came from and why (the first ones of a batch;
    the batch counts them all and the store keeps every one in ``quarantine/``)."""

    batch = models.ForeignKey(IngestBatch, on_delete=models.CASCADE, related_name="set_aside")
    row = models.PositiveIntegerField(_("row"))
    meter_id = models.CharField(_("meter id"), max_length=64, blank=True)
    ts = models.CharField(_("time"), max_length=40, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    reason = models.CharField(_("reason"), max_length=24)
    detail = models.CharField(_("detail"), max_length=200, blank=True)

    class Meta:
        ordering = ["batch_id", "row"]
        verbose_name = _("quarantined reading")
        verbose_name_plural = _("quarantined readings")

    def __str__(self) -> str:
        return f"{self.batch_id}:{self.row} {self.reason}"


class DeviceEvent(models.Model):
    """An event from a device (SOS pressed, fall detected, smoke, gas, heartbeat)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="device_events")
    message_id = models.CharField(max_length=80, unique=True)
    kind = models.CharField(_("kind"), max_length=12)
    at = models.DateTimeField(_("at"))
    received_at = models.DateTimeField(_("received at"))
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("device event")
        verbose_name_plural = _("device events")

    def __str__(self) -> str:
        return f"{self.device_id} {self.kind}"


class DistrictRules(models.Model):
    """Detection rules and alert handling for a district (``area`` null: the city's default).

    ``rules`` is a rule book fragment (docs/detection.md), merged onto the defaults and then
    validated by ``detection.config.RuleBook``. Escalation minutes: how long an alert waits
    for acknowledgement at each level before it climbs.
    """

    area = models.OneToOneField(
        "areas.Area",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="monitoring_rules",
        verbose_name=_("district"),
    )
    rules = models.JSONField(_("rules"), default=dict, blank=True)
    escalate_visitor_minutes = models.PositiveIntegerField(
        _("minutes before escalating from the visitor"), default=30
    )
    escalate_community_minutes = models.PositiveIntegerField(
        _("minutes before escalating from the community worker"), default=60
    )
    remote_visit_counts = models.BooleanField(
        _("a quiet normal day counts as a remote-monitoring visit"), default=False
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("monitoring rules")
        verbose_name_plural = _("monitoring rules")

    def __str__(self) -> str:
        return str(self.area_id or "city")


class AlertKind(models.TextChoices):
    INACTIVITY = "inactivity", _("Inactivity")
    MISSED_ROUTINE = "missed_routine", _("Missed routine")
    LOW_USAGE = "low_usage", _("Low usage")
    CONTINUOUS_USE = "continuous_use", _("Continuous use")
    DEVICE = "device", _("Device alarm")
    DATA_SILENCE = "data_silence", _("Meter stopped reporting")


class Severity(models.TextChoices):
    INFO = "info", _("Information")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlertState(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    CLOSED = "closed", _("Closed")


class AlertLevel(models.TextChoices):
    VISITOR = "visitor", _("Visitor")
    COMMUNITY = "community", _("Community worker")
    SUBDISTRICT = "subdistrict", _("Subdistrict")
    PARTNER = "partner", _("Data partner")


class AlertOutcome(models.TextChoices):
    FALSE_ALARM = "false_alarm", _("False alarm")
    ALL_WELL = "all_well", _("All well")
    NEEDED_HELP = "needed_help", _("Needed help")
    EMERGENCY_HANDLED = "emergency_handled", _("Emergency handled")
    HOSPITALISED = "hospitalised", _("Hospitalised")
    FOUND_DECEASED = "found_deceased", _("Found deceased")


class Alert(models.Model):
    """One monitoring episode: raised once, escalated until acknowledged, resolved when
    activity resumes (``resolved_at``), closed with an outcome by a person.

    ``episode_key`` makes raising idempotent: ``{meter_id|device_id}:{rule}:{started_at}``.
    Technical alerts (``data_silence``) go to the data partner, never to the visitor.
    """

    episode_key = models.CharField(max_length=160, unique=True)
    elder = models.ForeignKey(
        "registry.Elder",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="alerts",
        db_index=False,
    )
    community = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    device = models.ForeignKey(
        Device, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    partner = models.ForeignKey(
        DataPartner, on_delete=models.PROTECT, null=True, blank=True, related_name="alerts"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=AlertKind.choices)
    rule = models.CharField(_("rule"), max_length=40)
    severity = models.CharField(_("severity"), max_length=8, choices=Severity.choices)
    technical = models.BooleanField(default=False)
    started_at = models.DateTimeField(_("anomaly began"))
    detected_at = models.DateTimeField(_("detected at"))
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)

    state = models.CharField(
        _("state"), max_length=12, choices=AlertState.choices, default=AlertState.OPEN
    )
    level = models.CharField(_("level"), max_length=12, choices=AlertLevel.choices)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts_assigned",
        verbose_name=_("assigned to"),
    )
    escalate_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(_("activity resumed at"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=20, choices=AlertOutcome.choices, blank=True
    )
    outcome_note = models.TextField(_("what was done"), blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-detected_at", "-id"]
        verbose_name = _("monitoring alert")
        verbose_name_plural = _("monitoring alerts")
        indexes = [
            models.Index(fields=["elder", "-detected_at"], name="alert_elder_detected"),
            models.Index(fields=["community", "state"], name="alert_community_state"),
            models.Index(fields=["assigned_to", "state"], name="alert_assignee_state"),
            models.Index(fields=["state", "escalate_at"], name="alert_state_escalate"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.started_at:%Y-%m-%d %H:%M}"


class AlertAction(models.TextChoices):
    RAISED = "raised", _("Raised")
    ASSIGNED = "assigned", _("Assigned")
    ESCALATED = "escalated", _("Escalated")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    RESOLVED = "resolved", _("Activity resumed")
    CLOSED = "closed", _("Closed with outcome")
    NOTE = "note", _("Note")


class AlertEvent(models.Model):
    """The history of an alert: who was told when, who acknowledged, what happened."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(_("action"), max_length=12, choices=AlertAction.choices)
    at = models.DateTimeField(_("at"))
    level = models.CharField(_("level"), max_length=12, blank=True)
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("alert event")
        verbose_name_plural = _("alert events")

    def __str__(self) -> str:
        return f"{self.alert_id} {self.action}"
