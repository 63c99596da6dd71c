"""Reads of the registry that people see: the elder list and its search box, one elder, and
the data-quality counts.

Every selector of personal data takes the acting user and starts from
``Elder.objects.visible_to(user)``; nothing here writes.

Lists page by keyset (``id > after``), never by OFFSET, and count at most ``COUNT_CAP`` rows,
so a page of the city administrator's list costs the same on the millionth elder as on the
first (every filter below has an index that leads with it and ends with ``id``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.db import connections
from django.db.models import (
    Count,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    TextField,
    Value,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Right

from tanfang.areas.models import Area, AreaLevel
from tanfang.registry.classification import CATEGORIES, CATEGORY_BITS
from tanfang.registry.identity import IdentifierError, mask_phone, normalise_phone
from tanfang.registry.models import (
    CategoryOverride,
    Child,
    ContactRelation,
    Elder,
    ElderChange,
    ElderQuerySet,
    FirstContact,
    LifeStatus,
)
from tanfang.registry.services import find_by_id_number, find_by_phone

PAGE_SIZE = 50
COUNT_CAP = 10_000
STALE_AFTER_DAYS = 365

# Columns read by the list page; the JSON of facts and reasons stays in the database.
LIST_COLUMNS = (
    "id",
    "name",
    "gender",
    "birth_date",
    "id_number_masked",
    "phone_masked",
    "community",
    "community__name",
    "community__code",
    "categories",
    "focus",
    "advanced_age",
    "life_status",
    "first_contact",
    "first_contact__relation",
    "first_contact__confirmed_on",
)

ALL_LIFE_STATUSES = "all"


class SearchKind(StrEnum):
    NAME = "name"
    ID_NUMBER = "id_number"
    ID_SUFFIX = "id_suffix"
    PHONE = "phone"


_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_ID_SUFFIX = re.compile(r"^\d{3}[\dX]$")


def search_kind(text: str) -> SearchKind:
    """What the search box was given: a full ID number, its last four characters (as the
    masked form shows them), a phone number, or else part of a name."""
    compact = re.sub(r"\s", "", text).upper()
    if _ID_NUMBER.match(compact):
        return SearchKind.ID_NUMBER
    if _ID_SUFFIX.match(compact):
        return SearchKind.ID_SUFFIX
    try:
        normalise_phone(compact)
    except IdentifierError:
        return SearchKind.NAME
    return SearchKind.PHONE


def search_for_audit(text: str) -> str:
    """The search as the audit log may keep it: never a full identifier in clear."""
    kind = search_kind(text)
    compact = re.sub(r"\s", "", text).upper()
    if kind == SearchKind.ID_NUMBER:
        return f"{compact[:6]}********{compact[-4:]}"
    if kind == SearchKind.PHONE:
        return mask_phone(normalise_phone(compact))
    return text


@dataclass(frozen=True)
class ElderFilters:
    """What the list is narrowed to. ``life_status`` "" means the default (active only)."""

    q: str = ""
    area: Area | None = None
    category: str = ""
    focus: bool = False
    missing_first_contact: bool = False
    life_status: str = ""

    def for_audit(self) -> dict[str, Any]:
        """The filters as the audit log records them (identifiers masked)."""
        out: dict[str, Any] = {}
        if self.q:
            out["q"] = search_for_audit(self.q)
        if self.area is not None:
            out["area"] = self.area.code
        if self.category:
            out["category"] = self.category
        if self.focus:
            out["focus"] = True
        if self.missing_first_contact:
            out["missing_first_contact"] = True
        out["life_status"] = self.life_status or LifeStatus.ACTIVE
        return out


def area_column(area: Area) -> str:
    """The Elder column that places an elder under ``area``."""
    return f"{area.level}_id"


def category_bits_matching(category: str) -> list[int]:
    """Every value of ``category_bits`` that has ``category``'s bit set.

    An IN list over the indexed column lets the planner use the index and estimate the rows
    from its statistics, which a bitwise AND expression would hide from it.
    """
    bit = CATEGORY_BITS[category]
    return [value for value in range(1 << len(CATEGORIES)) if value & bit]


def elders_filtered(*, user: Any, filters: ElderFilters) -> ElderQuerySet:
    """The elders ``user`` may see, narrowed by ``filters``; not ordered, not sliced."""
    qs = Elder.objects.visible_to(user)
    if filters.area is not None:
        qs = qs.filter(**{area_column(filters.area): filters.area.pk})
    if filters.category in CATEGORY_BITS:
        qs = qs.filter(category_bits__in=category_bits_matching(filters.category))
    if filters.focus:
        qs = qs.filter(focus=True)
    if filters.missing_first_contact:
        qs = qs.filter(first_contact__isnull=True)
    if filters.life_status != ALL_LIFE_STATUSES:
        qs = qs.filter(life_status=filters.life_status or LifeStatus.ACTIVE)
    text = filters.q.strip()
    if text:
        kind = search_kind(text)
        compact = re.sub(r"\s", "", text).upper()
        if kind == SearchKind.ID_NUMBER:
            qs = find_by_id_number(qs, compact)
        elif kind == SearchKind.ID_SUFFIX:
            # The form an index on (right(id_number_masked, 4), id) would serve; see
            # docs/ui.md (without it, a city-wide search by the last four reads every row).
            qs = qs.alias(id_last4=Right("id_number_masked", 4)).filter(id_last4=compact)
        elif kind == SearchKind.PHONE:
            qs = find_by_phone(qs, compact)
        else:
            qs = qs.filter(name__contains=text)
    return qs


@dataclass
class ElderPage:
    elders: list[Elder]
    next_after: int | None = None
    prev_before: int | None = None
    count: int = 0
    count_capped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def capped_count(qs: Any, cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many rows, counting no further than ``cap`` (one bounded query)."""
    n = qs.order_by()[: cap + 1].count()
    return min(n, cap), n > cap


