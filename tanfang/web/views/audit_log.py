"""The auditor's page: who saw, revealed, exported or changed whose personal data, and why."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tanfang.accounts.access import requires
from tanfang.accounts.models import Role
from tanfang.accounts.roles import Capability
from tanfang.audit.selectors import AuditFilters, audit_page
from tanfang.web.forms import AuditFilterForm
from tanfang.web.views.common import int_param, private


@requires(Capability.READ_AUDIT_LOG)
@private
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    data: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        data = form.cleaned_data
    filters = AuditFilters(
        username=data.get("username") or "",
        action=data.get("action") or "",
        elder=data.get("elder") or "",
        date_from=data.get("date_from"),
        date_to=data.get("date_to"),
    )
    page = audit_page(user=request.user, filters=filters, before=int_param(request, "before"))
    roles = dict(Role.choices)
    query = request.GET.copy()
    query.pop("before", None)
    return render(
        request,
        "web/audit_log.html",
        {
            "form": form,
            "page": page,
            "roles": roles,
            "rows": [
                {"entry": e, "role": roles.get(e.actor_role, e.actor_role)} for e in page.entries
            ],
            "filter_query": query.urlencode(),
        },
    )
