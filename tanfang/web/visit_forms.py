"""The web forms of visits and care actions.

``VisitForm`` is the visit record on a phone: the visit's mode, times, the person met and the
outcome, then one group of choices per section of ``record_form.SECTIONS`` (radio buttons,
check boxes, a yes/no and "what" per safety item), the consent, notes and an optional
check-in location. Its field names follow the paths of the record form with dashes
(``safety-gas-hazard`` for ``sections.safety.gas.hazard``), so an error the service reports on
a path lands next to its field. The form only collects: ``visit_record`` / ``visit_correct``
validate and decide.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tanfang.care.models import ServiceEntry
from tanfang.visits.models import OrganisedBy, Visit
from tanfang.visits.record_form import (
    MODE_CHOICES,
    OUTCOME_CHOICES,
    PERSON_MET_CHOICES,
    SECTIONS,
    TEXT_MAX,
    Field,
    Kind,
    Section,
)
from tanfang.visits.services import Location, VisitInput
from tanfang.web.visit_labels import DETAIL_LABEL, HAZARD_LABEL, WHAT_LABEL, care_step_label

# The consent section is asked once, as the form's own check box (see ``VisitForm``).
FORM_SECTIONS: tuple[Section, ...] = tuple(s for s in SECTIONS if s.name != "consent")
CHECK_IN_MODES = frozenset({"in_home", "combined"})
DATETIME_FORMAT = "%Y-%m-%dT%H:%M"
DEFAULT_LENGTH = dt.timedelta(minutes=15)
YES_NO: tuple[tuple[str, Any], ...] = (("yes", _("Yes")), ("no", _("No")))

# Fields of the visit itself, in the order of the form (and of an error summary).
VISIT_FIELDS = ("mode", "started_at", "ended_at", "person_met", "outcome", "organised_by")


def field_name(section: str, name: str, sub: str = "") -> str:
    """The form field of a record-form path: ``safety``, ``gas``, ``what`` → ``safety-gas-what``."""
    return f"{section}-{name}-{sub}" if sub else f"{section}-{name}"


def _datetime_field(label: Any) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        widget=forms.DateTimeInput(format=DATETIME_FORMAT, attrs={"type": "datetime-local"}),
    )


def _text(label: Any) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=TEXT_MAX)


def _radio(label: Any, choices: Any) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label, required=False, choices=list(choices), widget=forms.RadioSelect
    )


@dataclass(frozen=True)
class SectionRow:
    """One question of a section as the template draws it: its spec and its form fields."""

    spec: Field
    fields: list[forms.BoundField]

    @property
    def kind(self) -> str:
        return str(self.spec.kind)


@dataclass(frozen=True)
class SectionGroup:
    section: Section
    rows: list[SectionRow]
    filled: int
    has_errors: bool


class VisitForm(forms.Form):
    """A visit record; ``correcting`` leaves out what a correction cannot change."""

    client_uuid = forms.UUIDField(widget=forms.HiddenInput)
    mode = forms.ChoiceField(label=_("Mode"), choices=MODE_CHOICES, widget=forms.RadioSelect)
    started_at = _datetime_field(_("Started at"))
    ended_at = _datetime_field(_("Ended at"))
    person_met = forms.ChoiceField(
        label=_("Person met"), choices=PERSON_MET_CHOICES, widget=forms.RadioSelect
    )
    outcome = forms.ChoiceField(
        label=_("Outcome"), choices=OUTCOME_CHOICES, widget=forms.RadioSelect
    )
    organised_by = forms.ChoiceField(
        label=_("Organised by"), choices=OrganisedBy.choices, initial=OrganisedBy.GOVERNMENT
    )
    consent = forms.BooleanField(
        label=_("The elder (or the family) agrees to the care actions"), required=False
    )
    notes = forms.CharField(
        label=_("Notes"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    latitude = forms.FloatField(
        required=False, min_value=-90, max_value=90, widget=forms.HiddenInput
    )
    longitude = forms.FloatField(
        required=False, min_value=-180, max_value=180, widget=forms.HiddenInput
    )
    accuracy = forms.FloatField(required=False, min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args: Any, correcting: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correcting = correcting
        if correcting:
            for name in ("client_uuid", "organised_by", "latitude", "longitude", "accuracy"):
                del self.fields[name]
        for section in FORM_SECTIONS:
            for spec in section.fields:
                self.fields.update(_section_fields(section, spec))

    # --- what the template draws -----------------------------------------------------------

    def section_groups(self) -> list[SectionGroup]:
        groups = []
        for section in FORM_SECTIONS:
            rows = []
            filled = 0
            errors = False
            for spec in section.fields:
                names = list(_section_fields(section, spec))
                bound = [self[name] for name in names]
                filled += sum(1 for b in bound if _has_value(b.value()))
                errors = errors or any(b.errors for b in bound)
                rows.append(SectionRow(spec=spec, fields=bound))
            groups.append(SectionGroup(section, rows, filled, errors))
        return groups

    def error_summary(self) -> list[tuple[str, str, str]]:
        """(field id, field label, message) of every error, in the order of the form."""
        found = []
        for name, errors in self.errors.items():
            if name == NON_FIELD_ERRORS:
                continue
            bound = self[name]
            for message in errors:
                label = str(self.fields[name].label or name)
                found.append((bound.auto_id or "", label, str(message)))
        return found

    # --- what the service receives ---------------------------------------------------------

    def sections_data(self) -> dict[str, dict[str, Any]]:
        """The sections as the record form reads them (``validate_sections`` normalises)."""
        data = self.cleaned_data
        out: dict[str, dict[str, Any]] = {}
        for section in FORM_SECTIONS:
            values: dict[str, Any] = {}
            for spec in section.fields:
                name = field_name(section.name, spec.name)
                if spec.kind is Kind.HAZARD:
                    flag = data.get(field_name(section.name, spec.name, "hazard"))
                    item = {
                        "hazard": {"yes": True, "no": False}.get(flag or ""),
                        "what": data.get(field_name(section.name, spec.name, "what")) or None,
                    }
                    values[spec.name] = {k: v for k, v in item.items() if v is not None}
                elif spec.kind is Kind.CONDITION:
                    item = {
                        "status": data.get(field_name(section.name, spec.name, "status")) or None,
                        "detail": data.get(field_name(section.name, spec.name, "detail")) or None,
                    }
                    values[spec.name] = {k: v for k, v in item.items() if v is not None}
                elif spec.kind is Kind.BOOL:
                    values[spec.name] = True if data.get(name) else None
                else:
                    values[spec.name] = data.get(name) or None
            out[section.name] = {k: v for k, v in values.items() if v not in (None, {}, [])}
        consent = bool(data.get("consent"))
        given_by = data.get("person_met") if data.get("person_met") in ("elder", "family") else None
        out["consent"] = {"care_actions": True, "given_by": given_by} if consent else {}
        out["consent"] = {k: v for k, v in out["consent"].items() if v is not None}
        return out

    def location(self) -> Location | None:
        """The check-in location, only for a visit in the home (the phone may have filled it
        before the visitor changed the mode)."""
        data = self.cleaned_data
        lat, lon = data.get("latitude"), data.get("longitude")
        if lat is None or lon is None or data.get("mode") not in CHECK_IN_MODES:
            return None
        accuracy = data.get("accuracy")
        return Location(lat, lon, None if accuracy is None else round(accuracy))

    def visit_input(self) -> VisitInput:
        data = self.cleaned_data
        return VisitInput(
            client_uuid=data["client_uuid"],
            mode=data["mode"],
            started_at=data["started_at"],
            ended_at=data["ended_at"],
            person_met=data["person_met"],
            outcome=data["outcome"],
            sections=self.sections_data(),
            notes=data.get("notes", ""),
            consent=bool(data.get("consent")),
            location=self.location(),
            organised_by=data.get("organised_by") or OrganisedBy.GOVERNMENT,
        )

    def changes(self, visit: Visit) -> dict[str, Any]:
        """What a correction submits: every correctable field (the service keeps the diff).

        The form shows times to the minute; a time left as shown keeps its seconds, so that an
        untouched time is not recorded as a change.
        """
        data = self.cleaned_data
        times = {}
        for name in ("started_at", "ended_at"):
            before: dt.datetime = getattr(visit, name)
            same = data[name] == before.replace(second=0, microsecond=0)
            times[name] = before if same else data[name]
        return {
            "mode": data["mode"],
            **times,
            "person_met": data["person_met"],
            "outcome": data["outcome"],
            "sections": self.sections_data(),
            "notes": data.get("notes", ""),
            "consent": bool(data.get("consent")),
        }

    def add_service_errors(self, errors: list[tuple[str, str]]) -> None:
        """Put each (path, message) of a ``VisitError`` next to its field, or on top."""
        for path, message in errors:
            name = self._field_for(path)
            if name is None:
                label = _PATH_LABELS.get(path)
                self.add_error(None, f"{label}: {message}" if label else message)
            else:
                self.add_error(name, message)

    def _field_for(self, path: str) -> str | None:
        if path in self.fields and path in (*VISIT_FIELDS, "notes", "consent"):
            return path
        if not path.startswith("sections."):
            return None
        parts = path.split(".")[1:]
        if parts and parts[0] == "consent":
            return "consent"
        candidates = ["-".join(parts)]
        if len(parts) == 2:  # a composite item as a whole: its flag carries the error
            candidates += ["-".join([*parts, "hazard"]), "-".join([*parts, "status"])]
        return next((c for c in candidates if c in self.fields), None)


_PATH_LABELS: dict[str, Any] = {
    "location": _("Check-in location"),
    "client_uuid": _("Submission"),
}


def _section_fields(section: Section, spec: Field) -> dict[str, forms.Field]:
    """The form fields of one question of the record form, by name."""
    name = field_name(section.name, spec.name)
    label: Any = spec.label
    if spec.kind is Kind.ONE:
        return {name: _radio(label, spec.choices)}
    if spec.kind is Kind.MANY:
        return {
            name: forms.MultipleChoiceField(
                label=label,
                required=False,
                choices=list(spec.choices),
                widget=forms.CheckboxSelectMultiple,
            )
        }
    if spec.kind is Kind.BOOL:
        return {name: forms.BooleanField(label=label, required=False)}
    if spec.kind is Kind.TEXT:
        return {name: _text(spec.label)}
    if spec.kind is Kind.HAZARD:
        return {
            field_name(section.name, spec.name, "hazard"): _radio(
                _label_pair(spec.label, HAZARD_LABEL), YES_NO
            ),
            field_name(section.name, spec.name, "what"): _text(_label_pair(spec.label, WHAT_LABEL)),
        }
    return {
        field_name(section.name, spec.name, "status"): _radio(spec.label, spec.choices),
        field_name(section.name, spec.name, "detail"): _text(_label_pair(spec.label, DETAIL_LABEL)),
    }


class _LabelPair:
    """ "Gas · What", rendered lazily in the reader's language."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def __str__(self) -> str:
        return f"{self.first} · {self.second}"