def elder_page(
    *,
    user: Any,
    filters: ElderFilters,
    after: int | None = None,
    before: int | None = None,
    size: int = PAGE_SIZE,
) -> ElderPage:
    """One page of the list, by keyset on ``id``: ``after`` for the next page, ``before`` for
    the previous one. Two queries: the rows (with community and first contact joined) and a
    count capped at ``COUNT_CAP``."""
    qs = elders_filtered(user=user, filters=filters)
    rows_qs = qs.select_related("community", "first_contact").only(*LIST_COLUMNS)
    if before is not None:
        rows = list(rows_qs.filter(id__lt=before).order_by("-id")[: size + 1])
        more_before = len(rows) > size
        rows = rows[:size][::-1]
        page = ElderPage(
            rows,
            next_after=rows[-1].pk if rows else None,
            prev_before=rows[0].pk if rows and more_before else None,
        )
    else:
        if after is not None:
            rows_qs = rows_qs.filter(id__gt=after)
        rows = list(rows_qs.order_by("id")[: size + 1])
        more_after = len(rows) > size
        rows = rows[:size]
        page = ElderPage(
            rows,
            next_after=rows[-1].pk if rows and more_after else None,
            prev_before=rows[0].pk if rows and after is not None else None,
        )
    page.count, page.count_capped = capped_count(qs)
    return page


def elders_for_export(*, user: Any, filters: ElderFilters) -> ElderQuerySet:
    """Every row of the filtered list, in id order, for streaming out."""
    return (
        elders_filtered(user=user, filters=filters)
        .select_related("community", "first_contact")
        .only(*LIST_COLUMNS)
        .order_by("id")
    )


def first_contact_state(elder: Elder, *, today: dt.date) -> str:
    """ "missing", "stale" (not confirmed for over a year) or "ok", from the joined row."""
    contact = elder.first_contact
    if contact is None:
        return "missing"
    if (today - contact.confirmed_on).days > STALE_AFTER_DAYS:
        return "stale"
    return "ok"


def elder_detail(*, user: Any, elder_id: int) -> Elder:
    """One elder with everything the elder page shows; raises ``Elder.DoesNotExist`` when
    the elder does not exist *or* is outside the user's scope (the caller answers 404 either
    way, so existence is not disclosed)."""
    return (
        Elder.objects.visible_to(user)
        .select_related("community", "subdistrict", "district", "grid", "first_contact")
        .prefetch_related(
            "children",
            "household",
            "assessments",
            "contracts",
            "willingness_records",
            Prefetch(
                "first_contacts",
                queryset=FirstContact.objects.select_related("set_by").order_by("-valid_from"),
            ),
            Prefetch(
                "category_overrides",
                queryset=CategoryOverride.objects.select_related(
                    "created_by", "revoked_by"
                ).order_by("-created_at"),
            ),
        )
        .get(pk=elder_id)
    )


