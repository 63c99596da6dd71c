"""Every change to the registry goes through these functions (views, API, import, demo alike)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
from tanfang.registry.capability import to_beijing_level
from tanfang.registry.facts import elder_facts
from tanfang.registry.identity import (
    birth_date_of,
    mask_id_number,
    mask_phone,
    normalise_id_number,
    normalise_phone,
)
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    CategoryOverride,
    Child,
    ContactRelation,
    Elder,
    ElderChange,
    FirstContact,
    HouseholdMember,
    LifeStatus,
    OtherCategoryRule,
    OverrideAction,
    Willingness,
)
from tanfang.registry.records import SCALAR_FACTS, UNSET, ElderRecord


class RegistryError(ValueError):
    """A change the registry refuses; the message is for the user."""


class AccessDenied(PermissionError):
    pass


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    elder_ids: list[int] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _fact_is_newer(elder: Elder, fact: str, source_date: dt.date) -> bool:
    """A fact is only overwritten by news at least as recent as what we hold."""
    held = (elder.fact_sources or {}).get(fact)
    return held is None or held.get("date", "") <= source_date.isoformat()


def _apply_record(
    elder: Elder,
    record: ElderRecord,
    communities: dict[str, Area],
    grids: dict[str, Area],
    source: str,
    source_date: dt.date,
) -> dict[str, list[Any]]:
    """Copy the record's scalar facts onto ``elder``; return {fact: [old, new]} of changes."""
    changes: dict[str, list[Any]] = {}
    sources = dict(elder.fact_sources or {})

    def put(fact: str, attr: str, new: Any, shown: Any = None) -> None:
        old = getattr(elder, attr)
        if old == new or not _fact_is_newer(elder, fact, source_date):
            return
        setattr(elder, attr, new)
        changes[fact] = [_jsonable(old), _jsonable(new if shown is None else shown)]
        sources[fact] = {"source": source, "date": source_date.isoformat()}

    for fact in SCALAR_FACTS:
        value = getattr(record, fact)
        if value is not UNSET:
            put(fact, fact, value if value is not None or fact not in _BLANK_STRINGS else "")
    if record.phone is not UNSET:
        phone = record.phone or ""
        new_hash = crypto.blind_index("phone", phone)
        if new_hash != elder.phone_hash and _fact_is_newer(elder, "phone", source_date):
            changes["phone"] = [elder.phone_masked, mask_phone(phone) if phone else ""]
            elder.phone_hash = new_hash
            elder.phone_cipher = crypto.encrypt(phone)
            elder.phone_masked = mask_phone(phone) if phone else ""
            sources["phone"] = {"source": source, "date": source_date.isoformat()}
    if record.community_code is not UNSET:
        community = communities[record.community_code]
        if elder.community_id != community.pk:
            changes["community"] = [
                getattr(elder.community, "code", None) if elder.community_id else None,
                community.code,
            ]
            elder.community = community
            # Copy ancestor ids, not objects: loading them would cost a query per elder.
            assert community.subdistrict_id and community.district_id and community.city_id
            elder.subdistrict_id = community.subdistrict_id
            elder.district_id = community.district_id
            elder.city_id = community.city_id
            elder.rural = community.is_rural
            sources["community"] = {"source": source, "date": source_date.isoformat()}
    if record.grid_code is not UNSET:
        grid = grids.get(record.grid_code) if record.grid_code else None
        put("grid", "grid", grid, getattr(grid, "code", None))
    elder.fact_sources = sources
    return changes


_BLANK_STRINGS = {"spouse_status", "disability_status", "disability_type", "address"}


def _sync_children(elder: Elder, record: ElderRecord, source: str, source_date: dt.date) -> bool:
    if record.children is UNSET:
        return False
    if record.children is None:
        if not elder.children_known:
            return False
        elder.children_known = False
        Child.objects.filter(elder=elder).delete()
        return True
    held = (
        [
            (
                c.name,
                c.alive,
                c.birth_year,
                c.lives_with,
                c.same_subdistrict,
                c.away_months,
                c.away_reason,
                c.can_support,
                c.disability_grade,
                c.adopted,
            )
            for c in elder.children.all()
        ]
        if elder.pk
        else []
    )
    wanted = [child.key() for child in record.children]
    if elder.children_known and held == wanted:
        return False
    if elder.pk:
        Child.objects.filter(elder=elder).delete()
    Child.objects.bulk_create(
        [
            Child(
                elder=elder,
                source=source,
                source_date=source_date,
                **{name: getattr(child, name) for name in _CHILD_FIELDS},
            )
            for child in record.children
        ]
    )
    elder.children_known = True
    return True


_CHILD_FIELDS = (
    "name",
    "alive",
    "birth_year",
    "lives_with",
    "same_subdistrict",
    "away_months",
    "away_reason",
    "can_support",
    "disability_grade",
    "adopted",
)


