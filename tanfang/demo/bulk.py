"""Writing the demo's elders in bulk, with exactly the columns the registry services compute.

``elders_upsert`` is right for forms and imports but, three deliveries per elder, too slow
for a million demo elders. This module applies the same deliveries in memory and writes
plain rows with one ``executemany`` per table and batch:

1. for each delivery, ``registry.upsert._apply_record`` (the very function the upsert uses)
   copies the scalar facts, the phone (encrypted, blind-indexed, masked) and the place, and
   keeps each fact's source and date; children, household, assessment, contract, willingness
   and first contact become rows as the upsert's ``_sync_*`` steps make them (and stamp the
   same sources);
2. a change row is written per delivery that changed something, as the upsert writes;
3. the classification runs on ``registry.facts.elder_facts`` of the in-memory records, and the
   category columns are set as ``elders_reclassify`` sets them;
4. ids are allocated here, so that an elder can point to her first contact and a first
   contact to the child it is, without reading ids back (foreign keys are checked at commit).

``tests/test_demo_bulk.py`` builds the same people through ``elders_upsert`` and compares
every column, so the two paths cannot drift apart silently; and each table's column list is
checked against its model, so a new column stops the demo rather than being left out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache, partial
from typing import Any, cast

from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Max, Model
from django.utils import timezone

from tanfang.areas.models import Area
from tanfang.core import crypto
from tanfang.demo.shapes import DemoElder
from tanfang.registry import classification as rules
from tanfang.registry.capability import to_beijing_level
from tanfang.registry.facts import elder_facts
from tanfang.registry.identity import (
    birth_date_of,
    gender_of,
    mask_id_number,
    mask_phone,
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
from tanfang.registry.reclassify import other_rules_for
from tanfang.registry.records import UNSET, ChildRecord, ElderRecord, HouseholdRecord
from tanfang.registry.upsert import _apply_record

CHILD_SLOTS = 8  # ids reserved per elder for her children
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


class _Table:
    """An INSERT of chosen columns of a model, fed with plain tuples.

    ``encode`` turns dates, datetimes and JSON into the text the backend stores (it runs in
    the worker processes, so the writing process only executes); ``write`` inserts. Refuses
    to be built when the model has a column the tuples do not carry (other than an
    auto-incremented id), so that a column added to a model cannot be silently left empty.
    """

    def __init__(self, model: type[Model], columns: Sequence[str]) -> None:
        meta = model._meta
        by_attname = {f.attname: f for f in meta.concrete_fields}
        left_out = set(by_attname) - set(columns) - {meta.pk.attname if meta.pk else "id"}
        if left_out:
            raise RuntimeError(
                f"the demo does not fill {meta.db_table}.{', '.join(sorted(left_out))}; "
                "update tanfang/demo/bulk.py"
            )
        ops = connections[DEFAULT_DB_ALIAS].ops
        postgres = connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
        casts = {"DateField": "date", "DateTimeField": "timestamptz", "JSONField": "jsonb"}
        self.encoders: list[tuple[int, Callable[[Any], Any]]] = []
        placeholders: list[str] = []
        for index, column in enumerate(columns):
            f = by_attname[column]
            kind = f.get_internal_type()
            placeholders.append(f"%s::{casts[kind]}" if postgres and kind in casts else "%s")
            if kind == "DateField":
                self.encoders.append((index, dt.date.isoformat))
            elif kind == "DateTimeField":
                # A batch repeats a few instants (its write time, census mornings).
                adapt = dt.datetime.isoformat if postgres else ops.adapt_datetimefield_value
                self.encoders.append((index, lru_cache(maxsize=1024)(adapt)))
            elif kind == "JSONField":
                self.encoders.append((index, partial(_json, getattr(f, "encoder", None))))
        quote = ops.quote_name
        target = (
            f"{quote(str(meta.db_table))} "
            f"({', '.join(quote(str(by_attname[c].column)) for c in columns)})"
        )
        self.sql = f"INSERT INTO {target} VALUES ({', '.join(placeholders)})"
        # PostgreSQL loads text rows several times faster through COPY than through INSERT.
        self.copy_sql = f"COPY {target} FROM STDIN" if postgres else ""

    def encode(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        if not self.encoders:
            return rows
        encoded = []
        for row in rows:
            values = list(row)
            for index, encode in self.encoders:
                if values[index] is not None:
                    values[index] = encode(values[index])
            encoded.append(tuple(values))
        return encoded

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        with connection.cursor() as cursor:
            if self.copy_sql:
                with cursor.cursor.copy(self.copy_sql) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(self.sql, rows)


ELDER_COLUMNS = tuple(f.attname for f in Elder._meta.concrete_fields)
CHILD_COLUMNS = ("id", "elder_id", "source", "source_date", *_CHILD_FIELDS)
HOUSEHOLD_COLUMNS = ("elder_id", "source", "source_date", "relation", "age")
ASSESSMENT_COLUMNS = (
    "elder_id",
    "source",
    "source_date",
    "scheme",
    "level",
    "beijing_level",
    "assessed_on",
)
CONTRACT_COLUMNS = (
    "elder_id",
    "source",
    "source_date",
    "kind",
    "provider_name",
    "recipient_group",
    "starts_on",
    "ends_on",
)
WILLINGNESS_COLUMNS = (
    "elder_id",
    "willing",
    "recorded_on",
    "recorded_by_id",
    "recorded_by_name",
    "note",
)
CONTACT_COLUMNS = (
    "id",
    "elder_id",
    "name",
    "relation",
    "child_id",
    "phone_cipher",
    "phone_masked",
    "designated_by_community",
    "is_current",
    "valid_from",
    "valid_to",
    "confirmed_on",
    "set_by_id",
    "note",
)
CHANGE_COLUMNS = ("elder_id", "at", "by_id", "source", "changes", "note")


class _Related:
    """A stand-in for a related manager: ``elder_facts`` only calls ``.all()``."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def all(self) -> list[Any]:
        return self._rows