def elder_changes(*, elder: Elder, limit: int = 50) -> list[ElderChange]:
    """The latest changes of an elder already fetched through ``elder_detail``."""
    return list(ElderChange.objects.filter(elder=elder).select_related("by")[:limit])


def area_choices(*, user: Any, current: Area | None) -> list[Area]:
    """The areas the area filter offers: the path from the user's own area down to the
    chosen one, and the chosen one's children (down to communities). Small at any level,
    unlike a select of every community of a city."""
    current = current or getattr(user, "area", None)
    if current is None:
        return []
    path_ids = [
        current.ancestor_id(level)
        for level in (
            AreaLevel.CITY,
            AreaLevel.DISTRICT,
            AreaLevel.SUBDISTRICT,
            AreaLevel.COMMUNITY,
        )
    ]
    areas = (
        Area.objects.visible_to(user)
        .filter(Q(pk__in=[i for i in path_ids if i]) | Q(pk=current.pk) | Q(parent=current))
        .exclude(level=AreaLevel.GRID)
        .only("id", "code", "name", "name_en", "level", "parent")
    )
    order = {level: i for i, level in enumerate(AreaLevel.values)}
    return sorted(areas, key=lambda a: (order[a.level], a.code))


def visible_area(*, user: Any, area_id: int | None) -> Area | None:
    """The area ``area_id`` when the user may see it, else None."""
    if area_id is None:
        return None
    return Area.objects.visible_to(user).filter(pk=area_id).first()


def communities_for_choice(*, user: Any) -> Any:
    """Communities a user may place an elder in (create and edit forms)."""
    return (
        Area.objects.visible_to(user)
        .filter(level=AreaLevel.COMMUNITY)
        .select_related("subdistrict")
        .order_by("code")
    )


# --------------------------------------------------------------------------- data quality
#
# Counts are conditional aggregates computed by the database in one grouped query per page
# (never a Python loop over elders); the lists behind each count page by keyset like the
# elder list. Elders who died or moved away are not data-quality problems.

QUALITY_LIFE_STATUSES = (LifeStatus.ACTIVE, LifeStatus.IN_HOSPITAL, LifeStatus.IN_INSTITUTION)

# Facts whose recorded date (``fact_sources``) is checked for age; name, gender and birth
# date do not go stale.
DATED_FACTS = (
    "children",
    "household",
    "address",
    "phone",
    "spouse_status",
    "spouse_lives_with",
    "relatives_same_subdistrict",
    "daily_companionship",
    "disability_status",
    "extremely_poor",
)

# Top-level facts the classification may report missing (the first name of every path in
# ``Elder.missing_facts``), in the order the data-quality page lists them.
MISSING_FACT_GROUPS = (
    "birth_date",
    "rural",
    "spouse",
    "children",
    "household",
    "relatives_same_subdistrict",
    "daily_companionship",
    "capability_level",
    "disability",
    "extremely_poor",
    "dementia",
)

QUALITY_PROBLEMS = (
    "missing_facts",
    "missing_first_contact",
    "first_contact_not_child",
    "stale_first_contact",
    "old_facts",
    "willingness_unknown",
)

_NEXT_LEVEL = {
    AreaLevel.CITY: AreaLevel.DISTRICT,
    AreaLevel.DISTRICT: AreaLevel.SUBDISTRICT,
    AreaLevel.SUBDISTRICT: AreaLevel.COMMUNITY,
}


def missing_group_key(group: str) -> str:
    return f"missing:{group}"


def problem_keys() -> tuple[str, ...]:
    """Every count the data-quality page shows, in its order."""
    return (*QUALITY_PROBLEMS, *(missing_group_key(g) for g in MISSING_FACT_GROUPS))


def _in_area(*, user: Any, area: Area) -> ElderQuerySet:
    return Elder.objects.visible_to(user).filter(
        **{area_column(area): area.pk}, life_status__in=QUALITY_LIFE_STATUSES
    )


def _first_contact_not_a_child() -> Q:
    """A current first contact who is not a child, although a child may be alive: a
    semi-join, counted apart so that the main count runs without sub-plans (in parallel)."""
    living_child = Child.objects.filter(elder=OuterRef("pk")).exclude(alive=False)
    return (
        Q(first_contact__isnull=False)
        & ~Q(first_contact__relation=ContactRelation.CHILD)
        & Q(Exists(living_child))
    )


