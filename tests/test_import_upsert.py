"""``elders_upsert`` in batches: the same results as one by one, a fixed number of queries
whatever the batch size, children compared as a set, first contacts by the same rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tanfang.imports.synthetic import synthetic_id
from tanfang.registry.models import Child, Elder, ElderChange, FirstContact
from tanfang.registry.records import (
    AssessmentRecord,
    ChildRecord,
    ElderRecord,
    FirstContactRecord,
    HouseholdRecord,
    WillingnessRecord,
)
from tanfang.registry.services import RegistryError, elders_reclassify, elders_upsert
from tests.factories import make_tree

pytestmark = pytest.mark.django_db
ON = dt.date(2026, 1, 5)
CLASSIFIED = (
    "categories",
    "computed_categories",
    "category_bits",
    "category_reasons",
    "missing_facts",
    "advanced_age",
    "focus",
    "classified_on",
)


def record(index: int, community: Any, **facts: Any) -> ElderRecord:
    number = synthetic_id(index)[0]
    return ElderRecord(
        id_number=number, name=f"测试{index}", community_code=community.code, **facts
    )


def family(index: int, community: Any) -> ElderRecord:
    return record(
        index,
        community,
        spouse_status=("none", "alive", "deceased")[index % 3],
        spouse_lives_with=index % 3 == 1,
        relatives_same_subdistrict=index % 2 == 0,
        daily_companionship=index % 4 == 0,
        children=[
            ChildRecord(
                name=f"子{index}-{n}",
                alive=n != 2,
                birth_year=1965 + n,
                lives_with=False,
                same_subdistrict=n == 1,
                can_support=True,
            )
            for n in range(index % 3)
        ],
        household=[HouseholdRecord("spouse", 80)] if index % 3 == 1 else [],
        assessment=AssessmentRecord("beijing", index % 4, dt.date(2025, 3, 1)),
        willingness=WillingnessRecord(True, dt.date(2024, 5, 20), "李红"),
        first_contact=FirstContactRecord(f"子{index}-0", "child", "13900001234")
        if index % 3
        else FirstContactRecord("邻居", "neighbour", "13700001234"),
    )


def test_new_elders_are_classified_as_reclassify_would() -> None:
    tree = make_tree()
    elders_upsert(
        actor=None,
        records=[family(i, tree.communities[i % 8]) for i in range(24)],
        source="t",
        source_date=ON,
    )
    stored = {e.pk: [getattr(e, f) for f in CLASSIFIED] for e in Elder.objects.all()}
    elders = list(Elder.objects.prefetch_related("children", "household"))
    elders_reclassify(elders=elders)
    again = {e.pk: [getattr(e, f) for f in CLASSIFIED] for e in Elder.objects.all()}
    assert stored == again
    assert any(e.categories for e in elders)


def test_queries_do_not_grow_with_the_batch() -> None:
    tree = make_tree()

    def queries(start: int, size: int) -> int:
        records = [family(i, tree.communities[0]) for i in range(start, start + size)]
        with CaptureQueriesContext(connection) as captured:
            elders_upsert(actor=None, records=records, source="t", source_date=ON)
        return len(captured.captured_queries)

    assert queries(0, 10) == queries(100, 200)
    # Updating them (a later source) writes the changed columns with ``bulk_update``, which
    # SQLite's 999-parameter limit splits into a few statements: still not one per elder.
    records = [record(i, tree.communities[1], address="新地址") for i in range(100, 300)]
    with CaptureQueriesContext(connection) as captured:
        result = elders_upsert(actor=None, records=records, source="t2", source_date=ON)
    assert result.updated == 200 and len(captured.captured_queries) < 30


def test_children_in_another_order_are_the_same_children() -> None:
    tree = make_tree()
    kids = [ChildRecord(name="甲", birth_year=1970), ChildRecord(name="乙", birth_year=1965)]
    elders_upsert(
        actor=None,
        records=[record(1, tree.communities[0], children=kids)],
        source="t",
        source_date=ON,
    )
    result = elders_upsert(
        actor=None,
        records=[record(1, tree.communities[0], children=kids[::-1])],
        source="t",
        source_date=ON,
    )
    assert result.unchanged == 1
    assert Child.objects.count() == 2


def test_first_contact_is_replaced_with_history_and_linked_to_the_child() -> None:
    tree = make_tree()
    kids = [ChildRecord(name="张伟", birth_year=1970, alive=True)]
    elders_upsert(
        actor=None,
        records=[
            record(
                1,
                tree.communities[0],
                children=kids,
                first_contact=FirstContactRecord("张伟", "child", "13800138000"),
            )
        ],
        source="t",
        source_date=ON,
    )
    elder = Elder.objects.get()
    first = elder.first_contact
    assert first is not None and first.child == Child.objects.get()
    assert first.phone_masked == "138****8000"

    elders_upsert(
        actor=None,
        records=[
            record(
                1,
                tree.communities[0],
                first_contact=FirstContactRecord(
                    "王芳", "neighbour", "13700137000", designated_by_community=True
                ),
            )
        ],
        source="居委会",
        source_date=dt.date(2026, 2, 1),
    )
    elder.refresh_from_db()
    assert elder.first_contact is not None and elder.first_contact.name == "王芳"
    assert elder.first_contact.designated_by_community
    assert FirstContact.objects.filter(elder=elder).count() == 2
    first.refresh_from_db()
    assert not first.is_current and first.valid_to is not None
    assert elder.fact_sources["first_contact"] == {"source": "居委会", "date": "2026-02-01"}
    assert ElderChange.objects.filter(elder=elder, source="居委会").exists()


def test_records_of_one_elder_in_one_batch_are_merged() -> None:
    tree = make_tree()
    result = elders_upsert(
        actor=None,
        records=[
            record(1, tree.communities[0], address="甲"),
            record(1, tree.communities[0], phone="13800138000"),
        ],
        source="t",
        source_date=ON,
    )
    elder = Elder.objects.get()
    assert result.created == 1 and (elder.address, elder.phone_masked) == ("甲", "138****8000")


def test_unknown_grid_is_refused() -> None:
    tree = make_tree()
    with pytest.raises(RegistryError):
        elders_upsert(
            actor=None,
            records=[record(1, tree.communities[0], grid_code="110101001001999")],
            source="t",
            source_date=ON,
        )
    assert not Elder.objects.exists()


def test_gender_and_birth_date_come_from_the_id_number() -> None:
    tree = make_tree()
    elders_upsert(actor=None, records=[record(3, tree.communities[0])], source="t", source_date=ON)
    _number, birth, gender = synthetic_id(3)
    elder = Elder.objects.get()
    assert (elder.gender, elder.birth_date) == (gender, birth)
