"""The weekly and monthly visit rates of every node of the tree (docs/visit-rates.md).

For a period (an ISO week "2026-W10" or a month "2026-03", Asia/Shanghai dates) and a node:

- due: elders of the node's subtree whose stored visit status is not excluded
  (``ElderVisitStatus.excluded == ""``); the excluded are counted by reason;
- visited: the due elders with at least one visit in the period that counts for the rates
  (``Visit.counts``, keyed by ``week_key`` / ``month_key``);
- rate: visited / due (None when nobody is due); target: 100 %.

Steps of ``rates_for``:

1. Resolve the period; a period that has not begun is an error.
2. Closed period: take the snapshot rows (``RateSnapshot``) of the subtree; if every node has
   one, that is the answer ("basis": "snapshot").
3. Otherwise count per community with one grouped query over the statuses (the open period:
   ``last_counted_at`` on or after the period's start; a closed period: a semi-join with the
   period's counting visits), then add each community's counts to its subdistrict, district
   and city through the ancestor columns of ``Area``, in Python ("basis": "computed").

``rate_snapshot_close`` writes the snapshot of a closed period for every node; ``rate_trend``
gives one node over the past periods; ``missed_elders`` lists the due elders not visited.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.accounts.scope import areas_visible_to, elders_visible_to
from tanfang.areas.models import Area, AreaLevel
from tanfang.registry.models import Elder
from tanfang.visits.models import ElderVisitStatus, RateSnapshot, Visit
from tanfang.visits.obligations import Frequency, period_of

SHANGHAI = ZoneInfo("Asia/Shanghai")
TARGET = 1.0  # the plan's: every due elder visited in every period
EXCLUSION_REASONS: tuple[str, ...] = (
    "deceased",
    "moved_away",
    "in_institution",
    "in_hospital",
    "declined",
)
RATE_LEVELS: tuple[str, ...] = (
    AreaLevel.CITY,
    AreaLevel.DISTRICT,
    AreaLevel.SUBDISTRICT,
    AreaLevel.COMMUNITY,
)
_ANCESTORS = ("subdistrict_id", "district_id", "city_id")
_WEEK_KEY = re.compile(r"(\d{4})-W(\d{2})")
_MONTH_KEY = re.compile(r"(\d{4})-(\d{2})")


class RateError(ValueError):
    """A request for rates that cannot be answered; ``str(exc)`` is for the user."""


@dataclass(frozen=True, slots=True)
class RatePeriod:
    """A week or a month: its key, kind and days (``end`` inclusive)."""

    key: str
    kind: Frequency
    start: dt.date
    end: dt.date

    def is_open(self, on: dt.date) -> bool:
        return self.start <= on <= self.end

    def is_closed(self, on: dt.date) -> bool:
        return self.end < on

    @property
    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=SHANGHAI)

    @property
    def visit_key_field(self) -> str:
        return "week_key" if self.kind == Frequency.WEEK else "month_key"


def rate_period(key: str) -> RatePeriod:
    """The period a key names: "2026-W10" (ISO week) or "2026-03" (month)."""
    text = key.strip()
    try:
        if match := _WEEK_KEY.fullmatch(text):
            kind = Frequency.WEEK
            first = dt.date.fromisocalendar(int(match[1]), int(match[2]), 1)
        elif match := _MONTH_KEY.fullmatch(text):
            kind = Frequency.MONTH
            first = dt.date(int(match[1]), int(match[2]), 1)
        else:
            raise ValueError(text)
    except ValueError:
        raise RateError(
            _("“%(key)s” is not a period: write a week as 2026-W10 or a month as 2026-03")
            % {"key": text[:20]}
        ) from None
    start, end, canonical = period_of(first, kind)
    return RatePeriod(key=canonical, kind=kind, start=start, end=end)


def period_containing(day: dt.date, kind: Frequency | str) -> RatePeriod:
    """The week or month containing ``day``."""
    if kind not in (Frequency.WEEK, Frequency.MONTH):
        raise ValueError(f"rates are weekly or monthly, not {kind!r}")
    start, end, key = period_of(day, Frequency(kind))
    return RatePeriod(key=key, kind=Frequency(kind), start=start, end=end)


# Each node's counts, as one flat list (a city has ~7,500 nodes; lists add up fast):
# [due, visited, excluded by each reason of EXCLUSION_REASONS..., excluded for another reason].
_DUE, _VISITED, _FIRST_REASON = 0, 1, 2
_REASON_SLOT = {reason: _FIRST_REASON + i for i, reason in enumerate(EXCLUSION_REASONS)}
_OTHER_SLOT = _FIRST_REASON + len(EXCLUSION_REASONS)
_WIDTH = _OTHER_SLOT + 1
Counts = list[int]


def _zero() -> Counts:
    return [0] * _WIDTH


def _add(total: Counts, counts: Counts) -> None:
    for i in range(_WIDTH):
        total[i] += counts[i]


def _excluded_of(counts: Counts) -> dict[str, int]:
    out = {reason: counts[slot] for reason, slot in _REASON_SLOT.items()}
    if counts[_OTHER_SLOT]:
        out["other"] = counts[_OTHER_SLOT]
    return out


def _counts_of(due: int, visited: int, excluded: dict[str, int]) -> Counts:
    counts = _zero()
    counts[_DUE], counts[_VISITED] = due, visited
    for reason, n in excluded.items():
        counts[_REASON_SLOT.get(reason, _OTHER_SLOT)] += int(n)
    return counts


class _Node(NamedTuple):
    """What the rates need of a node of the tree."""

    id: int
    code: str
    name: str
    level: str
    subdistrict_id: int | None
    district_id: int | None
    city_id: int | None


@dataclass(frozen=True)
class RateRow:
    """The rate of one node for one period, as the command, the API and the pages show it."""

    area_code: str
    name: str
    level: str
    period: str
    due: int
    visited: int
    excluded: dict[str, int]
    basis: str  # "snapshot" | "computed"
    target: float = TARGET

    @property
    def rate(self) -> float | None:
        return None if self.due == 0 else round(self.visited / self.due, 4)

    def as_dict(self) -> dict[str, Any]:
        return {
            "area_code": self.area_code,
            "name": self.name,
            "level": self.level,
            "period": self.period,
            "due": self.due,
            "visited": self.visited,
            "rate": self.rate,
            "target": self.target,
            "excluded": dict(self.excluded),
            "basis": self.basis,
        }


# --------------------------------------------------------------------------- the nodes


def area_by_code(code: str) -> Area:
    """The node of that code at a level that has rates, or ``RateError``."""
    area = Area.objects.filter(code=code.strip()).first()
    if area is None:
        raise RateError(_("no area has the code %(code)s") % {"code": code.strip()[:20]})
    if area.level not in RATE_LEVELS:
        raise RateError(
            _("rates are kept for cities, districts, subdistricts and communities, not for grids")
        )
    return area


def _subtree_nodes(root: Area | None) -> list[_Node]:
    """The nodes with rates under ``root`` (every node when None), in tree order (by code)."""
    areas = Area.objects.filter(level__in=RATE_LEVELS)
    if root is not None:
        areas = areas.filter(Q(pk=root.pk) | Q(**{f"{root.level}_id": root.pk}))
    return [
        _Node(*values)
        for values in areas.order_by("code").values_list(
            "id", "code", "name", "level", "subdistrict_id", "district_id", "city_id"
        )
    ]


def _node_of(area: Area) -> _Node:
    return _Node(
        area.pk,
        area.code,
        area.name,
        area.level,
        area.subdistrict_id,
        area.district_id,
        area.city_id,
    )


def _statuses_under(root: Area | None) -> QuerySet[ElderVisitStatus]:
    statuses = ElderVisitStatus.objects.all()
    if root is None:
        return statuses
    if root.level == AreaLevel.COMMUNITY:
        return statuses.filter(community_id=root.pk)
    return statuses.filter(**{f"community__{root.level}_id": root.pk})


# --------------------------------------------------------------------------- counting


def _community_counts(root: Area | None, period: RatePeriod, on: dt.date) -> dict[int, Counts]:
    """Due, visited and excluded per community of the subtree, from the stored statuses.

    The open period uses ``last_counted_at`` (the newest counting visit; none can lie after
    today), a closed one the period's counting visits: one grouped query either way, plus
    one for the visited of a closed period.
    """
    statuses = _statuses_under(root)
    counts: dict[int, Counts] = {}
    open_period = period.is_open(on)
    aggregates: dict[str, Any] = {"n": Count("pk")}
    if open_period:
        aggregates["visited"] = Count("pk", filter=Q(last_counted_at__gte=period.starts_at))
    rows = statuses.values("community_id", "excluded").annotate(**aggregates).order_by()
    for row in rows.values_list("community_id", "excluded", *aggregates):
        item = counts.get(row[0])
        if item is None:
            item = counts[row[0]] = _zero()
        if row[1]:
            item[_REASON_SLOT.get(row[1], _OTHER_SLOT)] += row[2]
        else:
            item[_DUE] += row[2]
            if open_period:
                item[_VISITED] += row[3]
    if not open_period:
        visited = Visit.objects.filter(counts=True, **{period.visit_key_field: period.key})
        pairs = (
            statuses.filter(excluded="", elder_id__in=visited.values("elder_id"))
            .values("community_id")
            .annotate(n=Count("pk"))
            .order_by()
            .values_list("community_id", "n")
        )
        for community_id, n in pairs:
            item = counts.get(community_id)
            if item is None:
                item = counts[community_id] = _zero()
            item[_VISITED] += n
    return counts


_PARENT_COLUMN = {
    AreaLevel.COMMUNITY: "subdistrict_id",
    AreaLevel.SUBDISTRICT: "district_id",
    AreaLevel.DISTRICT: "city_id",
}


def _rolled_up(nodes: list[_Node], by_community: dict[int, Counts]) -> dict[int, Counts]:
    """Each node's counts: communities' counts, then each level added into the one above
    (communities into subdistricts, subdistricts into districts, districts into the city)."""
    totals: dict[int, Counts] = {}
    for node in nodes:
        counts = by_community.get(node.id) if node.level == AreaLevel.COMMUNITY else None
        totals[node.id] = list(counts) if counts is not None else _zero()
    for level in (AreaLevel.COMMUNITY, AreaLevel.SUBDISTRICT, AreaLevel.DISTRICT):
        column = _PARENT_COLUMN[level]
        for node in nodes:
            if node.level != level:
                continue
            parent = totals.get(getattr(node, column))
            if parent is not None:
                _add(parent, totals[node.id])
    return totals


def _row(node: _Node, period: RatePeriod, counts: Counts, basis: str) -> RateRow:
    return RateRow(
        area_code=node.code,
        name=node.name,
        level=node.level,
        period=period.key,
        due=counts[_DUE],
        visited=counts[_VISITED],
        excluded=_excluded_of(counts),
        basis=basis,
    )


def _resolve(period: RatePeriod | str, on: dt.date | None) -> tuple[RatePeriod, dt.date]:
    resolved = rate_period(period) if isinstance(period, str) else period
    today = on or timezone.localdate()
    if resolved.start > today:
        raise RateError(
            _("the period %(key)s has not begun: there is no rate yet") % {"key": resolved.key}
        )
    return resolved, today


# --------------------------------------------------------------------------- public reads


def rates_for(
    *, area: Area, period: RatePeriod | str, on: dt.date | None = None, user: Any = None
) -> list[RateRow]:
    """A row for ``area`` and every node under it (cities to communities), in tree order.

    ``user`` None is the system (the command line); a user gets rows only for an area she
    may see (rates are counts, not personal data, but a district sees only its own).
    """
    if user is not None and not areas_visible_to(user, Area.objects.filter(pk=area.pk)).exists():
        return []
    resolved, today = _resolve(period, on)
    nodes = _subtree_nodes(area)
    snapshots: dict[int, Counts] = {}
    if resolved.is_closed(today):
        snapshots = _snapshots_under(area, resolved)
    computed: dict[int, Counts] = {}
    if len(snapshots) < len(nodes):
        computed = _rolled_up(nodes, _community_counts(area, resolved, today))
    rows = []
    for node in nodes:
        kept = snapshots.get(node.id)
        if kept is not None:
            rows.append(_row(node, resolved, kept, "snapshot"))
        else:
            rows.append(_row(node, resolved, computed[node.id], "computed"))
    return rows


def _snapshots_under(root: Area, period: RatePeriod) -> dict[int, Counts]:
    """The kept counts of the subtree's nodes, selected by a join, not a list of ids."""
    kept = RateSnapshot.objects.filter(period=period.key).filter(
        Q(area_id=root.pk) | Q(**{f"area__{root.level}_id": root.pk})
    )
    return {
        area_id: _counts_of(due, visited, excluded or {})
        for area_id, due, visited, excluded in kept.values_list(
            "area_id", "due", "visited", "excluded"
        )
    }