def _judged_rows(*, user: Any, area: Area, group_by: str | None) -> tuple[str, list[Any], str]:
    """SQL of the rows problems are judged on: one per elder of ``area`` in the user's scope,
    with each value a condition reads (the JSON text of the missing facts, the date of each
    dated fact, ...) selected once. Returns the SQL, its parameters and the database alias."""
    qs = (
        _in_area(user=user, area=area)
        .annotate(
            g=F(f"{group_by}_id") if group_by else Value(0),
            mt=Cast("missing_facts", TextField()),
            fc_id=F("first_contact_id"),
            fc_confirmed=F("first_contact__confirmed_on"),
            willing=F("willing_to_be_visited"),
            assessed=F("capability_assessed_on"),
            **{f"d_{fact}": KT(f"fact_sources__{fact}__date") for fact in DATED_FACTS},
        )
        .order_by()
        .values(
            "id",
            "g",
            "mt",
            "fc_id",
            "fc_confirmed",
            "willing",
            "assessed",
            *(f"d_{fact}" for fact in DATED_FACTS),
        )
    )
    sql, params = qs.query.sql_with_params()
    return sql, list(params), qs.db


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def problem_condition(problem: str, *, today: dt.date, db: str) -> tuple[str, list[Any]]:
    """The SQL condition, over the rows of ``_judged_rows`` (alias ``s``), of one problem.

    Missing facts are matched in the JSON text of ``missing_facts``: every path of a group
    starts with the group's name right after its opening quote (``"children[0].alive"``).
    Facts are old when their recorded date (``fact_sources``; children and household are
    dated as a whole) or the latest capability assessment is more than a year old.
    """
    cutoff = today - dt.timedelta(days=STALE_AFTER_DAYS)
    as_date = connections[db].ops.adapt_datefield_value(cutoff)
    like = "s.mt LIKE %s ESCAPE '\\'"
    if problem == "missing_facts":
        return like, ['%"%']
    if problem.startswith("missing:"):
        group = problem.removeprefix("missing:")
        if group not in MISSING_FACT_GROUPS:
            raise ValueError(problem)
        return like, [f'%"{_like_escaped(group)}%']
    if problem == "missing_first_contact":
        return "s.fc_id IS NULL", []
    if problem == "stale_first_contact":
        return "s.fc_confirmed < %s", [as_date]
    if problem == "old_facts":
        dated = " OR ".join(f"s.d_{fact} < %s" for fact in DATED_FACTS)
        return f"(s.assessed < %s OR {dated})", [as_date, *[cutoff.isoformat()] * len(DATED_FACTS)]
    if problem == "willingness_unknown":
        return "s.willing IS NULL", []
    raise ValueError(problem)


@dataclass
class QualityRow:
    area: Area | None
    counts: dict[str, int]


@dataclass
class QualitySummary:
    area: Area
    child_level: str | None
    total: dict[str, int]
    rows: list[QualityRow]