class _InMemoryElder:
    """An elder with her children and household records, as ``elder_facts`` reads them (the
    records carry the same attribute names as the rows)."""

    def __init__(
        self, elder: Elder, children: list[ChildRecord], household: list[HouseholdRecord]
    ) -> None:
        self._elder = elder
        self.children = _Related(children)
        self.household = _Related(household)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._elder, name)


@dataclass
class BulkContext:
    """What every batch needs: the areas, the district rules, the ids handed out so far."""

    communities: dict[str, Area]
    grids: dict[str, Area]
    today: dt.date
    other_rules: dict[int, tuple[rules.OtherRule, ...]] = field(default_factory=dict)
    # Ids follow from an elder's index: elder ``base + i``, her first contact ``base + i``,
    # her children ``base + CHILD_SLOTS * i + j``. Deterministic, and any process can
    # prepare any batch.
    elder_base: int = 1
    contact_base: int = 1
    child_base: int = 1

    @classmethod
    def load(cls, *, today: dt.date) -> BulkContext:
        areas = list(Area.objects.filter(level__in=("district", "community", "grid")))

        def after(model: type[Model]) -> int:
            return int(model._default_manager.aggregate(top=Max("id"))["top"] or 0) + 1

        return cls(
            communities={a.code: a for a in areas if a.level == "community"},
            grids={a.code: a for a in areas if a.level == "grid"},
            today=today,
            other_rules=other_rules_for(a.pk for a in areas if a.level == "district"),
            elder_base=after(Elder),
            contact_base=after(FirstContact),
            child_base=after(Child),
        )


@dataclass
class Batch:
    """The rows of a batch of elders, one list of tuples per table."""

    elders: list[tuple[Any, ...]] = field(default_factory=list)
    children: list[tuple[Any, ...]] = field(default_factory=list)
    household: list[tuple[Any, ...]] = field(default_factory=list)
    assessments: list[tuple[Any, ...]] = field(default_factory=list)
    contracts: list[tuple[Any, ...]] = field(default_factory=list)
    willingness: list[tuple[Any, ...]] = field(default_factory=list)
    contacts: list[tuple[Any, ...]] = field(default_factory=list)
    changes: list[tuple[Any, ...]] = field(default_factory=list)

    def rows(self) -> int:
        return sum(len(rows) for rows in vars(self).values())


