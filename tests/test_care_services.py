"""Care actions followed to the end: steps, history, closing, escalation of overdue ones."""

from __future__ import annotations

import datetime as dt

import pytest

from tanfang.accounts.models import Role
from tanfang.audit.models import AuditAction, AuditEntry
from tanfang.care.models import CareAction, CareActionEvent
from tanfang.care.rules import CareState, can_move, default_due, next_states
from tanfang.care.services import CareError, care_action_move, care_actions_escalate
from tanfang.visits.models import ElderVisitStatus
from tests.factories import assigned_visitor, make_tree, make_user, record_visit

pytestmark = pytest.mark.django_db


def test_rules_walk_each_kind_to_a_closing_step():
    assert can_move("hazard", "to_remind", "reminded")
    assert not can_move("hazard", "to_remind", "served")
    assert not can_move("service", "to_connect", "served")
    assert next_states("benefit", "granted") == ()
    assert CareState.REMOVED in next_states("hazard", "removing")
    day = dt.date(2026, 3, 2)
    assert default_due("hazard", "gas", day) == dt.date(2026, 3, 5)
    assert default_due("hazard", "house", day) == dt.date(2026, 3, 16)
    assert default_due("benefit", "care_subsidy", day) == dt.date(2026, 4, 1)


@pytest.fixture
def gas_action():
    tree = make_tree()
    community = tree.communities[0]
    visitor, elder = assigned_visitor(community)
    worker = make_user(Role.COMMUNITY_WORKER, community)
    visit = record_visit(
        visitor,
        elder,
        sections={"safety": {"gas": {"hazard": True, "what": "灶具无熄火保护"}}},
        consent=True,
    )
    return CareAction.objects.get(visit=visit, kind="hazard"), visitor, worker


def test_a_hazard_is_reminded_then_removed_and_closed_with_its_history(gas_action):
    action, visitor, worker = gas_action
    care_action_move(actor=visitor, action=action, to="reminded", note="已提醒")
    closed = care_action_move(actor=worker, action=action, to="removed", result="已更换软管")
    assert closed.closed and closed.closed_at is not None and closed.result == "已更换软管"
    assert AuditEntry.objects.filter(
        action=AuditAction.UPDATE_RECORD, actor=worker, elder_id=action.elder_id
    ).exists()
    steps = list(
        CareActionEvent.objects.filter(action=action).values_list("from_state", "to_state", "by")
    )
    assert steps == [
        ("", "to_remind", visitor.pk),
        ("to_remind", "reminded", visitor.pk),
        ("reminded", "removed", worker.pk),
    ]


def test_an_impossible_step_is_refused_and_nothing_changes(gas_action):
    action, visitor, _ = gas_action
    with pytest.raises(CareError):
        care_action_move(actor=visitor, action=action, to="served")
    action.refresh_from_db()
    assert action.state == "to_remind" and not action.closed
    assert CareActionEvent.objects.filter(action=action).count() == 1


def test_open_actions_raise_the_elders_urgency(gas_action):
    action, _visitor, worker = gas_action
    before = ElderVisitStatus.objects.get(elder=action.elder).urgency
    care_action_move(actor=worker, action=action, to="removed")
    after = ElderVisitStatus.objects.get(elder=action.elder).urgency
    assert after < before


def test_overdue_actions_escalate_to_the_community_worker_once(gas_action):
    action, _, worker = gas_action
    later = action.due_on + dt.timedelta(days=1)
    assert care_actions_escalate(on=action.due_on) == 0
    assert care_actions_escalate(on=later) == 1
    assert care_actions_escalate(on=later) == 0
    action.refresh_from_db()
    assert action.escalated_to == worker
    assert CareActionEvent.objects.filter(action=action, event="escalated").count() == 1


def test_the_daily_command_escalates(gas_action):
    from io import StringIO

    from django.core.management import call_command

    action, _, worker = gas_action
    out = StringIO()
    later = (action.due_on + dt.timedelta(days=1)).isoformat()
    call_command("care_escalate", "--on", later, stdout=out)
    assert out.getvalue().strip() == "1 care actions escalated"
    action.refresh_from_db()
    assert action.escalated_to == worker