def _sync_household(elder: Elder, record: ElderRecord, source: str, source_date: dt.date) -> bool:
    if record.household is UNSET:
        return False
    if record.household is None:
        if not elder.household_known:
            return False
        elder.household_known = False
        HouseholdMember.objects.filter(elder=elder).delete()
        return True
    held = [(m.relation, m.age) for m in elder.household.all()] if elder.pk else []
    wanted = [member.key() for member in record.household]
    if elder.household_known and held == wanted:
        return False
    if elder.pk:
        HouseholdMember.objects.filter(elder=elder).delete()
    HouseholdMember.objects.bulk_create(
        [
            HouseholdMember(
                elder=elder,
                relation=m.relation,
                age=m.age,
                source=source,
                source_date=source_date,
            )
            for m in record.household
        ]
    )
    elder.household_known = True
    return True


def _sync_assessment(elder: Elder, record: ElderRecord, source: str, source_date: dt.date) -> bool:
    a = record.assessment
    if a is UNSET or a is None:
        return False
    if CapabilityAssessment.objects.filter(
        elder=elder, scheme=a.scheme, level=a.level, assessed_on=a.assessed_on
    ).exists():
        return False
    beijing = to_beijing_level(a.scheme, a.level)
    CapabilityAssessment.objects.create(
        elder=elder,
        scheme=a.scheme,
        level=a.level,
        beijing_level=beijing,
        assessed_on=a.assessed_on,
        source=source,
        source_date=source_date,
    )
    if elder.capability_assessed_on is None or a.assessed_on >= elder.capability_assessed_on:
        elder.capability_level = beijing
        elder.capability_assessed_on = a.assessed_on
    return True


def _sync_contract(elder: Elder, record: ElderRecord, source: str, source_date: dt.date) -> bool:
    c = record.contract
    if c is UNSET or c is None:
        return False
    _, created = CareContract.objects.get_or_create(
        elder=elder,
        kind=c.kind,
        provider_name=c.provider_name,
        starts_on=c.starts_on,
        defaults={
            "recipient_group": c.recipient_group,
            "ends_on": c.ends_on,
            "source": source,
            "source_date": source_date,
        },
    )
    return created


def _sync_willingness(elder: Elder, record: ElderRecord, actor: Any) -> bool:
    w = record.willingness
    if w is UNSET or w is None:
        return False
    if Willingness.objects.filter(
        elder=elder, willing=w.willing, recorded_on=w.recorded_on
    ).exists():
        return False
    Willingness.objects.create(
        elder=elder,
        willing=w.willing,
        recorded_on=w.recorded_on,
        recorded_by=actor if getattr(actor, "pk", None) else None,
        recorded_by_name=w.recorded_by_name,
        note=w.note,
    )
    if elder.willingness_recorded_on is None or w.recorded_on >= elder.willingness_recorded_on:
        elder.willing_to_be_visited = w.willing
        elder.willingness_recorded_on = w.recorded_on
    return True


def _load_areas(records: Sequence[ElderRecord]) -> tuple[dict[str, Area], dict[str, Area]]:
    codes = {r.community_code for r in records if r.community_code}
    grid_codes = {r.grid_code for r in records if r.grid_code}
    communities = {
        a.code: a for a in Area.objects.filter(code__in=codes, level=AreaLevel.COMMUNITY)
    }
    grids = {a.code: a for a in Area.objects.filter(code__in=grid_codes, level=AreaLevel.GRID)}
    missing = codes - communities.keys()
    if missing:
        raise RegistryError(_("unknown community code: %(code)s") % {"code": sorted(missing)[0]})
    return communities, grids


def elders_upsert(
    *,
    actor: Any,
    records: Sequence[ElderRecord],
    source: str,
    source_date: dt.date,
    reclassify: bool = True,
) -> UpsertResult:
    """Create or update elders from records, merging on the resident ID number.

    Steps: validate every ID number; load the areas and the elders already held (one query
    each); apply each record's facts, keeping source and date per fact and ignoring news older
    than what is held; write a change row for every elder that changed; reclassify those.
    Idempotent: the same records again change nothing. Call inside a transaction for a batch
    that must be all-or-nothing (``transaction.atomic`` is also taken here).
    """
    result = UpsertResult()
    normalised: list[tuple[str, ElderRecord]] = []
    for record in records:
        birth = record.birth_date if isinstance(record.birth_date, dt.date) else None
        normalised.append((normalise_id_number(record.id_number, birth_date=birth), record))
    hashes = {crypto.blind_index("id", number): (number, rec) for number, rec in normalised}
    with transaction.atomic():
        communities, grids = _load_areas(records)
        existing = {
            e.id_number_hash: e
            for e in Elder.objects.filter(id_number_hash__in=hashes.keys())
            .select_related("community")
            .prefetch_related("children", "household")
        }
        touched: list[Elder] = []
        for digest, (number, record) in hashes.items():
            elder = existing.get(digest)
            created = elder is None
            if elder is None:
                if record.community_code is UNSET or not record.name:
                    raise RegistryError(_("a new elder needs at least a name and a community"))
                elder = Elder(
                    id_number_hash=digest,
                    id_number_cipher=crypto.encrypt(number),
                    id_number_masked=mask_id_number(number),
                    birth_date=birth_date_of(number),
                )
            changes = _apply_record(elder, record, communities, grids, source, source_date)
            if created:
                elder.save()
            related = [
                _sync_children(elder, record, source, source_date),
                _sync_household(elder, record, source, source_date),
                _sync_assessment(elder, record, source, source_date),
                _sync_contract(elder, record, source, source_date),
                _sync_willingness(elder, record, actor),
            ]
            if record.first_contact is not UNSET and record.first_contact is not None:
                fc = record.first_contact
                current = elder.first_contact
                if (
                    current is None
                    or current.name != fc.name
                    or _phone_hash_of(current)
                    != crypto.blind_index("phone", normalise_phone(fc.phone))
                ):
                    first_contact_set(
                        actor=actor,
                        elder=elder,
                        name=fc.name,
                        relation=fc.relation,
                        phone=fc.phone,
                        designated_by_community=fc.designated_by_community,
                        note=source,
                        audit=False,
                    )
                    related.append(True)
            if not (created or changes or any(related)):
                result.unchanged += 1
                continue
            # Related facts (children_known, the latest assessment, ...) land on the row too.
            elder.save()
            ElderChange.objects.create(
                elder=elder,
                by=actor if getattr(actor, "pk", None) else None,
                source=source,
                changes=changes,
                note="created" if created else "",
            )
            touched.append(elder)
            result.created += created
            result.updated += not created
        if reclassify and touched:
            elders_reclassify(elders=touched)
        result.elder_ids = [e.pk for e in touched]
    return result


