"""Reading the audit log: who saw, revealed, exported or changed whose personal data.

Only auditors read it, and each only the entries of her own area
(``tanfang.accounts.scope.audit_visible_to``). Pages go backwards in time by keyset on ``id``
(entries are appended, so a larger id is a later entry).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from tanfang.accounts.scope import audit_visible_to
from tanfang.audit.models import AuditEntry

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    """``elder``: an elder's id, or part of the label (name and masked ID) the entry keeps."""

    username: str = ""
    action: str = ""
    elder: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None


@dataclass
class AuditPage:
    entries: list[AuditEntry]
    next_before: int | None


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def audit_entries_filtered(*, user: Any, filters: AuditFilters) -> QuerySet[AuditEntry]:
    qs = audit_visible_to(user, AuditEntry.objects.all())
    if filters.username:
        qs = qs.filter(actor_username=filters.username.strip())
    if filters.action:
        qs = qs.filter(action=filters.action)
    elder = filters.elder.strip()
    if elder.isdigit():
        qs = qs.filter(elder_id=int(elder))
    elif elder:
        qs = qs.filter(elder_label__contains=elder)
    if filters.date_from is not None:
        qs = qs.filter(at__gte=_start_of(filters.date_from))
    if filters.date_to is not None:
        qs = qs.filter(at__lt=_start_of(filters.date_to + dt.timedelta(days=1)))
    return qs


def audit_page(
    *, user: Any, filters: AuditFilters, before: int | None = None, size: int = PAGE_SIZE
) -> AuditPage:
    """One page of entries, newest first (one query)."""
    qs = audit_entries_filtered(user=user, filters=filters)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return AuditPage(rows, rows[-1].pk if rows and more else None)
