"""One visit record: what was found, the risk level and why, the care actions it opened, its
corrections; its printable PDF and the blank form; and the visit section of the elder page.

Showing a record writes ``VIEW_RECORD``; downloading its PDF writes ``EXPORT`` (a copy of
personal data leaves the system). The blank form holds nobody's data and is not audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability, can
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus, PersonMet, Visit, VisitMode, VisitOutcome
from tanfang.visits.pdf import visit_pdf
from tanfang.visits.record_form import (
    SECTIONS,
    Field,
    Kind,
    choice_label,
)
from tanfang.visits.risk import reason_label
from tanfang.visits.selectors import care_actions_for, visit_visible
from tanfang.web.views.common import private
from tanfang.web.views.visit_form import correction_refused
from tanfang.web.visit_labels import (
    DETAIL_LABEL,
    WHAT_LABEL,
    care_kind_label,
    care_state_label,
    care_subject_label,
    exclusion_label,
    frequency_label,
    obligation_kind_label,
    risk_label,
)

_SEP = "、"


def _visit_or_404(request: HttpRequest, visit_id: int) -> Visit:
    visit = visit_visible(user=request.user, visit_id=visit_id)
    if visit is None:
        raise Http404
    return visit


@requires(Capability.VIEW_VISITS)
@private
def visit_detail(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = _visit_or_404(request, visit_id)
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=visit.elder,
        request=request,
        details={"page": "visit-detail", "visit": visit.pk},
    )
    user = request.user
    may_correct = can(user, Capability.RECORD_VISITS) and not correction_refused(user, visit)
    manage = can(user, Capability.MANAGE_CARE_ACTIONS)
    visible_actions = (
        set(
            care_actions_for(user=user, include_closed=True)
            .filter(visit=visit)
            .values_list("pk", flat=True)
        )
        if manage
        else set()
    )
    actions = [
        {
            "action": a,
            "kind": care_kind_label(a.kind),
            "subject": care_subject_label(a.kind, a.subject),
            "state": care_state_label(a.state),
            "url": reverse("care-detail", args=[a.pk]) if a.pk in visible_actions else "",
        }
        for a in visit.care_actions.select_related("owner").order_by("id")
    ]
    return render(
        request,
        "visits/visit_detail.html",
        {
            "visit": visit,
            "elder": visit.elder,
            "risk": risk_label(visit.risk_level),
            "reasons": [reason_label(code) for code in visit.risk_reasons or ()],
            "findings": findings(visit.sections or {}),
            "actions": actions,
            "revisions": _revisions(visit),
            "may_correct": may_correct,
            "in_home": visit.mode in (VisitMode.IN_HOME, VisitMode.COMBINED),
            "view_elders": can(user, Capability.VIEW_ELDERS),
        },
    )


# --- the findings, in words ----------------------------------------------------------------


def findings(sections: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The recorded fields of each section as (label, text, alarm) rows; empty sections are
    left out, so the page shows what the visitor found and nothing else."""
    out = []
    for section in SECTIONS:
        recorded = sections.get(section.name) or {}
        rows = [
            row
            for spec in section.fields
            if (row := _finding(spec, recorded.get(spec.name))) is not None
        ]
        if rows:
            out.append({"name": section.name, "label": section.label, "rows": rows})
    return out


def _finding(spec: Field, value: Any) -> dict[str, Any] | None:
    if value in (None, "", [], {}):
        return None
    alarm = False
    if spec.kind is Kind.ONE:
        text = str(choice_label(spec.choices, value))
    elif spec.kind is Kind.MANY:
        text = _SEP.join(str(choice_label(spec.choices, code)) for code in value)
    elif spec.kind is Kind.BOOL:
        text = _("Yes") if value else _("No")
    elif spec.kind is Kind.TEXT:
        text = str(value)
    elif spec.kind is Kind.HAZARD:
        alarm = value.get("hazard") is True
        text = _("Hazard") if alarm else _("No hazard") if "hazard" in value else ""
        if value.get("what"):
            text = f"{text} · {WHAT_LABEL}: {value['what']}" if text else str(value["what"])
    else:
        alarm = value.get("status") == "abnormal"
        text = (
            str(choice_label(spec.choices, value.get("status", ""))) if value.get("status") else ""
        )
        if value.get("detail"):
            text = f"{text} · {DETAIL_LABEL}: {value['detail']}" if text else str(value["detail"])
    return {"name": spec.name, "label": spec.label, "text": text, "alarm": alarm}


def _revisions(visit: Visit) -> list[dict[str, Any]]:
    labels = {
        "mode": _("Mode"),
        "started_at": _("Started at"),
        "ended_at": _("Ended at"),
        "person_met": _("Person met"),
        "outcome": _("Outcome"),
        "notes": _("Notes"),
        "consent": _("Consent"),
    }
    out = []
    for revision in visit.revisions.select_related("by").order_by("number"):
        items = []
        for name, pair in (revision.changes or {}).items():
            old, new = pair if isinstance(pair, list | tuple) and len(pair) == 2 else (None, pair)
            if name == "sections":
                items += list(_section_changes(old or {}, new or {}))
            else:
                items.append(
                    {
                        "label": labels.get(name, name),
                        "old": _word(name, old),
                        "new": _word(name, new),
                    }
                )
        out.append({"revision": revision, "items": items})
    return out


