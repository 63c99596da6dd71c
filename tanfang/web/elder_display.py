"""What the elder page shows, in words: facts with their sources, categories with their
reasons, missing facts, first-contact advice, the change history.

Pure presentation over an elder fetched by ``selectors.elder_detail`` (relations prefetched);
no queries of its own except through those prefetches.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from tanfang.registry.classification import render_reason
from tanfang.registry.facts import elder_facts
from tanfang.registry.first_contact_rules import advise_first_contact, first_contact_problem
from tanfang.registry.models import ContactRelation, Elder, ElderChange
from tanfang.web.labels import (
    category_label,
    field_label,
    missing_fact_label,
    reason_language,
    source_label,
)


@dataclass
class FactRow:
    key: str
    label: str
    value: str
    source: str = ""
    date: str = ""


def yes_no(value: bool | None) -> str:
    if value is None:
        return _("Unknown")
    return _("Yes") if value else _("No")


def _display(elder: Elder, name: str) -> str:
    value = getattr(elder, name)
    if isinstance(value, bool) or value is None:
        return yes_no(value)
    getter = getattr(elder, f"get_{name}_display", None)
    if getter is not None:
        shown = str(getter())
        return shown or _("Unknown")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value) if value != "" else _("Unknown")


def _row(elder: Elder, name: str, value: str | None = None, fact: str | None = None) -> FactRow:
    held = (elder.fact_sources or {}).get(fact or name) or {}
    return FactRow(
        key=name,
        label=field_label(name),
        value=_display(elder, name) if value is None else value,
        source=source_label(held.get("source", "")) if held else "",
        date=held.get("date", ""),
    )


def fact_groups(elder: Elder) -> list[tuple[str, list[FactRow]]]:
    """Scalar facts grouped as the page shows them, each with its source and date."""
    grade = elder.disability_grade
    return [
        (
            _("Family"),
            [
                _row(elder, "spouse_status"),
                _row(elder, "spouse_lives_with"),
                _row(elder, "relatives_same_subdistrict"),
                _row(elder, "daily_companionship"),
            ],
        ),
        (
            _("Disability"),
            [
                _row(elder, "disability_status"),
                _row(elder, "disability_grade", str(grade) if grade is not None else "—"),
                _row(elder, "disability_type", elder.get_disability_type_display() or "—"),
            ],
        ),
        (
            _("Extremely poor"),
            [_row(elder, "extremely_poor"), _row(elder, "dispersed_supported")],
        ),
    ]


@dataclass
class CategoryView:
    code: str
    label: str
    reason: str
    manual: bool


def category_views(elder: Elder) -> list[CategoryView]:
    """The elder's categories with the stored reason rendered in the reader's language."""
    lang = reason_language()
    out = []
    for code in elder.categories:
        key, params = (elder.category_reasons or {}).get(code) or ["", {}]
        if key == "manual_add":
            reason = _("Added by hand: %(reason)s") % {"reason": params.get("reason", "")}
            manual = True
        else:
            reason = render_reason(key, params or {}, lang) if key else ""
            manual = False
        out.append(CategoryView(code, category_label(code), reason, manual))
    return out


def removed_categories(elder: Elder) -> list[dict[str, Any]]:
    """Categories the rules assign but a worker removed by hand, with her reason."""
    active = {
        o.category: o
        for o in elder.category_overrides.all()
        if o.revoked_at is None and o.action == "remove"
    }
    return [
        {"code": c, "label": category_label(c), "override": active[c]}
        for c in elder.computed_categories
        if c in active and c not in elder.categories
    ]


def missing_facts(elder: Elder) -> list[str]:
    names = [c.name for c in elder.children.all()]
    return [missing_fact_label(path, names) for path in elder.missing_facts]


@dataclass
class FirstContactAdviceView:
    problem: str | None
    text: str


def first_contact_advice(elder: Elder, *, today: dt.date) -> FirstContactAdviceView:
    """What is wrong with the first contact, if anything, and what the plan advises."""
    children = elder_facts(elder, as_of=today).get("children")
    advice = advise_first_contact(children)
    current = elder.first_contact
    problem = first_contact_problem(
        has_current=current is not None,
        is_child=current is not None and current.relation == ContactRelation.CHILD,
        advice=advice,
        confirmed_days_ago=(today - current.confirmed_on).days if current else None,
    )
    if advice.kind == "child" and advice.child_index is not None:
        child = list(elder.children.all())[advice.child_index]
        text = _(
            "The elder has children: a child should be the first contact, for example "
            "%(name)s. Remind the child of the legal duty of support."
        ) % {"name": child.name or _("Child %(number)d") % {"number": advice.child_index + 1}}
    elif advice.kind == "community_designates":
        text = _(
            "The elder has no living children: the community designates a first contact "
            "(a member of the household may be chosen)."
        )
    else:
        text = _(
            "The children are not recorded yet: record them to know who should be "
            "the first contact."
        )
    return FirstContactAdviceView(problem, text)


def first_contact_problem_text(problem: str | None) -> str:
    if problem == "missing":
        return _("No first contact is recorded.")
    if problem == "not_a_child":
        return _("The first contact is not one of the elder's children.")
    if problem == "stale":
        return _("The first contact has not been confirmed for over a year.")
    return ""


def _choice_labels() -> dict[str, dict[str, str]]:
    """The words of each coded field of an elder (spouse, life status, ...)."""
    out = {}
    for model_field in Elder._meta.get_fields():
        choices = getattr(model_field, "choices", None)
        if choices:
            out[model_field.name] = {str(value): str(label) for value, label in choices}
    return out


def _change_value(value: Any, words: dict[str, str]) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return yes_no(value)
    return words.get(str(value), str(value))


def change_rows(changes: list[ElderChange]) -> list[dict[str, Any]]:
    """The change log with fact names and coded values in words."""
    choices = _choice_labels()
    rows = []
    for change in changes:
        items = [
            {
                "label": field_label(fact),
                "old": _change_value(pair[0], choices.get(fact, {})),
                "new": _change_value(pair[1], choices.get(fact, {})),
            }
            for fact, pair in (change.changes or {}).items()
            if isinstance(pair, list) and len(pair) == 2
        ]
        rows.append(
            {
                "at": change.at,
                "by": change.by.username if change.by else "",
                "source": source_label(change.source),
                "note": _("Record created") if change.note == "created" else change.note,
                "items": items,
            }
        )
    return rows
