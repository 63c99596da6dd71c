"""Every change to the registry goes through these functions (views, API, import, demo alike)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.roles import Capability, can
from tanfang.areas.models import Area, AreaLevel
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.core import crypto
from tanfang.registry import classification as rules
from tanfang.registry.errors import AccessDenied, RegistryError
from tanfang.registry.identity import (
    mask_phone,
    normalise_id_number,
    normalise_phone,
)
from tanfang.registry.models import (
    CategoryOverride,
    Child,
    ContactRelation,
    Elder,
    ElderChange,
    FirstContact,
    LifeStatus,
    OtherCategoryRule,
)
from tanfang.registry.reclassify import elders_reclassify, other_rules_for
from tanfang.registry.records import (
    UNSET,
    ElderRecord,
)
from tanfang.registry.upsert import UpsertResult, elders_upsert

__all__ = [
    "AccessDenied",
    "RegistryError",
    "UpsertResult",
    "elders_reclassify",
    "elders_upsert",
    "other_rules_for",
]


def category_override(
    *, actor: Any, elder: Elder, category: str, action: str, reason: str
) -> CategoryOverride:
    """Add or remove a category by hand. A reason is required; the change is audited."""
    if not can(actor, Capability.OVERRIDE_CATEGORY):
        raise AccessDenied
    if category not in rules.CATEGORIES:
        raise RegistryError(_("unknown category: %(category)s") % {"category": category})
    if not reason.strip():
        raise RegistryError(_("a reason is required to change a category by hand"))
    with transaction.atomic():
        CategoryOverride.objects.filter(
            elder=elder, category=category, revoked_at__isnull=True
        ).update(revoked_at=timezone.now(), revoked_by=actor)
        override = CategoryOverride.objects.create(
            elder=elder,
            category=category,
            action=action,
            reason=reason.strip(),
            created_by=actor,
        )
        elders_reclassify(elders=[elder])
        audit_record(
            actor=actor,
            action=AuditAction.OVERRIDE_CATEGORY,
            elder=elder,
            reason=reason,
            details={"category": category, "action": action},
        )
    return override


def first_contact_set(
    *,
    actor: Any,
    elder: Elder,
    name: str,
    relation: str,
    phone: str,
    designated_by_community: bool = False,
    child: Child | None = None,
    note: str = "",
    audit: bool = True,
) -> FirstContact:
    """Make this person the elder's one current first contact; the previous one is kept."""
    if not name.strip():
        raise RegistryError(_("the first contact needs a name"))
    number = normalise_phone(phone)
    if relation not in ContactRelation.values:
        raise RegistryError(_("unknown relation: %(relation)s") % {"relation": relation})
    now = timezone.now()
    with transaction.atomic():
        FirstContact.objects.filter(elder=elder, is_current=True).update(
            is_current=False, valid_to=now
        )
        contact = FirstContact.objects.create(
            elder=elder,
            name=name.strip(),
            relation=relation,
            child=child,
            phone_cipher=crypto.encrypt(number),
            phone_masked=mask_phone(number),
            designated_by_community=designated_by_community,
            valid_from=now,
            confirmed_on=timezone.localdate(),
            set_by=actor if getattr(actor, "pk", None) else None,
            note=note[:200],
        )
        elder.first_contact = contact
        elder.save(update_fields=["first_contact", "updated_at"])
        if audit:
            audit_record(
                actor=actor,
                action=AuditAction.SET_FIRST_CONTACT,
                elder=elder,
                details={"relation": relation, "designated_by_community": designated_by_community},
            )
    return contact


def life_status_set(*, actor: Any, elder: Elder, status: str, since: dt.date, source: str) -> None:
    """Record that an elder moved away, is in hospital or an institution, or died."""
    if status not in LifeStatus.values:
        raise RegistryError(_("unknown life status: %(status)s") % {"status": status})
    if elder.life_status == status:
        return
    with transaction.atomic():
        old = elder.life_status
        elder.life_status = status
        elder.life_status_since = since
        sources = dict(elder.fact_sources or {})
        sources["life_status"] = {"source": source, "date": since.isoformat()}
        elder.fact_sources = sources
        elder.save(update_fields=["life_status", "life_status_since", "fact_sources", "updated_at"])
        ElderChange.objects.create(
            elder=elder,
            by=actor if getattr(actor, "pk", None) else None,
            source=source,
            changes={"life_status": [old, status]},
        )


