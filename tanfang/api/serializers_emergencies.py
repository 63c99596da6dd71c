"""The shapes of the emergency endpoints: a case in a list, one case with its call list
(masked phones only: the full numbers are on the case page, audited) and its timeline, and
what logging a call, confirming and closing send. Codes come with their labels."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tanfang.emergencies.models import CallResult, CaseLevel, CaseOutcome, CaseState, Trigger


def _listed(choices: Any) -> str:
    return "One of " + ", ".join(f"`{value}`" for value in choices.values)


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _user(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": user.get_full_name() or user.username}


class EmergencyUserSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Full name, else the user name")


class EmergencyElderSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class EmergencySerializer(serializers.Serializer[Any]):
    """A case as a list shows it."""

    id = serializers.IntegerField()
    elder = EmergencyElderSerializer()
    community = serializers.CharField(help_text="The community's name")
    trigger = serializers.CharField(help_text=_listed(Trigger))
    trigger_label = serializers.CharField()
    summary = serializers.CharField()
    state = serializers.CharField(help_text=_listed(CaseState))
    state_label = serializers.CharField()
    level = serializers.CharField(help_text=_listed(CaseLevel))
    assigned_to = EmergencyUserSerializer(allow_null=True)
    escalate_at = serializers.DateTimeField(allow_null=True)
    opened_at = serializers.DateTimeField()
    confirmed_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)
    outcome = serializers.CharField(help_text=_listed(CaseOutcome) + " (closed cases)")
    outcome_note = serializers.CharField()
    alert = serializers.IntegerField(allow_null=True, help_text="The alert that opened it")

    def to_representation(self, case: Any) -> dict[str, Any]:
        return dict(super().to_representation(self.flat(case)))

    def flat(self, case: Any) -> dict[str, Any]:
        return {
            "id": case.pk,
            "elder": {"id": case.elder_id, "name": case.elder.name},
            "community": case.community.name,
            "trigger": case.trigger,
            "trigger_label": _label(Trigger, case.trigger),
            "summary": case.summary,
            "state": case.state,
            "state_label": _label(CaseState, case.state),
            "level": case.level,
            "assigned_to": _user(case.assigned_to),
            "escalate_at": case.escalate_at,
            "opened_at": case.opened_at,
            "confirmed_at": case.confirmed_at,
            "closed_at": case.closed_at,
            "outcome": case.outcome,
            "outcome_note": case.outcome_note,
            "alert": case.alert_id,
        }


class CallLineSerializer(serializers.Serializer[Any]):
    ref = serializers.CharField(help_text="What to send as `contact` when logging a call")
    name = serializers.CharField()
    role = serializers.CharField(help_text="Relation or role")
    kind = serializers.CharField(help_text="`first_contact`, `family` or `user`")
    phone_masked = serializers.CharField()


class TimelineSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    kind = serializers.CharField(
        help_text="`opened`, `joined`, `assigned`, `notified`, `sent`, `delivered`, `call`, "
        "`escalated`, `confirmed`, `closed`"
    )
    by = EmergencyUserSerializer(allow_null=True)
    to_user = EmergencyUserSerializer(allow_null=True)
    level = serializers.CharField()
    text = serializers.CharField()
    channel = serializers.CharField(help_text="For messages: `sms`, `email`, `wecom`, `inbox`")
    message_state = serializers.CharField(help_text="For messages: the outbox row's state now")
    to = serializers.CharField(help_text="For messages: the masked address")
    call_result = serializers.CharField(help_text="For calls: " + _listed(CallResult))
    call_contact = serializers.CharField(help_text="For calls: whom")


class EmergencyDetailSerializer(EmergencySerializer):
    """One case with its call list (masked) and timeline; context ``calls`` and
    ``timeline`` carry them (``views_emergencies``)."""

    calls = CallLineSerializer(many=True, help_text="The call list, in order (masked phones)")
    timeline = TimelineSerializer(many=True)

    def flat(self, case: Any) -> dict[str, Any]:
        return {
            **super().flat(case),
            "calls": [vars(line) for line in self.context["calls"]],
            "timeline": timeline_rows(self.context["timeline"]),
        }


def timeline_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        e, m = r["event"], r["message"]
        out.append(
            {
                "at": r["at"],
                "kind": r["kind"],
                "by": _user(e.by),
                "to_user": _user(e.to_user),
                "level": e.level,
                "text": e.text,
                "channel": m.channel if m is not None else "",
                "message_state": m.state if m is not None else "",
                "to": m.address_masked if m is not None else "",
                "call_result": e.call.result if e.call_id else "",
                "call_contact": e.call.contact_name if e.call_id else "",
            }
        )
    return out


class EmergencyFilterInput(serializers.Serializer[Any]):
    state = serializers.CharField(
        required=False,
        help_text="`open`, `confirmed`, `closed`, or `active` (not closed)",
    )

    def validate_state(self, value: str) -> str:
        if value not in (*CaseState.values, "active"):
            raise serializers.ValidationError(_("Unknown state."))
        return value


class CallInput(serializers.Serializer[Any]):
    contact = serializers.CharField(max_length=40, help_text="A `ref` of the call list")
    result = serializers.CharField(help_text=_listed(CallResult))
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")

    def validate_result(self, value: str) -> str:
        if value not in CallResult.values:
            raise serializers.ValidationError(_("Choose what came of the call."))
        return value


class ConfirmInput(serializers.Serializer[Any]):
    note = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class EmergencyCloseInput(serializers.Serializer[Any]):
    outcome = serializers.CharField(help_text=_listed(CaseOutcome))
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        default="",
        help_text="Required for `hospitalised` and `found_deceased`",
    )

    def validate_outcome(self, value: str) -> str:
        if value not in CaseOutcome.values:
            raise serializers.ValidationError(_("Choose what came of the emergency."))
        return value
