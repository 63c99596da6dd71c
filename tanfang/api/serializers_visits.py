"""The field app's shapes: what it sends (a visit, a correction, a care-action step), what it
reads (the worklist, an elder's summary, a visit, care actions), and its one error envelope.

Inputs only check types and shapes; the rules (times, choices that go together, the record
form's sections) are the visit service's, so the app, the web form and the importer are
judged alike. Outputs carry codes with their labels in the request's language, identifiers
only masked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tanfang.care.models import CareAction, CareActionEvent
from tanfang.care.rules import CareState, next_states
from tanfang.registry.models import Elder, FirstContact
from tanfang.visits.models import OrganisedBy, PersonMet, Visit, VisitMode, VisitOutcome
from tanfang.visits.record_form import SECTION_BY_NAME
from tanfang.visits.risk import reason_label
from tanfang.web.labels import category_label
from tanfang.web.visit_labels import (
    care_event_label,
    care_kind_label,
    care_state_label,
    care_step_label,
    care_subject_label,
    exclusion_label,
    frequency_label,
    mode_requirement_label,
    obligation_kind_label,
    risk_label,
)

# --------------------------------------------------------------------------- errors


def _verbose(model: Any, name: str) -> Any:
    return model._meta.get_field(name).verbose_name


# The names of the fields a client sends, for error messages in the request's language.
FIELD_LABELS: dict[str, Any] = {
    "client_uuid": _("Submission id"),
    "elder": _("Elder"),
    "mode": _verbose(Visit, "mode"),
    "started_at": _verbose(Visit, "started_at"),
    "ended_at": _verbose(Visit, "ended_at"),
    "person_met": _verbose(Visit, "person_met"),
    "outcome": _verbose(Visit, "outcome"),
    "organised_by": _verbose(Visit, "organised_by"),
    "sections": _verbose(Visit, "sections"),
    "notes": _verbose(Visit, "notes"),
    "consent": _verbose(Visit, "consent"),
    "location": _("Check-in location"),
    "latitude": _("Latitude"),
    "longitude": _("Longitude"),
    "accuracy_m": _("Accuracy in metres"),
    "visit": _("Visit record"),
    "to": _("Next step"),
    "note": _("Note"),
    "result": _("Result"),
    "service": _("Service"),
}
# The parts of a hazard ({"hazard", "what"}) and of a condition ({"status", "detail"}).
_ITEM_LABELS = {"hazard": _("Hazard"), "what": _("What"), "detail": _("What is wrong")}


def field_label(path: str) -> str:
    """The words for a field path (``"sections.safety.gas.what"`` → "Safety · Gas · What")."""
    if not path:
        return ""
    parts = path.split(".")
    if parts[0] == "sections" and len(parts) > 1:
        section = SECTION_BY_NAME.get(parts[1])
        if section is None:
            return str(capfirst(FIELD_LABELS["sections"]))
        words: list[Any] = [section.label]
        spec = section.field(parts[2]) if len(parts) > 2 else None
        if spec is not None:
            words.append(spec.label)
        if len(parts) > 3 and parts[3] in _ITEM_LABELS:
            words.append(_ITEM_LABELS[parts[3]])
        return " · ".join(str(word) for word in words)
    return " · ".join(str(capfirst(FIELD_LABELS.get(part, part))) for part in parts)


def flatten_errors(detail: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """DRF's nested error detail as (field path, message) pairs; ``detail`` and
    ``non_field_errors`` belong to no field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("detail", "non_field_errors") else str(key)
            path = f"{prefix}.{name}" if prefix and name else prefix or name
            yield from flatten_errors(value, path)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                yield from flatten_errors(item, f"{prefix}[{index}]")
            else:
                yield prefix, str(item)
    else:
        yield prefix, str(detail)


def errors_body(errors: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {
        "errors": [
            {"field": name, "label": field_label(name), "message": str(message)}
            for name, message in errors
        ]
    }


class FieldErrorSerializer(serializers.Serializer[Any]):
    field = serializers.CharField(
        help_text="The field's path as sent (`sections.safety.gas.what`); empty for the "
        "request as a whole"
    )
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="The field's name in the request's language"
    )
    message = serializers.CharField(help_text="What is wrong, in the request's language")


class ErrorsSerializer(serializers.Serializer[Any]):
    errors = FieldErrorSerializer(many=True)  # type: ignore[assignment]


# --------------------------------------------------------------------------- inputs


class OffsetDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time that must carry its UTC offset: a phone's local time without one
    would be read in the server's zone, which may not be the phone's."""

    default_error_messages = {
        "offset": _("Give the time with its UTC offset, e.g. 2026-03-05T09:30:00+08:00."),
    }

    def to_internal_value(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("offset")
        return super().to_internal_value(value)


class LocationInput(serializers.Serializer[Any]):
    latitude = serializers.FloatField(min_value=-90, max_value=90)
    longitude = serializers.FloatField(min_value=-180, max_value=180)
    accuracy_m = serializers.IntegerField(
        min_value=0, max_value=100_000, required=False, allow_null=True, default=None
    )


_SECTIONS_HELP = (
    "The record form's sections (docs/visit-record.md): "
    '`{"health": {...}, "safety": {"gas": {"hazard": true, "what": "..."}}, ...}`'
)


class VisitSubmitInput(serializers.Serializer[Any]):
    """A visit as the field app submits it."""

    client_uuid = serializers.UUIDField(
        help_text="Generated by the app for this submission; sending it again is harmless"
    )
    elder = serializers.IntegerField(min_value=1)
    mode = serializers.ChoiceField(choices=VisitMode.choices)
    started_at = OffsetDateTimeField()
    ended_at = OffsetDateTimeField()
    person_met = serializers.ChoiceField(choices=PersonMet.choices)
    outcome = serializers.ChoiceField(choices=VisitOutcome.choices)
    sections = serializers.DictField(
        child=serializers.JSONField(), required=False, default=dict, help_text=_SECTIONS_HELP
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=4000, trim_whitespace=True
    )
    consent = serializers.BooleanField(
        required=False, default=False, help_text="The elder agrees to the care actions"
    )
    location = LocationInput(
        required=False, allow_null=True, default=None, help_text="In-home visits only"
    )
    organised_by = serializers.ChoiceField(
        choices=OrganisedBy.choices,
        required=False,
        default=OrganisedBy.GOVERNMENT,
        help_text="`station` when the visit is the contracted station's",
    )


class VisitCorrectInput(serializers.Serializer[Any]):
    """The fields of a visit its author may correct; only those sent change. ``sections``
    replaces the recorded sections as a whole."""

    mode = serializers.ChoiceField(choices=VisitMode.choices, required=False)
    started_at = OffsetDateTimeField(required=False)
    ended_at = OffsetDateTimeField(required=False)
    person_met = serializers.ChoiceField(choices=PersonMet.choices, required=False)
    outcome = serializers.ChoiceField(choices=VisitOutcome.choices, required=False)
    sections = serializers.DictField(
        child=serializers.JSONField(), required=False, help_text=_SECTIONS_HELP
    )
    notes = serializers.CharField(
        required=False, allow_blank=True, max_length=4000, trim_whitespace=True
    )
    consent = serializers.BooleanField(required=False)


class CareMoveInput(serializers.Serializer[Any]):
    """One step of a care action (its `next_states` say which are possible)."""

    to = serializers.ChoiceField(choices=[(s.value, s.value) for s in CareState])
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    result = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    service = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A service of the directory (service needs only)",
    )


# --------------------------------------------------------------------------- outputs


class LabelledSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]


class ObligationSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField(help_text="regular, surge, holiday or reconfirm")
    kind_label = serializers.SerializerMethodField()
    code = serializers.CharField()
    due_by = serializers.DateField()
    mode = serializers.CharField(help_text="Mode required: any, phone or in_home")
    mode_label = serializers.SerializerMethodField()
    frequency = serializers.CharField()
    scheduled = serializers.BooleanField(
        help_text="False when the elder's contracted station visits"
    )

    def get_kind_label(self, item: dict[str, Any]) -> str:
        return obligation_kind_label(item["kind"])

    def get_mode_label(self, item: dict[str, Any]) -> str:
        return mode_requirement_label(item["mode"])


class WorklistRowSerializer(serializers.Serializer[Any]):
    """One elder on a worklist (``visits.selectors.WorklistRow``): no identifiers."""

    elder_id = serializers.IntegerField()
    name = serializers.CharField()
    community = serializers.CharField(help_text="The community's name")
    categories = serializers.ListField(child=serializers.CharField())
    advanced_age = serializers.BooleanField()
    risk_level = serializers.CharField(allow_blank=True)
    next_due_on = serializers.DateField(allow_null=True)
    overdue_since = serializers.DateField(allow_null=True)
    overdue_days = serializers.IntegerField()
    urgency = serializers.IntegerField(help_text="Higher first (docs/visits.md, Worklists)")
    obligations = ObligationSerializer(many=True)
    open_actions = serializers.IntegerField(help_text="Open care actions")
    last_visit_at = serializers.DateTimeField(allow_null=True)
    scheduled = serializers.BooleanField()


class WorklistSerializer(serializers.Serializer[Any]):
    on = serializers.DateField()
    overdue = WorklistRowSerializer(many=True)
    today = WorklistRowSerializer(many=True)
    week = WorklistRowSerializer(many=True)


class _CareLabels(serializers.ModelSerializer[CareAction]):
    """Codes of a care action with their words."""

    kind = serializers.CharField(read_only=True, help_text="benefit, hazard or service")
    kind_label = serializers.SerializerMethodField()
    subject_label = serializers.SerializerMethodField()
    state = serializers.CharField(read_only=True)
    state_label = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()

    def get_kind_label(self, action: CareAction) -> str:
        return care_kind_label(action.kind)

    def get_subject_label(self, action: CareAction) -> str:
        return care_subject_label(action.kind, action.subject)

    def get_state_label(self, action: CareAction) -> str:
        return care_state_label(action.state)

    def get_overdue(self, action: CareAction) -> bool:
        return not action.closed and action.due_on < timezone.localdate()


class CareActionBriefSerializer(_CareLabels):
    class Meta:
        model = CareAction
        fields = [
            "id",
            "kind",
            "kind_label",
            "subject",
            "subject_label",
            "detail",
            "state",
            "state_label",
            "closed",
            "due_on",
            "overdue",
        ]
        read_only_fields = fields


class CareEventSerializer(serializers.ModelSerializer[CareActionEvent]):
    by = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    event_label = serializers.SerializerMethodField()

    class Meta:
        model = CareActionEvent
        fields = ["at", "by", "event", "event_label", "from_state", "to_state", "note"]
        read_only_fields = fields

    def get_event_label(self, event: CareActionEvent) -> str:
        return care_event_label(event.event)


class ElderRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ServiceRefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phone = serializers.CharField(allow_blank=True)


class CareActionSerializer(_CareLabels):
    """A care action as its owner works on it. Expects ``elder``, ``owner``,
    ``escalated_to`` and ``service`` selected with it."""

    elder = ElderRefSerializer(read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    escalated_to = serializers.SlugRelatedField(slug_field="username", read_only=True)  # type: ignore[var-annotated]
    service = ServiceRefSerializer(read_only=True, allow_null=True)
    next_states = serializers.SerializerMethodField()

    class Meta:
        model = CareAction
        fields = [
            *CareActionBriefSerializer.Meta.fields,
            "elder",
            "visit",
            "next_states",
            "owner",
            "service",
            "result",
            "escalated_to",
            "escalated_at",
            "created_at",
            "closed_at",
        ]
        read_only_fields = fields

    @extend_schema_field(LabelledSerializer(many=True))
    def get_next_states(self, action: CareAction) -> list[dict[str, str]]:
        return [
            {"code": str(state), "label": care_step_label(state)}
            for state in next_states(action.kind, action.state)
        ]


class CareActionDetailSerializer(CareActionSerializer):
    """With its history, oldest step first."""

    events = CareEventSerializer(many=True, read_only=True)

    class Meta(CareActionSerializer.Meta):
        fields = [*CareActionSerializer.Meta.fields, "events"]
        read_only_fields = fields


class LocationSerializer(serializers.Serializer[Any]):
    latitude = serializers.FloatField()
    longitude = serializers.FloatField()
    accuracy_m = serializers.IntegerField(allow_null=True)


class VisitSerializer(serializers.ModelSerializer[Visit]):
    """A recorded visit, with what it led to. Expects ``care_actions`` prefetched."""

    elder = serializers.PrimaryKeyRelatedField(read_only=True)  # type: ignore[var-annotated]
    mode = serializers.CharField(read_only=True)
    mode_label = serializers.CharField(source="get_mode_display", read_only=True)
    person_met = serializers.CharField(read_only=True)
    outcome = serializers.CharField(read_only=True)
    outcome_label = serializers.CharField(source="get_outcome_display", read_only=True)
    organised_by = serializers.CharField(read_only=True)
    source = serializers.CharField(read_only=True)  # type: ignore[assignment]
    sections = serializers.DictField(child=serializers.JSONField(), read_only=True)
    location = serializers.SerializerMethodField()
    risk_label = serializers.SerializerMethodField()
    risk_reasons = serializers.SerializerMethodField()
    care_actions = CareActionBriefSerializer(many=True, read_only=True)

    class Meta:
        model = Visit
        fields = [
            "id",
            "client_uuid",
            "elder",
            "visitor_name",
            "organised_by",
            "mode",
            "mode_label",
            "started_at",
            "ended_at",
            "local_date",
            "person_met",
            "outcome",
            "outcome_label",
            "sections",
            "notes",
            "consent",
            "location",
            "risk_level",
            "risk_label",
            "risk_reasons",
            "counts",
            "source",
            "recorded_at",
            "locked_after",
            "revision",
            "care_actions",
        ]
        read_only_fields = fields

    @extend_schema_field(LocationSerializer(allow_null=True))
    def get_location(self, visit: Visit) -> dict[str, Any] | None:
        if visit.latitude is None or visit.longitude is None:
            return None
        return {
            "latitude": float(visit.latitude),
            "longitude": float(visit.longitude),
            "accuracy_m": visit.location_accuracy_m,
        }

    def get_risk_label(self, visit: Visit) -> str:
        return risk_label(visit.risk_level)

    @extend_schema_field(LabelledSerializer(many=True))
    def get_risk_reasons(self, visit: Visit) -> list[dict[str, str]]:
        return [{"code": code, "label": reason_label(code)} for code in visit.risk_reasons or ()]


# --------------------------------------------------------------------------- elder summary


class ContactBriefSerializer(serializers.Serializer[Any]):
    relation = serializers.CharField()
    relation_label = serializers.CharField()
    phone_masked = serializers.CharField(allow_blank=True)


class VisitStatusSerializer(serializers.Serializer[Any]):
    excluded = serializers.CharField(
        allow_blank=True, help_text="Why no visit is due (empty when visits are due)"
    )
    excluded_label = serializers.CharField(allow_blank=True)
    frequency = serializers.CharField(allow_blank=True)
    frequency_label = serializers.CharField(allow_blank=True)
    scheduled = serializers.BooleanField()
    next_due_on = serializers.DateField(allow_null=True)
    overdue_since = serializers.DateField(allow_null=True)
    risk_level = serializers.CharField(allow_blank=True)
    risk_label = serializers.CharField(allow_blank=True)
    last_visit_at = serializers.DateTimeField(allow_null=True)
    last_counted_at = serializers.DateTimeField(allow_null=True)
    obligations = ObligationSerializer(many=True)


class VisitBriefSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    local_date = serializers.DateField()
    started_at = serializers.DateTimeField()
    mode = serializers.CharField()
    mode_label = serializers.CharField()
    outcome = serializers.CharField()
    outcome_label = serializers.CharField()
    risk_level = serializers.CharField(allow_blank=True)
    risk_label = serializers.CharField(allow_blank=True)
    counts = serializers.BooleanField()


class ElderSummarySerializer(serializers.Serializer[Any]):
    """What the visit screen shows about an elder; identifiers only masked."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    gender = serializers.CharField()
    age = serializers.IntegerField()
    categories = LabelledSerializer(many=True)
    advanced_age = serializers.BooleanField()
    life_status = serializers.CharField()
    phone_masked = serializers.CharField(allow_blank=True)
    address = serializers.CharField(allow_blank=True)
    community = serializers.CharField(help_text="The community's name")
    first_contact = ContactBriefSerializer(allow_null=True)
    visit_status = VisitStatusSerializer(allow_null=True)
    last_visits = VisitBriefSerializer(many=True, help_text="The last five, newest first")
    open_care_actions = CareActionBriefSerializer(many=True)