REVEALABLE = ("id_number", "phone")


def identifier_reveal(
    *, actor: Any, elder: Elder, field_name: str, reason: str, request: Any = None
) -> str:
    """Show an identifier in full to a user allowed to see it, with a reason; audited."""
    if field_name not in REVEALABLE:
        raise RegistryError(_("this field cannot be revealed"))
    if (
        not can(actor, Capability.REVEAL_IDENTIFIERS)
        or not Elder.objects.visible_to(actor).filter(pk=elder.pk).exists()
    ):
        raise AccessDenied
    if len(reason.strip()) < 2:
        raise RegistryError(_("say why you need to see this number"))
    cipher = elder.id_number_cipher if field_name == "id_number" else elder.phone_cipher
    value = crypto.decrypt(cipher)
    audit_record(
        actor=actor,
        action=AuditAction.REVEAL_IDENTIFIER,
        elder=elder,
        reason=reason.strip(),
        details={"field": field_name},
        request=request,
    )
    return value


def find_by_id_number(queryset: Any, raw: str) -> Any:
    """Filter ``queryset`` to the elder with this full ID number, through the blind index."""
    number = raw.strip().upper()
    return queryset.filter(id_number_hash=crypto.blind_index("id", number))


def find_by_phone(queryset: Any, raw: str) -> Any:
    try:
        number = normalise_phone(raw)
    except ValueError:
        return queryset.none()
    return queryset.filter(phone_hash=crypto.blind_index("phone", number))


# --------------------------------------------------------------------------- forms (web)


def user_source(actor: Any) -> str:
    """The source recorded for facts a person entered by hand: ``user:<username>``."""
    return f"user:{getattr(actor, 'username', '') or 'unknown'}"


def _require_visible_community(actor: Any, code: Any) -> None:
    if code is UNSET:
        return
    if not Area.objects.visible_to(actor).filter(code=code, level=AreaLevel.COMMUNITY).exists():
        raise AccessDenied


def elder_create(*, actor: Any, record: ElderRecord, request: Any = None) -> Elder:
    """Register one elder entered by hand; audited.

    The ID number must be new to the whole registry: an upsert would otherwise merge the
    form into a record elsewhere, which the user may not even see. Facts get the user as
    their source and today as their date.
    """
    if not can(actor, Capability.EDIT_ELDERS):
        raise AccessDenied
    if record.community_code is UNSET or not record.name:
        raise RegistryError(_("a new elder needs at least a name and a community"))
    _require_visible_community(actor, record.community_code)
    number = normalise_id_number(record.id_number)
    if Elder.objects.filter(id_number_hash=crypto.blind_index("id", number)).exists():
        raise RegistryError(_("an elder with this resident ID number is already registered"))
    with transaction.atomic():
        result = elders_upsert(
            actor=actor,
            records=[record],
            source=user_source(actor),
            source_date=timezone.localdate(),
        )
        elder = Elder.objects.select_related("community").get(pk=result.elder_ids[0])
        audit_record(actor=actor, action=AuditAction.CREATE_RECORD, elder=elder, request=request)
    return elder


