"""The registry of elders with special difficulties and the facts their categories rest on.

Every fact may be unknown (``None``): the classification says which fact it missed rather than
guess. Facts carry their source (a department or a person) and the date they were true:
scalar facts on the elder in ``fact_sources``, facts held in their own rows (children,
assessments, contracts, ...) in ``source`` and ``source_date`` columns.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Right
from django.utils.translation import gettext_lazy as _


class Gender(models.TextChoices):
    MALE = "male", _("Male")
    FEMALE = "female", _("Female")


class LifeStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    MOVED_AWAY = "moved_away", _("Moved away")
    IN_HOSPITAL = "in_hospital", _("In hospital")
    IN_INSTITUTION = "in_institution", _("In an institution")
    DECEASED = "deceased", _("Deceased")


class SpouseStatus(models.TextChoices):
    UNKNOWN = "", _("Unknown")
    NONE = "none", _("No spouse")
    ALIVE = "alive", _("Spouse alive")
    DECEASED = "deceased", _("Spouse deceased")


class DisabilityStatus(models.TextChoices):
    UNKNOWN = "", _("Unknown")
    NONE = "none", _("No disability certificate")
    CERTIFIED = "certified", _("Holds a disability certificate")


class DisabilityType(models.TextChoices):
    VISUAL = "visual", _("Visual")
    HEARING = "hearing", _("Hearing")
    SPEECH = "speech", _("Speech")
    PHYSICAL = "physical", _("Physical")
    INTELLECTUAL = "intellectual", _("Intellectual")
    MENTAL = "mental", _("Mental")
    MULTIPLE = "multiple", _("Multiple")


class AssessmentScheme(models.TextChoices):
    BEIJING = "beijing", _("Beijing (1 severe, 2 moderate, 3 mild)")
    GBT42195 = "gbt42195", _("GB/T 42195-2022 (0 intact … 4 total)")


class Department(models.TextChoices):
    """Where a fact came from, when it did not come from a named person."""

    CIVIL_AFFAIRS = "civil_affairs", _("Civil affairs")
    HEALTH = "health", _("Health commission")
    MEDICAL_INSURANCE = "medical_insurance", _("Medical insurance")
    DISABLED_FEDERATION = "disabled_federation", _("Disabled persons' federation")
    PUBLIC_SECURITY = "public_security", _("Public security (household registration)")
    CENSUS = "census", _("Home census")
    COMMUNITY = "community", _("Community committee")


class ElderQuerySet(models.QuerySet["Elder"]):
    def visible_to(self, user: object) -> ElderQuerySet:
        """The only door to elders: the rows ``user`` may see, by role and area."""
        from tanfang.accounts.scope import elders_visible_to

        return elders_visible_to(user, self)


class Elder(models.Model):
    # Identity. Resident ID and phone are stored encrypted, looked up by keyed hash.
    name = models.CharField(_("name"), max_length=64, db_index=True)
    gender = models.CharField(_("gender"), max_length=6, choices=Gender.choices)
    birth_date = models.DateField(_("birth date"))
    id_number_cipher = models.TextField(editable=False)
    id_number_hash = models.CharField(max_length=64, unique=True, editable=False)
    id_number_masked = models.CharField(_("resident ID"), max_length=18, db_index=True)
    phone_cipher = models.TextField(blank=True, editable=False)
    phone_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    phone_masked = models.CharField(_("phone"), max_length=20, blank=True)

    # Place. The ancestors of the community are copied here so that scope is one equality.
    community = models.ForeignKey(
        "areas.Area", on_delete=models.PROTECT, related_name="elders", verbose_name=_("community")
    )
    grid = models.ForeignKey(
        "areas.Area",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("grid"),
    )
    subdistrict = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    district = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    city = models.ForeignKey("areas.Area", on_delete=models.PROTECT, related_name="+")
    address = models.CharField(_("address"), max_length=200, blank=True)
    rural = models.BooleanField(_("rural"), null=True)

    # Family facts.
    spouse_status = models.CharField(
        _("spouse"), max_length=10, choices=SpouseStatus.choices, blank=True, default=""
    )
    spouse_lives_with = models.BooleanField(_("lives with spouse"), null=True)
    children_known = models.BooleanField(_("children recorded"), default=False)
    household_known = models.BooleanField(_("household recorded"), default=False)
    relatives_same_subdistrict = models.BooleanField(
        _("other relatives in the same subdistrict"), null=True
    )
    daily_companionship = models.BooleanField(_("has daily companionship and care"), null=True)

    # Capability (latest assessment, in the plan's Beijing numbering; history in assessments).
    capability_level = models.PositiveSmallIntegerField(_("capability level"), null=True)
    capability_assessed_on = models.DateField(_("assessed on"), null=True, blank=True)

    # Disability certificate.
    disability_status = models.CharField(
        _("disability certificate"),
        max_length=10,
        choices=DisabilityStatus.choices,
        blank=True,
        default="",
    )
    disability_grade = models.PositiveSmallIntegerField(_("disability grade"), null=True)
    disability_type = models.CharField(
        _("disability type"), max_length=12, choices=DisabilityType.choices, blank=True
    )

    extremely_poor = models.BooleanField(_("extremely poor"), null=True)
    dispersed_supported = models.BooleanField(_("supported at home"), default=False)

    willing_to_be_visited = models.BooleanField(_("willing to receive visits"), null=True)
    willingness_recorded_on = models.DateField(null=True, blank=True)

    life_status = models.CharField(
        _("life status"), max_length=16, choices=LifeStatus.choices, default=LifeStatus.ACTIVE
    )
    life_status_since = models.DateField(null=True, blank=True)

    # Where each scalar fact came from: {fact: {"source": str, "date": "YYYY-MM-DD"}}.
    fact_sources = models.JSONField(default=dict, blank=True)

    # Classification, recomputed by ``services.elder_reclassify`` whenever facts change.
    categories = models.JSONField(_("categories"), default=list, blank=True)
    category_bits = models.PositiveIntegerField(default=0, db_index=True)
    category_reasons = models.JSONField(default=dict, blank=True)
    computed_categories = models.JSONField(default=list, blank=True)
    missing_facts = models.JSONField(default=list, blank=True)
    advanced_age = models.BooleanField(_("advanced age"), default=False)
    focus = models.BooleanField(_("census focus"), default=False)
    classified_on = models.DateField(null=True, blank=True)

    first_contact = models.ForeignKey(
        "FirstContact", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ElderQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = _("elder")
        verbose_name_plural = _("elders")
        indexes = [
            models.Index(fields=["community", "id"], name="elder_community_id"),
            models.Index(fields=["subdistrict", "id"], name="elder_subdistrict_id"),
            models.Index(fields=["district", "id"], name="elder_district_id"),
            models.Index(fields=["focus", "id"], name="elder_focus_id"),
            models.Index(fields=["life_status", "id"], name="elder_life_status_id"),
            # Search by the last four characters of the masked ID, as printed on the screen.
            models.Index(Right("id_number_masked", 4), "id", name="elder_id_last4"),
            # Possible duplicates: the same name and birth date under different ID numbers.
            models.Index(fields=["name", "birth_date"], name="elder_name_birth"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id_number_masked})"


class Provenance(models.Model):
    """Source and date of the facts a row holds."""

    source = models.CharField(_("source"), max_length=64, blank=True)
    source_date = models.DateField(_("source date"), null=True, blank=True)

    class Meta:
        abstract = True


class AwayReason(models.TextChoices):
    WORK = "work", _("Working")
    BUSINESS = "business", _("In business")
    STUDY = "study", _("Studying")
    OTHER = "other", _("Other")


class Child(Provenance):
    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="children")
    name = models.CharField(_("name"), max_length=64, blank=True)
    alive = models.BooleanField(_("alive"), null=True)
    birth_year = models.PositiveSmallIntegerField(_("birth year"), null=True, blank=True)
    lives_with = models.BooleanField(_("lives with the elder"), null=True)
    same_subdistrict = models.BooleanField(_("lives in the same subdistrict"), null=True)
    away_months = models.PositiveSmallIntegerField(_("months away"), null=True, blank=True)
    away_reason = models.CharField(
        _("why away"), max_length=10, choices=AwayReason.choices, blank=True
    )
    can_support = models.BooleanField(_("able to support"), null=True)
    disability_grade = models.PositiveSmallIntegerField(_("disability grade"), null=True)
    adopted = models.BooleanField(_("adopted"), null=True)

    class Meta:
        ordering = ["elder_id", "birth_year", "id"]
        verbose_name = _("child")
        verbose_name_plural = _("children")

    def __str__(self) -> str:
        return self.name or f"child #{self.pk}"


class HouseholdRelation(models.TextChoices):
    SPOUSE = "spouse", _("Spouse")
    CHILD = "child", _("Child")
    CHILD_IN_LAW = "child_in_law", _("Child-in-law")
    GRANDCHILD = "grandchild", _("Grandchild")
    SIBLING = "sibling", _("Sibling")
    RELATIVE = "relative", _("Other relative")
    CAREGIVER = "caregiver", _("Paid caregiver")
    OTHER = "other", _("Other")


class HouseholdMember(Provenance):
    """A person living with the elder (the elder is not listed)."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="household")
    relation = models.CharField(_("relation"), max_length=16, choices=HouseholdRelation.choices)
    age = models.PositiveSmallIntegerField(_("age"), null=True, blank=True)

    class Meta:
        ordering = ["elder_id", "id"]

    def __str__(self) -> str:
        return f"{self.relation} {self.age or ''}".strip()


