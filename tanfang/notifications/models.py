"""Who is told what, on which channel, and whether it arrived (issue 5).

A ``Notification`` is one thing told to one recipient (a family member, a worker, a WeCom
group), caused by an event (a need found, an alert, an emergency). It fans out into
``Message`` rows, one per channel: the transactional outbox. Messages are written in the
same database transaction as their cause and sent later by workers (``outbox.py``), which
claim them with a conditional UPDATE and a lease, send them with the message's idempotency
``key`` and record every try as a ``MessageAttempt``. docs/notifications.md explains it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    WECOM = "wecom", _("WeCom group")
    EMAIL = "email", _("E-mail")
    INBOX = "inbox", _("In-app inbox")


class RecipientKind(models.TextChoices):
    FIRST_CONTACT = "first_contact", _("First contact")
    FAMILY = "family", _("Family contact")
    USER = "user", _("Worker")
    GROUP = "group", _("WeCom group")


class Topic(models.TextChoices):
    NEED = "need", _("Need found")
    HAZARD = "hazard", _("Hazard found")
    CARE_RESULT = "care_result", _("Care action result")
    ALERT = "alert", _("Monitoring alert")
    EMERGENCY = "emergency", _("Emergency")
    REFERRAL = "referral", _("Referral")
    ESCALATION = "escalation", _("Escalation")


class Delivery(models.TextChoices):
    """How a notification uses its channels: all at once, or the next only if one fails."""

    ALL = "all", _("Every channel at once")
    FALLBACK = "fallback", _("Next channel when one fails")


class FamilyContact(models.Model):
    """A family member (or neighbour) on the elder's contact list, after the first contact.

    The first contact (``registry.FirstContact``) always heads the list; these follow in
    ``position`` order. Phone and e-mail are stored encrypted and shown masked.
    """

    elder = models.ForeignKey(
        "registry.Elder", on_delete=models.CASCADE, related_name="family_contacts"
    )
    name = models.CharField(_("name"), max_length=64)
    relation = models.CharField(_("relation"), max_length=12)
    phone_cipher = models.TextField(blank=True, editable=False)
    phone_masked = models.CharField(_("phone"), max_length=20, blank=True)
    email_cipher = models.TextField(blank=True, editable=False)
    email_masked = models.CharField(_("e-mail"), max_length=120, blank=True)
    position = models.PositiveSmallIntegerField(_("order"), default=1)
    active = models.BooleanField(_("active"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["elder_id", "position", "id"]
        verbose_name = _("family contact")
        verbose_name_plural = _("family contacts")

    def __str__(self) -> str:
        return f"{self.name} ({self.relation})"


class WeComGroup(models.Model):
    """A WeCom (企业微信) group robot of a community, subdistrict or district team.

    ``key_cipher`` holds the robot's webhook key, encrypted: whoever has it can post.
    """

    area = models.ForeignKey("areas.Area", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=80)
    key_cipher = models.TextField(editable=False)
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["area_id", "id"]
        verbose_name = _("WeCom group")
        verbose_name_plural = _("WeCom groups")

    def __str__(self) -> str:
        return self.name


class MessageTemplate(models.Model):
    """A district's wording of a message (``area`` null: the city's), overriding the built-in
    default of ``templates.DEFAULTS``. ``text`` has ``{placeholders}``; ``sms_template_code``
    is the provider's approved template with the same placeholders."""

    code = models.CharField(_("template"), max_length=40)
    area = models.ForeignKey(
        "areas.Area", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    text = models.TextField(_("text"))
    sms_template_code = models.CharField(_("SMS template code"), max_length=40, blank=True)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code", "area_id"]
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        constraints = [
            models.UniqueConstraint(
                fields=["code", "area"], name="one_template_per_area", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.area_id or 'city'})"


class NotificationRules(models.Model):
    """A district's quiet hours and confirmation timer (``area`` null: the city's default)."""

    area = models.OneToOneField(
        "areas.Area",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_rules",
    )
    quiet_start = models.TimeField(_("quiet hours start"), default="21:00")
    quiet_end = models.TimeField(_("quiet hours end"), default="08:00")
    confirm_minutes = models.PositiveIntegerField(
        _("minutes an urgent message waits for confirmation"), default=30
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("notification rules")
        verbose_name_plural = _("notification rules")

    def __str__(self) -> str:
        return str(self.area_id or "city")


class Notification(models.Model):
    """One thing told to one recipient, with its confirmation and escalation."""

    key = models.CharField(max_length=160, unique=True)
    topic = models.CharField(_("topic"), max_length=12, choices=Topic.choices)
    template = models.CharField(_("template"), max_length=40)
    params = models.JSONField(default=dict, blank=True)
    text = models.TextField(_("text"))
    elder = models.ForeignKey(
        "registry.Elder",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
    )
    # The district whose templates and rules apply, and the scope of supervisors' views.
    district = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    community = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recipient_kind = models.CharField(max_length=14, choices=RecipientKind.choices)
    recipient_name = models.CharField(_("recipient"), max_length=80, blank=True)
    first_contact = models.ForeignKey(
        "registry.FirstContact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    family_contact = models.ForeignKey(
        FamilyContact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="notifications",
    )
    group = models.ForeignKey(
        WeComGroup, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    delivery = models.CharField(max_length=8, choices=Delivery.choices, default=Delivery.FALLBACK)
    # The channels to use, in order (``Delivery.FALLBACK``) or all at once (``ALL``).
    channels = models.JSONField(default=list)
    # Where to reach the recipient on each of ``channels`` (same order), for falling back:
    # [{"channel": "sms", "cipher": <encrypted phone>, "masked": "138****0000"}, ...].
    addresses = models.JSONField(default=list, blank=True)
    urgent = models.BooleanField(_("urgent"), default=False)
    # What caused it: ("alert", 12), ("emergency", 3), ("referral", 7), ("care_action", 9) ...
    cause_type = models.CharField(max_length=20, blank=True)
    cause_id = models.BigIntegerField(null=True, blank=True)
    # The first contact confirms (or replies) by a link; only its hash is stored.
    confirm_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    reply = models.CharField(_("reply"), max_length=500, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    # An urgent notification nobody confirmed escalates once, at this time.
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            models.Index(
                fields=["escalate_at"],
                condition=Q(escalate_at__isnull=False),
                name="notification_escalate_due",
            ),
            models.Index(fields=["cause_type", "cause_id"], name="notification_cause"),
            models.Index(fields=["elder", "created_at"], name="notification_elder"),
        ]

    def __str__(self) -> str:
        return self.key


class MessageState(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    SENT = "sent", _("Sent")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class Message(models.Model):
    """One notification on one channel: a row of the outbox.

    ``key`` is the idempotency key every send carries (the SMS ``OutId``, the e-mail
    ``Message-ID``, the inbox row). A worker claims a row by moving it from pending to sending
    with ``lease_until``; a row whose lease ran out while sending is "in doubt" and is first
    looked up at the provider by its key before it is ever sent again.
    """

    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="messages"
    )
    key = models.CharField(max_length=200, unique=True)
    channel = models.CharField(_("channel"), max_length=8, choices=Channel.choices)
    # Position of this channel in the notification's list (for falling back to the next).
    channel_index = models.PositiveSmallIntegerField(default=0)
    address_cipher = models.TextField(blank=True, editable=False)
    address_masked = models.CharField(_("to"), max_length=120, blank=True)
    body = models.TextField()
    sms_template_code = models.CharField(max_length=40, blank=True)
    sms_params = models.JSONField(default=dict, blank=True)
    urgent = models.BooleanField(default=False)
    state = models.CharField(
        _("state"), max_length=10, choices=MessageState.choices, default=MessageState.PENDING
    )
    # Not sent before this time (quiet hours, backoff after a failure).
    next_attempt_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The provider request it went out in (several SMS share one batch request).
    batch_key = models.CharField(max_length=80, blank=True, db_index=True)
    provider_id = models.CharField(max_length=80, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    # When the carrier's delivery report of a sent SMS was last asked for (``receipts``).
    receipt_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [
            models.Index(
                fields=["channel", "urgent", "next_attempt_at"],
                condition=Q(state="pending"),
                name="message_pending",
            ),
            models.Index(
                fields=["lease_until"], condition=Q(state="sending"), name="message_in_doubt"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class MessageAttempt(models.Model):
    """One try of sending a message (or of looking it up after a crash)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField()
    outcome = models.CharField(max_length=16)
    worker = models.CharField(max_length=64, blank=True)
    provider_id = models.CharField(max_length=80, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["message_id", "at", "id"]

    def __str__(self) -> str:
        return f"{self.message_id}: {self.outcome}"
