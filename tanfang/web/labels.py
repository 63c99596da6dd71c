"""Words for the codes the registry stores: categories, fact paths, sources.

The classification stores codes (``living_alone``, ``children[1].away_months``); pages show
them in the reader's language. Everything here goes through gettext, so the one catalogue in
``tanfang/locale`` holds every word of the interface.
"""

from __future__ import annotations

import re

from django.utils.functional import Promise
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from tanfang.registry.classification import CATEGORIES
from tanfang.registry.models import Department

CATEGORY_LABELS: dict[str, Promise] = {
    "living_alone": gettext_lazy("Living alone"),
    "empty_nest": gettext_lazy("Empty nest"),
    "left_behind": gettext_lazy("Left behind"),
    "impaired": gettext_lazy("Impaired"),
    "severely_disabled": gettext_lazy("Severely disabled"),
    "fp_special_family": gettext_lazy("Bereaved/disabled only-child family"),
    "other": gettext_lazy("Other (district rule)"),
}


def category_label(code: str) -> str:
    label = CATEGORY_LABELS.get(code)
    return str(label) if label is not None else code


def category_choices() -> list[tuple[str, str]]:
    return [(code, category_label(code)) for code in CATEGORIES]


# Top-level facts the classification may report missing (``selectors.MISSING_FACT_GROUPS``).
FACT_LABELS: dict[str, Promise] = {
    "birth_date": gettext_lazy("Birth date"),
    "rural": gettext_lazy("Urban or rural"),
    "spouse": gettext_lazy("Spouse"),
    "children": gettext_lazy("Children"),
    "household": gettext_lazy("People living with the elder"),
    "relatives_same_subdistrict": gettext_lazy("Other relatives in the same subdistrict"),
    "daily_companionship": gettext_lazy("Daily companionship and care"),
    "capability_level": gettext_lazy("Capability assessment"),
    "disability": gettext_lazy("Disability certificate"),
    "extremely_poor": gettext_lazy("Extremely poor"),
    "dementia": gettext_lazy("Dementia"),
}

# The problems of the data-quality page.
PROBLEM_LABELS: dict[str, Promise] = {
    "missing_facts": gettext_lazy("Missing facts"),
    "missing_first_contact": gettext_lazy("No first contact"),
    "first_contact_not_child": gettext_lazy(
        "First contact is not a child, although there are children"
    ),
    "stale_first_contact": gettext_lazy("First contact not confirmed for over a year"),
    "old_facts": gettext_lazy("Facts older than a year"),
    "willingness_unknown": gettext_lazy("Willingness to be visited not recorded"),
    "duplicates": gettext_lazy("Possible duplicates (same name and birth date)"),
}


def problem_label(key: str) -> str:
    if key.startswith("missing:"):
        group = key.removeprefix("missing:")
        label = FACT_LABELS.get(group)
        return _("Missing: %(fact)s") % {"fact": label if label is not None else group}
    found = PROBLEM_LABELS.get(key)
    return str(found) if found is not None else key


_SUB_FACT_LABELS: dict[str, Promise] = {
    "spouse.alive": gettext_lazy("Whether the spouse is alive"),
    "spouse.lives_with": gettext_lazy("Whether the spouse lives with the elder"),
    "disability.grade": gettext_lazy("Disability grade"),
    "disability.type": gettext_lazy("Disability type"),
}

_CHILD_FACT_LABELS: dict[str, Promise] = {
    "alive": gettext_lazy("alive or not"),
    "age": gettext_lazy("age (birth year)"),
    "lives_with": gettext_lazy("lives with the elder or not"),
    "same_subdistrict": gettext_lazy("lives in the same subdistrict or not"),
    "away_months": gettext_lazy("months away"),
    "can_support": gettext_lazy("able to support or not"),
    "disability_grade": gettext_lazy("disability grade"),
}

_HOUSEHOLD_FACT_LABELS: dict[str, Promise] = {
    "age": gettext_lazy("age"),
    "relation": gettext_lazy("relation"),
}

_ITEM_PATH = re.compile(r"^(children|household)\[(\d+)\]\.([a-z_]+)$")


def fact_group(path: str) -> str:
    """The top-level fact of a path: ``children[2].alive`` → ``children``."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def missing_fact_label(path: str, child_names: list[str] | None = None) -> str:
    """A missing fact in words: ``children[0].away_months`` → "Child 1 (张伟): months away"."""
    match = _ITEM_PATH.match(path)
    if match:
        kind, index, key = match.group(1), int(match.group(2)), match.group(3)
        if kind == "children":
            what = _CHILD_FACT_LABELS.get(key, key)
            name = (child_names or [])[index] if index < len(child_names or []) else ""
            if name:
                return _("Child %(number)d (%(name)s): %(fact)s") % {
                    "number": index + 1,
                    "name": name,
                    "fact": what,
                }
            return _("Child %(number)d: %(fact)s") % {"number": index + 1, "fact": what}
        what = _HOUSEHOLD_FACT_LABELS.get(key, key)
        return _("Household member %(number)d: %(fact)s") % {"number": index + 1, "fact": what}
    label = _SUB_FACT_LABELS.get(path) or FACT_LABELS.get(path)
    return str(label) if label is not None else path


# Scalar facts of the Elder row and the change log, by field name.
FIELD_LABELS: dict[str, Promise] = {
    "name": gettext_lazy("Name"),
    "gender": gettext_lazy("Gender"),
    "birth_date": gettext_lazy("Birth date"),
    "id_number": gettext_lazy("Resident ID"),
    "phone": gettext_lazy("Phone"),
    "community": gettext_lazy("Community"),
    "grid": gettext_lazy("Grid"),
    "address": gettext_lazy("Address"),
    "spouse_status": gettext_lazy("Spouse"),
    "spouse_lives_with": gettext_lazy("Lives with spouse"),
    "relatives_same_subdistrict": gettext_lazy("Other relatives in the same subdistrict"),
    "daily_companionship": gettext_lazy("Daily companionship and care"),
    "disability_status": gettext_lazy("Disability certificate"),
    "disability_grade": gettext_lazy("Disability grade"),
    "disability_type": gettext_lazy("Disability type"),
    "extremely_poor": gettext_lazy("Extremely poor"),
    "dispersed_supported": gettext_lazy("Supported at home"),
    "life_status": gettext_lazy("Life status"),
}


def field_label(name: str) -> str:
    label = FIELD_LABELS.get(name)
    return str(label) if label is not None else name


def source_label(source: str) -> str:
    """Where a fact came from, in words: a department, a named user, or the raw source."""
    if not source:
        return _("unknown source")
    if source.startswith("user:"):
        return _("entered by %(user)s") % {"user": source[5:]}
    if source in Department.values:
        return str(Department(source).label)
    return source


def reason_language() -> str:
    """The language code ``render_reason`` understands for the active language."""
    return "en" if (get_language() or "").startswith("en") else "zh-hans"
