"""The visit record as data: its modes, outcomes, structured sections and their choices.

The plan's attachment 2 (the visit record form) was never published. This form follows the
plan's content list (二.(四): health, economy, family, safety, needs), adds what Beijing's
earlier 巡视探访 practice checks (hygiene, living environment) and what other provinces ask
(major life events, assistive devices, the elder's consent); docs/visit-record.md says where
each section and choice comes from.

One definition, ``SECTIONS``, drives everything: ``validate_sections`` (what the web form and
the API send), the printable form (``tanfang.visits.pdf``) and the web form. No ORM here.

The canonical form of the sections, returned by ``validate_sections``, is sparse: every
section key is present (``{}`` when nothing was recorded), and inside a section only the fields
that were recorded. Multi-choice lists are de-duplicated and kept in the order of the choices,
so two submissions that mean the same thing have the same canonical dict::

    {"health": {"mobility": "bedridden", "illnesses": ["diabetes"]},
     "economy": {}, "family": {}, ...,
     "safety": {"gas": {"hazard": True, "what": "hose cracked"}},
     "needs": {"kinds": ["rehabilitation_nursing"]},
     "consent": {"care_actions": True, "given_by": "elder"}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

Choices = tuple[tuple[str, Promise], ...]

TEXT_MAX = 200  # characters of a free-text field: a line, not an essay
ADVANCED_AGE = 80  # 高龄


class Mode(StrEnum):
    PHONE = "phone"
    ONLINE = "online"
    IN_HOME = "in_home"
    REMOTE_MONITORING = "remote_monitoring"
    COMBINED = "combined"


class PersonMet(StrEnum):
    ELDER = "elder"
    FAMILY = "family"
    NOBODY = "nobody"


class Outcome(StrEnum):
    MET = "met"
    NOT_HOME = "not_home"
    REFUSED = "refused"
    IN_HOSPITAL = "in_hospital"
    DECEASED = "deceased"


MODE_CHOICES: Choices = (
    (Mode.PHONE, _("Phone")),
    (Mode.ONLINE, _("Online (video)")),
    (Mode.IN_HOME, _("In-home")),
    (Mode.REMOTE_MONITORING, _("Remote monitoring")),
    (Mode.COMBINED, _("Combined")),
)
PERSON_MET_CHOICES: Choices = (
    (PersonMet.ELDER, _("The elder")),
    (PersonMet.FAMILY, _("A family member")),
    (PersonMet.NOBODY, _("Nobody")),
)
OUTCOME_CHOICES: Choices = (
    (Outcome.MET, _("Met")),
    (Outcome.NOT_HOME, _("Not at home")),
    (Outcome.REFUSED, _("Refused")),
    (Outcome.IN_HOSPITAL, _("In hospital")),
    (Outcome.DECEASED, _("Deceased")),
)


class Kind(StrEnum):
    """How a field is filled in."""

    ONE = "one"  # one choice
    MANY = "many"  # any number of choices
    BOOL = "bool"  # yes or no
    TEXT = "text"  # a short line of text
    HAZARD = "hazard"  # {"hazard": bool, "what": text}
    CONDITION = "condition"  # {"status": "normal"|"abnormal", "detail": text}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: Promise
    kind: Kind
    choices: Choices = ()
    exclusive: str = ""  # a choice that must stand alone ("none")


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    label: Promise
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


NONE: tuple[str, Promise] = ("none", _("None"))
OTHER: tuple[str, Promise] = ("other", _("Other"))
NORMAL_ABNORMAL: Choices = (("normal", _("Normal")), ("abnormal", _("Abnormal")))

ILLNESSES: Choices = (
    ("hypertension", _("Hypertension")),
    ("diabetes", _("Diabetes")),
    ("heart_disease", _("Heart disease")),
    ("serious_heart_disease", _("Serious heart disease")),
    ("stroke", _("Stroke")),
    ("dementia", _("Dementia")),
    ("cancer", _("Cancer")),
    ("copd", _("Chronic lung disease (COPD)")),
    OTHER,
)
DIFFICULTIES: Choices = (
    ("clothing", _("Clothing")),
    ("food", _("Food")),
    ("housing", _("Housing")),
    ("transport", _("Getting about")),
    ("medical_care", _("Medical care")),
)
BENEFITS: Choices = (
    ("subsistence_allowance", _("Subsistence allowance (低保)")),
    ("extremely_poor_support", _("Support for the extremely poor (特困供养)")),
    ("elder_allowance", _("Allowance for the very old (高龄津贴)")),
    ("disability_allowance", _("Disability allowances")),
    ("care_subsidy", _("Care subsidy for impaired elders (护理补贴)")),
    ("medical_assistance", _("Medical assistance")),
    NONE,
)
FREQUENCY: Choices = (
    ("often", _("Often")),
    ("sometimes", _("Sometimes")),
    ("rarely", _("Rarely")),
    ("never", _("Never")),
)
LIFE_EVENTS: Choices = (
    ("bereavement", _("Bereavement")),
    ("illness", _("Serious illness")),
    ("hospital_discharge", _("Discharged from hospital")),
    NONE,
)
NEEDS: Choices = (
    ("daily_life_care", _("Daily-life care")),
    ("rehabilitation_nursing", _("Rehabilitation nursing")),
    ("emotional_comfort", _("Emotional comfort")),
    ("emergency_rescue", _("Emergency rescue")),
    ("age_friendly_modification", _("Age-friendly home modification")),
    ("assistive_devices", _("Assistive devices")),
    OTHER,
)
DEVICES: Choices = (
    ("grab_rails", _("Grab rails")),
    ("cane", _("Cane")),
    ("walker", _("Walker")),
    ("wheelchair", _("Wheelchair")),
    ("bath_chair", _("Bath chair")),
    OTHER,
)
SAFETY_ITEMS: Choices = (
    ("house", _("House structure")),
    ("water", _("Water")),
    ("electricity", _("Electricity")),
    ("gas", _("Gas")),
    ("heating", _("Heating")),
)

EXPRESSION: Choices = (
    ("clear", pgettext_lazy("ability to express", "Clear")),
    ("unclear", _("Unclear")),
    ("cannot", _("Cannot")),
)
MOBILITY: Choices = (
    ("independent", _("Independent")),
    ("aided", _("Needs help or aids")),
    ("bedridden", _("Bedridden")),
)
REACTIONS: Choices = (("normal", _("Normal")), ("slow", _("Slow")))
MENTAL_STATES: Choices = (
    ("good", _("Good")),
    ("low", _("Low mood")),
    ("anxious", _("Anxious")),
    ("confused", _("Confused")),
)
FAMILY_SUPPORT: Choices = (("yes", _("Yes")), ("no", _("No")), ("unknown", _("Unknown")))
CONSENT_BY: Choices = PERSON_MET_CHOICES[:2]  # the elder, or a family member
NOTE = Field("note", _("Note"), Kind.TEXT)

SECTIONS: tuple[Section, ...] = (
    Section(
        "health",
        _("Health"),
        (
            Field("expression", _("Ability to express"), Kind.ONE, EXPRESSION),
            Field("mobility", _("Mobility"), Kind.ONE, MOBILITY),
            Field("reactions", _("Reactions"), Kind.ONE, REACTIONS),
            Field("illnesses", _("Illnesses"), Kind.MANY, ILLNESSES),
            Field("illness_other", _("Other illness"), Kind.TEXT),
            Field("mental_state", _("Mental state"), Kind.ONE, MENTAL_STATES),
            NOTE,
        ),
    ),
    Section(
        "economy",
        _("Economy"),
        (
            Field("difficulties", _("Difficulties with"), Kind.MANY, DIFFICULTIES),
            Field("benefits", _("Benefits received"), Kind.MANY, BENEFITS, exclusive="none"),
            NOTE,
        ),
    ),
    Section(
        "family",
        _("Family"),
        (
            Field(
                "support",
                _("Family members living apart support the elder"),
                Kind.ONE,
                FAMILY_SUPPORT,
            ),
            Field("visits", _("They visit"), Kind.ONE, FREQUENCY),
            Field("calls", _("They call"), Kind.ONE, FREQUENCY),
            NOTE,
        ),
    ),
    Section(
        "safety",
        _("Safety"),
        tuple(Field(code, label, Kind.HAZARD) for code, label in SAFETY_ITEMS),
    ),
    Section(
        "hygiene",
        _("Hygiene"),
        (
            Field("personal", _("Personal hygiene"), Kind.CONDITION, NORMAL_ABNORMAL),
            Field("household", _("Household hygiene"), Kind.CONDITION, NORMAL_ABNORMAL),
            Field("surroundings", _("Surroundings"), Kind.CONDITION, NORMAL_ABNORMAL),
        ),
    ),
    Section(
        "environment",
        _("Living environment"),
        (
            Field("indoors", _("Indoors"), Kind.CONDITION, NORMAL_ABNORMAL),
            Field("outdoors", _("Outdoors"), Kind.CONDITION, NORMAL_ABNORMAL),
            Field("neighbours", _("Relations with neighbours"), Kind.CONDITION, NORMAL_ABNORMAL),
        ),
    ),
    Section(
        "life_events",
        _("Major life events"),
        (
            Field("kinds", _("Recent events"), Kind.MANY, LIFE_EVENTS, exclusive="none"),
            Field("detail", _("What happened"), Kind.TEXT),
        ),
    ),
    Section(
        "needs",
        _("Needs"),
        (
            Field("kinds", _("Services needed"), Kind.MANY, NEEDS),
            Field("devices", _("Devices needed"), Kind.MANY, DEVICES),
            Field("other", _("Other need"), Kind.TEXT),
        ),
    ),
    Section(
        "consent",
        _("Consent"),
        (
            Field("care_actions", _("Agrees to the care actions"), Kind.BOOL),
            Field("given_by", _("Consent given by"), Kind.ONE, CONSENT_BY),
        ),
    ),
)
SECTION_BY_NAME: dict[str, Section] = {s.name: s for s in SECTIONS}

# "A typed text or a sub-choice implies the tick that introduces it": (section, field giving
# the text or choices, multi-choice field, the choice it implies).
_IMPLIED: tuple[tuple[str, str, str, str], ...] = (
    ("health", "illness_other", "illnesses", "other"),
    ("needs", "other", "kinds", "other"),
    ("needs", "devices", "kinds", "assistive_devices"),
)
# "... and says what it is": a ticked "other" needs its text.
_OTHER_TEXT: tuple[tuple[str, str, str], ...] = (
    ("health", "illnesses", "illness_other"),
    ("needs", "kinds", "other"),
)

# --- errors -------------------------------------------------------------------------------

_MESSAGES: dict[str, Promise] = {
    "unknown_section": _("unknown section"),
    "unknown_field": _("unknown field"),
    "not_an_object": _("an object with named fields is expected"),
    "not_a_list": _("a list of choices is expected"),
    "not_a_choice": _("“%(value)s” is not one of the allowed values: %(allowed)s"),
    "not_a_boolean": _("yes or no is expected"),
    "not_text": _("text is expected"),
    "too_long": _("at most %(max)d characters are allowed"),
    "exclusive": _("“%(choice)s” cannot be chosen together with other choices"),
    "other_text_required": _("say what it is"),
    "hazard_required": _("a hazard is described: say whether there is one"),
}


@dataclass(frozen=True, slots=True)
class SectionError:
    """One problem in submitted sections: where (``path``), what (``code``), and its words.

    ``path`` names the field the way a client addresses it: ``"safety.gas.what"``,
    ``"health.illnesses"``. ``message`` is rendered in the active language when read.
    """

    path: str
    code: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        template = str(_MESSAGES[self.code])
        if not self.params:
            return template
        # Labels among the parameters are lazy: render them in the same active language.
        return template % {
            k: str(v) if isinstance(v, Promise) else v for k, v in self.params.items()
        }

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# --- validation ---------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "on", "1", "是"})
_FALSE = frozenset({"false", "no", "off", "0", "否"})


def validate_sections(
    data: Mapping[str, Any] | None,
) -> tuple[dict[str, dict[str, Any]], list[SectionError]]:
    """Normalise submitted sections into the canonical dict, and list what is wrong.

    Steps: 1. each known section is read field by field; unknown sections and fields, wrong
    types and choices that do not exist are errors. 2. Values that say "not recorded" (None,
    "", an empty list, an item with nothing filled in) are dropped. 3. Choices are
    de-duplicated and ordered as in ``SECTIONS``; "serious heart disease" replaces "heart
    disease". 4. A typed text implies its tick (``_IMPLIED``); a ticked "other" without its
    text, an exclusive choice ("none") with others, and a hazard described but not ticked are
    errors. The canonical dict holds whatever was valid, even when there are errors; a caller
    saves it only when the error list is empty.
    """
    errors: list[SectionError] = []
    result: dict[str, dict[str, Any]] = {s.name: {} for s in SECTIONS}
    if data is None:
        return result, errors
    if not isinstance(data, Mapping):
        return result, [SectionError("", "not_an_object")]
    for name, value in data.items():
        section = SECTION_BY_NAME.get(name) if isinstance(name, str) else None
        if section is None:
            errors.append(SectionError(str(name), "unknown_section"))
            continue
        if value is None:
            continue
        if not isinstance(value, Mapping):
            errors.append(SectionError(name, "not_an_object"))
            continue
        result[name] = _section(section, value, errors)
    _cross_checks(result, errors)
    return result, errors


def _section(section: Section, data: Mapping[str, Any], errors: list[SectionError]) -> dict:
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{section.name}.{key}"
        spec = section.field(key) if isinstance(key, str) else None
        if spec is None:
            errors.append(SectionError(path, "unknown_field"))
            continue
        clean = _value(spec, value, path, errors)
        if clean not in (None, "", [], {}):
            out[key] = clean
    return out


def _value(spec: Field, value: Any, path: str, errors: list[SectionError]) -> Any:
    if spec.kind is Kind.ONE:
        return _one(spec.choices, value, path, errors)
    if spec.kind is Kind.MANY:
        return _many(spec, value, path, errors)
    if spec.kind is Kind.BOOL:
        return _bool(value, path, errors)
    if spec.kind is Kind.TEXT:
        return _text(value, path, errors)
    if spec.kind is Kind.HAZARD:
        return _item(value, path, errors, ("hazard", "what"))
    return _item(value, path, errors, ("status", "detail"), spec.choices)


def _one(choices: Choices, value: Any, path: str, errors: list[SectionError]) -> str | None:
    if value is None or value == "":
        return None
    codes = [code for code, _label in choices]
    if not isinstance(value, str) or value.strip() not in codes:
        errors.append(SectionError(path, "not_a_choice", _choice_params(value, codes)))
        return None
    return value.strip()


def _many(spec: Field, value: Any, path: str, errors: list[SectionError]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        errors.append(SectionError(path, "not_a_list"))
        return []
    codes = [code for code, _label in spec.choices]
    given: set[str] = set()
    for item in value:
        if isinstance(item, str) and item.strip() in codes:
            given.add(item.strip())
        else:
            errors.append(SectionError(path, "not_a_choice", _choice_params(item, codes)))
    if "serious_heart_disease" in given:
        given.discard("heart_disease")
    if spec.exclusive in given and len(given) > 1:
        errors.append(
            SectionError(path, "exclusive", {"choice": choice_label(spec.choices, spec.exclusive)})
        )
        given.discard(spec.exclusive)
    return [code for code in codes if code in given]


def _bool(value: Any, path: str, errors: list[SectionError]) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    errors.append(SectionError(path, "not_a_boolean"))
    return None


def _text(value: Any, path: str, errors: list[SectionError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(SectionError(path, "not_text"))
        return None
    text = " ".join(value.split())  # one line: newlines and tabs become single spaces
    if len(text) > TEXT_MAX:
        errors.append(SectionError(path, "too_long", {"max": TEXT_MAX}))
        return None
    return text


def _item(
    value: Any,
    path: str,
    errors: list[SectionError],
    keys: tuple[str, str],
    choices: Choices = (),
) -> dict[str, Any]:
    """A hazard ({"hazard", "what"}) or a condition ({"status", "detail"}) item."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        errors.append(SectionError(path, "not_an_object"))
        return {}
    flag, text = keys
    out: dict[str, Any] = {}
    for key, sub in value.items():
        if key == flag:
            clean = (
                _bool(sub, f"{path}.{key}", errors)
                if not choices
                else _one(choices, sub, f"{path}.{key}", errors)
            )
        elif key == text:
            clean = _text(sub, f"{path}.{key}", errors)
        else:
            errors.append(SectionError(f"{path}.{key}", "unknown_field"))
            continue
        if clean not in (None, ""):
            out[key] = clean
    if not choices and text in out and flag not in out:
        errors.append(SectionError(f"{path}.{flag}", "hazard_required"))
    return out


