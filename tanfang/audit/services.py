"""Writing to the audit log: every view, reveal and export of personal data is recorded."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tanfang.audit.models import AuditAction, AuditEntry


def _client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    actor: Any,
    action: AuditAction,
    elder: Any | None = None,
    area_code: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEntry:
    """Append one entry. ``elder`` gives the subject and its area; else ``area_code`` or the
    actor's own area places the entry in the tree, so the right auditor can read it."""
    elder_label = ""
    if elder is not None:
        elder_label = f"{elder.name} {elder.id_number_masked}"
        area_code = area_code or elder.community.code
    elif not area_code and getattr(actor, "area", None) is not None:
        area_code = actor.area.code
    return AuditEntry.objects.create(
        actor=actor if getattr(actor, "pk", None) else None,
        actor_username=getattr(actor, "username", "") or "system",
        actor_role=getattr(actor, "role", "") or "",
        action=action,
        elder_id=getattr(elder, "pk", None),
        elder_label=elder_label[:100],
        area_code=area_code,
        reason=reason[:300],
        details=details or {},
        ip=_client_ip(request),
    )


def audit_records(
    *,
    actor: Any,
    action: AuditAction,
    elders: list[Any],
    reason: str = "",
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> None:
    """One entry per elder, written in one statement (list pages, exports)."""
    ip = _client_ip(request)
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(
                actor=actor if getattr(actor, "pk", None) else None,
                actor_username=getattr(actor, "username", "") or "system",
                actor_role=getattr(actor, "role", "") or "",
                action=action,
                elder_id=elder.pk,
                elder_label=f"{elder.name} {elder.id_number_masked}"[:100],
                area_code=elder.community.code,
                reason=reason[:300],
                details=details or {},
                ip=ip,
            )
            for elder in elders
        ]
    )
