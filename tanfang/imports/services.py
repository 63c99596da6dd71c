"""Running an import: the one entry point of the command line and the upload page.

``import_file`` records the run, has the importer of the kind check the whole file, and only
when it found no error lets it write, inside one transaction: a failure anywhere leaves
nothing half-written. The run's outcome and an audit entry are written in that same
transaction (or after it, for a rejected file, a dry run or a crash).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from tanfang.audit.models import AuditAction
from tanfang.audit.services import audit_record
from tanfang.imports.base import (
    Counts,
    ImportContext,
    ImportRejected,
    RowError,
    importer_for,
)
from tanfang.imports.models import ImportRun, ImportStatus
from tanfang.imports.readers import TableError

SOURCE_MAX = 64
REPORTED_ON_RUN = 100  # errors kept on the ImportRun row


@dataclass
class ImportOutcome:
    run: ImportRun
    counts: Counts
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    previous: ImportRun | None = None  # an earlier successful import of the same file

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def errors_not_shown(self) -> int:
        return self.error_count - len(self.errors)


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def import_file(
    *,
    kind: str,
    path: Path,
    actor: Any,
    source: str,
    source_date: dt.date,
    file_name: str = "",
    via: str = "command",
    dry_run: bool = False,
    parallel: bool = False,
) -> ImportOutcome:
    """Import ``path`` as ``kind``: validate every row, then write all or nothing.

    ``actor`` None is the system (the command line), which may import anywhere; a user may
    import only inside her area. ``dry_run`` writes and rolls back, so the counts are real.
    ``parallel``: the file may be read in worker processes (a command, never a web server).
    """
    importer = importer_for(kind)
    sha256, size = file_digest(path)
    user = actor if getattr(actor, "pk", None) else None
    run = ImportRun.objects.create(
        kind=kind,
        via=via,
        by=user,
        by_name=getattr(actor, "username", "") or "system",
        file_name=(file_name or path.name)[:255],
        file_sha256=sha256,
        file_size=size,
        source=source[:SOURCE_MAX],
        source_date=source_date,
    )
    previous = (
        ImportRun.objects.filter(kind=kind, file_sha256=sha256, status=ImportStatus.SUCCEEDED)
        .exclude(pk=run.pk)
        .first()
    )
    ctx = ImportContext(
        path=path,
        file_name=run.file_name,
        actor=actor,
        source=run.source,
        source_date=source_date,
        dry_run=dry_run,
        parallel=parallel,
    )
    outcome = ImportOutcome(run=run, counts=Counts(), previous=previous)
    try:
        try:
            importer.validate(ctx)
        except TableError as exc:
            ctx.errors.add(0, "", str(exc))
        if ctx.errors:
            return _finish(outcome, ctx, ImportStatus.REJECTED, importer)
        with transaction.atomic():
            outcome.counts = importer.write(ctx)
            if dry_run:
                transaction.set_rollback(True)
            else:
                _finish(outcome, ctx, ImportStatus.SUCCEEDED, importer)
        if dry_run:
            _finish(outcome, ctx, ImportStatus.DRY_RUN, importer)
    except ImportRejected as exc:
        ctx.errors.extend(exc.errors)
        _finish(outcome, ctx, ImportStatus.REJECTED, importer)
    except BaseException:
        run.status = ImportStatus.FAILED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])
        raise
    finally:
        close = getattr(importer, "close", None)
        if close is not None:
            close()
    return outcome


def _finish(
    outcome: ImportOutcome, ctx: ImportContext, status: str, importer: Any
) -> ImportOutcome:
    run, counts = outcome.run, outcome.counts
    outcome.errors = ctx.errors.sorted()
    outcome.error_count = ctx.errors.count
    run.status = status
    run.finished_at = timezone.now()
    run.rows = counts.rows or ctx.rows
    run.created, run.updated, run.unchanged = counts.created, counts.updated, counts.unchanged
    run.error_count = ctx.errors.count
    run.errors = [error.as_dict() for error in outcome.errors[:REPORTED_ON_RUN]]
    run.save()
    if not getattr(importer, "writes_own_audit", False):
        audit_record(
            actor=ctx.actor,
            action=AuditAction.IMPORT,
            area_code=ctx.area_code,
            details={
                "kind": run.kind,
                "run": run.pk,
                "status": status,
                "file": run.file_name,
                "sha256": run.file_sha256,
                "source": run.source,
                "source_date": run.source_date.isoformat() if run.source_date else None,
                "rows": run.rows,
                "created": run.created,
                "updated": run.updated,
                "unchanged": run.unchanged,
                "errors": run.error_count,
            },
        )
    return outcome
