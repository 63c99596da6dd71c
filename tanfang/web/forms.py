"""Forms of the pages: what a person may type, checked on the server in her language.

Forms only validate and translate input into the plain shapes the services take
(``ElderRecord``, keyword arguments); they never write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.registry.capability import CapabilityError, to_beijing_level
from tanfang.registry.identity import (
    IdentifierError,
    birth_date_of,
    gender_of,
    normalise_id_number,
    normalise_phone,
)
from tanfang.registry.models import (
    AssessmentScheme,
    AwayReason,
    ContactRelation,
    DisabilityStatus,
    DisabilityType,
    Elder,
    HouseholdRelation,
    LifeStatus,
    OverrideAction,
    SpouseStatus,
)
from tanfang.registry.records import (
    UNSET,
    AssessmentRecord,
    ChildRecord,
    ElderRecord,
    HouseholdRecord,
    WillingnessRecord,
)
from tanfang.registry.selectors import ALL_LIFE_STATUSES, MISSING_FACT_GROUPS, QUALITY_PROBLEMS
from tanfang.web.labels import category_choices, problem_label

ELDERLY_AGE = 60
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _choices(form: forms.Form, name: str) -> forms.ChoiceField:
    return cast(forms.ChoiceField, form.fields[name])


def _area_option(area: Area) -> tuple[str, str]:
    depth = list(AreaLevel.values).index(area.level)
    return str(area.pk), "\u2003" * depth + area.name


# --------------------------------------------------------------------------- the elder list


class ElderFilterForm(forms.Form):
    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=64,
        help_text=_("A name, a full resident ID number, its last 4 characters, or a phone"),
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    area = forms.TypedChoiceField(label=_("Area"), required=False, coerce=int, empty_value=None)
    category = forms.ChoiceField(label=_("Category"), required=False)
    focus = forms.BooleanField(label=_("Census focus only"), required=False)
    missing_first_contact = forms.BooleanField(label=_("Without a first contact"), required=False)
    life_status = forms.ChoiceField(label=_("Life status"), required=False)

    def __init__(self, *args: Any, areas: list[Area], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "area").choices = [("", _("All my areas")), *map(_area_option, areas)]
        _choices(self, "category").choices = [("", _("Any category")), *category_choices()]
        _choices(self, "life_status").choices = [
            ("", _("Active (default)")),
            *[(v, label) for v, label in LifeStatus.choices if v != LifeStatus.ACTIVE],
            (ALL_LIFE_STATUSES, _("Any status")),
        ]
        for name in ("focus", "missing_first_contact"):
            self.fields[name].widget.attrs["id"] = f"filter-{name.replace('_', '-')}"
        self.fields["q"].widget.attrs["id"] = "filter-q"
        self.fields["area"].widget.attrs.update({"id": "filter-area", "data-autosubmit": "1"})
        self.fields["category"].widget.attrs["id"] = "filter-category"
        self.fields["life_status"].widget.attrs["id"] = "filter-life-status"


# --------------------------------------------------------------------------- the elder page


class RevealForm(forms.Form):
    field = forms.ChoiceField(
        choices=[("id_number", _("Resident ID")), ("phone", _("Phone"))],
        widget=forms.HiddenInput,
    )
    reason = forms.CharField(
        label=_("Why do you need to see the full number?"),
        min_length=2,
        max_length=300,
        error_messages={"required": _("Say why you need to see the full number.")},
    )


class CategoryOverrideForm(forms.Form):
    category = forms.ChoiceField(label=_("Category"))
    action = forms.ChoiceField(label=_("Change"), choices=OverrideAction.choices)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("A reason is required to change a category by hand.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "category").choices = category_choices()

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required to change a category by hand."))
        return reason


class FirstContactForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)
    relation = forms.ChoiceField(label=_("Relation"), choices=ContactRelation.choices)
    child = forms.TypedChoiceField(
        label=_("Which child"), required=False, coerce=int, empty_value=None
    )
    phone = forms.CharField(label=_("Phone"), max_length=20)
    designated_by_community = forms.BooleanField(
        label=_("Designated by the community"), required=False
    )
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, elder: Elder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        children = list(elder.children.all())
        self.children = {child.pk: child for child in children}
        _choices(self, "child").choices = [
            ("", "—"),
            *[
                (str(c.pk), c.name or _("Child %(number)d") % {"number": i + 1})
                for i, c in enumerate(children)
            ],
        ]

    def clean_phone(self) -> str:
        try:
            return normalise_phone(self.cleaned_data["phone"])
        except IdentifierError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("child") is not None and data.get("relation") != ContactRelation.CHILD:
            self.add_error("relation", _("A child chosen from the list has the relation Child."))
        if data.get("child") is not None and data["child"] not in self.children:
            self.add_error("child", _("Choose one of the elder's children."))
        return data


# --------------------------------------------------------------------------- create and edit


class CommunityChoiceField(forms.ModelChoiceField):
    """Communities shown with their subdistrict (names repeat across subdistricts)."""

    def label_from_instance(self, obj: Any) -> str:
        parent = obj.subdistrict.name if obj.subdistrict_id and obj.subdistrict else ""
        return f"{parent} · {obj.name}" if parent else str(obj.name)


TRI_STATE = forms.NullBooleanSelect


def _tri(label: Any) -> forms.NullBooleanField:
    return forms.NullBooleanField(label=label, required=False, widget=TRI_STATE)


class ElderForm(forms.Form):
    """An elder's own facts. ``id_number`` is asked only when creating."""

    id_number = forms.CharField(label=_("Resident ID number"), max_length=18)
    name = forms.CharField(label=_("Name"), max_length=64)
    phone = forms.CharField(
        label=_("Phone"),
        max_length=20,
        required=False,
        help_text=_("Leave empty to keep the number on record."),
    )
    community = CommunityChoiceField(label=_("Community"), queryset=Area.objects.none())
    address = forms.CharField(label=_("Address"), max_length=200, required=False)
    spouse_status = forms.ChoiceField(
        label=_("Spouse"), choices=SpouseStatus.choices, required=False
    )
    spouse_lives_with = _tri(_("Lives with spouse"))
    relatives_same_subdistrict = _tri(_("Other relatives in the same subdistrict"))
    daily_companionship = _tri(_("Has daily companionship and care"))
    disability_status = forms.ChoiceField(
        label=_("Disability certificate"), choices=DisabilityStatus.choices, required=False
    )
    disability_grade = forms.TypedChoiceField(
        label=_("Disability grade"),
        choices=[("", "—"), *[(str(g), str(g)) for g in (1, 2, 3, 4)]],
        coerce=int,
        empty_value=None,
        required=False,
    )
    disability_type = forms.ChoiceField(
        label=_("Disability type"),
        choices=[("", "—"), *DisabilityType.choices],
        required=False,
    )
    extremely_poor = _tri(_("Extremely poor"))
    dispersed_supported = forms.BooleanField(label=_("Supported at home"), required=False)
    life_status = forms.ChoiceField(
        label=_("Life status"), choices=LifeStatus.choices, required=False
    )
    children_known = forms.BooleanField(
        label=_("The list of children below is complete (an empty list means no children)"),
        required=False,
    )
    household_known = forms.BooleanField(
        label=_("The list of people living with the elder is complete (empty: lives alone)"),
        required=False,
    )
    assessment_scheme = forms.ChoiceField(
        label=_("New capability assessment: scheme"),
        choices=[("", "—"), *AssessmentScheme.choices],
        required=False,
    )
    assessment_level = forms.TypedChoiceField(
        label=_("Level"),
        choices=[("", "—"), *[(str(n), str(n)) for n in range(5)]],
        coerce=int,
        empty_value=None,
        required=False,
    )
    assessed_on = forms.DateField(label=_("Assessed on"), required=False, widget=DATE_INPUT)
    willing = forms.NullBooleanField(
        label=_("Willing to receive visits and care"),
        required=False,
        widget=forms.Select(
            choices=[("unknown", _("Not asked now")), ("true", _("Yes")), ("false", _("No"))]
        ),
    )
    willingness_on = forms.DateField(label=_("Asked on"), required=False, widget=DATE_INPUT)
    willingness_note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args: Any, communities: Any, creating: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.creating = creating
        cast(CommunityChoiceField, self.fields["community"]).queryset = communities
        if not creating:
            del self.fields["id_number"]
        else:
            del self.fields["life_status"]
            self.fields["phone"].help_text = ""

    def clean_id_number(self) -> str:
        try:
            number = normalise_id_number(self.cleaned_data["id_number"])
        except IdentifierError as exc:
            raise forms.ValidationError(str(exc)) from exc
        today = timezone.localdate()
        birth = birth_date_of(number)
        age = today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))
        if age < ELDERLY_AGE:
            raise forms.ValidationError(
                _("The registry holds people aged %(age)d or older; this number says %(now)d.")
                % {"age": ELDERLY_AGE, "now": age}
            )
        return number

    def clean_phone(self) -> str:
        raw = self.cleaned_data.get("phone", "")
        if not raw:
            return ""
        try:
            return normalise_phone(raw)
        except IdentifierError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("spouse_status") != SpouseStatus.ALIVE and data.get("spouse_lives_with"):
            self.add_error("spouse_lives_with", _("Only a living spouse can live with the elder."))
        if data.get("disability_status") != DisabilityStatus.CERTIFIED and (
            data.get("disability_grade") or data.get("disability_type")
        ):
            self.add_error(
                "disability_grade",
                _("A grade and type belong to a disability certificate; choose that first."),
            )
        self._clean_assessment(data)
        today = timezone.localdate()
        if data.get("willing") is not None:
            on = data.get("willingness_on") or today
            if on > today:
                self.add_error("willingness_on", _("This date is in the future."))
            data["willingness_on"] = on
        return data

    def _clean_assessment(self, data: dict[str, Any]) -> None:
        parts = [
            data.get("assessment_scheme"),
            data.get("assessment_level"),
            data.get("assessed_on"),
        ]
        if all(p in (None, "") for p in parts):
            return
        if any(p in (None, "") for p in parts):
            self.add_error(
                "assessment_scheme",
                _("A capability assessment needs its scheme, level and date."),
            )
            return
        try:
            to_beijing_level(str(parts[0]), int(parts[1]))  # type: ignore[arg-type]
        except CapabilityError:
            self.add_error("assessment_level", _("This level does not exist in that scheme."))
        if parts[2] > timezone.localdate():  # type: ignore[operator]
            self.add_error("assessed_on", _("This date is in the future."))

    def to_record(
        self, *, id_number: str, children: Any, household: Any, recorded_by: str
    ) -> ElderRecord:
        """The form as an ``ElderRecord`` the services take."""
        d = self.cleaned_data
        record = ElderRecord(
            id_number=id_number,
            name=d["name"].strip(),
            community_code=d["community"].code,
            address=d.get("address", ""),
            spouse_status=d.get("spouse_status", ""),
            spouse_lives_with=d.get("spouse_lives_with"),
            relatives_same_subdistrict=d.get("relatives_same_subdistrict"),
            daily_companionship=d.get("daily_companionship"),
            disability_status=d.get("disability_status", ""),
            disability_grade=d.get("disability_grade"),
            disability_type=d.get("disability_type", ""),
            extremely_poor=d.get("extremely_poor"),
            dispersed_supported=bool(d.get("dispersed_supported")),
            children=children if d.get("children_known") else None,
            household=household if d.get("household_known") else None,
        )
        if self.creating:
            record.gender = gender_of(id_number)
            record.birth_date = birth_date_of(id_number)
        record.phone = d["phone"] if d.get("phone") else UNSET
        if d.get("assessment_scheme"):
            record.assessment = AssessmentRecord(
                scheme=d["assessment_scheme"],
                level=d["assessment_level"],
                assessed_on=d["assessed_on"],
            )
        if d.get("willing") is not None:
            record.willingness = WillingnessRecord(
                willing=d["willing"],
                recorded_on=d["willingness_on"],
                recorded_by_name=recorded_by,
                note=d.get("willingness_note", ""),
            )
        return record


class ChildForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64, required=False)
    alive = _tri(_("Alive"))
    birth_year = forms.IntegerField(label=_("Birth year"), required=False, min_value=1900)
    lives_with = _tri(_("Lives with the elder"))
    same_subdistrict = _tri(_("Lives in the same subdistrict"))
    away_months = forms.IntegerField(
        label=_("Months away"), required=False, min_value=0, max_value=1200
    )
    away_reason = forms.ChoiceField(
        label=_("Why away"), choices=[("", "—"), *AwayReason.choices], required=False
    )
    can_support = _tri(_("Able to support"))
    disability_grade = forms.TypedChoiceField(
        label=_("Disability grade"),
        choices=[("", _("None")), *[(str(g), str(g)) for g in (1, 2, 3, 4)]],
        coerce=int,
        empty_value=None,
        required=False,
    )
    adopted = _tri(_("Adopted"))

    def clean_birth_year(self) -> int | None:
        year = self.cleaned_data.get("birth_year")
        if year is not None and year > timezone.localdate().year:
            raise forms.ValidationError(_("This year is in the future."))
        return year

    def to_record(self) -> ChildRecord:
        d = self.cleaned_data
        return ChildRecord(
            name=d.get("name", "").strip(),
            alive=d.get("alive"),
            birth_year=d.get("birth_year"),
            lives_with=d.get("lives_with"),
            same_subdistrict=d.get("same_subdistrict"),
            away_months=d.get("away_months"),
            away_reason=d.get("away_reason", ""),
            can_support=d.get("can_support"),
            disability_grade=d.get("disability_grade"),
            adopted=d.get("adopted"),
        )