def rate_trend(
    *, area: Area, kind: Frequency | str, periods: int = 8, on: dt.date | None = None
) -> list[RateRow]:
    """The rate of one node over the last ``periods`` periods, oldest first, the open one
    last. Closed periods come from their snapshot when there is one."""
    today = on or timezone.localdate()
    wanted: list[RatePeriod] = []
    day = today
    for _i in range(periods):
        period = period_containing(day, kind)
        wanted.append(period)
        day = period.start - dt.timedelta(days=1)
    wanted.reverse()
    kept = {
        key: _counts_of(due, visited, excluded or {})
        for key, due, visited, excluded in RateSnapshot.objects.filter(
            area=area, period__in=[p.key for p in wanted]
        ).values_list("period", "due", "visited", "excluded")
    }
    node = _node_of(area)
    rows = []
    for period in wanted:
        counts = kept.get(period.key) if period.is_closed(today) else None
        if counts is not None:
            rows.append(_row(node, period, counts, "snapshot"))
            continue
        total = _zero()
        for community in _community_counts(area, period, today).values():
            _add(total, community)
        rows.append(_row(node, period, total, "computed"))
    return rows


def missed_elders(
    *, user: Any, area: Area, period: RatePeriod | str, on: dt.date | None = None
) -> QuerySet[ElderVisitStatus]:
    """The due elders of ``area`` not visited in the period, as the user may see them:
    statuses with their elder and community, by community code, most urgent first.

    Who is due follows the stored statuses (the current exclusions), as the computed rate
    does; a snapshot keeps only counts, so for a closed period this list is computed anew.
    """
    if not areas_visible_to(user, Area.objects.filter(pk=area.pk)).exists():
        return ElderVisitStatus.objects.none()
    resolved, today = _resolve(period, on)
    statuses = _statuses_under(area).filter(excluded="")
    if resolved.is_open(today):
        statuses = statuses.filter(
            Q(last_counted_at__isnull=True) | Q(last_counted_at__lt=resolved.starts_at)
        )
    else:
        visited = Visit.objects.filter(counts=True, **{resolved.visit_key_field: resolved.key})
        statuses = statuses.exclude(elder_id__in=visited.values("elder_id"))
    visible = elders_visible_to(user, Elder.objects.all())
    return (
        statuses.filter(elder_id__in=visible.values("pk"))
        .select_related("elder", "community")
        .order_by("community__code", "-urgency", "elder_id")
    )