def _cross_checks(result: dict[str, dict[str, Any]], errors: list[SectionError]) -> None:
    for section, source, target, choice in _IMPLIED:
        fields = result[section]
        if fields.get(source):
            spec = SECTION_BY_NAME[section].field(target)
            assert spec is not None
            ticked = set(fields.get(target, ())) | {choice}
            fields[target] = [code for code, _label in spec.choices if code in ticked]
    for section, many, text in _OTHER_TEXT:
        fields = result[section]
        if "other" in fields.get(many, ()) and not fields.get(text):
            errors.append(SectionError(f"{section}.{text}", "other_text_required"))


def _choice_params(value: Any, codes: list[str]) -> dict[str, str]:
    shown = value if isinstance(value, str) else repr(value)
    return {"value": shown[:40], "allowed": ", ".join(codes)}


# --- reading the canonical sections --------------------------------------------------------


def choice_label(choices: Choices, code: str) -> Promise | str:
    """The label of one of the choices (the code itself when unknown)."""
    return next((label for c, label in choices if c == code), code)


def hazards(sections: Mapping[str, Any]) -> list[str]:
    """The safety items (house, water, electricity, gas, heating) recorded with a hazard."""
    safety = sections.get("safety") or {}
    return [code for code, _label in SAFETY_ITEMS if (safety.get(code) or {}).get("hazard")]


