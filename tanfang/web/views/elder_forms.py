"""Creating and editing an elder by hand. The facts get the user as their source and today
as their date; writes go through ``elder_create`` / ``elder_edit``, which audit them."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.areas.models import AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.identity import IdentifierError
from tanfang.registry.models import Elder
from tanfang.registry.selectors import communities_for_choice
from tanfang.registry.services import AccessDenied, RegistryError, elder_create, elder_edit
from tanfang.web.forms import (
    ChildFormSet,
    ElderForm,
    HouseholdFormSet,
    children_initial,
    elder_initial,
    formset_records,
    household_initial,
)
from tanfang.web.views.common import elder_or_404, private


def _recorded_by(request: HttpRequest) -> str:
    user: Any = request.user
    return str(user.get_full_name() or user.username)


def _forms(request: HttpRequest, *, elder: Elder | None) -> tuple[ElderForm, Any, Any]:
    communities = communities_for_choice(user=request.user)
    creating = elder is None
    data = request.POST if request.method == "POST" else None
    if elder is None:
        area = getattr(request.user, "area", None)
        initial: dict[str, Any] = {}
        if area is not None and area.level == AreaLevel.COMMUNITY:
            initial["community"] = area.pk
        children: list[dict[str, Any]] = []
        household: list[dict[str, Any]] = []
    else:
        initial = elder_initial(elder)
        children = children_initial(elder)
        household = household_initial(elder)
    form = ElderForm(data, initial=initial, communities=communities, creating=creating)
    return (
        form,
        ChildFormSet(data, initial=children, prefix="children"),
        HouseholdFormSet(data, initial=household, prefix="household"),
    )


def _render(
    request: HttpRequest,
    form: ElderForm,
    children: Any,
    household: Any,
    elder: Elder | None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "web/elder_form.html",
        {"form": form, "children": children, "household": household, "elder": elder},
        status=status,
    )


@requires(Capability.EDIT_ELDERS)
@private
def elder_new(request: HttpRequest) -> HttpResponse:
    form, children, household = _forms(request, elder=None)
    if request.method == "POST":
        if form.is_valid() and children.is_valid() and household.is_valid():
            record = form.to_record(
                id_number=form.cleaned_data["id_number"],
                children=formset_records(children),
                household=formset_records(household),
                recorded_by=_recorded_by(request),
            )
            try:
                elder = elder_create(actor=request.user, record=record, request=request)
            except (RegistryError, IdentifierError) as exc:
                form.add_error(None, str(exc))
            except AccessDenied as exc:
                raise PermissionDenied from exc
            else:
                messages.success(request, _("The elder was registered."))
                return redirect("elder-detail", elder.pk)
        return _render(request, form, children, household, None, status=400)
    return _render(request, form, children, household, None)


@requires(Capability.EDIT_ELDERS)
@private
def elder_change(request: HttpRequest, elder_id: int) -> HttpResponse:
    elder = elder_or_404(request, elder_id)
    form, children, household = _forms(request, elder=elder)
    if request.method == "POST":
        if form.is_valid() and children.is_valid() and household.is_valid():
            record = form.to_record(
                id_number="",  # elder_edit keeps the elder's own number
                children=formset_records(children),
                household=formset_records(household),
                recorded_by=_recorded_by(request),
            )
            try:
                changed = elder_edit(
                    actor=request.user,
                    elder=elder,
                    record=record,
                    life_status=form.cleaned_data.get("life_status", ""),
                    request=request,
                )
            except (RegistryError, IdentifierError) as exc:
                form.add_error(None, str(exc))
            except AccessDenied as exc:
                raise PermissionDenied from exc
            else:
                messages.success(
                    request,
                    _("The record was saved.") if changed else _("Saved; nothing had changed."),
                )
                return redirect("elder-detail", elder.pk)
        return _render(request, form, children, household, elder, status=400)
    # The form shows the record's facts: a view of a personal record.
    audit_record(
        actor=request.user,
        action=AuditAction.VIEW_RECORD,
        elder=elder,
        request=request,
        details={"page": "elder-edit"},
    )
    return _render(request, form, children, household, elder)
