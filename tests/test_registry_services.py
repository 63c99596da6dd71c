"""The registry's services: upsert by ID number, facts with sources, reclassification,
hand overrides, first contacts, life status, revealing identifiers."""

from __future__ import annotations

import datetime as dt

import pytest

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.core import crypto
from tanfang.registry.models import CapabilityAssessment, Elder, ElderChange, FirstContact
from tanfang.registry.records import AssessmentRecord, ChildRecord, ElderRecord
from tanfang.registry.services import (
    AccessDenied,
    RegistryError,
    category_override,
    elders_upsert,
    find_by_id_number,
    find_by_phone,
    first_contact_set,
    identifier_reveal,
)
from tests.factories import lonely_widow, make_elder, make_tree, make_user, parent_with_son

pytestmark = pytest.mark.django_db


def test_identifiers_are_stored_encrypted_and_found_by_blind_index() -> None:
    tree = make_tree()
    elder = lonely_widow(tree.communities[0], phone="13900001111")
    number = crypto.decrypt(elder.id_number_cipher)
    raw_row = Elder.objects.filter(pk=elder.pk).values_list("id_number_cipher", "phone_cipher")[0]
    assert number not in raw_row[0] and "13900001111" not in raw_row[1]
    assert elder.id_number_masked == number[:6] + "********" + number[-4:]
    assert elder.phone_masked == "139****1111"
    assert list(find_by_id_number(Elder.objects.all(), number.lower())) == [elder]
    assert list(find_by_phone(Elder.objects.all(), "139-0000-1111")) == [elder]


def test_classification_is_stored_with_reasons_and_focus() -> None:
    tree = make_tree()
    elder = lonely_widow(tree.communities[0])
    assert "living_alone" in elder.categories
    assert elder.category_reasons["living_alone"][0]
    assert elder.advanced_age and elder.focus
    assert "capability_level" in elder.missing_facts


def test_same_record_twice_changes_nothing() -> None:
    tree = make_tree()
    elder = parent_with_son(tree.communities[0])
    number = crypto.decrypt(elder.id_number_cipher)
    record = ElderRecord(
        id_number=number,
        name="张建国",
        spouse_status="alive",
        spouse_lives_with=True,
        children=[
            ChildRecord(
                name="张伟",
                alive=True,
                birth_year=1975,
                lives_with=False,
                same_subdistrict=True,
                can_support=True,
            )
        ],
    )
    changes_before = ElderChange.objects.count()
    result = elders_upsert(
        actor=None, records=[record], source="test", source_date=dt.date(2026, 1, 5)
    )
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1)
    assert ElderChange.objects.count() == changes_before


def test_a_later_source_updates_a_fact_and_an_older_one_does_not() -> None:
    tree = make_tree()
    elder = lonely_widow(tree.communities[0])
    number = crypto.decrypt(elder.id_number_cipher)
    later = ElderRecord(id_number=number, daily_companionship=True)
    elders_upsert(actor=None, records=[later], source="census", source_date=dt.date(2026, 3, 1))
    elder.refresh_from_db()
    assert elder.daily_companionship is True
    assert elder.fact_sources["daily_companionship"] == {"source": "census", "date": "2026-03-01"}
    change = ElderChange.objects.filter(elder=elder, source="census").get()
    assert change.changes == {"daily_companionship": [False, True]}

    older = ElderRecord(id_number=number, daily_companionship=False)
    result = elders_upsert(
        actor=None, records=[older], source="old-file", source_date=dt.date(2025, 1, 1)
    )
    elder.refresh_from_db()
    assert elder.daily_companionship is True
    assert result.unchanged == 1


