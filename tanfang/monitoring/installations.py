"""Meters and devices in elders' homes: saving one records who installed, linked or unlinked it.

Every change of a meter's or device's elder is kept as an ``InstallationEvent`` (the history
the issue asks for), written in the same transaction as the change, with an audit entry on
each elder concerned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.monitoring.models import Device, InstallationEvent, LinkAction, Meter
from tanfang.registry.models import Elder


def installation_save(
    *,
    actor: Any,
    thing: Meter | Device,
    elder_before: Elder | None,
    created: bool,
    note: str = "",
    at: dt.datetime | None = None,
) -> Meter | Device:
    """Save a meter or device (new, or changed) and record what happened to its link."""
    at = at or timezone.now()
    by = actor if getattr(actor, "pk", None) else None
    elder_after = thing.elder
    kind = "meter" if isinstance(thing, Meter) else "device"
    events: list[tuple[str, Elder | None]] = []
    if created:
        events.append((LinkAction.INSTALLED, elder_after))
    if elder_before is not None and (elder_after is None or elder_after.pk != elder_before.pk):
        events.append((LinkAction.UNLINKED, elder_before))
    if elder_after is not None and (elder_before is None or elder_after.pk != elder_before.pk):
        events.append((LinkAction.LINKED, elder_after))
    with transaction.atomic():
        thing.save()
        for action, elder in events:
            InstallationEvent.objects.create(
                **{kind: thing}, elder=elder, action=action, at=at, by=by, note=note[:200]
            )
            if elder is not None and action != LinkAction.INSTALLED:
                audit_record(
                    actor=actor,
                    action=AuditAction.UPDATE_RECORD,
                    elder=elder,
                    reason=f"{kind} {action}",
                    details={kind: str(thing), "action": str(action)},
                )
    return thing