def age_on(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def elder_summary(
    elder: Elder, status: Any, visits: Iterable[Visit], actions: Iterable[CareAction]
) -> dict[str, Any]:
    """The summary's values (``ElderSummarySerializer`` renders them)."""
    contact: FirstContact | None = elder.first_contact
    return {
        "id": elder.pk,
        "name": elder.name,
        "gender": elder.gender,
        "age": age_on(elder.birth_date, timezone.localdate()),
        "categories": [
            {"code": code, "label": category_label(code)} for code in elder.categories or ()
        ],
        "advanced_age": elder.advanced_age,
        "life_status": elder.life_status,
        "phone_masked": elder.phone_masked,
        "address": elder.address,
        "community": elder.community.name,
        "first_contact": None
        if contact is None
        else {
            "relation": contact.relation,
            "relation_label": contact.get_relation_display(),
            "phone_masked": contact.phone_masked,
        },
        "visit_status": None if status is None else _status(status),
        "last_visits": [
            {
                "id": visit.pk,
                "local_date": visit.local_date,
                "started_at": visit.started_at,
                "mode": visit.mode,
                "mode_label": visit.get_mode_display(),
                "outcome": visit.outcome,
                "outcome_label": visit.get_outcome_display(),
                "risk_level": visit.risk_level,
                "risk_label": risk_label(visit.risk_level),
                "counts": visit.counts,
            }
            for visit in visits
        ],
        "open_care_actions": list(actions),
    }


def _status(status: Any) -> dict[str, Any]:
    return {
        "excluded": status.excluded,
        "excluded_label": exclusion_label(status.excluded) if status.excluded else "",
        "frequency": status.frequency,
        "frequency_label": frequency_label(status.frequency) if status.frequency else "",
        "scheduled": status.scheduled,
        "next_due_on": status.next_due_on,
        "overdue_since": status.overdue_since,
        "risk_level": status.risk_level,
        "risk_label": risk_label(status.risk_level),
        "last_visit_at": status.last_visit_at,
        "last_counted_at": status.last_counted_at,
        "obligations": list(status.open_obligations or ()),
    }
