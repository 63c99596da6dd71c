"""Referrals through the API: what a referral shows, its history, and a step's input."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tanfang.api.serializers_visits import ElderRefSerializer, LabelledSerializer
from tanfang.referrals import labels
from tanfang.referrals.models import Referral, ReferralEvent
from tanfang.referrals.rules import Step, next_states


class ReferralFilterInput(serializers.Serializer[Any]):
    state = serializers.ChoiceField(
        choices=[*(s.value for s in Step), "all"],
        required=False,
        help_text="One state, or `all`; open referrals when absent",
    )
    overdue = serializers.BooleanField(
        required=False, default=False, help_text="Only open referrals past their time limit"
    )


class ReferralStepInput(serializers.Serializer[Any]):
    """One step of a referral (its `next_states` say which are possible)."""

    to = serializers.ChoiceField(choices=[(s.value, s.value) for s in Step if s != Step.RECEIVED])
    service = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="The directory's service the need is matched to (required for `matched`)",
    )
    result = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=300,
        label=_("Result"),
        help_text="What was done (required for `done`)",
    )
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=300,
        label=_("Reason for declining"),
        help_text="Why it is declined (required for `declined`)",
    )


class ReferralServiceSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_blank=True)


class ReferralEventSerializer(serializers.ModelSerializer[ReferralEvent]):
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    event_label = serializers.SerializerMethodField()

    class Meta:
        model = ReferralEvent
        fields = ["at", "by", "event", "event_label", "from_state", "to_state", "note"]
        read_only_fields = fields

    def get_event_label(self, event: ReferralEvent) -> str:
        return labels.event_label(event.event)


class ReferralSerializer(serializers.ModelSerializer[Referral]):
    """A referral as the receiving subdistrict works on it. Expects ``elder``,
    ``subdistrict``, ``community``, ``service`` and ``handled_by`` selected with it."""

    elder = ElderRefSerializer(read_only=True)
    need_label = serializers.SerializerMethodField()
    state_label = serializers.SerializerMethodField()
    subdistrict = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    community = serializers.SlugRelatedField(slug_field="code", read_only=True)  # type: ignore[var-annotated]
    service = ReferralServiceSerializer(read_only=True, allow_null=True)
    handled_by = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    overdue = serializers.SerializerMethodField()
    next_states = serializers.SerializerMethodField()

    class Meta:
        model = Referral
        fields = [
            "id",
            "elder",
            "need",
            "need_label",
            "detail",
            "route_reason",
            "source",
            "visit",
            "alert",
            "care_action",
            "state",
            "state_label",
            "closed",
            "subdistrict",
            "community",
            "due_at",
            "overdue",
            "escalated_at",
            "next_states",
            "service",
            "result",
            "decline_reason",
            "handled_by",
            "created_at",
            "closed_at",
        ]
        read_only_fields = fields

    def get_need_label(self, referral: Referral) -> str:
        return labels.need_label(referral.need)

    def get_state_label(self, referral: Referral) -> str:
        return labels.state_label(referral.state)

    def get_overdue(self, referral: Referral) -> bool:
        now: dt.datetime = self.context.get("now") or timezone.now()
        return not referral.closed and referral.due_at < now

    @extend_schema_field(LabelledSerializer(many=True))
    def get_next_states(self, referral: Referral) -> list[dict[str, str]]:
        return [
            {"code": str(step), "label": labels.state_label(step)}
            for step in next_states(referral.state)
        ]


class ReferralDetailSerializer(ReferralSerializer):
    """With its history, oldest step first."""

    events = ReferralEventSerializer(many=True, read_only=True)

    class Meta(ReferralSerializer.Meta):
        fields = [*ReferralSerializer.Meta.fields, "events"]
        read_only_fields = fields
