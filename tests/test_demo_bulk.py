"""The demo's bulk writer stores exactly what the registry services would store."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pytest
from django.utils import timezone

from tanfang.areas.models import Area
from tanfang.areas.services import areas_import_rows
from tanfang.demo.bulk import (
    CHANGE_COLUMNS,
    CONTACT_COLUMNS,
    ELDER_COLUMNS,
    BulkContext,
    _plain_indexes,
    indexes_deferred,
    insert_batch,
    prepare_batch,
)
from tanfang.demo.people import ElderFactory
from tanfang.demo.pipeline import batches
from tanfang.demo.services import _communities, other_rules_create
from tanfang.demo.shapes import Community, DemoElder
from tanfang.demo.tree import tree_rows
from tanfang.registry.models import (
    CapabilityAssessment,
    CareContract,
    Child,
    Elder,
    ElderChange,
    FirstContact,
    HouseholdMember,
    Willingness,
)
from tanfang.registry.records import UNSET
from tanfang.registry.services import elders_upsert

SEED = 11
PEOPLE = 80
SOURCE_ORDER = ("civil_affairs", "disabled_federation", "census")

# Columns that differ by nature: random IVs, row ids, timestamps of the write.
_ELDER_SKIP = {
    "id",
    "id_number_cipher",
    "phone_cipher",
    "first_contact",
    "created_at",
    "updated_at",
}


def _people(today: dt.date) -> list[DemoElder]:
    factory = ElderFactory(seed=SEED, communities=_communities(), today=today)
    return [factory.make(factory.identity(i)) for i in range(PEOPLE)]


def _snapshot() -> dict[str, dict[str, Any]]:
    """Everything stored about each elder, keyed by the blind index of her ID number."""
    out: dict[str, dict[str, Any]] = {}
    for elder in Elder.objects.order_by("id"):
        row = {
            f.name: getattr(elder, f.attname)
            for f in Elder._meta.concrete_fields
            if f.name not in _ELDER_SKIP
        }
        row["children"] = list(
            Child.objects.filter(elder=elder)
            .order_by("id")
            .values_list(
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
                "source",
                "source_date",
            )
        )
        row["household"] = sorted(
            HouseholdMember.objects.filter(elder=elder).values_list(
                "relation", "age", "source", "source_date"
            ),
            key=repr,
        )
        row["assessments"] = list(
            CapabilityAssessment.objects.filter(elder=elder).values_list(
                "scheme", "level", "beijing_level", "assessed_on", "source", "source_date"
            )
        )
        row["contracts"] = list(
            CareContract.objects.filter(elder=elder).values_list(
                "kind",
                "provider_name",
                "recipient_group",
                "starts_on",
                "ends_on",
                "source",
                "source_date",
            )
        )
        row["willingness"] = list(
            Willingness.objects.filter(elder=elder).values_list(
                "willing", "recorded_on", "recorded_by", "recorded_by_name", "note"
            )
        )
        # When the contact was set and last confirmed are the demo's own (some are stale on
        # purpose); everything else must agree.
        row["first_contacts"] = list(
            FirstContact.objects.filter(elder=elder).values_list(
                "name",
                "relation",
                "child__name",
                "phone_masked",
                "designated_by_community",
                "is_current",
                "valid_to",
                "set_by",
                "note",
            )
        )
        row["current_contact"] = (
            elder.first_contact.name if elder.first_contact_id else None  # type: ignore[union-attr]
        )
        row["changes"] = list(
            ElderChange.objects.filter(elder=elder)
            .order_by("id")
            .values_list("source", "changes", "note", "by")
        )
        out[elder.id_number_hash] = row
    return out


@pytest.mark.django_db
def test_bulk_rows_equal_what_elders_upsert_stores() -> None:
    today = timezone.localdate()
    areas_import_rows(tree_rows(seed=SEED, elders=PEOPLE))
    other_rules_create()
    people = _people(today)
    insert_batch(prepare_batch(people, BulkContext.load(today=today)))
    bulk = _snapshot()
    assert len(bulk) == PEOPLE

    Elder.objects.all().delete()
    # The same deliveries through the service, one call per source and date, in the order
    # each elder received them.
    for source in SOURCE_ORDER:
        by_date: dict[dt.date, list[Any]] = defaultdict(list)
        for person in people:
            for delivery in person.deliveries:
                if delivery.source == source:
                    by_date[delivery.source_date].append(delivery.record)
        for on, records in sorted(by_date.items()):
            elders_upsert(actor=None, records=records, source=source, source_date=on)
    upserted = _snapshot()

    assert upserted.keys() == bulk.keys()
    for key, row in bulk.items():
        assert row == upserted[key], row["name"]


def test_the_city_is_the_same_however_many_processes_prepare_it() -> None:
    """Prepared in one process or in a pool of two, the batches hold the same rows."""
    today = dt.date(2026, 6, 1)
    city = Area(pk=1, code="110000", name="北京市", level="city")
    areas: list[Area] = []
    communities: list[Community] = []
    for n, (district, rural) in enumerate(
        (("110101", False), ("110111", False), ("110111", True), ("110116", True))
    ):
        code = f"{district}{101 + n:03d}{201 if rural else 1:03d}"
        area = Area(
            pk=100 + n,
            code=code,
            name=f"第{n}社区",
            level="community",
            city_id=city.pk,
            district_id=10 + n,
            subdistrict_id=50 + n,
            community_kind="villagers" if rural else "residents",
        )
        areas.append(area)
        communities.append(Community(code, area.name, rural, district))
    context = BulkContext(
        communities={a.code: a for a in areas}, grids={}, today=today, other_rules={}
    )

    def rows(workers: int) -> list[Any]:
        factory = ElderFactory(seed=3, communities=communities, today=today)
        out: list[Any] = []
        for batch in batches(
            factory=factory, context=context, elders=90, batch_size=20, workers=workers
        ):
            out.append(
                (
                    [_without(r, ELDER_COLUMNS, _ELDER_SKIP - {"id"}) for r in batch.elders],
                    batch.children,
                    batch.household,
                    batch.assessments,
                    [_without(r, CONTACT_COLUMNS, {"phone_cipher"}) for r in batch.contacts],
                    [_without(r, CHANGE_COLUMNS, {"at"}) for r in batch.changes],
                )
            )
        return out

    single = rows(1)
    assert sum(len(b[0]) for b in single) == 90
    assert rows(2) == single


def _without(row: tuple[Any, ...], columns: tuple[str, ...], skip: set[str]) -> tuple[Any, ...]:
    names = {"first_contact": "first_contact_id"}
    dropped = {names.get(s, s) for s in skip}
    return tuple(v for c, v in zip(columns, row, strict=True) if c not in dropped)


def test_no_delivery_leaves_a_fact_unset_that_the_bulk_path_would_need() -> None:
    """Guard for the comparison above: the people carry facts of every kind."""
    factory = ElderFactory(
        seed=SEED,
        communities=[Community("110111101201", "南关村", True, "110111")],
        today=dt.date(2026, 6, 1),
    )
    people = [factory.make(factory.identity(i)) for i in range(60)]
    census = [d.record for p in people for d in p.deliveries if d.source == "census"]
    assert any(r.children not in (UNSET, None) for r in census)
    assert any(r.household not in (UNSET, None) for r in census)
    assert any(r.first_contact not in (UNSET, None) for r in census)
    civil = [d.record for p in people for d in p.deliveries if d.source == "civil_affairs"]
    assert any(r.assessment is not UNSET for r in civil)
    assert any(r.contract is not UNSET for r in civil)


@pytest.mark.django_db
def test_indexes_are_dropped_for_the_load_and_built_again_even_when_it_fails() -> None:
    before = sorted(_plain_indexes(Elder))
    assert len(before) > 5

    with indexes_deferred([Elder]):
        assert _plain_indexes(Elder) == []
    assert sorted(_plain_indexes(Elder)) == before

    with pytest.raises(RuntimeError), indexes_deferred([Elder]):
        raise RuntimeError
    assert sorted(_plain_indexes(Elder)) == before
