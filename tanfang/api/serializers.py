"""What the API shows. Identifiers appear only masked; cipher and hash columns never appear.

Output serializers only: the API writes through the registry's services (see ``inputs.py``).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tanfang.accounts.models import User
from tanfang.accounts.roles import ROLE_CAPABILITIES
from tanfang.areas.models import Area
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    CategoryOverride,
    Child,
    Elder,
    FirstContact,
    HouseholdMember,
)
from tanfang.web.elder_display import category_views
from tanfang.web.labels import category_label, missing_fact_label


class AreaRefSerializer(serializers.ModelSerializer[Area]):
    class Meta:
        model = Area
        fields = ["code", "name", "level"]
        read_only_fields = fields


class AreaSerializer(serializers.ModelSerializer[Area]):
    parent = serializers.SlugRelatedField[Area](  # type: ignore[assignment]
        slug_field="code", read_only=True
    )

    class Meta:
        model = Area
        fields = [
            "code",
            "name",
            "name_en",
            "level",
            "parent",
            "subdistrict_kind",
            "community_kind",
        ]
        read_only_fields = fields


class FirstContactSerializer(serializers.ModelSerializer[FirstContact]):
    """A first contact; the phone only masked (the contact is a third person)."""

    elder = serializers.PrimaryKeyRelatedField[Elder](read_only=True)
    child = serializers.PrimaryKeyRelatedField[Child](read_only=True)

    class Meta:
        model = FirstContact
        fields = [
            "id",
            "elder",
            "name",
            "relation",
            "child",
            "phone_masked",
            "designated_by_community",
            "is_current",
            "valid_from",
            "valid_to",
            "confirmed_on",
            "note",
        ]
        read_only_fields = fields


class FirstContactBriefSerializer(serializers.ModelSerializer[FirstContact]):
    class Meta:
        model = FirstContact
        fields = ["id", "name", "relation", "phone_masked", "designated_by_community"]
        read_only_fields = fields


class ElderListSerializer(serializers.ModelSerializer[Elder]):
    """One row of the elder list. Expects ``community``, ``grid`` and ``first_contact``
    selected with the elder."""

    age = serializers.SerializerMethodField()
    community = AreaRefSerializer(read_only=True)
    grid = serializers.SlugRelatedField[Area](slug_field="code", read_only=True)
    first_contact = FirstContactBriefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Elder
        fields = [
            "id",
            "name",
            "gender",
            "birth_date",
            "age",
            "id_number_masked",
            "phone_masked",
            "community",
            "grid",
            "rural",
            "life_status",
            "categories",
            "advanced_age",
            "focus",
            "missing_facts",
            "first_contact",
        ]
        read_only_fields = fields

    def get_age(self, elder: Elder) -> int:
        today = timezone.localdate()
        born = elder.birth_date
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


class ChildSerializer(serializers.ModelSerializer[Child]):
    class Meta:
        model = Child
        fields = [
            "id",
            "name",
            "alive",
            "birth_year",
            "lives_with",
            "same_subdistrict",
            "away_months",
            "away_reason",
            "can_support",
            "disability_grade",
            "adopted",
            "source",
            "source_date",
        ]
        read_only_fields = fields


class HouseholdMemberSerializer(serializers.ModelSerializer[HouseholdMember]):
    class Meta:
        model = HouseholdMember
        fields = ["relation", "age", "source", "source_date"]
        read_only_fields = fields


class AssessmentSerializer(serializers.ModelSerializer[CapabilityAssessment]):
    class Meta:
        model = CapabilityAssessment
        fields = ["scheme", "level", "beijing_level", "assessed_on", "source", "source_date"]
        read_only_fields = fields


class ContractSerializer(serializers.ModelSerializer[CareContract]):
    class Meta:
        model = CareContract
        fields = [
            "kind",
            "provider_name",
            "recipient_group",
            "starts_on",
            "ends_on",
            "source",
            "source_date",
        ]
        read_only_fields = fields


class ElderDetailSerializer(ElderListSerializer):
    """One elder with every fact, its source, and the reasons for each category."""

    children = ChildSerializer(many=True, read_only=True)
    household = HouseholdMemberSerializer(many=True, read_only=True)
    assessments = AssessmentSerializer(many=True, read_only=True)
    contracts = ContractSerializer(many=True, read_only=True)
    category_reasons = serializers.SerializerMethodField()

    class Meta(ElderListSerializer.Meta):
        fields = [
            *ElderListSerializer.Meta.fields,
            "address",
            "spouse_status",
            "spouse_lives_with",
            "children_known",
            "household_known",
            "relatives_same_subdistrict",
            "daily_companionship",
            "capability_level",
            "capability_assessed_on",
            "disability_status",
            "disability_grade",
            "disability_type",
            "extremely_poor",
            "dispersed_supported",
            "willing_to_be_visited",
            "willingness_recorded_on",
            "life_status_since",
            "fact_sources",
            "computed_categories",
            "category_reasons",
            "classified_on",
            "children",
            "household",
            "assessments",
            "contracts",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_category_reasons(self, elder: Elder) -> dict[str, str]:
        return {view.code: view.reason for view in category_views(elder)}


class CategoryEntrySerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    reason = serializers.CharField()
    by_hand = serializers.BooleanField()


class RemovedCategorySerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    reason = serializers.CharField()


class MissingFactSerializer(serializers.Serializer[Any]):
    fact = serializers.CharField(help_text="The fact's path, e.g. children[0].away_months")
    label = serializers.CharField()  # type: ignore[assignment]


class ElderClassificationSerializer(serializers.Serializer[Any]):
    """An elder's categories, why each holds, what was changed by hand, and what is missing."""

    elder = serializers.IntegerField()
    categories = CategoryEntrySerializer(many=True)
    computed_categories = serializers.ListField(child=serializers.CharField())
    removed_by_hand = RemovedCategorySerializer(many=True)
    missing_facts = MissingFactSerializer(many=True)
    advanced_age = serializers.BooleanField()
    focus = serializers.BooleanField()
    classified_on = serializers.DateField(allow_null=True)


