"""The audit log is append-only, in the model and in the database itself."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from tanfang.accounts.models import Role
from tanfang.audit.models import AppendOnlyError, AuditAction, AuditEntry
from tanfang.audit.services import audit_record
from tests.factories import lonely_widow, make_tree, make_user

pytestmark = pytest.mark.django_db


def _entry() -> AuditEntry:
    tree = make_tree()
    worker = make_user(Role.COMMUNITY_WORKER, tree.communities[0])
    elder = lonely_widow(tree.communities[0])
    return audit_record(actor=worker, action=AuditAction.VIEW_RECORD, elder=elder)


def test_the_model_refuses_change_and_deletion() -> None:
    entry = _entry()
    entry.reason = "tampered"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()


def test_the_database_refuses_update_and_delete_behind_the_models_back() -> None:
    entry = _entry()
    for sql in (
        "UPDATE audit_auditentry SET reason = 'x' WHERE id = %s",
        "DELETE FROM audit_auditentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [entry.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(reason="x")
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""
