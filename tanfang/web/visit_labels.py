"""Words for the codes of visits and care actions: kinds, states, subjects, obligations.

The care rules (``tanfang.care.rules``) and the obligation engine store plain codes; the pages
show them in the reader's language. The labels of the visit record's own choices live beside
their definition in ``tanfang.visits.record_form``; this module reuses them.
"""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tanfang.care.rules import CareKind, CareState
from tanfang.registry.models import LifeStatus
from tanfang.visits.record_form import BENEFITS, NEEDS, SAFETY_ITEMS, Choices, choice_label
from tanfang.visits.risk import RISK_LEVEL_CHOICES

CARE_KIND_LABELS: dict[str, Promise] = {
    CareKind.BENEFIT: _("Benefit"),
    CareKind.HAZARD: _("Hazard"),
    CareKind.SERVICE: _("Service need"),
}

CARE_STATE_LABELS: dict[str, Promise] = {
    CareState.TO_INFORM: _("To inform the elder"),
    CareState.INFORMED: _("Informed"),
    CareState.APPLYING: _("Applying"),
    CareState.GRANTED: _("Granted"),
    CareState.NOT_GRANTED: _("Not granted"),
    CareState.TO_REMIND: _("To remind the elder"),
    CareState.REMINDED: _("Reminded"),
    CareState.REMOVING: _("Being removed"),
    CareState.REMOVED: _("Removed, verified"),
    CareState.TO_CONNECT: _("To connect to a service"),
    CareState.CONNECTED: _("Connected to a service"),
    CareState.SERVED: _("Served"),
    CareState.DECLINED: _("Declined"),
}

# The button that moves an action to a state says what the person did.
CARE_STEP_LABELS: dict[str, Promise] = {
    CareState.INFORMED: _("The elder was informed"),
    CareState.APPLYING: _("Application made"),
    CareState.GRANTED: _("Granted"),
    CareState.NOT_GRANTED: _("Not granted"),
    CareState.REMINDED: _("The elder was reminded"),
    CareState.REMOVING: _("Removal under way"),
    CareState.REMOVED: _("Removed and verified"),
    CareState.CONNECTED: _("Connected to a service"),
    CareState.SERVED: _("The service was provided"),
    CareState.DECLINED: _("The elder declined"),
}

CARE_EVENT_LABELS: dict[str, Promise] = {
    "opened": _("Opened"),
    "moved": _("Moved on"),
    "escalated": _("Escalated"),
    "reassigned": _("Reassigned"),
}

OBLIGATION_KIND_LABELS: dict[str, Promise] = {
    "regular": _("Regular visit"),
    "surge": _("Surge"),
    "holiday": _("Holiday visit"),
    "reconfirm": _("Re-confirm willingness"),
}

MODE_REQUIREMENT_LABELS: dict[str, Promise] = {
    "any": _("any mode"),
    "phone": _("phone or better"),
    "in_home": _("in-home"),
}

FREQUENCY_LABELS: dict[str, Promise] = {
    "day": _("Daily"),
    "week": _("Weekly"),
    "month": _("Monthly"),
    "quarter": _("Quarterly"),
}

EXCLUSION_LABELS: dict[str, Promise] = {
    "deceased": LifeStatus.DECEASED.label,
    "moved_away": LifeStatus.MOVED_AWAY.label,
    "in_institution": LifeStatus.IN_INSTITUTION.label,
    "in_hospital": LifeStatus.IN_HOSPITAL.label,
    "declined": _("Declined visits"),
}

RISK_LABELS: dict[str, Promise] = dict(RISK_LEVEL_CHOICES)

# The parts of a safety item ({"hazard", "what"}) and of a condition ({"status", "detail"}).
HAZARD_LABEL = _("Hazard")
WHAT_LABEL = _("What")
DETAIL_LABEL = _("What is wrong")


def _lookup(table: dict[str, Promise], code: str) -> str:
    label = table.get(code)
    return str(label) if label is not None else code


def care_kind_label(code: str) -> str:
    return _lookup(CARE_KIND_LABELS, code)


def care_state_label(code: str) -> str:
    return _lookup(CARE_STATE_LABELS, code)


def care_step_label(code: str) -> str:
    return _lookup(CARE_STEP_LABELS, code)


def care_event_label(code: str) -> str:
    return _lookup(CARE_EVENT_LABELS, code)


def care_subject_label(kind: str, subject: str) -> str:
    """What an action is about: a safety item, a need or a benefit of the record form."""
    choices: dict[str, Choices] = {
        CareKind.HAZARD: SAFETY_ITEMS,
        CareKind.SERVICE: NEEDS,
        CareKind.BENEFIT: BENEFITS,
    }
    found = choices.get(kind)
    return str(choice_label(found, subject)) if found else subject


def obligation_kind_label(code: str) -> str:
    return _lookup(OBLIGATION_KIND_LABELS, code)


def mode_requirement_label(code: str) -> str:
    return _lookup(MODE_REQUIREMENT_LABELS, code)


def frequency_label(code: str) -> str:
    return _lookup(FREQUENCY_LABELS, code)


def exclusion_label(code: str) -> str:
    return _lookup(EXCLUSION_LABELS, code)


def risk_label(code: str) -> str:
    return _lookup(RISK_LABELS, code) if code else ""