def test_assessment_in_national_scheme_is_kept_and_mapped() -> None:
    tree = make_tree()
    elder = lonely_widow(
        tree.communities[0],
        assessment=AssessmentRecord(scheme="gbt42195", level=3, assessed_on=dt.date(2025, 6, 1)),
    )
    row = CapabilityAssessment.objects.get(elder=elder)
    assert (row.scheme, row.level, row.beijing_level) == ("gbt42195", 3, 1)
    assert elder.capability_level == 1
    assert "impaired" in elder.categories


def test_unknown_community_is_refused_and_nothing_written() -> None:
    make_tree()
    with pytest.raises(RegistryError):
        make_elder_in_code("110101999999")
    assert Elder.objects.count() == 0


def make_elder_in_code(code: str) -> None:
    from tests.factories import new_id_number

    birth = dt.date(1941, 1, 1)
    elders_upsert(
        actor=None,
        records=[
            ElderRecord(
                id_number=new_id_number(birth), name="赵淑珍", birth_date=birth, community_code=code
            )
        ],
        source="test",
        source_date=dt.date(2026, 1, 1),
    )


def test_override_needs_a_reason_and_is_audited() -> None:
    tree = make_tree()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    with pytest.raises(RegistryError):
        category_override(actor=worker, elder=elder, category="other", action="add", reason=" ")
    category_override(
        actor=worker, elder=elder, category="other", action="add", reason="子女长期患病，无力照料"
    )
    elder.refresh_from_db()
    assert "other" in elder.categories and "other" not in elder.computed_categories
    assert elder.category_reasons["other"] == ["manual_add", {"reason": "子女长期患病，无力照料"}]
    entry = AuditEntry.objects.get(action=AuditAction.OVERRIDE_CATEGORY)
    assert (entry.actor, entry.elder_id, entry.reason) == (
        worker,
        elder.pk,
        "子女长期患病，无力照料",
    )

    category_override(
        actor=worker, elder=elder, category="living_alone", action="remove", reason="与侄女同住"
    )
    elder.refresh_from_db()
    assert "living_alone" not in elder.categories


def test_visitor_cannot_override() -> None:
    tree = make_tree()
    visitor = make_user(Role.VISITOR, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    with pytest.raises(AccessDenied):
        category_override(actor=visitor, elder=elder, category="other", action="add", reason="x")


def test_first_contact_history_is_kept_with_exactly_one_current() -> None:
    tree = make_tree()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = parent_with_son(tree.communities[0])
    first = elder.first_contact
    assert first is not None and first.relation == "child"
    second = first_contact_set(
        actor=worker, elder=elder, name="张丽", relation="child", phone="13700137000"
    )
    assert FirstContact.objects.filter(elder=elder).count() == 2
    assert list(FirstContact.objects.filter(elder=elder, is_current=True)) == [second]
    first.refresh_from_db()
    assert first.valid_to is not None
    elder.refresh_from_db()
    assert elder.first_contact == second


def test_reveal_is_scoped_needs_a_reason_and_is_audited() -> None:
    tree = make_tree()
    mine = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    other = make_user(Role.COMMUNITY_WORKER, tree.communities[1])
    elder = lonely_widow(tree.communities[0], phone="13900002222")
    with pytest.raises(RegistryError):
        identifier_reveal(actor=mine, elder=elder, field_name="id_number", reason="")
    with pytest.raises(AccessDenied):
        identifier_reveal(actor=other, elder=elder, field_name="id_number", reason="核对身份")
    assert (
        identifier_reveal(actor=mine, elder=elder, field_name="phone", reason="电话探访")
        == "13900002222"
    )
    entry = AuditEntry.objects.get(action=AuditAction.REVEAL_IDENTIFIER)
    assert (entry.actor_username, entry.elder_id, entry.reason) == (
        mine.username,
        elder.pk,
        "电话探访",
    )
    assert entry.details == {"field": "phone"}
    assert entry.area_code == tree.communities[0].code


def test_new_elder_without_name_is_refused() -> None:
    tree = make_tree()
    with pytest.raises(RegistryError):
        make_elder(tree.communities[0], name="")