def elder_edit(
    *,
    actor: Any,
    elder: Elder,
    record: ElderRecord,
    life_status: str = "",
    request: Any = None,
) -> bool:
    """Apply the facts of an edit form to ``elder``; audited when anything changed.

    The ID number cannot be changed here: ``record.id_number`` is ignored and the elder's own
    number used. A changed ``life_status`` goes through ``life_status_set`` dated today.
    Returns whether anything changed; the audit entry names the scalar facts that did.
    """
    if (
        not can(actor, Capability.EDIT_ELDERS)
        or not Elder.objects.visible_to(actor).filter(pk=elder.pk).exists()
    ):
        raise AccessDenied
    _require_visible_community(actor, record.community_code)

    record = replace(record, id_number=crypto.decrypt(elder.id_number_cipher))
    today = timezone.localdate()
    source = user_source(actor)
    with transaction.atomic():
        last = (
            ElderChange.objects.filter(elder=elder).order_by("-id").values_list("id", flat=True)
        ).first() or 0
        elders_upsert(actor=actor, records=[record], source=source, source_date=today)
        fresh = Elder.objects.select_related("community").get(pk=elder.pk)
        if life_status and life_status != fresh.life_status:
            life_status_set(
                actor=actor, elder=fresh, status=life_status, since=today, source=source
            )
        new_changes = list(ElderChange.objects.filter(elder=elder, id__gt=last))
        if new_changes:
            audit_record(
                actor=actor,
                action=AuditAction.UPDATE_RECORD,
                elder=fresh,
                request=request,
                details={"changed": sorted({f for c in new_changes for f in c.changes})},
            )
    return bool(new_changes)


# --------------------------------------------------------------------------- "other" rules

RECLASSIFY_BATCH = 1000


def other_rule_editable_districts(actor: Any) -> Any:
    """The districts whose "other" rules ``actor`` may write: every district of her city for
    the city administrator, her own for a district supervisor, none for anyone else."""
    from tanfang.accounts.models import Role

    if not can(actor, Capability.BACK_OFFICE) or actor.role not in (
        Role.CITY_ADMIN,
        Role.DISTRICT_SUPERVISOR,
    ):
        return Area.objects.none()
    return Area.objects.visible_to(actor).filter(level=AreaLevel.DISTRICT)


def other_rule_save(
    *,
    actor: Any,
    district: Area,
    code: str,
    label: str,
    conditions: dict[str, Any],
    active: bool,
    rule: OtherCategoryRule | None = None,
) -> OtherCategoryRule:
    """Create (``rule`` None) or change a district's rule for the "other" category, then
    reclassify every elder of the district (of both districts, if the rule moved).

    Steps: check that the actor may write the district's rules (and the rule's old district);
    compile the rule with the classification's own compiler, so a rule that would fail at
    classification time is refused now, naming the field; save it; reclassify in batches.
    """
    editable = other_rule_editable_districts(actor)
    if not editable.filter(pk=district.pk).exists():
        raise AccessDenied
    if not isinstance(conditions, dict):
        raise RegistryError(_('the conditions are an object with one key, "all"'))
    try:
        rules.compile_other_rules([{"code": code, "label": label, **conditions}])
    except rules.RuleError as exc:
        raise RegistryError(str(exc)) from exc
    previous: int | None = None
    with transaction.atomic():
        clash = OtherCategoryRule.objects.filter(district=district, code=code)
        if rule is not None and rule.pk is not None:
            clash = clash.exclude(pk=rule.pk)
        if clash.exists():
            raise RegistryError(_("this district already has a rule with this code"))
        if rule is None or rule.pk is None:
            saved = OtherCategoryRule.objects.create(
                district=district, code=code, label=label, conditions=conditions, active=active
            )
        else:
            saved = OtherCategoryRule.objects.select_for_update().get(pk=rule.pk)
            previous = saved.district_id
            if not editable.filter(pk=previous).exists():
                raise AccessDenied
            saved.district = district
            saved.code, saved.label = code, label
            saved.conditions, saved.active = conditions, active
            saved.save(update_fields=["district", "code", "label", "conditions", "active"])
    for district_id in sorted({district.pk, previous or district.pk}):
        district_reclassify(district_id=district_id)
    return saved


def district_reclassify(*, district_id: int, batch_size: int = RECLASSIFY_BATCH) -> int:
    """Reclassify every elder of a district, ``batch_size`` at a time (keyset on id, one
    transaction per batch, so a large district never holds one long write lock); returns how
    many. Safe to run again after an interruption."""
    done, after = 0, 0
    while True:
        batch = list(
            Elder.objects.filter(district_id=district_id, id__gt=after)
            .order_by("id")
            .prefetch_related("children", "household")[:batch_size]
        )
        if not batch:
            return done
        with transaction.atomic():
            elders_reclassify(elders=batch)
        done += len(batch)
        after = batch[-1].pk