class HouseholdForm(forms.Form):
    relation = forms.ChoiceField(label=_("Relation"), choices=HouseholdRelation.choices)
    age = forms.IntegerField(label=_("Age"), required=False, min_value=0, max_value=130)

    def to_record(self) -> HouseholdRecord:
        return HouseholdRecord(
            relation=self.cleaned_data["relation"], age=self.cleaned_data.get("age")
        )


ChildFormSet = forms.formset_factory(ChildForm, extra=1, can_delete=True, max_num=20)
HouseholdFormSet = forms.formset_factory(HouseholdForm, extra=1, can_delete=True, max_num=20)


def formset_records(formset: Any) -> list[Any]:
    """The records of the kept forms: initial forms unless deleted, extra forms when filled."""
    out = []
    for i, form in enumerate(formset.forms):
        if formset.can_delete and formset._should_delete_form(form):
            continue
        if i >= formset.initial_form_count() and not form.has_changed():
            continue
        out.append(form.to_record())
    return out


def elder_initial(elder: Elder) -> dict[str, Any]:
    """The edit form's starting values from the stored record."""
    return {
        "name": elder.name,
        "community": elder.community_id,
        "address": elder.address,
        "spouse_status": elder.spouse_status,
        "spouse_lives_with": elder.spouse_lives_with,
        "relatives_same_subdistrict": elder.relatives_same_subdistrict,
        "daily_companionship": elder.daily_companionship,
        "disability_status": elder.disability_status,
        "disability_grade": elder.disability_grade,
        "disability_type": elder.disability_type,
        "extremely_poor": elder.extremely_poor,
        "dispersed_supported": elder.dispersed_supported,
        "life_status": elder.life_status,
        "children_known": elder.children_known,
        "household_known": elder.household_known,
        "willingness_on": timezone.localdate(),
    }


