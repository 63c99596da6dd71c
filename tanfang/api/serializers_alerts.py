"""The shapes of the alert endpoints: an alert in a list, one alert with its history and
evidence, and what acknowledging and closing send.

Codes come with their labels in the request's language. A data partner's user reads the
technical alerts of its meters without any elder's personal data: ``elder`` and
``community`` are null for her (context ``partner_view``).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tanfang.monitoring.models import (
    Alert,
    AlertAction,
    AlertEvent,
    AlertKind,
    AlertLevel,
    AlertOutcome,
    AlertState,
    Severity,
)
from tanfang.monitoring.selectors import STATE_FILTERS


def _listed(choices: Any) -> str:
    return "One of " + ", ".join(f"`{value}`" for value in choices.values)


class UserRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Full name, else the user name")


def _user(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.username}


class AlertElderSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class AlertAreaSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    name = serializers.CharField()


class AlertSerializer(serializers.ModelSerializer[Alert]):
    """An alert as a worklist shows it. Expects elder, community, meter, device, partner
    and assigned_to selected with it."""

    # Codes as plain strings (with their labels beside them): the same words name other
    # choice sets in the schema (visit outcomes, care-action kinds).
    kind = serializers.CharField(read_only=True, help_text=_listed(AlertKind))
    kind_label = serializers.CharField(source="get_kind_display", read_only=True)
    severity = serializers.CharField(read_only=True, help_text=_listed(Severity))
    state = serializers.CharField(read_only=True, help_text=_listed(AlertState))
    level = serializers.CharField(read_only=True, help_text=_listed(AlertLevel))
    outcome = serializers.CharField(
        read_only=True, help_text=_listed(AlertOutcome) + "; empty until closed"
    )
    severity_label = serializers.CharField(source="get_severity_display", read_only=True)
    state_label = serializers.CharField(source="get_state_display", read_only=True)
    level_label = serializers.CharField(source="get_level_display", read_only=True)
    outcome_label = serializers.CharField(source="get_outcome_display", read_only=True)
    elder = serializers.SerializerMethodField()
    community = serializers.SerializerMethodField()
    meter_id = serializers.SerializerMethodField()
    device_id = serializers.SerializerMethodField()
    utility = serializers.SerializerMethodField()
    partner = serializers.SerializerMethodField()
    assigned_to = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "kind_label",
            "rule",
            "severity",
            "severity_label",
            "technical",
            "state",
            "state_label",
            "level",
            "level_label",
            "assigned_to",
            "elder",
            "community",
            "meter_id",
            "device_id",
            "utility",
            "partner",
            "started_at",
            "detected_at",
            "escalate_at",
            "acknowledged_at",
            "resolved_at",
            "closed_at",
            "outcome",
            "outcome_label",
        ]
        read_only_fields = fields

    def _partner_view(self) -> bool:
        return bool(self.context.get("partner_view"))

    @extend_schema_field(AlertElderSerializer(allow_null=True))
    def get_elder(self, alert: Alert) -> dict[str, Any] | None:
        if alert.elder is None or self._partner_view():
            return None
        return {"id": alert.elder.pk, "name": alert.elder.name}

    @extend_schema_field(AlertAreaSerializer(allow_null=True))
    def get_community(self, alert: Alert) -> dict[str, Any] | None:
        if alert.community is None or self._partner_view():
            return None
        return {"code": alert.community.code, "name": alert.community.name}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_meter_id(self, alert: Alert) -> str | None:
        return alert.meter.meter_id if alert.meter is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_device_id(self, alert: Alert) -> str | None:
        return alert.device.device_id if alert.device is not None else None

    @extend_schema_field(
        serializers.CharField(allow_null=True, help_text="water, electricity or gas")
    )
    def get_utility(self, alert: Alert) -> str | None:
        return alert.meter.utility if alert.meter is not None else None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The partner's code"))
    def get_partner(self, alert: Alert) -> str | None:
        return alert.partner.code if alert.partner is not None else None

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_assigned_to(self, alert: Alert) -> dict[str, Any] | None:
        return _user(alert.assigned_to)


class AlertEventSerializer(serializers.ModelSerializer[AlertEvent]):
    action = serializers.CharField(read_only=True, help_text=_listed(AlertAction))
    action_label = serializers.CharField(source="get_action_display", read_only=True)
    level = serializers.CharField(read_only=True, help_text="The level the alert was at")
    to_user = serializers.SerializerMethodField()
    by = serializers.SerializerMethodField()

    class Meta:
        model = AlertEvent
        fields = ["at", "action", "action_label", "level", "to_user", "by", "note"]
        read_only_fields = fields

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_to_user(self, event: AlertEvent) -> dict[str, Any] | None:
        return _user(event.to_user)

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_by(self, event: AlertEvent) -> dict[str, Any] | None:
        return _user(event.by)


class AlertDetailSerializer(AlertSerializer):
    """One alert with its evidence (the figures the rule compared and, for meter alerts, the
    chart series ``evidence.series``: the 48 hours before detection against the home's usual
    hours) and its history, oldest event first."""

    evidence = serializers.DictField(child=serializers.JSONField(), read_only=True)
    events = AlertEventSerializer(many=True, read_only=True)
    acknowledged_by = serializers.SerializerMethodField()
    closed_by = serializers.SerializerMethodField()

    class Meta(AlertSerializer.Meta):
        fields = [
            *AlertSerializer.Meta.fields,
            "acknowledged_by",
            "closed_by",
            "outcome_note",
            "evidence",
            "events",
        ]
        read_only_fields = fields

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_acknowledged_by(self, alert: Alert) -> dict[str, Any] | None:
        return _user(alert.acknowledged_by)

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_closed_by(self, alert: Alert) -> dict[str, Any] | None:
        return _user(alert.closed_by)


class AlertFilterInput(serializers.Serializer[Any]):
    state = serializers.ChoiceField(
        choices=STATE_FILTERS,
        required=False,
        help_text="open, acknowledged, closed, or active (not closed)",
    )
    kind = serializers.ChoiceField(choices=AlertKind.choices, required=False)
    area = serializers.CharField(
        required=False, max_length=15, help_text="An area code in the caller's scope"
    )


class AcknowledgeInput(serializers.Serializer[Any]):
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=500, default="", label=_("Note")
    )


class CloseInput(serializers.Serializer[Any]):
    # A string checked here rather than a choice field: ``outcome`` already names the visit
    # outcomes' choice set in the schema.
    outcome = serializers.CharField(help_text=_listed(AlertOutcome), label=_("What was found"))
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, default="", label=_("Note")
    )

    def validate_outcome(self, value: str) -> str:
        if value not in AlertOutcome.values:
            raise serializers.ValidationError(_("Choose what was found."))
        return value
