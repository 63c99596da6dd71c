"""Creating and updating elders from records, in batches, merging on the ID number."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, cast

from django.db import connection, models, transaction
from django.db.models import Model, OuterRef, Subquery, signals
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.translation import gettext as _

from tanfang.areas.models import Area, AreaLevel
from tanfang.core import crypto
from tanfang.registry import classification as rules
from tanfang.registry.capability import to_beijing_level
from tanfang.registry.errors import RegistryError
from tanfang.registry.facts import elder_facts
from tanfang.registry.identity import (
    gender_of,
    mask_id_number,
    mask_phone,
    normalise_id_number,
    normalise_phone,
)
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    Child,
    ContactRelation,
    Elder,
    ElderChange,
    FirstContact,
    HouseholdMember,
    Willingness,
)
from tanfang.registry.reclassify import elders_reclassify, other_rules_for
from tanfang.registry.records import (
    SCALAR_FACTS,
    UNSET,
    ChildRecord,
    ElderRecord,
    HouseholdRecord,
)


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
    """Copy the record's scalar facts onto ``elder``; return {fact: [old, new]} of changes.

    A fact changes only with news at least as recent as its held source. A fact stated for
    the first time with the value already held (a default) gets its source recorded without
    counting as a change; a later source confirming a value does not replace its source.
    """
    changes: dict[str, list[Any]] = {}
    sources = dict(elder.fact_sources or {})
    stamp = {"source": source, "date": source_date.isoformat()}

    def changed(fact: str, same: bool) -> bool:
        if not _fact_is_newer(elder, fact, source_date):
            return False
        if same:
            sources.setdefault(fact, stamp)
            return False
        sources[fact] = stamp
        return True

    for fact in SCALAR_FACTS:
        value = getattr(record, fact)
        if value is UNSET:
            continue
        new = value if value is not None or fact not in _BLANK_STRINGS else ""
        old = getattr(elder, fact)
        if changed(fact, old == new):
            setattr(elder, fact, new)
            changes[fact] = [_jsonable(old), _jsonable(new)]
    if record.phone is not UNSET:
        phone = record.phone or ""
        new_hash = crypto.blind_index("phone", phone)
        if changed("phone", new_hash == elder.phone_hash):
            changes["phone"] = [elder.phone_masked, mask_phone(phone) if phone else ""]
            elder.phone_hash = new_hash
            elder.phone_cipher = crypto.encrypt(phone)
            elder.phone_masked = mask_phone(phone) if phone else ""
    if record.community_code is not UNSET:
        community = communities[record.community_code]
        if changed("community", elder.community_id == community.pk):
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
    if record.grid_code is not UNSET:
        grid = grids[record.grid_code] if record.grid_code else None
        if changed("grid", elder.grid_id == (grid.pk if grid else None)):
            changes["grid"] = [elder.grid.code if elder.grid else None, getattr(grid, "code", None)]
            elder.grid = grid
    elder.fact_sources = sources
    return changes


_BLANK_STRINGS = {"spouse_status", "disability_status", "disability_type", "address"}
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
# Columns of an elder row an upsert may change (``bulk_update`` writes those that did).
_ROW_FIELDS = (
    *SCALAR_FACTS,
    "phone_cipher",
    "phone_hash",
    "phone_masked",
    "community",
    "subdistrict",
    "district",
    "city",
    "rural",
    "grid",
    "children_known",
    "household_known",
    "capability_level",
    "capability_assessed_on",
    "willing_to_be_visited",
    "willingness_recorded_on",
    "first_contact",
    "fact_sources",
)
_ROW_ATTNAMES = tuple(
    cast(models.Field, Elder._meta.get_field(name)).attname for name in _ROW_FIELDS
)
_ROW_VALUES = operator.attrgetter(*_ROW_ATTNAMES)


@dataclass(eq=False)
class _Plan:
    """One elder of an upsert batch, from reading the record to writing the rows.

    ``children`` and ``household`` are what the elder has after the upsert: the rows held,
    or the records about to be written (both have the attributes ``elder_facts`` reads).
    """

    elder: Elder
    record: ElderRecord
    created: bool
    before: tuple[Any, ...]  # the row's columns (``_ROW_FIELDS``) before the upsert
    changes: dict[str, list[Any]] = field(default_factory=dict)
    related: bool = False  # children, household, assessments ... changed
    children: list[Any] = field(default_factory=list)
    household: list[Any] = field(default_factory=list)
    new_children: bool = False
    new_household: bool = False
    child_ids: dict[str, int] = field(default_factory=dict)  # known child rows by name

    def stamp(self, fact: str, source: str, source_date: dt.date) -> None:
        self.elder.fact_sources = {
            **(self.elder.fact_sources or {}),
            fact: {"source": source, "date": source_date.isoformat()},
        }

    def newer(self, fact: str, source_date: dt.date) -> bool:
        return _fact_is_newer(self.elder, fact, source_date)

    def changed_fields(self) -> list[str]:
        now = _ROW_VALUES(self.elder)
        return [f for f, old, new in zip(_ROW_FIELDS, self.before, now, strict=True) if old != new]


def _cache_related(elder: Elder, name: str, rows: list[Any]) -> None:
    """Hand ``elder.<name>.all()`` the rows just written, as ``prefetch_related`` would, so
    that reclassifying reads no row back (private Django API, stable since 1.4)."""
    queryset = getattr(elder, name).model._default_manager.all()
    queryset._result_cache = rows
    queryset._prefetch_done = True
    elder.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset


def _sync_rows(
    plans: list[_Plan], fact: str, model: Any, source: str, source_date: dt.date
) -> None:
    """Decide whose ``fact`` rows (``children`` or ``household``) the record replaces,
    compared as a set so that the order of the file's columns does not matter; delete the
    rows they replace. The plan's ``fact``, ``new_<fact>`` and the elder's ``<fact>_known``
    say what to write next."""
    known, fresh = f"{fact}_known", f"new_{fact}"
    emptied: list[int] = []
    for plan in plans:
        elder, wanted = plan.elder, getattr(plan.record, fact)
        if wanted is UNSET or not plan.newer(fact, source_date):
            continue
        held_rows = getattr(plan, fact)
        if wanted is None:
            if getattr(elder, known):
                setattr(elder, known, False)
                setattr(plan, fact, [])
                setattr(plan, fresh, True)
                plan.related = True
                emptied.append(elder.pk)
                plan.stamp(fact, source, source_date)
            continue
        held = sorted((row.key() for row in held_rows), key=repr)
        if getattr(elder, known) and held == sorted((row.key() for row in wanted), key=repr):
            if fact not in (elder.fact_sources or {}):
                plan.stamp(fact, source, source_date)
            continue
        if held_rows:
            emptied.append(elder.pk)
        setattr(plan, fact, list(wanted))
        setattr(plan, fresh, True)
        setattr(elder, known, True)
        plan.related = True
        plan.stamp(fact, source, source_date)
    if emptied:
        model.objects.filter(elder_id__in=emptied).delete()


def _load_related(plans: list[_Plan]) -> None:
    """Give each elder held its children and household as records: two queries, and no
    model instances (cheaper than ``prefetch_related`` for a thousand elders)."""
    by_id = {plan.elder.pk: plan for plan in plans if not plan.created}
    if not by_id:
        return
    for elder_id, pk, *values in (
        Child.objects.filter(elder_id__in=list(by_id))
        .order_by("birth_year", "pk")
        .values_list("elder_id", "pk", *_CHILD_FIELDS)
    ):
        plan = by_id[elder_id]
        plan.children.append(ChildRecord(*values))
        plan.child_ids.setdefault(values[0], pk)
    for elder_id, relation, age in (
        HouseholdMember.objects.filter(elder_id__in=list(by_id))
        .order_by("pk")
        .values_list("elder_id", "relation", "age")
    ):
        by_id[elder_id].household.append(HouseholdRecord(relation, age))


def _held_keys(model: Any, plans: list[_Plan], columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The keys of the rows of ``model`` already held for the batch's existing elders."""
    ids = [plan.elder.pk for plan in plans if not plan.created]
    if not ids:
        return set()
    return set(model.objects.filter(elder_id__in=ids).values_list("elder_id", *columns))


