"""Recording that an elder is away from home (with family, travelling, in hospital).

While an absence covers a day, no person alert from a meter is raised for the elder
(``alerts.elder_at_home``; live detection marks the meters away or in hospital), so a home
left empty on purpose never calls a visitor out. Device alarms are still raised: someone
pressed the button.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.monitoring.models import Absence, AbsenceReason
from tanfang.registry.models import Elder


class AbsenceError(Exception):
    """An absence that cannot be recorded, with a message for the user."""


def absence_record(
    *,
    actor: Any,
    elder: Elder,
    reason: str,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    note: str = "",
    request: Any = None,
) -> Absence:
    """Record an absence (the caller has checked the actor's scope over the elder)."""
    if reason not in AbsenceReason.values:
        raise AbsenceError(_("Choose where the elder is."))
    if ends_on is not None and ends_on < starts_on:
        raise AbsenceError(_("The end cannot be before the start."))
    with transaction.atomic():
        absence = Absence.objects.create(
            elder=elder,
            reason=reason,
            starts_on=starts_on,
            ends_on=ends_on,
            note=note[:200],
            by=actor if getattr(actor, "pk", None) else None,
        )
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=elder,
            reason="absence recorded",
            details={
                "absence": absence.pk,
                "reason": reason,
                "starts_on": starts_on.isoformat(),
                "ends_on": ends_on.isoformat() if ends_on else None,
            },
            request=request,
        )
    return absence


def absence_end(
    *, actor: Any, absence: Absence, on: dt.date | None = None, request: Any = None
) -> Absence:
    """The elder is back: the absence ends the day before ``on`` (today by default)."""
    on = on or timezone.localdate()
    last_day = max(absence.starts_on, on - dt.timedelta(days=1))
    with transaction.atomic():
        absence.ends_on = last_day
        absence.save(update_fields=["ends_on"])
        audit_record(
            actor=actor,
            action=AuditAction.UPDATE_RECORD,
            elder=absence.elder,
            reason="absence ended",
            details={"absence": absence.pk, "ends_on": last_day.isoformat()},
            request=request,
        )
    return absence


def absences_current(elder: Elder, on: dt.date | None = None) -> list[Absence]:
    """Absences covering ``on`` or starting after it, soonest first."""
    on = on or timezone.localdate()
    return list(
        Absence.objects.filter(elder=elder)
        .exclude(ends_on__lt=on)
        .select_related("by")
        .order_by("starts_on", "id")
    )