def _phone_hash_of(contact: FirstContact) -> str:
    return crypto.blind_index("phone", crypto.decrypt(contact.phone_cipher))


def other_rules_for(district_ids: Iterable[int]) -> dict[int, tuple[rules.OtherRule, ...]]:
    """The compiled "other" rules of each district."""
    by_district: dict[int, list[dict[str, Any]]] = {}
    for rule in OtherCategoryRule.objects.filter(district_id__in=set(district_ids), active=True):
        by_district.setdefault(rule.district_id, []).append(
            {"code": rule.code, "label": rule.label, **rule.conditions}
        )
    return {d: rules.compile_other_rules(raw) for d, raw in by_district.items()}


def elders_reclassify(*, elders: Sequence[Elder], as_of: dt.date | None = None) -> None:
    """Recompute categories, reasons, missing facts and flags, then apply hand overrides."""
    on = as_of or timezone.localdate()
    compiled = other_rules_for(e.district_id for e in elders)
    overrides: dict[int, list[CategoryOverride]] = {}
    for o in CategoryOverride.objects.filter(
        elder__in=[e.pk for e in elders], revoked_at__isnull=True
    ).order_by("created_at"):
        overrides.setdefault(o.elder_id, []).append(o)
    for elder in elders:
        result = rules.classify(elder_facts(elder, as_of=on), compiled.get(elder.district_id, ()))
        computed = list(result.categories)
        final = set(computed)
        reasons: dict[str, Any] = {c: list(result.reason_codes[c]) for c in computed}
        for o in overrides.get(elder.pk, []):
            if o.action == OverrideAction.ADD:
                final.add(o.category)
                reasons[o.category] = ["manual_add", {"reason": o.reason}]
            else:
                final.discard(o.category)
                reasons.pop(o.category, None)
        ordered = [c for c in rules.CATEGORIES if c in final]
        elder.computed_categories = computed
        elder.categories = ordered
        elder.category_bits = rules.bits_of(ordered)
        elder.category_reasons = reasons
        elder.missing_facts = list(result.missing_facts)
        elder.advanced_age = result.advanced_age
        elder.focus = result.advanced_age and bool(final & set(rules.FOCUS_SOURCES))
        elder.classified_on = on
    Elder.objects.bulk_update(
        elders,
        [
            "computed_categories",
            "categories",
            "category_bits",
            "category_reasons",
            "missing_facts",
            "advanced_age",
            "focus",
            "classified_on",
        ],
        batch_size=500,
    )


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
) -> list[str]:
    """Apply the facts of an edit form to ``elder``; audited when anything changed.

    ``record`` carries the elder's own ID number (it cannot be changed here). A changed
    ``life_status`` goes through ``life_status_set`` dated today. Returns the names of the
    scalar facts that changed (children and household changes are in the change row too).
    """
    if (
        not can(actor, Capability.EDIT_ELDERS)
        or not Elder.objects.visible_to(actor).filter(pk=elder.pk).exists()
    ):
        raise AccessDenied
    if normalise_id_number(record.id_number) != crypto.decrypt(elder.id_number_cipher):
        raise RegistryError(_("the resident ID number of a record cannot be changed"))
    _require_visible_community(actor, record.community_code)
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
        changed = sorted({fact for change in new_changes for fact in change.changes})
        if new_changes:
            audit_record(
                actor=actor,
                action=AuditAction.UPDATE_RECORD,
                elder=fresh,
                request=request,
                details={"changed": changed},
            )
    return changed