def elder_classification(elder: Elder, active_overrides: list[CategoryOverride]) -> dict[str, Any]:
    """The classification as the elder page shows it (``web.elder_display``): the same words
    in the API, the web and the back office."""
    child_names = [child.name for child in elder.children.all()]
    removed = [o for o in active_overrides if o.action == "remove"]
    return {
        "elder": elder.pk,
        "categories": [
            {
                "code": view.code,
                "label": view.label,
                "reason": view.reason,
                "by_hand": view.manual or view.code not in (elder.computed_categories or []),
            }
            for view in category_views(elder)
        ],
        "computed_categories": list(elder.computed_categories or []),
        "removed_by_hand": [
            {
                "code": o.category,
                "label": category_label(o.category),
                "reason": o.reason,
            }
            for o in removed
        ],
        "missing_facts": [
            {"fact": path, "label": missing_fact_label(path, child_names)}
            for path in elder.missing_facts or []
        ],
        "advanced_age": elder.advanced_age,
        "focus": elder.focus,
        "classified_on": elder.classified_on,
    }


class CategoryOverrideSerializer(serializers.ModelSerializer[CategoryOverride]):
    created_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)
    revoked_by = serializers.SlugRelatedField[User](slug_field="username", read_only=True)

    class Meta:
        model = CategoryOverride
        fields = [
            "id",
            "category",
            "action",
            "reason",
            "created_by",
            "created_at",
            "revoked_at",
            "revoked_by",
        ]
        read_only_fields = fields


class RevealedSerializer(serializers.Serializer[Any]):
    field = serializers.CharField()
    value = serializers.CharField()


class MeSerializer(serializers.ModelSerializer[User]):
    area = AreaRefSerializer(read_only=True)
    role_label = serializers.CharField(source="get_role_display", read_only=True)
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "username",
            "first_name",
            "last_name",
            "role",
            "role_label",
            "area",
            "capabilities",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_capabilities(self, user: User) -> list[str]:
        return sorted(str(c) for c in ROLE_CAPABILITIES.get(user.role, frozenset()))


class ClassifyResultSerializer(serializers.Serializer[Any]):
    id = serializers.JSONField(allow_null=True)
    categories = serializers.ListField(child=serializers.CharField())
    reasons = serializers.DictField(child=serializers.CharField())
    missing_facts = serializers.ListField(child=serializers.CharField())
    advanced_age = serializers.BooleanField()
    focus = serializers.BooleanField()


class ClassifyErrorSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    id = serializers.JSONField(allow_null=True)
    error = serializers.DictField(child=serializers.CharField(allow_blank=True))
