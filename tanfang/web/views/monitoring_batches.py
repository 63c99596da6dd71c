"""The data partners' delivery report: every batch of readings received (file, HTTP push,
MQTT), what was stored, what was a duplicate and what was set aside and why, and the
readings set aside of one batch.

Who sees what (``VIEW_INGEST_REPORTS``): a data partner's user the batches of the partners
she is the contact of; a user who manages monitoring (``MANAGE_MONITORING``: the city
administrator, a district supervisor, subdistrict staff) every partner's, as in the back
office: partners are the city's and a batch holds meters and counts, never an elder. A batch
outside the user's reach answers 404, exactly like one that does not exist. Nothing here
names an elder, so the pages write no audit entry.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from tanfang.accounts.access import requires
from tanfang.accounts.roles import Capability, can
from tanfang.monitoring.checks import REASONS
from tanfang.monitoring.ingest import QUARANTINE_ROWS_KEPT, reason_text
from tanfang.monitoring.models import DataPartner, IngestBatch, IngestSource
from tanfang.web.views.common import int_param, private

PAGE_SIZE = 50
LIST_FIELDS = (
    "id",
    "source",
    "name",
    "received_at",
    "rows",
    "stored",
    "duplicates",
    "quarantined",
    "reasons",
    "first_ts",
    "last_ts",
    "partner__id",
    "partner__code",
    "partner__name",
)


# -- scope ---------------------------------------------------------------------------------
def partners_reported_to(user: Any) -> QuerySet[DataPartner]:
    """The partners whose deliveries ``user`` may read."""
    if not can(user, Capability.VIEW_INGEST_REPORTS):
        return DataPartner.objects.none()
    if can(user, Capability.MANAGE_MONITORING):
        return DataPartner.objects.all()
    return DataPartner.objects.filter(contact_id=user.pk)


def batches_visible_to(user: Any) -> QuerySet[IngestBatch]:
    """The batches of the partners ``user`` may read (``partners_reported_to``)."""
    if not can(user, Capability.VIEW_INGEST_REPORTS):
        return IngestBatch.objects.none()
    if can(user, Capability.MANAGE_MONITORING):
        return IngestBatch.objects.all()
    return IngestBatch.objects.filter(partner__contact_id=user.pk)


# -- words ---------------------------------------------------------------------------------
def source_label(source: str) -> str:
    try:
        return str(IngestSource(source).label)
    except ValueError:
        return source


def reason_counts(reasons: dict[str, int] | None) -> list[dict[str, Any]]:
    """``{"bad_value": 3, ...}`` as labelled counts, in the order the checks run."""
    reasons = reasons or {}
    known = [r for r in REASONS if reasons.get(r)]
    others = sorted(r for r in reasons if r not in REASONS and reasons[r])
    return [
        {"reason": r, "label": reason_text(r), "count": int(reasons[r])} for r in known + others
    ]


def batch_row(batch: IngestBatch) -> dict[str, Any]:
    return {
        "batch": batch,
        "url": reverse("ingest-batch-detail", args=[batch.pk]),
        "source": source_label(batch.source),
        "reasons": reason_counts(batch.reasons),
    }


# -- the list ------------------------------------------------------------------------------
@requires(Capability.VIEW_INGEST_REPORTS)
@require_GET
@private
def ingest_batch_list(request: HttpRequest) -> HttpResponse:
    """The batches the user may read, newest first, 50 a page; filters: the partner, only
    batches with readings set aside."""
    partners = list(partners_reported_to(request.user).only("id", "code", "name"))
    partner_id = int_param(request, "partner")
    if partner_id not in {p.pk for p in partners}:
        partner_id = None
    problems = request.GET.get("problems") == "on"
    batches = batches_visible_to(request.user)
    if partner_id is not None:
        batches = batches.filter(partner_id=partner_id)
    if problems:
        batches = batches.filter(quarantined__gt=0)
    batches = batches.select_related("partner").only(*LIST_FIELDS).order_by("-received_at", "-id")
    page = Paginator(batches, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "monitoring/batches.html",
        {
            "partners": partners,
            "show_partner": len(partners) != 1,
            "filters": {"partner": partner_id, "problems": problems},
            "page": page,
            "rows": [batch_row(b) for b in page.object_list],
            "filter_query": query.urlencode(),
        },
    )


# -- one batch -----------------------------------------------------------------------------
@requires(Capability.VIEW_INGEST_REPORTS)
@require_GET
@private
def ingest_batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    """One batch: its counts, its reasons and the readings set aside that were kept (the
    first 1000; the store keeps every one)."""
    batch = batches_visible_to(request.user).select_related("partner").filter(pk=batch_id).first()
    if batch is None:
        raise Http404
    kept = list(batch.set_aside.order_by("row", "id")[:QUARANTINE_ROWS_KEPT])
    return render(
        request,
        "monitoring/batches_detail.html",
        {
            "row": batch_row(batch),
            "batch": batch,
            "set_aside": [{"q": q, "reason": reason_text(q.reason, q.detail)} for q in kept],
            "not_listed": max(0, batch.quarantined - len(kept)),
        },
    )