@dataclass
class _Events:
    """Assessments, contracts and willingness records to add, as (plan, record) pairs."""

    assessments: list[tuple[_Plan, Any]] = field(default_factory=list)
    contracts: list[tuple[_Plan, Any]] = field(default_factory=list)
    willingness: list[tuple[_Plan, Any]] = field(default_factory=list)


def _sync_events(plans: list[_Plan]) -> _Events:
    """The assessments, contracts and willingness records not held yet; they are history, so
    an older one is added too, and the elder shows the latest. (Records are merged by elder
    before, so a batch holds at most one of each per elder.)"""
    events = _Events()
    todo = [p for p in plans if p.record.assessment not in (UNSET, None)]
    held = _held_keys(CapabilityAssessment, todo, ("scheme", "level", "assessed_on"))
    for plan in todo:
        a, elder = plan.record.assessment, plan.elder
        if (elder.pk, a.scheme, a.level, a.assessed_on) in held:
            continue
        beijing = to_beijing_level(a.scheme, a.level)
        events.assessments.append((plan, a))
        if elder.capability_assessed_on is None or a.assessed_on >= elder.capability_assessed_on:
            elder.capability_level, elder.capability_assessed_on = beijing, a.assessed_on
        plan.related = True

    todo = [p for p in plans if p.record.contract not in (UNSET, None)]
    held = _held_keys(CareContract, todo, ("kind", "provider_name", "starts_on"))
    for plan in todo:
        c = plan.record.contract
        if (plan.elder.pk, c.kind, c.provider_name, c.starts_on) not in held:
            events.contracts.append((plan, c))
            plan.related = True

    todo = [p for p in plans if p.record.willingness not in (UNSET, None)]
    held = _held_keys(Willingness, todo, ("willing", "recorded_on"))
    for plan in todo:
        w, elder = plan.record.willingness, plan.elder
        if (elder.pk, w.willing, w.recorded_on) in held:
            continue
        events.willingness.append((plan, w))
        if elder.willingness_recorded_on is None or w.recorded_on >= elder.willingness_recorded_on:
            elder.willing_to_be_visited, elder.willingness_recorded_on = w.willing, w.recorded_on
        plan.related = True
    return events