def children_initial(elder: Elder) -> list[dict[str, Any]]:
    fields = (
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
    )
    return [{f: getattr(c, f) for f in fields} for c in elder.children.all()]


def household_initial(elder: Elder) -> list[dict[str, Any]]:
    return [{"relation": m.relation, "age": m.age} for m in elder.household.all()]


# --------------------------------------------------------------------------- data quality


def problem_choices() -> list[tuple[str, str]]:
    return [
        *[(p, problem_label(p)) for p in QUALITY_PROBLEMS],
        *[(f"missing:{g}", problem_label(f"missing:{g}")) for g in MISSING_FACT_GROUPS],
        ("duplicates", problem_label("duplicates")),
    ]


class QualityForm(forms.Form):
    area = forms.TypedChoiceField(label=_("Area"), required=False, coerce=int, empty_value=None)
    problem = forms.ChoiceField(label=_("Show the elders with"), required=False)

    def __init__(self, *args: Any, areas: list[Area], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "area").choices = [("", _("My area")), *map(_area_option, areas)]
        self.fields["area"].widget.attrs.update({"id": "quality-area", "data-autosubmit": "1"})
        _choices(self, "problem").choices = [("", "—"), *problem_choices()]
        self.fields["problem"].widget.attrs["id"] = "quality-problem"


# --------------------------------------------------------------------------- the audit log


class AuditFilterForm(forms.Form):
    username = forms.CharField(label=_("User"), required=False, max_length=150)
    action = forms.ChoiceField(label=_("Action"), required=False)
    elder = forms.CharField(
        label=_("Elder"),
        required=False,
        max_length=100,
        help_text=_("The elder's number in the registry, or part of the name"),
    )
    date_from = forms.DateField(label=_("From"), required=False, widget=DATE_INPUT)
    date_to = forms.DateField(label=_("To"), required=False, widget=DATE_INPUT)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _choices(self, "action").choices = [("", _("Any action")), *AuditAction.choices]
        for name, field in self.fields.items():
            field.widget.attrs["id"] = f"audit-{name.replace('_', '-')}"

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: dt.date | None = data.get("date_from")
        end: dt.date | None = data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", _("The end is before the start."))
        return data
