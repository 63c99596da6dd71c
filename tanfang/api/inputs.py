"""What the API accepts, checked and turned into the registry's plain records.

These serializers never save: ``elder_record_from`` builds an ``ElderRecord`` for
``elders_upsert``, and the other inputs are handed to their service functions by the views.
A field absent from the request stays ``UNSET`` (not touched); ``null`` means "not known".
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tanfang.registry import classification as rules
from tanfang.registry.identity import IdentifierError, normalise_id_number, normalise_phone
from tanfang.registry.models import (
    AssessmentScheme,
    AwayReason,
    ContactRelation,
    ContractKind,
    DisabilityStatus,
    DisabilityType,
    Gender,
    HouseholdRelation,
    LifeStatus,
    OverrideAction,
    RecipientGroup,
    SpouseStatus,
)
from tanfang.registry.records import (
    SCALAR_FACTS,
    AssessmentRecord,
    ChildRecord,
    ContractRecord,
    ElderRecord,
    FirstContactRecord,
    HouseholdRecord,
    WillingnessRecord,
)


def _phone(value: str) -> str:
    try:
        return normalise_phone(value)
    except IdentifierError as exc:
        raise serializers.ValidationError(str(exc)) from exc


class ChildInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    alive = serializers.BooleanField(required=False, allow_null=True, default=None)
    birth_year = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1880, max_value=2100
    )
    lives_with = serializers.BooleanField(required=False, allow_null=True, default=None)
    same_subdistrict = serializers.BooleanField(required=False, allow_null=True, default=None)
    away_months = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=1800
    )
    away_reason = serializers.ChoiceField(
        choices=AwayReason.choices, required=False, allow_blank=True, default=""
    )
    can_support = serializers.BooleanField(required=False, allow_null=True, default=None)
    disability_grade = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=4
    )
    adopted = serializers.BooleanField(required=False, allow_null=True, default=None)


class HouseholdInput(serializers.Serializer[Any]):
    relation = serializers.ChoiceField(choices=HouseholdRelation.choices)
    age = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=150
    )


class AssessmentInput(serializers.Serializer[Any]):
    scheme = serializers.ChoiceField(choices=AssessmentScheme.choices)
    level = serializers.IntegerField(min_value=0, max_value=4)
    assessed_on = serializers.DateField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["scheme"] == AssessmentScheme.BEIJING and attrs["level"] > 3:
            raise serializers.ValidationError({"level": _("Beijing levels are 0 to 3.")})
        return attrs


class ContractInput(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=ContractKind.choices)
    provider_name = serializers.CharField(max_length=100)
    recipient_group = serializers.ChoiceField(choices=RecipientGroup.choices)
    starts_on = serializers.DateField()
    ends_on = serializers.DateField(required=False, allow_null=True, default=None)


class WillingnessInput(serializers.Serializer[Any]):
    willing = serializers.BooleanField()
    recorded_on = serializers.DateField()
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class FirstContactInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=64)
    relation = serializers.ChoiceField(choices=ContactRelation.choices)
    phone = serializers.CharField(max_length=30)
    designated_by_community = serializers.BooleanField(required=False, default=False)

    def validate_phone(self, value: str) -> str:
        return _phone(value)


class ElderFacts(serializers.Serializer[Any]):
    """An elder's facts, as changed by a partial update (PATCH): only the fields given are
    touched, and ``null`` records a fact as not known. The ID number cannot change."""

    name = serializers.CharField(max_length=64, required=False)
    gender = serializers.ChoiceField(choices=Gender.choices, required=False)
    birth_date = serializers.DateField(required=False)
    phone = serializers.CharField(max_length=30, required=False, allow_blank=True)
    community_code = serializers.CharField(max_length=15, required=False)
    grid_code = serializers.CharField(max_length=15, required=False, allow_null=True)
    address = serializers.CharField(max_length=200, required=False, allow_blank=True)
    spouse_status = serializers.ChoiceField(
        choices=SpouseStatus.choices, required=False, allow_blank=True
    )
    spouse_lives_with = serializers.BooleanField(required=False, allow_null=True)
    relatives_same_subdistrict = serializers.BooleanField(required=False, allow_null=True)
    daily_companionship = serializers.BooleanField(required=False, allow_null=True)
    disability_status = serializers.ChoiceField(
        choices=DisabilityStatus.choices, required=False, allow_blank=True
    )
    disability_grade = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=4
    )
    disability_type = serializers.ChoiceField(
        choices=DisabilityType.choices, required=False, allow_blank=True
    )
    extremely_poor = serializers.BooleanField(required=False, allow_null=True)
    dispersed_supported = serializers.BooleanField(required=False)
    children = ChildInput(many=True, required=False, allow_null=True)
    household = HouseholdInput(many=True, required=False, allow_null=True)
    assessment = AssessmentInput(required=False)
    contract = ContractInput(required=False)
    willingness = WillingnessInput(required=False)
    first_contact = FirstContactInput(required=False)
    life_status = serializers.ChoiceField(choices=LifeStatus.choices, required=False)

    def validate_phone(self, value: str) -> str:
        return _phone(value) if value else ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "id_number" in self.initial_data and "id_number" not in self.fields:
            raise serializers.ValidationError(
                {"id_number": [_("The resident ID number of an elder cannot be changed.")]}
            )
        return attrs


class ElderCreateInput(ElderFacts):
    """A new elder: the resident ID number, a name and a community are required; the birth
    date and gender default to what the ID number says."""

    id_number = serializers.CharField(max_length=32)
    name = serializers.CharField(max_length=64)
    community_code = serializers.CharField(max_length=15)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["id_number"] = normalise_id_number(
                attrs["id_number"], birth_date=attrs.get("birth_date")
            )
        except IdentifierError as exc:
            raise serializers.ValidationError({"id_number": [str(exc)]}) from exc
        return attrs


def elder_record_from(
    data: dict[str, Any], *, id_number: str, recorded_by_name: str
) -> ElderRecord:
    """The record ``elders_upsert`` takes, from validated ``ElderFacts`` data.

    A changed ``life_status`` of a known elder goes through ``elder_edit`` instead (which
    dates it), so callers pop it first.
    """
    record = ElderRecord(id_number=id_number)
    for name in (*SCALAR_FACTS, "phone", "community_code", "grid_code"):
        if name in data:
            setattr(record, name, data[name])
    if "children" in data:
        children = data["children"]
        record.children = None if children is None else [ChildRecord(**c) for c in children]
    if "household" in data:
        members = data["household"]
        record.household = None if members is None else [HouseholdRecord(**m) for m in members]
    if "assessment" in data:
        record.assessment = AssessmentRecord(**data["assessment"])
    if "contract" in data:
        record.contract = ContractRecord(**data["contract"])
    if "first_contact" in data:
        record.first_contact = FirstContactRecord(**data["first_contact"])
    if "willingness" in data:
        record.willingness = WillingnessRecord(
            recorded_by_name=recorded_by_name, **data["willingness"]
        )
    return record


class RevealInput(serializers.Serializer[Any]):
    field = serializers.ChoiceField(choices=[("id_number", "id_number"), ("phone", "phone")])
    reason = serializers.CharField(max_length=300)


class CategoryOverrideInput(serializers.Serializer[Any]):
    category = serializers.ChoiceField(choices=[(c, c) for c in rules.CATEGORIES])
    action = serializers.ChoiceField(choices=OverrideAction.choices)
    reason = serializers.CharField(max_length=300)


class FirstContactSetInput(FirstContactInput):
    """Make a person an elder's current first contact (the previous one is kept as history)."""

    elder = serializers.IntegerField()
    child = serializers.IntegerField(required=False, allow_null=True, default=None)
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class ElderFilterInput(serializers.Serializer[Any]):
    """Query parameters of the elder list."""

    area = serializers.CharField(
        max_length=15,
        required=False,
        help_text=_("Code of a city, district, subdistrict, community or grid."),
    )
    category = serializers.ChoiceField(choices=[(c, c) for c in rules.CATEGORIES], required=False)
    focus = serializers.BooleanField(required=False, allow_null=True, default=None)
    advanced_age = serializers.BooleanField(required=False, allow_null=True, default=None)
    missing_first_contact = serializers.BooleanField(required=False, allow_null=True, default=None)
    life_status = serializers.ChoiceField(
        choices=[*LifeStatus.choices, ("all", _("All"))],
        required=False,
        help_text=_("Only active elders when omitted; all for every one."),
    )
    q = serializers.CharField(
        max_length=64,
        required=False,
        help_text=_("A name, part of a name, a full resident ID number or a phone number."),
    )


class AreaFilterInput(serializers.Serializer[Any]):
    level = serializers.ChoiceField(
        choices=["city", "district", "subdistrict", "community", "grid"], required=False
    )
    parent = serializers.CharField(max_length=15, required=False)  # type: ignore[assignment]


class FirstContactFilterInput(serializers.Serializer[Any]):
    elder = serializers.IntegerField(required=False)
    area = serializers.CharField(max_length=15, required=False)
    designated_by_community = serializers.BooleanField(
        required=False, allow_null=True, default=None
    )