def _newer(elder: Elder, fact: str, on: dt.date) -> bool:
    held = (elder.fact_sources or {}).get(fact)
    return held is None or held.get("date", "") <= on.isoformat()


def _stamp(elder: Elder, fact: str, source: str, on: dt.date) -> None:
    elder.fact_sources = {
        **(elder.fact_sources or {}),
        fact: {"source": source, "date": on.isoformat()},
    }


def _at(day: dt.date) -> dt.datetime:
    """Nine in the morning, Beijing time, of ``day``."""
    return timezone.make_aware(dt.datetime.combine(day, dt.time(9, 0)))


def _json(encoder: Any, value: Any) -> str:
    if not value and encoder is None:
        return "[]" if isinstance(value, list) else "{}" if isinstance(value, dict) else "null"
    return json.dumps(value, cls=encoder)


@cache
def _elder_template() -> tuple[list[Any], dict[str, int], list[tuple[int, type]]]:
    """The defaults of an elder row in field order, each field's position, and the positions
    of the mutable (JSON) defaults that every elder needs a fresh copy of."""
    fields = Elder._meta.concrete_fields
    defaults = [f.get_default() for f in fields]
    mutable = [(i, type(d)) for i, d in enumerate(defaults) if isinstance(d, dict | list)]
    return defaults, {f.attname: i for i, f in enumerate(fields)}, mutable


def _new_elder(**values: Any) -> Elder:
    """``Elder(**values)``, built positionally: several times faster than by keyword, and a
    million elders are made."""
    defaults, position, mutable = _elder_template()
    args = list(defaults)
    for i, kind in mutable:
        args[i] = kind()
    for name, value in values.items():
        args[position[name]] = value
    return Elder(*args)  # type: ignore[misc]


def _elder_rows(person: DemoElder, context: BulkContext, batch: Batch, now: dt.datetime) -> None:
    number = person.id_number
    elder = _new_elder(
        id=context.elder_base + person.index,
        id_number_hash=crypto.blind_index("id", number),
        id_number_cipher=crypto.encrypt(number),
        id_number_masked=mask_id_number(number),
        birth_date=birth_date_of(number),
        gender=gender_of(number),
    )
    children: list[ChildRecord] = []
    child_ids: list[int] = []
    household: list[HouseholdRecord] = []
    for position, delivery in enumerate(person.deliveries):
        record, source, on = delivery.record, delivery.source, delivery.source_date
        changes = _apply_record(elder, record, context.communities, context.grids, source, on)
        related = False
        # Each elder's children, household and first contact arrive in one delivery only,
        # so there is never a held list to compare with.
        if isinstance(record.children, list) and _newer(elder, "children", on):
            children = record.children
            if len(children) > CHILD_SLOTS:
                raise ValueError(f"the demo reserves ids for {CHILD_SLOTS} children an elder")
            first = context.child_base + CHILD_SLOTS * person.index
            child_ids = list(range(first, first + len(children)))
            batch.children.extend(
                (child_id, elder.pk, source, on, *(getattr(c, n) for n in _CHILD_FIELDS))
                for child_id, c in zip(child_ids, children, strict=True)
            )
            elder.children_known = related = True
            _stamp(elder, "children", source, on)
        if isinstance(record.household, list) and _newer(elder, "household", on):
            household = record.household
            batch.household.extend((elder.pk, source, on, m.relation, m.age) for m in household)
            elder.household_known = related = True
            _stamp(elder, "household", source, on)
        related = _assessment_rows(elder, record, source, on, batch) or related
        if record.contract is not UNSET and record.contract is not None:
            c = record.contract
            batch.contracts.append(
                (
                    elder.pk,
                    source,
                    on,
                    c.kind,
                    c.provider_name,
                    c.recipient_group,
                    c.starts_on,
                    c.ends_on,
                )
            )
            related = True
        related = _willingness_rows(elder, record, batch) or related
        if (
            record.first_contact is not UNSET
            and record.first_contact is not None
            and _newer(elder, "first_contact", on)
        ):
            _first_contact_row(elder, person, children, child_ids, source, context, batch)
            _stamp(elder, "first_contact", source, on)
            related = True
        if position == 0 or changes or related:
            batch.changes.append(
                (elder.pk, now, None, source, changes, "created" if position == 0 else "")
            )
    _classify(elder, children, household, context)
    elder.created_at = elder.updated_at = now
    batch.elders.append(tuple(getattr(elder, column) for column in ELDER_COLUMNS))