# --------------------------------------------------------------------------- snapshots


def rate_snapshot_close(period: RatePeriod | str, *, on: dt.date | None = None) -> int:
    """Keep the rates of a closed period for every node, as they are now; returns the rows.

    Idempotent: closing again rewrites the same rows (one bulk upsert). Run it once a period
    has ended (``tanfang rates --close``, e.g. on Monday night for the week before), so the
    period keeps the exclusions of its own time.
    """
    resolved, today = _resolve(period, on)
    if not resolved.is_closed(today):
        raise RateError(
            _("the period %(key)s is not over yet: it can be closed from %(day)s on")
            % {"key": resolved.key, "day": (resolved.end + dt.timedelta(days=1)).isoformat()}
        )
    nodes = _subtree_nodes(None)
    totals = _rolled_up(nodes, _community_counts(None, resolved, today))
    rows = [
        RateSnapshot(
            area_id=node.id,
            period=resolved.key,
            due=totals[node.id][_DUE],
            visited=totals[node.id][_VISITED],
            excluded={k: n for k, n in _excluded_of(totals[node.id]).items() if n},
        )
        for node in nodes
    ]
    RateSnapshot.objects.bulk_create(
        rows,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["area", "period"],
        update_fields=["due", "visited", "excluded", "computed_at"],
    )
    return len(rows)