def needs(sections: Mapping[str, Any]) -> list[str]:
    """The service needs recorded, in the order of the form."""
    return list((sections.get("needs") or {}).get("kinds", ()))


def difficulties(sections: Mapping[str, Any]) -> list[str]:
    """The economic difficulties recorded (clothing, food, housing, transport, medical care)."""
    return list((sections.get("economy") or {}).get("difficulties", ()))


def consented(sections: Mapping[str, Any]) -> bool:
    """Whether the record says the elder agrees to the care actions (unrecorded: no)."""
    return (sections.get("consent") or {}).get("care_actions") is True


def abnormal_conditions(sections: Mapping[str, Any]) -> list[str]:
    """Hygiene and living-environment items marked abnormal, as "section.item" paths."""
    found = []
    for name in ("hygiene", "environment"):
        items = sections.get(name) or {}
        for spec in SECTION_BY_NAME[name].fields:
            if (items.get(spec.name) or {}).get("status") == "abnormal":
                found.append(f"{name}.{spec.name}")
    return found


# The benefits ``benefit_hints`` may suggest, each with the rule that suggests it.
BENEFIT_HINT_RULES: dict[str, Promise] = {
    "extremely_poor_support": _("Registered as extremely poor but not receiving this support"),
    "subsistence_allowance": _(
        "Difficulty with food, clothing or housing, and neither subsistence allowance nor "
        "support for the extremely poor"
    ),
    "elder_allowance": _("80 or older"),
    "disability_allowance": _("Severely disabled"),
    "care_subsidy": _("Impaired"),
    "medical_assistance": _(
        "Difficulty with medical care, or receives subsistence allowance or support for the "
        "extremely poor"
    ),
}


