"""Recording and correcting visits through the service: idempotency, validation, what follows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, CareActionEvent
from tanfang.registry.models import LifeStatus, VisitorAssignment
from tanfang.visits.models import ElderVisitStatus, Visit, VisitRevision
from tanfang.visits.services import VisitError, visit_correct, visit_record
from tests.factories import (
    assigned_visitor,
    make_tree,
    make_user,
    parent_with_son,
    visit_input,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setting():
    tree = make_tree()
    community = tree.communities[0]
    visitor, elder = assigned_visitor(community, days_ago=30)
    return tree, visitor, elder


def test_a_visit_is_recorded_with_its_derived_fields_and_an_audit_entry(setting):
    _, visitor, elder = setting
    visit, created = visit_record(actor=visitor, elder=elder, data=visit_input())
    assert created
    local = timezone.localtime(visit.started_at).date()
    assert visit.local_date == local
    assert visit.week_key == f"{local.isocalendar().year}-W{local.isocalendar().week:02d}"
    assert visit.month_key == local.strftime("%Y-%m")
    assert visit.counts is True
    assert visit.community_id == elder.community_id
    assert visit.risk_level == "high"  # 86, living alone
    status = ElderVisitStatus.objects.get(elder=elder)
    assert status.last_counted_at == visit.started_at
    assert status.risk_level == "high"
    assert AuditEntry.objects.filter(
        elder_id=elder.pk, action=AuditAction.CREATE_RECORD, actor=visitor
    ).exists()


def test_the_same_submission_twice_is_one_visit(setting):
    _, visitor, elder = setting
    data = visit_input()
    first, created_first = visit_record(actor=visitor, elder=elder, data=data)
    second, created_second = visit_record(actor=visitor, elder=elder, data=data)
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert Visit.objects.filter(elder=elder).count() == 1


def test_a_submission_id_cannot_be_reused_for_another_elder(setting):
    tree, visitor, elder = setting
    other = parent_with_son(tree.communities[0])
    VisitorAssignment.objects.create(elder=other, visitor=visitor, starts_on=timezone.localdate())
    data = visit_input()
    visit_record(actor=visitor, elder=elder, data=data)
    with pytest.raises(VisitError) as caught:
        visit_record(actor=visitor, elder=other, data=data)
    assert caught.value.errors[0][0] == "client_uuid"


def test_a_not_home_visit_is_kept_but_does_not_count(setting):
    _, visitor, elder = setting
    visit, _ = visit_record(
        actor=visitor, elder=elder, data=visit_input(outcome="not_home", person_met="nobody")
    )
    assert visit.counts is False
    assert ElderVisitStatus.objects.get(elder=elder).last_counted_at is None


def test_every_error_is_reported_with_its_field(setting):
    _, visitor, elder = setting
    now = timezone.now()
    bad = visit_input(
        mode="telepathy",
        outcome="met",
        person_met="nobody",
        started_at=now + dt.timedelta(hours=2),
        ended_at=now + dt.timedelta(hours=1),
        sections={"safety": {"gas": {"hazard": "maybe"}}},
    )
    with pytest.raises(VisitError) as caught:
        visit_record(actor=visitor, elder=elder, data=bad)
    fields = {name for name, _ in caught.value.errors}
    assert {"mode", "ended_at", "person_met"} <= fields
    assert any(name.startswith("sections.safety.gas") for name in fields)
    assert not Visit.objects.exists()


def test_a_visitor_cannot_record_a_visit_for_an_elder_not_hers(setting):
    tree, visitor, _ = setting
    stranger = parent_with_son(tree.communities[0])
    with pytest.raises(VisitError):
        visit_record(actor=visitor, elder=stranger, data=visit_input())
    assert not Visit.objects.exists()


def test_deceased_outcome_updates_life_status_and_the_elder_is_no_longer_due(setting):
    _, visitor, elder = setting
    visit_record(
        actor=visitor, elder=elder, data=visit_input(outcome="deceased", person_met="family")
    )
    elder.refresh_from_db()
    assert elder.life_status == LifeStatus.DECEASED
    status = ElderVisitStatus.objects.get(elder=elder)
    assert status.excluded == "deceased"
    assert status.next_due_on is None


def test_consented_findings_open_care_actions_once(setting):
    _, visitor, elder = setting
    sections = {
        "safety": {"gas": {"hazard": True, "what": "软管老化"}},
        "needs": {"kinds": ["rehabilitation_nursing"]},
    }
    visit, _ = visit_record(
        actor=visitor, elder=elder, data=visit_input(sections=sections, consent=True)
    )
    actions = {(a.kind, a.subject): a for a in CareAction.objects.filter(visit=visit)}
    assert ("hazard", "gas") in actions
    assert ("service", "rehabilitation_nursing") in actions
    gas = actions[("hazard", "gas")]
    assert gas.owner == visitor
    assert gas.detail == "软管老化"
    assert gas.due_on == visit.local_date + dt.timedelta(days=3)
    assert CareActionEvent.objects.filter(action=gas, event="opened").count() == 1
    # A correction of the same record adds no second copy.
    visit_correct(actor=visitor, visit=visit, changes={"notes": "复查"})
    assert CareAction.objects.filter(visit=visit, kind="hazard", subject="gas").count() == 1


def test_no_consent_no_care_actions(setting):
    _, visitor, elder = setting
    sections = {"safety": {"gas": {"hazard": True, "what": "漏气"}}}
    visit, _ = visit_record(actor=visitor, elder=elder, data=visit_input(sections=sections))
    assert not CareAction.objects.filter(visit=visit).exists()


def test_the_author_corrects_within_a_day_and_every_change_is_kept(setting):
    _, visitor, elder = setting
    visit, _ = visit_record(actor=visitor, elder=elder, data=visit_input(mode="phone"))
    corrected = visit_correct(actor=visitor, visit=visit, changes={"mode": "in_home"})
    assert corrected.mode == "in_home"
    assert corrected.revision == 2
    revision = VisitRevision.objects.get(visit=visit)
    assert revision.changes == {"mode": ["phone", "in_home"]}
    assert revision.by == visitor


def test_only_the_author_and_only_for_24_hours(setting):
    tree, visitor, elder = setting
    visit, _ = visit_record(actor=visitor, elder=elder, data=visit_input())
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    with pytest.raises(VisitError):
        visit_correct(actor=worker, visit=visit, changes={"notes": "x"})
    Visit.objects.filter(pk=visit.pk).update(locked_after=timezone.now() - dt.timedelta(seconds=1))
    visit.refresh_from_db()
    with pytest.raises(VisitError):
        visit_correct(actor=visitor, visit=visit, changes={"notes": "x"})
    assert not VisitRevision.objects.exists()


def test_an_import_without_actor_records_for_any_elder(setting):
    _, _, elder = setting
    visit, created = visit_record(
        actor=None, elder=elder, data=visit_input(visitor_name="驿站 王"), source="import"
    )
    assert created and visit.visitor is None and visit.visitor_name == "驿站 王"
