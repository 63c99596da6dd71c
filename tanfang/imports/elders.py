"""Importing elders from the files partners send (CSV or xlsx; docs/import.md).

Steps:

1. Validate (writes nothing). Stream every row, read it (``rows.Layout.parse_row``, in
   worker processes for a big file on the command line: ``parsing``) and, per chunk of rows,
   check against the database: the community and grid codes exist and lie in
   the importing user's area, and an elder already registered outside that area is not
   touched. Only the blind index of each ID number and its first row are kept in memory.
2. When an ID number occurs on several rows, read the records again for those rows only and
   merge them; a fact the rows state differently is an error naming both rows.
3. A row that would create an elder must give a name and a community (on some row).
4. Write (only when there was no error, inside the caller's one transaction): stream the
   records once more and pass chunks of them to ``registry.services.elders_upsert``. The
   records come back from a temporary spool file the validation pass wrote (pickled, one
   after another, deleted when the import ends), so the file is parsed only once.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, BinaryIO

from django.utils.translation import gettext as _

from tanfang.areas.models import Area, AreaLevel
from tanfang.imports.base import Counts, ImportContext, register, smallest_area_code
from tanfang.imports.parsing import Parsed, batches
from tanfang.imports.readers import open_table
from tanfang.imports.rows import Layout, merge_into
from tanfang.imports.template import write_elders_template
from tanfang.registry.models import Elder
from tanfang.registry.records import UNSET, ElderRecord
from tanfang.registry.services import elders_upsert

CHUNK = 1000


@dataclass
class _AreaCheck:
    """Checks rows against the database, a chunk at a time, remembering codes already seen."""

    ctx: ImportContext
    layout: Layout
    communities: dict[str, int | None] = field(default_factory=dict)  # code → id if allowed
    unknown: set[str] = field(default_factory=set)
    grids: dict[str, int] = field(default_factory=dict)  # code → its community's id
    existing: set[bytes] = field(default_factory=set)  # keys of ``incomplete`` elders held
    touched_communities: set[int] = field(default_factory=set)

    def check(self, chunk: list[Parsed], incomplete: dict[bytes, int]) -> None:
        if not chunk:
            return
        self._load_codes(chunk)
        digests = [parsed.digest for parsed in chunk]
        held = dict(
            Elder.objects.filter(id_number_hash__in=digests).values_list(
                "id_number_hash", "community_id"
            )
        )
        visible: set[str] = set(held)
        if self.ctx.scoped and held:
            visible = set(
                Elder.objects.visible_to(self.ctx.actor)
                .filter(id_number_hash__in=list(held))
                .values_list("id_number_hash", flat=True)
            )
        self.touched_communities.update(held.values())
        for parsed in chunk:
            if parsed.digest in held and parsed.key in incomplete:
                self.existing.add(parsed.key)
            if parsed.digest in held and parsed.digest not in visible:
                self._fail(
                    parsed.row,
                    "id_number",
                    _("this elder is registered in a community outside your area"),
                )
            self._check_place(parsed.row, parsed.community_code, parsed.grid_code)

    def _load_codes(self, chunk: list[Parsed]) -> None:
        codes = (
            {p.community_code for p in chunk if p.community_code is not UNSET}
            - self.communities.keys()
            - self.unknown
        )
        if codes:
            found = dict(
                Area.objects.filter(level=AreaLevel.COMMUNITY, code__in=codes).values_list(
                    "code", "pk"
                )
            )
            allowed = set(found.values())
            if self.ctx.scoped:
                allowed = set(
                    Area.objects.visible_to(self.ctx.actor)
                    .filter(pk__in=allowed)
                    .values_list("pk", flat=True)
                )
            self.unknown |= codes - found.keys()
            for code, pk in found.items():
                self.communities[code] = pk if pk in allowed else None
        grid_codes = {p.grid_code for p in chunk if p.grid_code is not UNSET} - self.grids.keys()
        if grid_codes:
            self.grids.update(
                Area.objects.filter(level=AreaLevel.GRID, code__in=grid_codes).values_list(
                    "code", "community_id"
                )
            )

    def _check_place(self, row: int, code: Any, grid: Any) -> None:
        community_id = None
        if code is not UNSET:
            allowed = self.communities.get(code)
            if code in self.unknown:
                self._fail(
                    row, "community_code", _("no community has the code %(code)s") % {"code": code}
                )
            elif allowed is None:
                self._fail(
                    row,
                    "community_code",
                    _("community %(code)s is outside your area") % {"code": code},
                )
            else:
                community_id = allowed
                self.touched_communities.add(allowed)
        if grid is UNSET:
            return
        if grid not in self.grids:
            self._fail(row, "grid_code", _("no grid has the code %(code)s") % {"code": grid})
        elif code is UNSET:
            self._fail(row, "grid_code", _("a grid code needs the community code on its row"))
        elif community_id is not None and self.grids[grid] != community_id:
            self._fail(row, "grid_code", _("this grid is not in the row's community"))

    def _fail(self, row: int, code: str, message: str) -> None:
        error = self.layout.error(row, code, message)
        self.ctx.errors.add(error.row, error.column, error.message, error.letter)


@register("elders", template=write_elders_template)
class EldersImporter:
    kind = "elders"

    def __init__(self) -> None:
        self.layout: Layout | None = None
        # The records read in the validation pass, pickled one after another: the write pass
        # reads them back instead of parsing the file again (an xlsx file is slow to parse).
        self.spool: BinaryIO | None = None
        self.merged: dict[bytes, ElderRecord] = {}  # only elders on several rows
        self.first_row: dict[bytes, int] = {}

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def validate(self, ctx: ImportContext) -> None:
        table = open_table(ctx.path)
        layout = Layout.read(table.header, ctx.errors)
        if layout is None:
            return
        self.layout = layout
        self.spool = tempfile.TemporaryFile(prefix="tanfang-import-")  # noqa: SIM115 (closed by close())
        check = _AreaCheck(ctx, layout)
        seen: dict[bytes, int] = {}
        duplicated: set[bytes] = set()
        incomplete: dict[bytes, int] = {}  # rows that could not create their elder alone
        chunk: list[Parsed] = []
        for batch in batches(table, layout, parallel=ctx.parallel):
            ctx.rows += batch.rows
            ctx.errors.extend(batch.errors)
            self.spool.write(batch.spool)
            for parsed in batch.parsed:
                if seen.setdefault(parsed.key, parsed.row) != parsed.row:
                    duplicated.add(parsed.key)
                if parsed.incomplete:
                    incomplete.setdefault(parsed.key, parsed.row)
                chunk.append(parsed)
                if len(chunk) >= CHUNK:
                    check.check(chunk, incomplete)
                    chunk = []
        check.check(chunk, incomplete)
        if duplicated:
            self._merge_duplicates(ctx, duplicated, seen)
        for key, row in incomplete.items():
            merged = self.merged.get(key)
            if key in check.existing or (
                merged is not None and merged.name and merged.community_code is not UNSET
            ):
                continue
            error = layout.error(
                row,
                "name",
                _(
                    "this elder is not in the registry yet: a new elder needs a name and a "
                    "community code"
                ),
            )
            ctx.errors.add(error.row, error.column, error.message, error.letter)
        ctx.area_code = smallest_area_code(check.touched_communities)

    def _spooled(self) -> Iterator[tuple[int, bytes, ElderRecord]]:
        assert self.spool is not None
        self.spool.seek(0)
        while True:
            try:
                yield pickle.load(self.spool)
            except EOFError:
                return

    def _merge_duplicates(
        self, ctx: ImportContext, duplicated: set[bytes], seen: dict[bytes, int]
    ) -> None:
        """Merge the records of elders on several rows; errors for facts they disagree on.
        Rows with errors of their own take part with the facts they could state."""
        assert self.layout is not None
        origins: dict[bytes, dict[str, int]] = {}
        for row, key, record in self._spooled():
            if key not in duplicated:
                continue
            if key not in self.merged:
                self.merged[key] = record
                self.first_row[key] = seen[key]
                origins[key] = {
                    f.name: row for f in fields(ElderRecord) if getattr(record, f.name) is not UNSET
                }
                continue
            ctx.errors.extend(merge_into(self.merged[key], record, origins[key], row, self.layout))

    def write(self, ctx: ImportContext) -> Counts:
        counts = Counts(rows=ctx.rows)
        batch: list[ElderRecord] = []
        areas: dict[str, Area] = {}

        def flush() -> None:
            if not batch:
                return
            result = elders_upsert(
                actor=ctx.actor,
                records=batch,
                source=ctx.source,
                source_date=ctx.source_date,
                validated=True,
                areas=areas,
            )
            counts.created += result.created
            counts.updated += result.updated
            counts.unchanged += result.unchanged
            batch.clear()

        for row, key, record in self._spooled():
            if key in self.merged:
                if self.first_row[key] != row:
                    continue
                record = self.merged[key]
            batch.append(record)
            if len(batch) >= CHUNK:
                flush()
        flush()
        return counts
