"""Every change of visits: record a visit (idempotent), correct it within 24 hours.

A visit is written with what follows from it in one transaction: the elder's life status when
the visitor found them in hospital or deceased (through the registry's own service), the care
actions the elder consented to, the elder's new visit status, and an audit entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.scope import elders_visible_to
from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.registry.models import Elder, LifeStatus
from tanfang.registry.services import life_status_set
from tanfang.visits.models import (
    OrganisedBy,
    PersonMet,
    ServiceProvider,
    Visit,
    VisitMode,
    VisitorProfile,
    VisitOutcome,
    VisitRevision,
    VisitSource,
)
from tanfang.visits.obligations import Frequency, PastVisit, counts_for_rates, period_of
from tanfang.visits.policy import policy_load
from tanfang.visits.record_form import consented, validate_sections
from tanfang.visits.risk import RiskFacts, risk_level
from tanfang.visits.status import area_code_of, status_refresh

CORRECTION_WINDOW = dt.timedelta(hours=24)
# A phone's clock may run a little fast; a visit further in the future is a mistake.
CLOCK_SKEW = dt.timedelta(minutes=10)

CORRECTABLE = (
    "mode",
    "started_at",
    "ended_at",
    "person_met",
    "outcome",
    "sections",
    "notes",
    "consent",
)


@dataclass
class VisitError(Exception):
    """A visit that cannot be recorded, with every reason at once: [(field, message)]."""

    errors: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{name}: {message}" for name, message in self.errors)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    accuracy_m: int | None = None


@dataclass(frozen=True)
class VisitInput:
    """What a visitor submits; the API, the web form and the importer all build one."""

    client_uuid: uuid.UUID
    mode: str
    started_at: dt.datetime
    ended_at: dt.datetime
    person_met: str
    outcome: str
    sections: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""
    consent: bool = False
    location: Location | None = None
    organised_by: str = OrganisedBy.GOVERNMENT
    provider_id: int | None = None
    visitor_name: str = ""


def visit_record(
    *, actor: Any, elder: Elder, data: VisitInput, source: str = VisitSource.APP
) -> tuple[Visit, bool]:
    """Record one visit; the same ``client_uuid`` twice is one visit. Returns (visit, created).

    ``actor`` None means the system (a command-line import); otherwise the elder must be
    visible to the actor.
    """
    existing = Visit.objects.filter(client_uuid=data.client_uuid).first()
    if existing is not None:
        return _same_submission(existing, elder), False
    if (
        actor is not None
        and not elders_visible_to(actor, Elder.objects.filter(pk=elder.pk)).exists()
    ):
        raise VisitError([("elder", _("You cannot record a visit for this elder."))])
    sections = visit_validate(data)
    if consented(sections) and not data.consent:
        data = replace(data, consent=True)
    try:
        with transaction.atomic():
            visit = _visit_create(
                actor=actor, elder=elder, data=data, sections=sections, source=source
            )
            _consequences(actor=actor, visit=visit, elder=elder)
    except IntegrityError:
        # Two copies of one submission raced; the other one won and is the visit.
        existing = Visit.objects.filter(client_uuid=data.client_uuid).first()
        if existing is None:
            raise
        return _same_submission(existing, elder), False
    return visit, True


def visit_correct(*, actor: Any, visit: Visit, changes: Mapping[str, Any]) -> Visit:
    """The author corrects her record within 24 hours; every change is kept as a revision."""
    if visit.recorded_by_id is None or actor.pk != visit.recorded_by_id:
        raise VisitError([("visit", _("Only the author may correct a visit record."))])
    if timezone.now() >= visit.locked_after:
        raise VisitError([("visit", _("This record is locked: it is more than 24 hours old."))])
    unknown = sorted(set(changes) - set(CORRECTABLE))
    if unknown:
        raise VisitError([(name, _("This field cannot be corrected.")) for name in unknown])
    current = {name: getattr(visit, name) for name in CORRECTABLE}
    merged = {**current, **changes}
    data = VisitInput(client_uuid=visit.client_uuid, **merged)
    sections = visit_validate(data)
    merged["sections"] = sections
    merged["consent"] = bool(merged["consent"]) or consented(sections)
    diff = {
        name: [_plain(current[name]), _plain(merged[name])]
        for name in CORRECTABLE
        if _plain(current[name]) != _plain(merged[name])
    }
    if not diff:
        return visit
    with transaction.atomic():
        locked = Visit.objects.select_for_update().get(pk=visit.pk)
        for name, value in merged.items():
            setattr(locked, name, value)
        _derive(locked, locked.elder)
        locked.revision += 1
        locked.save()
        VisitRevision.objects.create(visit=locked, number=locked.revision, by=actor, changes=diff)
        _consequences(actor=actor, visit=locked, elder=locked.elder, corrected=True)
    return locked


def _same_submission(existing: Visit, elder: Elder) -> Visit:
    if existing.elder_id != elder.pk:
        raise VisitError(
            [("client_uuid", _("This submission id was already used for another elder."))]
        )
    return existing


def visit_validate(data: VisitInput) -> dict[str, Any]:
    """Every check of a submission, without writing: the canonical sections, or VisitError
    naming every field at fault (the importer's first pass uses it)."""
    errors: list[tuple[str, str]] = []
    if data.mode not in VisitMode.values:
        errors.append(("mode", _("Unknown visit mode.")))
    if data.person_met not in PersonMet.values:
        errors.append(("person_met", _("Unknown choice of the person met.")))
    if data.outcome not in VisitOutcome.values:
        errors.append(("outcome", _("Unknown outcome.")))
    if data.organised_by not in OrganisedBy.values:
        errors.append(("organised_by", _("Unknown organiser.")))
    times_ok = True
    for name in ("started_at", "ended_at"):
        value = getattr(data, name)
        if not isinstance(value, dt.datetime) or timezone.is_naive(value):
            errors.append((name, _("A time with a time zone is required.")))
            times_ok = False
    if times_ok:
        if data.ended_at < data.started_at:
            errors.append(("ended_at", _("The visit cannot end before it starts.")))
        if data.started_at > timezone.now() + CLOCK_SKEW:
            errors.append(("started_at", _("The visit cannot start in the future.")))
        if data.ended_at - data.started_at > dt.timedelta(hours=12):
            errors.append(("ended_at", _("A visit cannot last more than 12 hours.")))
    if data.outcome == VisitOutcome.MET and data.person_met == PersonMet.NOBODY:
        errors.append(("person_met", _("A visit that met someone must say whom.")))
    if data.location is not None and data.mode not in (VisitMode.IN_HOME, VisitMode.COMBINED):
        errors.append(("location", _("A check-in location is only for in-home visits.")))
    if data.location is not None and not (
        -90 <= data.location.latitude <= 90 and -180 <= data.location.longitude <= 180
    ):
        errors.append(("location", _("The location is not a valid latitude and longitude.")))
    sections, section_errors = validate_sections(data.sections or {})
    errors.extend((f"sections.{e.path}", str(e.message)) for e in section_errors)
    if errors:
        raise VisitError(errors)
    return sections


def _visit_create(
    *, actor: Any, elder: Elder, data: VisitInput, sections: dict[str, Any], source: str
) -> Visit:
    provider = (
        ServiceProvider.objects.filter(pk=data.provider_id).first() if data.provider_id else None
    )
    if provider is None and actor is not None and actor.role == "visitor":
        profile = VisitorProfile.objects.select_related("provider").filter(user_id=actor.pk).first()
        provider = None if profile is None else profile.provider
    visit = Visit(
        client_uuid=data.client_uuid,
        elder=elder,
        community_id=elder.community_id,
        visitor=actor if getattr(actor, "pk", None) else None,
        visitor_name=(data.visitor_name or (str(actor) if actor is not None else ""))[:64],
        provider=provider,
        organised_by=data.organised_by,
        mode=data.mode,
        started_at=data.started_at,
        ended_at=data.ended_at,
        person_met=data.person_met,
        outcome=data.outcome,
        sections=sections,
        notes=data.notes,
        consent=data.consent,
        latitude=None if data.location is None else round(data.location.latitude, 6),
        longitude=None if data.location is None else round(data.location.longitude, 6),
        location_accuracy_m=None if data.location is None else data.location.accuracy_m,
        source=source,
        recorded_by=actor if getattr(actor, "pk", None) else None,
        locked_after=timezone.now() + CORRECTION_WINDOW,
    )
    _derive(visit, elder)
    visit.save(force_insert=True)
    return visit


def _derive(visit: Visit, elder: Elder) -> None:
    """Fields that follow from the record: date keys, whether it counts, the risk level."""
    local = timezone.localtime(visit.started_at).date()
    visit.local_date = local
    visit.week_key = period_of(local, Frequency.WEEK)[2]
    visit.month_key = period_of(local, Frequency.MONTH)[2]
    visit.counts = counts_for_rates(
        PastVisit(
            at=visit.started_at,
            mode=visit.mode,
            outcome=visit.outcome,
            by_station=visit.organised_by == OrganisedBy.STATION,
        ),
        policy_load(),
    )
    age = _age(elder, local)
    result = risk_level(
        sections=visit.sections,
        outcome=visit.outcome,
        elder=RiskFacts(
            age=age,
            categories=frozenset(elder.categories or ()),
            extremely_poor=elder.extremely_poor,
        ),
    )
    visit.risk_level = result.level
    visit.risk_reasons = list(result.reasons)


def _age(elder: Elder, on: dt.date) -> int:
    born = elder.birth_date
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _consequences(*, actor: Any, visit: Visit, elder: Elder, corrected: bool = False) -> None:
    from tanfang.care.services import care_actions_from_visit

    if visit.outcome == VisitOutcome.DECEASED:
        life_status_set(
            actor=actor,
            elder=elder,
            status=LifeStatus.DECEASED,
            since=visit.local_date,
            source="visit",
        )
    elif visit.outcome == VisitOutcome.IN_HOSPITAL:
        life_status_set(
            actor=actor,
            elder=elder,
            status=LifeStatus.IN_HOSPITAL,
            since=visit.local_date,
            source="visit",
        )
    if visit.consent:
        opened = care_actions_from_visit(actor=actor, visit=visit)
        # Referral-route elders' needs go to the subdistrict (docs/referrals.md).
        from tanfang.referrals.routing import needs_route, visit_needs

        needs_route(
            actor=actor,
            elder=elder,
            needs=visit_needs(visit.sections),
            source="visit",
            visit=visit,
            care_actions=opened,
        )
    # The first contact is told the hazards and (family-route elders) the needs found.
    from tanfang.notifications.family import family_tell_visit

    family_tell_visit(visit=visit)
    # Danger to life, whatever the consent: "emergency rescue" opens an emergency case.
    from tanfang.emergencies.triggers import after_visit

    after_visit(actor=actor, visit=visit)
    status_refresh(elder_ids=[elder.pk])
    audit_record(
        actor=actor,
        action=AuditAction.UPDATE_RECORD if corrected else AuditAction.CREATE_RECORD,
        elder=elder,
        area_code=area_code_of(elder.community_id),
        details={"visit": visit.pk, "revision": visit.revision},
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