class CapabilityAssessment(Provenance):
    """One capability assessment, kept in the scheme it was made in."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="assessments")
    scheme = models.CharField(_("scheme"), max_length=10, choices=AssessmentScheme.choices)
    level = models.PositiveSmallIntegerField(_("level in its scheme"))
    beijing_level = models.PositiveSmallIntegerField(_("level in the plan's numbering"))
    assessed_on = models.DateField(_("assessed on"))

    class Meta:
        ordering = ["elder_id", "-assessed_on", "-id"]

    def __str__(self) -> str:
        return f"{self.scheme} {self.level} ({self.assessed_on})"


class ContractKind(models.TextChoices):
    STATION = "station", _("Community elder-care station")
    HOME_CARE_BED = "home_care_bed", _("Home care bed")


class RecipientGroup(models.TextChoices):
    SAFEGUARD = "safeguard", _("Safeguard recipient")
    KEY_SERVICE = "key_service", _("Key service recipient")
    OTHER = "other", _("Other")


class CareContract(Provenance):
    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="contracts")
    kind = models.CharField(_("kind"), max_length=16, choices=ContractKind.choices)
    provider_name = models.CharField(_("provider"), max_length=100)
    recipient_group = models.CharField(
        _("recipient group"), max_length=12, choices=RecipientGroup.choices
    )
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)

    class Meta:
        ordering = ["elder_id", "-starts_on"]

    def __str__(self) -> str:
        return f"{self.provider_name} ({self.kind})"


class Willingness(models.Model):
    """The elder's recorded choice to receive visits and care (尊重意愿); care is voluntary."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="willingness_records")
    willing = models.BooleanField(_("willing"))
    recorded_on = models.DateField(_("recorded on"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    recorded_by_name = models.CharField(_("recorded by"), max_length=64)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["elder_id", "-recorded_on", "-id"]

    def __str__(self) -> str:
        return f"{self.willing} ({self.recorded_on})"


class ContactRelation(models.TextChoices):
    CHILD = "child", _("Child")
    SPOUSE = "spouse", _("Spouse")
    RELATIVE = "relative", _("Other relative")
    NEIGHBOUR = "neighbour", _("Neighbour")
    COMMUNITY = "community", _("Community worker")
    OTHER = "other", _("Other")


class FirstContact(models.Model):
    """Who is told first about the elder. Exactly one current row per elder; history kept."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="first_contacts")
    name = models.CharField(_("name"), max_length=64)
    relation = models.CharField(_("relation"), max_length=12, choices=ContactRelation.choices)
    child = models.ForeignKey(
        Child, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    phone_cipher = models.TextField(editable=False)
    phone_masked = models.CharField(_("phone"), max_length=20)
    designated_by_community = models.BooleanField(_("designated by the community"), default=False)
    is_current = models.BooleanField(default=True)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    confirmed_on = models.DateField(_("last confirmed on"))
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["elder_id", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["elder"], condition=Q(is_current=True), name="one_current_first_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_relation_display()})"


class OverrideAction(models.TextChoices):
    ADD = "add", _("Add")
    REMOVE = "remove", _("Remove")


class CategoryOverride(models.Model):
    """A worker's decision to add or remove a category, always with a reason."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="category_overrides")
    category = models.CharField(max_length=20)
    action = models.CharField(max_length=6, choices=OverrideAction.choices)
    reason = models.CharField(_("reason"), max_length=300)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["elder_id", "-created_at"]

    def __str__(self) -> str:
        return f"{self.action} {self.category}"


class OtherCategoryRule(models.Model):
    """A district's own rule for the "other" category, as data (see docs/classification.md)."""

    district = models.ForeignKey(
        "areas.Area", on_delete=models.CASCADE, related_name="other_category_rules"
    )
    code = models.SlugField(max_length=40)
    label = models.CharField(_("label"), max_length=100)
    conditions = models.JSONField(_("conditions"))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["district_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["district", "code"], name="other_rule_code_unique")
        ]

    def __str__(self) -> str:
        return self.label


class ElderChange(models.Model):
    """One change to an elder's record: who, when, from which source, old and new values."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="changes")
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["elder_id", "-at", "-id"]

    def __str__(self) -> str:
        return f"{self.elder_id} @ {self.at:%Y-%m-%d %H:%M}"


class VisitorAssignment(models.Model):
    """An elder assigned to a visitor for a period; a visitor sees only these elders."""

    elder = models.ForeignKey(Elder, on_delete=models.CASCADE, related_name="assignments")
    visitor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["visitor_id", "elder_id"]
        indexes = [models.Index(fields=["visitor", "elder"], name="assignment_visitor_elder")]

    def __str__(self) -> str:
        return f"{self.visitor_id} → {self.elder_id}"
