"""The remote-monitoring link: a quiet normal day recorded as a remote-monitoring visit.

Where a district's monitoring rules say so (``DistrictRules.remote_visit_counts``; a
district's own row, else the city's), each elder whose meters showed a normal day gets one
visit of mode ``remote_monitoring`` for that day, recorded through the visits app's own
service (``visits.services.visit_record``: the elder's visit status and the audit log follow
as for any visit). Idempotent: the visit's ``client_uuid`` is a UUID 5 of the elder and the
day, so running the night's job twice records one visit.

A normal day, for an elder living at home (life status active, no absence that day):

1. no alert about her that day: no person or device alert that began, was detected or was
   still unresolved during the day (a technical alert of a meter is not about her);
2. at least one of her meters *reporting*: its usage known for at least 90% of the day's
   hours (missing data is never taken for a normal day);
3. that meter showing *activity*: at least two hours whose usage is above the day's quietest
   hour by the district's ``activity.min_above_base_per_hour`` (water 2 L, electricity
   100 Wh, gas 20 L).

Whether such a visit counts toward the visit obligations and rates is the city's counting
rule's decision (``visits.CountingRule``): the plan's rule, seeded by the visits app, counts
phone, online, in-home and combined visits only, so by default remote-monitoring visits are
recorded (the elder's history shows the day was watched) but do not count. The city
administrator adds ``remote_monitoring`` to the counting rule's modes, from a date, when the
policy accepts them (docs/monitoring.md, "The remote-visit link").

The visit is recorded as seen: ``person_met`` the elder, outcome ``met`` (the only outcome the
counting rules count), over the last hour of the day in which the meters showed activity.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.monitoring.detection.config import RuleBook
from tanfang.monitoring.detection.grid import Grid, spread
from tanfang.monitoring.detection.normalise import normalise
from tanfang.monitoring.detection.tables import MeterTable, readings_from_frame
from tanfang.monitoring.models import Alert, DistrictRules, Meter
from tanfang.monitoring.tick import meter_rows, read_store, rule_book_from_db, statuses_on
from tanfang.registry.models import Elder, LifeStatus
from tanfang.visits.models import PersonMet, VisitMode, VisitOutcome, VisitSource
from tanfang.visits.obligations import PastVisit, counts_for_rates
from tanfang.visits.policy import policy_load
from tanfang.visits.services import VisitError, VisitInput, visit_record

NAMESPACE = uuid.UUID("5b0c3f0e-4a8e-5d7a-9c1e-7a4d2f6b8e10")
REPORTING_SHARE = 0.9
ACTIVE_HOURS = 2
HOUR_S = 3600


@dataclass
class RemoteVisits:
    """What one night's job did."""

    day: dt.date
    elders: int = 0  # at home, with meters, in a district where the link is on
    recorded: list[int] = field(default_factory=list)  # new visits
    already: int = 0  # recorded by an earlier run
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> elders
    counts: bool = False  # remote_monitoring counts under the counting rule of the day

    def summary(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (
            f"{self.day}: {self.elders} elders watched, {len(self.recorded)} remote visits "
            f"recorded, {self.already} already recorded; not normal: {skipped}; "
            f"{'counting' if self.counts else 'not counting'} for the visit rates"
        )


def client_uuid(elder_id: int, day: dt.date) -> uuid.UUID:
    """The visit's submission id: the same elder and day always give the same one."""
    return uuid.uuid5(NAMESPACE, f"remote-monitoring:{elder_id}:{day.isoformat()}")


def districts_linked() -> tuple[bool, dict[int, bool]]:
    """(the city's default, {district id: its own setting})."""
    city, districts = False, {}
    for area_id, on in DistrictRules.objects.values_list("area_id", "remote_visit_counts"):
        if area_id is None:
            city = on
        else:
            districts[area_id] = on
    return city, districts


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    zone = timezone.get_current_timezone()
    start = dt.datetime.combine(day, dt.time(), zone)
    return start, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)