def _assessment_rows(
    elder: Elder, record: ElderRecord, source: str, on: dt.date, batch: Batch
) -> bool:
    a = record.assessment
    if a is UNSET or a is None:
        return False
    beijing = to_beijing_level(a.scheme, a.level)
    batch.assessments.append((elder.pk, source, on, a.scheme, a.level, beijing, a.assessed_on))
    if elder.capability_assessed_on is None or a.assessed_on >= elder.capability_assessed_on:
        elder.capability_level = beijing
        elder.capability_assessed_on = a.assessed_on
    return True


def _willingness_rows(elder: Elder, record: ElderRecord, batch: Batch) -> bool:
    w = record.willingness
    if w is UNSET or w is None:
        return False
    batch.willingness.append((elder.pk, w.willing, w.recorded_on, None, w.recorded_by_name, w.note))
    if elder.willingness_recorded_on is None or w.recorded_on >= elder.willingness_recorded_on:
        elder.willing_to_be_visited = w.willing
        elder.willingness_recorded_on = w.recorded_on
    return True


def _first_contact_row(
    elder: Elder,
    person: DemoElder,
    children: list[ChildRecord],
    child_ids: list[int],
    source: str,
    context: BulkContext,
    batch: Batch,
) -> None:
    fc = person.first_contact
    assert fc is not None
    number = normalise_phone(fc.phone)
    since = person.first_contact_since or context.today
    name = fc.name.strip()
    # As the upsert links them: the first child of the same name, when the contact is a child.
    child_id = next(
        (
            child_id
            for child_id, c in zip(child_ids, children, strict=True)
            if fc.relation == ContactRelation.CHILD and c.name == name
        ),
        None,
    )
    contact_id = context.contact_base + person.index
    batch.contacts.append(
        (
            contact_id,
            elder.pk,
            name,
            fc.relation,
            child_id,
            crypto.encrypt(number),
            mask_phone(number),
            fc.designated_by_community,
            True,
            _at(since),
            None,
            person.first_contact_confirmed_on or since,
            None,
            source[:200],
        )
    )
    elder.first_contact_id = contact_id


def _classify(
    elder: Elder,
    children: list[ChildRecord],
    household: list[HouseholdRecord],
    context: BulkContext,
) -> None:
    """As ``elders_reclassify`` does for an elder without hand overrides."""
    facts = elder_facts(
        cast(Elder, _InMemoryElder(elder, children, household)), as_of=context.today
    )
    result = rules.classify(facts, context.other_rules.get(elder.district_id, ()))
    computed = list(result.categories)
    ordered = [c for c in rules.CATEGORIES if c in set(computed)]
    elder.computed_categories = computed
    elder.categories = ordered
    elder.category_bits = rules.bits_of(ordered)
    elder.category_reasons = {c: list(result.reason_codes[c]) for c in computed}
    elder.missing_facts = list(result.missing_facts)
    elder.advanced_age = result.advanced_age
    elder.focus = result.advanced_age and bool(set(ordered) & set(rules.FOCUS_SOURCES))
    elder.classified_on = context.today


def prepare_batch(people: Sequence[DemoElder], context: BulkContext) -> Batch:
    """The rows of ``people``, encoded for the database; no database access."""
    batch = Batch()
    now = timezone.now()
    for person in people:
        _elder_rows(person, context, batch, now)
    for name, table in tables().items():
        setattr(batch, name, table.encode(getattr(batch, name)))
    return batch