def _fetch_without_jit(db: str, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Run one statement; on PostgreSQL with JIT compilation off, which for a count of this
    many expressions over a city's rows costs more (about 2 s) than it saves."""
    connection = connections[db]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        cursor.execute("SET jit = off")
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.execute("RESET jit")


def quality_summary(*, user: Any, area: Area, today: dt.date) -> QualitySummary:
    """Counts of every problem in ``area`` and in each of its child areas.

    Three queries: the rows of ``_judged_rows`` counted under every problem's condition,
    grouped by child area (each row's values are selected once, however many conditions
    read them, and no sub-plan keeps the database from scanning in parallel); the first
    contacts who are not children, by semi-join; the child areas' names.
    """
    child_level = _NEXT_LEVEL.get(AreaLevel(area.level))
    inner, inner_params, db = _judged_rows(user=user, area=area, group_by=child_level)
    keys = [key for key in problem_keys() if key != "first_contact_not_child"]
    columns, params = [], []
    for key in keys:
        condition, condition_params = problem_condition(key, today=today, db=db)
        columns.append(f"COUNT(*) FILTER (WHERE {condition})")
        params.extend(condition_params)
    sql = f"SELECT s.g, COUNT(*), {', '.join(columns)} FROM ({inner}) s GROUP BY s.g"
    grouped = _fetch_without_jit(db, sql, [*params, *inner_params])

    group = f"{child_level}_id" if child_level else None
    not_a_child = dict(
        _in_area(user=user, area=area)
        .filter(_first_contact_not_a_child())
        .order_by()
        .values_list(group or "city_id")
        .annotate(n=Count("id"))
    )
    if group is None:
        not_a_child = {0: sum(not_a_child.values())}

    def counts_of(row: tuple[Any, ...]) -> dict[str, int]:
        counts = {"elders": int(row[1])}
        counts.update({key: int(n) for key, n in zip(keys, row[2:], strict=True)})
        counts["first_contact_not_child"] = not_a_child.get(row[0], 0)
        return counts

    rows = [QualityRow(None, counts_of(row)) for row in grouped]
    if child_level is not None:
        names = Area.objects.filter(pk__in=[row[0] for row in grouped if row[0]]).in_bulk()
        for quality_row, row in zip(rows, grouped, strict=True):
            quality_row.area = names.get(row[0])
        rows.sort(key=lambda r: r.area.code if r.area else "")
    total = {key: sum(r.counts[key] for r in rows) for key in ("elders", *problem_keys())}
    return QualitySummary(area, child_level, total, rows if child_level else [])


def quality_problem_page(
    *,
    user: Any,
    area: Area,
    problem: str,
    today: dt.date,
    after: int | None = None,
    size: int = PAGE_SIZE,
) -> ElderPage:
    """The elders with one problem, a page at a time (keyset on id, no count): the ids under
    the same condition the counts use, then those elders."""
    if problem == "first_contact_not_child":
        qs = _in_area(user=user, area=area).filter(_first_contact_not_a_child())
        if after is not None:
            qs = qs.filter(id__gt=after)
        ids = list(qs.order_by("id").values_list("id", flat=True)[: size + 1])
        return _page_of_ids(ids, size)
    inner, inner_params, db = _judged_rows(user=user, area=area, group_by=None)
    condition, params = problem_condition(problem, today=today, db=db)
    sql = f"SELECT s.id FROM ({inner}) s WHERE {condition}"
    if after is not None:
        sql += " AND s.id > %s"
        params = [*params, after]
    sql += " ORDER BY s.id LIMIT %s"
    with connections[db].cursor() as cursor:
        cursor.execute(sql, [*inner_params, *params, size + 1])
        ids = [row[0] for row in cursor.fetchall()]
    return _page_of_ids(ids, size)


def _page_of_ids(ids: list[int], size: int) -> ElderPage:
    more = len(ids) > size
    ids = ids[:size]
    rows = list(
        Elder.objects.filter(pk__in=ids)
        .select_related("community", "first_contact")
        .only(*LIST_COLUMNS, "missing_facts")
        .order_by("id")
    )
    return ElderPage(rows, next_after=ids[-1] if ids and more else None)


@dataclass
class DuplicateGroup:
    name: str
    birth_date: dt.date
    elders: list[Elder]


def duplicate_count(*, user: Any, area: Area) -> int:
    """How many (name, birth date) pairs in ``area`` belong to more than one elder."""
    return int(_duplicate_keys(user=user, area=area).count())


def _duplicate_keys(*, user: Any, area: Area) -> Any:
    return (
        Elder.objects.visible_to(user)
        .filter(**{area_column(area): area.pk}, life_status__in=QUALITY_LIFE_STATUSES)
        .order_by()
        .values("name", "birth_date")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )


def duplicate_groups(
    *, user: Any, area: Area, offset: int = 0, size: int = PAGE_SIZE
) -> tuple[list[DuplicateGroup], bool]:
    """Possible duplicates: elders with the same name and birth date but different ID
    numbers. Returns one page of groups (by name) and whether more follow. Two queries."""
    keys = list(
        _duplicate_keys(user=user, area=area).order_by("name", "birth_date")[
            offset : offset + size + 1
        ]
    )
    more = len(keys) > size
    keys = keys[:size]
    if not keys:
        return [], False
    match = Q()
    for key in keys:
        match |= Q(name=key["name"], birth_date=key["birth_date"])
    elders = (
        Elder.objects.visible_to(user)
        .filter(**{area_column(area): area.pk}, life_status__in=QUALITY_LIFE_STATUSES)
        .filter(match)
        .select_related("community", "first_contact")
        .only(*LIST_COLUMNS)
        .order_by("id")
    )
    groups = {
        (k["name"], k["birth_date"]): DuplicateGroup(k["name"], k["birth_date"], []) for k in keys
    }
    for elder in elders:
        group = groups.get((elder.name, elder.birth_date))
        if group is not None:
            group.elders.append(elder)
    return list(groups.values()), more