def remote_visits_record(*, day: dt.date) -> RemoteVisits:
    """Record the normal days of ``day`` (a day that is over) as remote-monitoring visits."""
    result = RemoteVisits(day=day)
    start, end = _day_bounds(day)
    result.counts = counts_for_rates(
        PastVisit(
            at=start + dt.timedelta(hours=12),
            mode=VisitMode.REMOTE_MONITORING,
            outcome=VisitOutcome.MET,
            by_station=False,
        ),
        policy_load(),
    )
    city, districts = districts_linked()
    elders = Elder.objects.filter(
        life_status=LifeStatus.ACTIVE, meters__active=True, meters__partner__active=True
    )
    off = [d for d, on in districts.items() if not on]
    on = [d for d, on in districts.items() if on]
    elders = elders.exclude(district_id__in=off) if city else elders.filter(district_id__in=on)
    candidates = {e.pk: e for e in elders.distinct().select_related("community", "district")}
    away = statuses_on(day, list(candidates))
    for elder_id in away:
        candidates.pop(elder_id, None)
    _skip(result, "not_home", len(away))
    alerted = set(
        Alert.objects.filter(elder_id__in=list(candidates), technical=False)
        .filter(
            Q(detected_at__gte=start, detected_at__lt=end)
            | Q(started_at__lt=end)
            & (
                Q(resolved_at__gte=start)
                | Q(resolved_at__isnull=True, closed_at__isnull=True)
                | Q(resolved_at__isnull=True, closed_at__gte=start)
            )
        )
        .values_list("elder_id", flat=True)
    )
    for elder_id in alerted:
        candidates.pop(elder_id, None)
    _skip(result, "alert", len(alerted))
    result.elders = len(candidates) + len(alerted) + len(away)
    if not candidates:
        return result
    meters = list(
        Meter.objects.filter(elder_id__in=list(candidates), active=True, partner__active=True)
        .select_related("elder__district")
        .order_by("meter_id")
    )
    last_active = _last_active_hours(meters, start, end, rule_book_from_db(), result)
    for elder_id, elder in candidates.items():
        moment = last_active.get(elder_id)
        if moment is None:
            continue
        _record(elder, day, moment, result)
    return result


def _skip(result: RemoteVisits, reason: str, n: int = 1) -> None:
    if n:
        result.skipped[reason] = result.skipped.get(reason, 0) + n


def _last_active_hours(
    meters: list[Meter],
    start: dt.datetime,
    end: dt.datetime,
    book: RuleBook,
    result: RemoteVisits,
) -> dict[int, dt.datetime]:
    """Per elder with a normal day: the start of the last active hour of a reporting meter."""
    first, stop = int(start.timestamp()), int(end.timestamp())
    table = MeterTable.build(meter_rows(meters, {}))
    frame = read_store(since=first - 86400, until=stop, meter_ids=table.meter_id)
    readings = readings_from_frame(frame, table)
    rules = [book.for_district(d) for d in table.district]
    limits = [r.limits[u] for r, u in zip(rules, table.utility, strict=True)]
    norm = normalise(
        readings,
        table,
        max_per_hour=np.array([float(lim["max_per_hour"]) for lim in limits]),
        max_gap_s=np.array([float(lim["max_gap_hours"]) * 3600 for lim in limits]),
        future_cutoff=None,
    )
    hours = (stop - first) // HOUR_S
    usage, _peak = spread(norm, Grid(first, HOUR_S, hours), len(table))
    known = ~np.isnan(usage)
    reporting = known.sum(axis=1) >= REPORTING_SHARE * hours
    minimum = np.array(
        [
            float(r.activity[u]["min_above_base_per_hour"])
            for r, u in zip(rules, table.utility, strict=True)
        ]
    )
    base = np.nanmin(np.where(known, usage, np.inf), axis=1)
    active = known & (np.nan_to_num(usage) > (base + minimum)[:, None])
    best: dict[int, dt.datetime] = {}
    quiet: set[int] = set()
    silent: set[int] = set()
    for row in range(len(meters)):
        elder_id = int(table.elder_id[row])
        if not reporting[row]:
            silent.add(elder_id)
            continue
        hits = np.flatnonzero(active[row])
        if len(hits) < ACTIVE_HOURS:
            quiet.add(elder_id)
            continue
        moment = dt.datetime.fromtimestamp(first + int(hits[-1]) * HOUR_S, dt.UTC)
        best[elder_id] = max(moment, best.get(elder_id, moment))
    _skip(result, "not_reporting", len(silent - quiet - set(best)))
    _skip(result, "no_activity", len(quiet - set(best)))
    return best


def _record(elder: Elder, day: dt.date, moment: dt.datetime, result: RemoteVisits) -> None:
    data = VisitInput(
        client_uuid=client_uuid(elder.pk, day),
        mode=VisitMode.REMOTE_MONITORING,
        started_at=moment,
        ended_at=moment + dt.timedelta(minutes=59),
        person_met=PersonMet.ELDER,
        outcome=VisitOutcome.MET,
        notes=_("A normal day seen on the home's meters: activity, no alert, meters reporting."),
        visitor_name=_("Remote monitoring"),
    )
    try:
        visit, created = visit_record(
            actor=None, elder=elder, data=data, source=VisitSource.MONITORING
        )
    except VisitError:
        _skip(result, "refused")
        return
    if created:
        result.recorded.append(visit.pk)
    else:
        result.already += 1