def _label_pair(first: Any, second: Any) -> Any:
    return _LabelPair(first, second)


def _has_value(value: Any) -> bool:
    return value not in (None, "", [], False)


def initial_new(*, mode: str = "") -> dict[str, Any]:
    """A fresh form: a new submission id, and a visit that ended now and lasted 15 minutes."""
    now = timezone.localtime().replace(second=0, microsecond=0)
    initial: dict[str, Any] = {
        "client_uuid": uuid.uuid4(),
        "started_at": now - DEFAULT_LENGTH,
        "ended_at": now,
        "person_met": "elder",
        "outcome": "met",
        "organised_by": OrganisedBy.GOVERNMENT,
    }
    if mode:
        initial["mode"] = mode
    return initial


def initial_from_visit(visit: Visit) -> dict[str, Any]:
    """A recorded visit as the form's initial values (to correct it)."""
    initial: dict[str, Any] = {
        "mode": visit.mode,
        "started_at": visit.started_at,
        "ended_at": visit.ended_at,
        "person_met": visit.person_met,
        "outcome": visit.outcome,
        "notes": visit.notes,
        "consent": visit.consent,
    }
    sections: Mapping[str, Any] = visit.sections or {}
    for name, value in _flatten(sections):
        initial[name] = value
    return initial