def benefit_hints(
    sections: Mapping[str, Any],
    elder_categories: Iterable[str],
    *,
    age: int | None = None,
    extremely_poor: bool | None = None,
) -> list[str]:
    """Benefits the elder may qualify for but does not receive, in the order of the form.

    A hint is a reason to inform the elder and check eligibility, not a decision: the rules
    are deliberately simple (``BENEFIT_HINT_RULES``; docs/visit-record.md). Hints are given
    only when the visit recorded the benefits received (at least one choice, "none" included):
    without that answer the system would be guessing.
    """
    received = set((sections.get("economy") or {}).get("benefits", ()))
    if not received:
        return []
    categories = set(elder_categories)
    hard_up = bool({"food", "clothing", "housing"} & set(difficulties(sections)))
    on_relief = bool({"subsistence_allowance", "extremely_poor_support"} & received)
    qualifies = {
        "extremely_poor_support": extremely_poor is True,
        "subsistence_allowance": hard_up and not on_relief,
        "elder_allowance": age is not None and age >= ADVANCED_AGE,
        "disability_allowance": "severely_disabled" in categories,
        "care_subsidy": "impaired" in categories,
        "medical_assistance": on_relief or "medical_care" in difficulties(sections),
    }
    return [code for code, _label in BENEFITS if qualifies.get(code) and code not in received]