def _section_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for section in SECTIONS:
        before, after = old.get(section.name) or {}, new.get(section.name) or {}
        for spec in section.fields:
            if before.get(spec.name) == after.get(spec.name):
                continue
            was, now = _finding(spec, before.get(spec.name)), _finding(spec, after.get(spec.name))
            yield {
                "label": f"{section.label} · {spec.label}",
                "old": was["text"] if was else "—",
                "new": now["text"] if now else "—",
            }


def _word(name: str, value: Any) -> str:
    """A revision's old or new value of a visit field, in words."""
    if value in (None, ""):
        return "—"
    choices = {"mode": VisitMode, "outcome": VisitOutcome, "person_met": PersonMet}
    if name in choices:
        return str(dict(choices[name].choices).get(value, value))
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if name in ("started_at", "ended_at") and isinstance(value, str):
        try:
            return timezone.localtime(dt.datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return str(value)


# --- the PDFs ---------------------------------------------------------------------------------


def _language() -> str:
    return "en" if (translation.get_language() or "").startswith("en") else "zh-hans"


def visit_record_mapping(visit: Visit) -> dict[str, Any]:
    """What ``visit_pdf`` prints of a visit (see its docstring)."""
    elder = visit.elder
    location = None
    if visit.latitude is not None and visit.longitude is not None:
        location = {
            "latitude": float(visit.latitude),
            "longitude": float(visit.longitude),
            "accuracy_m": visit.location_accuracy_m,
        }
    return {
        "elder_name": elder.name,
        "elder_masked_id": elder.id_number_masked,
        "community": elder.community.name,
        "visitor_name": visit.visitor_name,
        "mode": visit.mode,
        "started_at": visit.started_at,
        "ended_at": visit.ended_at,
        "person_met": visit.person_met,
        "outcome": visit.outcome,
        "sections": visit.sections or {},
        "risk_level": visit.risk_level,
        "risk_reasons": list(visit.risk_reasons or ()),
        "notes": visit.notes,
        "consent": visit.consent,
        "location": location,
    }


def _pdf_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


@requires(Capability.VIEW_VISITS)
@private
def visit_pdf_view(request: HttpRequest, visit_id: int) -> HttpResponse:
    visit = _visit_or_404(request, visit_id)
    audit_record(
        actor=request.user,
        action=AuditAction.EXPORT,
        elder=visit.elder,
        request=request,
        details={"page": "visit-pdf", "format": "pdf", "visit": visit.pk},
    )
    content = visit_pdf(visit_record_mapping(visit), language=_language())
    return _pdf_response(content, f"visit-{visit.pk}.pdf")


@requires(Capability.VIEW_VISITS)
def visit_form_pdf(request: HttpRequest) -> HttpResponse:
    """The blank form, for visits where there is no phone (nobody's data: not audited)."""
    return _pdf_response(visit_pdf(None, language=_language()), "visit-form.pdf")


# --- the elder page's visit section --------------------------------------------------------


def elder_visit_context(request: HttpRequest, elder: Elder) -> dict[str, Any]:
    """What ``visits/_elder_visits.html`` shows on the elder page: the visit status, the
    latest visits and the open care actions (nothing without ``VIEW_VISITS``).

    ``elder`` comes from the scoped ``elder_or_404``; her status and visits are read directly
    rather than through ``elder_status``/``elder_visits``, whose scope checks would only repeat
    that one (two queries on a page whose query count is pinned)."""
    user = request.user
    if not can(user, Capability.VIEW_VISITS):
        return {"visit_section": None}
    status = ElderVisitStatus.objects.filter(elder=elder).first()
    visits = list(Visit.objects.filter(elder=elder).order_by("-started_at", "-id")[:10])
    actions = []
    if can(user, Capability.MANAGE_CARE_ACTIONS):
        actions = [
            {
                "action": a,
                "kind": care_kind_label(a.kind),
                "subject": care_subject_label(a.kind, a.subject),
                "state": care_state_label(a.state),
            }
            for a in care_actions_for(user=user).filter(elder=elder)[:20]
        ]
    return {
        "visit_section": {
            "status": status,
            "excluded": exclusion_label(status.excluded) if status and status.excluded else "",
            "frequency": frequency_label(status.frequency) if status else "",
            "risk": risk_label(status.risk_level) if status else "",
            "obligations": [
                {
                    "label": obligation_kind_label(str(o.get("kind", ""))),
                    "due_by": o.get("due_by", ""),
                }
                for o in ((status.open_obligations or []) if status else [])
            ],
            "visits": [
                {
                    "visit": v,
                    "risk": risk_label(v.risk_level),
                }
                for v in visits
            ],
            "actions": actions,
            "can_record": can(user, Capability.RECORD_VISITS),
        }
    }