def _flatten(sections: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for section in FORM_SECTIONS:
        recorded = sections.get(section.name) or {}
        for spec in section.fields:
            value = recorded.get(spec.name)
            if value is None:
                continue
            if spec.kind is Kind.HAZARD:
                if "hazard" in value:
                    yield (
                        field_name(section.name, spec.name, "hazard"),
                        ("yes" if value["hazard"] else "no"),
                    )
                if value.get("what"):
                    yield field_name(section.name, spec.name, "what"), value["what"]
            elif spec.kind is Kind.CONDITION:
                if value.get("status"):
                    yield field_name(section.name, spec.name, "status"), value["status"]
                if value.get("detail"):
                    yield field_name(section.name, spec.name, "detail"), value["detail"]
            else:
                yield field_name(section.name, spec.name), value


# --- care actions ------------------------------------------------------------------------


class CareMoveForm(forms.Form):
    """One step of a care action: where to, a note, the result, and for a service need the
    service it was connected to."""

    to = forms.ChoiceField(label=_("Next step"), widget=forms.RadioSelect)
    note = forms.CharField(label=_("Note"), required=False, max_length=300)
    result = forms.CharField(label=_("Result"), required=False, max_length=300)
    service = forms.ModelChoiceField(
        label=_("Service"), required=False, queryset=ServiceEntry.objects.none()
    )

    def __init__(
        self,
        *args: Any,
        steps: tuple[str, ...],
        services: list[ServiceEntry] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        to = self.fields["to"]
        assert isinstance(to, forms.ChoiceField)
        to.choices = [(step, care_step_label(step)) for step in steps]
        if services is None:
            del self.fields["service"]
        else:
            field = self.fields["service"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = ServiceEntry.objects.filter(pk__in=[s.pk for s in services])
            field.choices = [("", "—"), *((s.pk, _service_text(s)) for s in services)]


def _service_text(entry: ServiceEntry) -> str:
    return f"{entry.name} · {entry.phone}" if entry.phone else entry.name