def _plan_first_contacts(
    plans: list[_Plan], source: str, source_date: dt.date
) -> list[tuple[_Plan, Any, str]]:
    """The elders whose record names a first contact other than the one held, checked with
    the rules of ``first_contact_set`` (a name, a known relation, a valid phone)."""
    wanted: list[tuple[_Plan, Any, str]] = []
    for plan in plans:
        fc = plan.record.first_contact
        if fc is UNSET or fc is None or not plan.newer("first_contact", source_date):
            continue
        if not fc.name.strip():
            raise RegistryError(_("the first contact needs a name"))
        if fc.relation not in ContactRelation.values:
            raise RegistryError(_("unknown relation: %(relation)s") % {"relation": fc.relation})
        number = normalise_phone(fc.phone)
        current = None if plan.created else plan.elder.first_contact
        if (
            current is not None
            and (current.name, current.relation) == (fc.name.strip(), fc.relation)
            and _phone_hash_of(current) == crypto.blind_index("phone", number)
        ):
            if "first_contact" not in (plan.elder.fact_sources or {}):
                plan.stamp("first_contact", source, source_date)
            continue
        wanted.append((plan, fc, number))
        plan.related = True
        plan.stamp("first_contact", source, source_date)
    return wanted


def _write_related(
    plans: list[_Plan], events: _Events, actor: Any, source: str, source_date: dt.date
) -> None:
    """Insert the children, household members, assessments, contracts and willingness
    records decided on (the elders have ids by now): one statement per table."""
    ops = connection.ops
    on = ops.adapt_datefield_value(source_date)
    by = actor.pk if getattr(actor, "pk", None) else None
    children = [(plan, c) for plan in plans if plan.new_children for c in plan.children]
    ids = _reserve_ids(Child, len(children))
    if ids is None:
        _insert_rows(
            Child,
            ("elder_id", *_CHILD_FIELDS, "source", "source_date"),
            [
                (plan.elder.pk, *(getattr(c, f) for f in _CHILD_FIELDS), source, on)
                for plan, c in children
            ],
        )
    else:
        for plan in plans:
            if plan.new_children:
                plan.child_ids = {}
        for (plan, c), pk in zip(children, ids, strict=True):
            plan.child_ids.setdefault(c.name, pk)
        _insert_rows(
            Child,
            ("id", "elder_id", *_CHILD_FIELDS, "source", "source_date"),
            [
                (pk, plan.elder.pk, *(getattr(c, f) for f in _CHILD_FIELDS), source, on)
                for (plan, c), pk in zip(children, ids, strict=True)
            ],
        )
    _insert_rows(
        HouseholdMember,
        ("elder_id", "relation", "age", "source", "source_date"),
        [
            (plan.elder.pk, m.relation, m.age, source, on)
            for plan in plans
            if plan.new_household
            for m in plan.household
        ],
    )
    _insert_rows(
        CapabilityAssessment,
        ("elder_id", "scheme", "level", "beijing_level", "assessed_on", "source", "source_date"),
        [
            (
                plan.elder.pk,
                a.scheme,
                a.level,
                to_beijing_level(a.scheme, a.level),
                ops.adapt_datefield_value(a.assessed_on),
                source,
                on,
            )
            for plan, a in events.assessments
        ],
    )
    _insert_rows(
        CareContract,
        (
            "elder_id",
            "kind",
            "provider_name",
            "recipient_group",
            "starts_on",
            "ends_on",
            "source",
            "source_date",
        ),
        [
            (
                plan.elder.pk,
                c.kind,
                c.provider_name,
                c.recipient_group,
                ops.adapt_datefield_value(c.starts_on),
                ops.adapt_datefield_value(c.ends_on),
                source,
                on,
            )
            for plan, c in events.contracts
        ],
    )
    _insert_rows(
        Willingness,
        ("elder_id", "willing", "recorded_on", "recorded_by_id", "recorded_by_name", "note"),
        [
            (
                plan.elder.pk,
                w.willing,
                ops.adapt_datefield_value(w.recorded_on),
                by,
                w.recorded_by_name,
                w.note,
            )
            for plan, w in events.willingness
        ],
    )


