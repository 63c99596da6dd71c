"""One elder's page and the small forms on it: reveal an identifier, change a category by
hand, set the first contact. Every rendering of the page is audited (``VIEW_RECORD``)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.identity import IdentifierError
from tanfang.registry.models import Elder
from tanfang.registry.selectors import elder_changes
from tanfang.registry.services import (
    AccessDenied,
    RegistryError,
    category_override,
    first_contact_set,
    identifier_reveal,
)
from tanfang.web.elder_display import (
    category_views,
    change_rows,
    fact_groups,
    first_contact_advice,
    first_contact_problem_text,
    missing_facts,
    removed_categories,
)
from tanfang.web.forms import CategoryOverrideForm, FirstContactForm, RevealForm
from tanfang.web.views.common import elder_or_404, private
from tanfang.web.views.monitoring_elder import elder_monitoring_context
from tanfang.web.views.visit_page import elder_visit_context


def render_elder(
    request: HttpRequest,
    elder: Elder,
    *,
    revealed: dict[str, str] | None = None,
    reveal_form: RevealForm | None = None,
    override_form: CategoryOverrideForm | None = None,
    contact_form: FirstContactForm | None = None,
    absence_form: Any = None,
    family_form: Any = None,
    status: int = 200,
) -> HttpResponse:
    audit_record(actor=request.user, action=AuditAction.VIEW_RECORD, elder=elder, request=request)
    today = timezone.localdate()
    advice = first_contact_advice(elder, today=today)
    birth = elder.birth_date
    context: dict[str, Any] = {
        "elder": elder,
        "age": today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day)),
        "fact_groups": fact_groups(elder),
        "categories": category_views(elder),
        "removed_categories": removed_categories(elder),
        "missing_facts": missing_facts(elder),
        "advice": advice,
        "first_contact_problem": first_contact_problem_text(advice.problem),
        "first_contacts": list(elder.first_contacts.all()),
        "children": list(elder.children.all()),
        "household": list(elder.household.all()),
        "assessments": list(elder.assessments.all()),
        "contracts": list(elder.contracts.all()),
        "willingness": list(elder.willingness_records.all()),
        "overrides": list(elder.category_overrides.all()),
        "changes": change_rows(elder_changes(elder=elder)),
        "revealed": revealed or {},
        "reveal_form": reveal_form,
        "override_form": override_form or CategoryOverrideForm(),
        "contact_form": contact_form or FirstContactForm(elder=elder),
        "fact_sources": elder.fact_sources or {},
    }
    context.update(elder_visit_context(request, elder))
    # Monitoring (issue 4): meters, devices, absences, recent alerts.
    context.update(elder_monitoring_context(request, elder, absence_form=absence_form))
    # Referrals (issue 5): the elder's needs referred to her subdistrict.
    from tanfang.web.views.referrals import elder_referral_context

    context.update(elder_referral_context(request, elder))
    # Emergencies (issue 5): her open case and "report an emergency".
    from tanfang.web.views.emergencies import elder_emergency_context

    context.update(elder_emergency_context(request, elder))
    # Family notifications (issue 5): the contact list and who was told what.
    from tanfang.web.views.notifications import elder_notification_context

    context.update(elder_notification_context(request, elder, family_form=family_form))
    return render(request, "web/elder_detail.html", context, status=status)


@requires(Capability.VIEW_ELDERS)
@private
def elder_detail(request: HttpRequest, elder_id: int) -> HttpResponse:
    return render_elder(request, elder_or_404(request, elder_id))


@requires(Capability.REVEAL_IDENTIFIERS)
@private
@require_POST
def elder_reveal(request: HttpRequest, elder_id: int) -> HttpResponse:
    """Show the full ID or phone number once, on this response only; the reason is audited."""
    elder = elder_or_404(request, elder_id)
    form = RevealForm(request.POST)
    if not form.is_valid():
        return render_elder(request, elder, reveal_form=form, status=400)
    field = form.cleaned_data["field"]
    if field == "phone" and not elder.phone_masked:
        form.add_error("reason", _("No phone number is recorded."))
        return render_elder(request, elder, reveal_form=form, status=400)
    try:
        value = identifier_reveal(
            actor=request.user,
            elder=elder,
            field_name=field,
            reason=form.cleaned_data["reason"],
            request=request,
        )
    except RegistryError as exc:
        form.add_error("reason", str(exc))
        return render_elder(request, elder, reveal_form=form, status=400)
    except AccessDenied as exc:
        raise PermissionDenied from exc
    return render_elder(request, elder, revealed={field: value})


@requires(Capability.OVERRIDE_CATEGORY)
@private
@require_POST
def elder_override(request: HttpRequest, elder_id: int) -> HttpResponse:
    """Add or remove a category by hand; a reason is required and audited."""
    elder = elder_or_404(request, elder_id)
    form = CategoryOverrideForm(request.POST)
    if form.is_valid():
        try:
            category_override(
                actor=request.user,
                elder=elder,
                category=form.cleaned_data["category"],
                action=form.cleaned_data["action"],
                reason=form.cleaned_data["reason"],
            )
        except RegistryError as exc:
            form.add_error(None, str(exc))
        except AccessDenied as exc:
            raise PermissionDenied from exc
        else:
            messages.success(request, _("The categories were changed and the reason recorded."))
            return redirect(reverse("elder-detail", args=[elder.pk]) + "#categories")
    return render_elder(request, elder, override_form=form, status=400)


@requires(Capability.EDIT_ELDERS)
@private
@require_POST
def elder_first_contact(request: HttpRequest, elder_id: int) -> HttpResponse:
    """Make someone the first contact; the previous one stays in the history."""
    elder = elder_or_404(request, elder_id)
    form = FirstContactForm(request.POST, elder=elder)
    if form.is_valid():
        d = form.cleaned_data
        try:
            first_contact_set(
                actor=request.user,
                elder=elder,
                name=d["name"],
                relation=d["relation"],
                phone=d["phone"],
                designated_by_community=d["designated_by_community"],
                child=form.children.get(d["child"]) if d["child"] else None,
                note=d["note"],
            )
        except (RegistryError, IdentifierError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("The first contact was set."))
            return redirect(reverse("elder-detail", args=[elder.pk]) + "#first-contact")
    return render_elder(request, elder, contact_form=form, status=400)