@cache
def tables() -> dict[str, _Table]:
    """The INSERT of every table the demo writes, by the name of its list in ``Batch``."""
    return {
        "elders": _Table(Elder, ELDER_COLUMNS),
        "children": _Table(Child, CHILD_COLUMNS),
        "household": _Table(HouseholdMember, HOUSEHOLD_COLUMNS),
        "assessments": _Table(CapabilityAssessment, ASSESSMENT_COLUMNS),
        "contracts": _Table(CareContract, CONTRACT_COLUMNS),
        "willingness": _Table(Willingness, WILLINGNESS_COLUMNS),
        "contacts": _Table(FirstContact, CONTACT_COLUMNS),
        "changes": _Table(ElderChange, CHANGE_COLUMNS),
    }


def insert_batch(batch: Batch) -> int:
    """Insert a prepared batch (call inside a transaction); returns the number of rows."""
    for name, table in tables().items():
        table.write(getattr(batch, name))
    return batch.rows()


LOADED_MODELS: tuple[type[Model], ...] = (
    Elder,
    Child,
    HouseholdMember,
    CapabilityAssessment,
    CareContract,
    Willingness,
    FirstContact,
    ElderChange,
)


def _plain_indexes(model: type[Model]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the indexes of ``model``'s table that enforce nothing and
    serve no foreign key: not the primary key, no unique index, not the index of a foreign-key
    column (SQLite checks deferred foreign keys through those, so they must stay)."""
    table = str(model._meta.db_table)
    foreign = {f.column for f in model._meta.concrete_fields if f.is_relation}
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        names = {
            name
            for name, c in constraints.items()
            if c["index"]
            and not c["unique"]
            and not c["primary_key"]
            and not (len(c["columns"]) == 1 and c["columns"][0] in foreign)
        }
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                "AND sql IS NOT NULL",
                [table],
            )
        elif connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]
            )
        else:
            return []
        return [(str(name), str(sql)) for name, sql in cursor.fetchall() if name in names]


@contextmanager
def indexes_deferred(models: Sequence[type[Model]] = LOADED_MODELS) -> Iterator[None]:
    """Drop the plain indexes of ``models`` while they are loaded, and build them again at the
    end, even when the load fails: an index built at once from a million rows costs a fraction
    of a million inserts into it. Unique indexes and keys stay, so they are still enforced."""
    dropped = [index for model in models for index in _plain_indexes(model)]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for name, _sql in dropped:
            cursor.execute(f"DROP INDEX {quote(name)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            for _name, sql in dropped:
                cursor.execute(sql)


@contextmanager
def foreign_keys_unchecked() -> Iterator[None]:
    """Skip foreign-key checks while the generated rows are loaded (``pg_restore
    --disable-triggers`` does the same): the ids are computed, not looked up, and
    ``tests/test_demo_bulk.py`` checks the links on the ordinary, checked path. SQLite turns
    the checks off for the connection; PostgreSQL only for a superuser (the checks are
    triggers, skipped in the ``replica`` role), otherwise they stay on."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA foreign_keys = OFF")
            restore = "PRAGMA foreign_keys = ON"
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('is_superuser')")
            superuser = cursor.fetchone()[0] == "on"
            if superuser:
                cursor.execute("SET session_replication_role = replica")
            restore = "SET session_replication_role = DEFAULT" if superuser else ""
        else:
            restore = ""
    try:
        yield
    finally:
        if restore:
            with connection.cursor() as cursor:
                cursor.execute(restore)


def tune_connection() -> None:
    """Trade durability for speed while the demo is written: a crash leaves the build
    marked incomplete, and the next ``tanfang demo`` starts again from scratch. Call outside
    a transaction (SQLite refuses to change its safety level inside one)."""
    if connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB
        elif connection.vendor == "postgresql":
            cursor.execute("SET synchronous_commit TO OFF")


def reset_sequences() -> None:
    """After inserting explicit ids, move PostgreSQL's sequences past them (SQLite needs
    nothing: it tracks the highest id inserted)."""
    statements = connection.ops.sequence_reset_sql(no_style(), [Elder, Child, FirstContact])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