def _reserve_first_contacts(wanted: list[tuple[_Plan, Any, str]]) -> list[int] | None:
    """On PostgreSQL, ids for the new first contacts, set on their elders before the elders
    are written (so a new elder is inserted pointing at her contact, not updated after)."""
    ids = _reserve_ids(FirstContact, len(wanted))
    if ids is not None:
        for (plan, _fc, _number), pk in zip(wanted, ids, strict=True):
            plan.elder.first_contact_id = pk
    return ids


def _write_first_contacts(
    wanted: list[tuple[_Plan, Any, str]], ids: list[int] | None, actor: Any, source: str
) -> None:
    """Make the planned contacts current as ``first_contact_set`` does (the previous one is
    kept as history, ``valid_to`` set); a contact who is a child points at the child row of
    the same name. With ``ids`` (PostgreSQL) the rows carry their links from the start;
    otherwise two set-based updates add them after the insert."""
    if not wanted:
        return
    ops = connection.ops
    now = timezone.now()
    when = ops.adapt_datetimefield_value(now)
    today = ops.adapt_datefield_value(timezone.localdate())
    elder_ids = [plan.elder.pk for plan, _fc, _n in wanted]
    FirstContact.objects.filter(
        elder_id__in=[plan.elder.pk for plan, _fc, _n in wanted if not plan.created],
        is_current=True,
    ).update(is_current=False, valid_to=now)
    by = actor.pk if getattr(actor, "pk", None) else None
    columns = (
        "elder_id", "name", "relation", "child_id", "phone_cipher", "phone_masked",
        "designated_by_community", "is_current", "valid_from", "valid_to", "confirmed_on",
        "set_by_id", "note",
    )  # fmt: skip
    rows = [
        (
            plan.elder.pk,
            fc.name.strip(),
            fc.relation,
            plan.child_ids.get(fc.name.strip()) if fc.relation == ContactRelation.CHILD else None,
            crypto.encrypt(number),
            mask_phone(number),
            fc.designated_by_community,
            True,
            when,
            None,
            today,
            by,
            source[:200],
        )
        for plan, fc, number in wanted
    ]
    if ids is not None:
        _insert_rows(
            FirstContact, ("id", *columns), [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
        )
        return
    _insert_rows(FirstContact, columns, rows)
    current = FirstContact.objects.filter(elder=OuterRef("pk"), is_current=True)
    Elder.objects.filter(pk__in=elder_ids).update(first_contact=Subquery(current.values("pk")[:1]))
    FirstContact.objects.filter(
        elder_id__in=elder_ids, is_current=True, relation=ContactRelation.CHILD
    ).update(
        child=Subquery(
            Child.objects.filter(elder=OuterRef("elder"), name=OuterRef("name"))
            .order_by("pk")
            .values("pk")[:1]
        )
    )


def _reserve_ids(model: type[Model], count: int) -> list[int] | None:
    """``count`` ids from the table's sequence, on PostgreSQL (None elsewhere: SQLite hands
    out ids only on insert)."""
    if connection.vendor != "postgresql":
        return None
    if not count:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _insert_rows(model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert rows of values the database takes as they are (dates, JSON and times adapted
    by the caller through ``connection.ops``): PostgreSQL's ``COPY``, one ``executemany``
    elsewhere. For a thousand rows either is several times faster than ``bulk_create``,
    which compiles every value (and, on PostgreSQL, quotes it into the SQL text)."""
    if not rows:
        return
    meta, quote = model._meta, connection.ops.quote_name
    names = ", ".join(quote(cast(models.Field, meta.get_field(c)).column or c) for c in columns)
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The driver's own cursor: Django's wrapper has no ``copy``. Foreign keys are
            # checked at commit, as for any insert here.
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
            cursor.executemany(sql, rows)


def _insert_elders(elders: list[Elder], *, with_ids: bool) -> None:
    """Insert new elders. ``with_ids``: they carry ids reserved from the sequence; otherwise
    the objects get their ids read back by the unique blind index.

    Values go to the driver as ``get_db_prep_save`` would send them: text, numbers, booleans
    and foreign-key ids as they are (read in one ``attrgetter`` call), dates, times and JSON
    adapted by ``connection.ops``."""
    if not elders:
        return
    fields = [f for f in Elder._meta.concrete_fields if with_ids or not f.primary_key]
    plain = [f.attname for f in fields if isinstance(f, _PLAIN_FIELDS)]
    other = [(f.attname, _adapter(f)) for f in fields if not isinstance(f, _PLAIN_FIELDS)]
    take = operator.attrgetter(*plain)
    now = timezone.now()
    rows = []
    for elder in elders:
        elder.created_at = elder.updated_at = now
        rows.append((*take(elder), *(adapt(getattr(elder, name)) for name, adapt in other)))
    _insert_rows(Elder, [*plain, *(name for name, _adapt in other)], rows)
    if with_ids:
        return
    by_hash = {elder.id_number_hash: elder for elder in elders}
    for digest, pk in Elder.objects.filter(id_number_hash__in=list(by_hash)).values_list(
        "id_number_hash", "pk"
    ):
        _saved_as(by_hash[digest], pk)


def _saved_as(elder: Elder, pk: int) -> None:
    elder.pk = pk
    elder._state.adding = False
    elder._state.db = connection.alias


# Field classes whose Python values the database drivers take as they are (a TextChoices
# member is a str).
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.BooleanField,
    models.IntegerField,
    models.ForeignKey,
)


def _adapter(f: Any) -> Any:
    """How a value of field ``f`` goes to the database driver (what ``get_db_prep_save``
    does, without its layers)."""
    ops = connection.ops
    if isinstance(f, models.JSONField):
        return lambda v: ops.adapt_json_value(v, f.encoder)
    if isinstance(f, models.DateField):  # and DateTimeField: few distinct values a batch
        adapt = (
            ops.adapt_datetimefield_value
            if isinstance(f, models.DateTimeField)
            else ops.adapt_datefield_value
        )
        return functools.lru_cache(maxsize=4096)(adapt)
    return lambda v: f.get_db_prep_save(v, connection)


_ELDER_DEFAULTS: dict[str, Any] = {}


def _new_elder(**values: Any) -> Elder:
    """An unsaved elder with its defaults: a copy of a blank one, twenty times cheaper than
    ``Elder(...)`` (which works out every field's default). Mutable defaults (the JSON
    fields) are fresh; with ``pre_init``/``post_init`` receivers on Elder the constructor is
    used, so they still run."""
    if signals.pre_init.has_listeners(Elder) or signals.post_init.has_listeners(Elder):
        return Elder(**values)
    if not _ELDER_DEFAULTS:
        _ELDER_DEFAULTS.update((k, v) for k, v in Elder().__dict__.items() if k != "_state")
    elder = Elder.__new__(Elder)
    state = elder.__dict__
    state.update(_ELDER_DEFAULTS)
    state["_state"] = ModelState()
    for name in ("fact_sources", "categories", "category_reasons", "computed_categories",
                 "missing_facts"):  # fmt: skip
        state[name] = copy.copy(_ELDER_DEFAULTS[name])
    state.update(values)
    return elder


def _birth_date(number: str) -> dt.date:
    """The birth date in a validated ID number (``birth_date_of`` re-parses it, slowly)."""
    return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def _load_areas(
    records: Iterable[ElderRecord], cache: dict[str, Area]
) -> tuple[dict[str, Area], dict[str, Area]]:
    """The communities and grids the records name, from ``cache`` or one query each (what
    is loaded is added to ``cache``); an unknown code is refused."""
    codes: set[str] = set()
    grid_codes: set[str] = set()
    for r in records:
        if r.community_code:
            codes.add(r.community_code)
        if r.grid_code:
            grid_codes.add(r.grid_code)
    wanted = codes - cache.keys()
    if wanted:
        cache.update(
            (a.code, a)
            for a in Area.objects.filter(code__in=wanted, level=AreaLevel.COMMUNITY).only(
                "code", "level", "community_kind", "subdistrict_id", "district_id", "city_id"
            )
        )
    wanted = grid_codes - cache.keys()
    if wanted:
        cache.update(
            (a.code, a) for a in Area.objects.filter(code__in=wanted, level=AreaLevel.GRID)
        )
    communities = {c: cache[c] for c in codes if c in cache}
    grids = {c: cache[c] for c in grid_codes if c in cache}
    missing = sorted(codes - communities.keys())
    if missing:
        raise RegistryError(_("unknown community code: %(code)s") % {"code": missing[0]})
    missing = sorted(grid_codes - grids.keys())
    if missing:
        raise RegistryError(_("unknown grid code: %(code)s") % {"code": missing[0]})
    return communities, grids


def _merge_by_id(
    records: Sequence[ElderRecord], *, validated: bool
) -> dict[str, tuple[str, ElderRecord]]:
    """Records keyed by the blind index of their ID number; records of the same elder are
    merged, a later record's stated facts winning."""
    merged: dict[str, tuple[str, ElderRecord]] = {}
    for record in records:
        birth = record.birth_date if isinstance(record.birth_date, dt.date) else None
        number = (
            record.id_number
            if validated
            else normalise_id_number(record.id_number, birth_date=birth)
        )
        digest = crypto.blind_index("id", number)
        if digest in merged:
            held = replace(merged[digest][1])
            for item in fields(ElderRecord):
                if item.name != "id_number" and getattr(record, item.name) is not UNSET:
                    setattr(held, item.name, getattr(record, item.name))
            record = held
        merged[digest] = (number, record)
    return merged


def elders_upsert(
    *,
    actor: Any,
    records: Sequence[ElderRecord],
    source: str,
    source_date: dt.date,
    reclassify: bool = True,
    validated: bool = False,
    areas: dict[str, Area] | None = None,
) -> UpsertResult:
    """Create or update elders from records, merging on the resident ID number.

    Steps, each one statement (or one per table) for the whole batch: validate every ID
    number and merge records of the same elder; load the areas and the elders already held
    with their children, household and first contact; apply each record's scalar facts,
    keeping source and date per fact and ignoring news older than what is held; decide which
    children, household, assessments, contracts, willingness records and first contacts are
    new; classify the new elders and insert them; insert the related rows; make the new
    first contacts current; update the changed columns of the elders held; write a change
    row for every elder that changed; reclassify the changed elders held.
    Idempotent: the same records again change nothing. Call inside a transaction for several
    batches that must be all-or-nothing (``transaction.atomic`` is also taken here).
    Batches of about a thousand records suit an import. ``validated``: every record's ID
    number has been through ``normalise_id_number`` already (an import checks each row before
    writing any), so it is not checked twice. ``areas``: a cache of communities and grids by
    code that a caller writing many batches keeps between them.
    """
    result = UpsertResult()
    merged = _merge_by_id(records, validated=validated)
    with transaction.atomic():
        communities, grids = _load_areas(
            (record for _n, record in merged.values()), {} if areas is None else areas
        )
        existing = {
            e.id_number_hash: e
            for e in Elder.objects.filter(id_number_hash__in=list(merged)).select_related(
                "community", "grid", "first_contact"
            )
        }
        plans: list[_Plan] = []
        for digest, (number, record) in merged.items():
            elder = existing.get(digest)
            if elder is None:
                if record.community_code is UNSET or not record.name:
                    raise RegistryError(_("a new elder needs at least a name and a community"))
                elder = _new_elder(
                    id_number_hash=digest,
                    id_number_cipher=crypto.encrypt(number),
                    id_number_masked=mask_id_number(number),
                    birth_date=_birth_date(number),
                    gender=gender_of(number),
                )
            created = elder.pk is None
            before = () if created else _ROW_VALUES(elder)
            plan = _Plan(elder, record, created, before)
            plan.changes = _apply_record(elder, record, communities, grids, source, source_date)
            plans.append(plan)
        _load_related(plans)
        _sync_rows(plans, "children", Child, source, source_date)
        _sync_rows(plans, "household", HouseholdMember, source, source_date)
        events = _sync_events(plans)
        contacts = _plan_first_contacts(plans, source, source_date)
        new = [plan for plan in plans if plan.created]
        if reclassify:
            _classify_new(new)
        ids = _reserve_ids(Elder, len(new))
        for plan, pk in zip(new, ids or (), strict=False):
            _saved_as(plan.elder, pk)
        contact_ids = _reserve_first_contacts(contacts)
        _insert_elders([plan.elder for plan in new], with_ids=ids is not None)
        _write_related(plans, events, actor, source, source_date)
        _write_first_contacts(contacts, contact_ids, actor, source)
        held = [plan for plan in plans if not plan.created]
        _update_rows(held)
        touched = [plan for plan in plans if plan.created or plan.changes or plan.related]
        by = actor.pk if getattr(actor, "pk", None) else None
        when = connection.ops.adapt_datetimefield_value(timezone.now())
        _insert_rows(
            ElderChange,
            ("elder_id", "at", "by_id", "source", "changes", "note"),
            [
                (
                    plan.elder.pk,
                    when,
                    by,
                    source,
                    connection.ops.adapt_json_value(plan.changes, None),
                    "created" if plan.created else "",
                )
                for plan in touched
            ],
        )
        held_touched = [plan for plan in touched if not plan.created]
        for plan in held_touched:
            _cache_related(plan.elder, "children", plan.children)
            _cache_related(plan.elder, "household", plan.household)
        if reclassify and held_touched:
            elders_reclassify(elders=[plan.elder for plan in held_touched])
        result.created = len(new)
        result.updated = len(held_touched)
        result.unchanged = len(plans) - len(touched)
        result.elder_ids = [plan.elder.pk for plan in touched]
    return result


class _Unsaved:
    """An elder not inserted yet, with the children and household about to be: what
    ``elder_facts`` reads (a related manager needs a saved row)."""

    def __init__(self, plan: _Plan) -> None:
        self._elder = plan.elder
        self.children = _Rows(plan.children)
        self.household = _Rows(plan.household)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._elder, name)


class _Rows:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def all(self) -> list[Any]:
        return self._rows


def _classify_new(plans: list[_Plan]) -> None:
    """Classify elders before inserting them, exactly as ``elders_reclassify`` would (a new
    elder has no hand overrides), so they are written once, not inserted then updated.
    ``tests/test_import_upsert.py`` checks the two agree."""
    if not plans:
        return
    on = timezone.localdate()
    compiled = other_rules_for({plan.elder.district_id for plan in plans})
    for plan in plans:
        elder = plan.elder
        facts = elder_facts(cast(Elder, _Unsaved(plan)), as_of=on)
        result = rules.classify(facts, compiled.get(elder.district_id, ()))
        computed = list(result.categories)
        ordered = [c for c in rules.CATEGORIES if c in set(computed)]
        elder.computed_categories = computed
        elder.categories = ordered
        elder.category_bits = rules.bits_of(ordered)
        elder.category_reasons = {c: list(result.reason_codes[c]) for c in computed}
        elder.missing_facts = list(result.missing_facts)
        elder.advanced_age = result.advanced_age
        elder.focus = result.advanced_age and bool(set(ordered) & set(rules.FOCUS_SOURCES))
        elder.classified_on = on


def _update_rows(plans: list[_Plan]) -> None:
    """Write the columns that changed on elders already held: one ``bulk_update`` of the
    union of those columns (an import batch usually changes the same few)."""
    columns: set[str] = set()
    elders: list[Elder] = []
    now = timezone.now()
    for plan in plans:
        changed = plan.changed_fields()
        if changed:
            columns.update(changed)
            plan.elder.updated_at = now
            elders.append(plan.elder)
    if elders:
        Elder.objects.bulk_update(elders, [*sorted(columns), "updated_at"])


def _phone_hash_of(contact: FirstContact) -> str:
    return crypto.blind_index("phone", crypto.decrypt(contact.phone_cipher))
