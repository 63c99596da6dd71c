"""``tanfang import areas FILE``: the administrative tree from a CSV of codes and names.

The checks and the writing are ``areas.services.areas_import_csv`` (see docs/areas.md); this
adapter runs it inside the import's transaction and turns its errors into the common report.
It audits its own changes, so the import run adds no second entry.
"""

from __future__ import annotations

from typing import ClassVar

from tanfang.areas.services import AreaImportError, areas_import_csv
from tanfang.imports.base import Counts, ImportContext, ImportRejected, RowError, register


@register("areas")
class AreasImporter:
    kind: ClassVar[str] = "areas"
    writes_own_audit: ClassVar[bool] = True

    def validate(self, ctx: ImportContext) -> None:
        """Nothing to do apart from writing: the areas service checks the whole file first."""

    def write(self, ctx: ImportContext) -> Counts:
        try:
            result = areas_import_csv(ctx.path, actor=ctx.actor)
        except AreaImportError as exc:
            raise ImportRejected(
                RowError(error.row, error.column, str(error.message)) for error in exc.errors
            ) from exc
        rows = result.created + result.updated + result.unchanged
        ctx.rows = rows
        return Counts(
            rows=rows,
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
        )
