"""``tanfang import KIND FILE``: import a file partners send; ``tanfang import template KIND
OUT.xlsx``: write the template of that kind.

Kinds: ``elders`` (CSV or xlsx, docs/import.md), ``areas`` (CSV, docs/areas.md), and any
kind registered later with ``tanfang.imports.base.register``. The command line imports as the
system: no area limit. Every error is printed (row, column, reason) and the exit status is 1;
nothing is written unless the whole file is valid.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.imports.base import importer_kinds, template_for, template_kinds
from tanfang.imports.services import ImportOutcome, import_file


def _date(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"--source-date: {raw!r} is not a date YYYY-MM-DD") from exc


class Command(BaseCommand):
    help = "Import a file (elders, areas, ...) or write the template of a kind."

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        languages = [code for code, _name in settings.LANGUAGES]
        for kind in importer_kinds():
            sub = kinds.add_parser(kind, help=f"import a file of {kind}")
            sub.add_argument("file", type=Path, metavar="FILE")
            sub.add_argument(
                "--source",
                default="",
                help="who the facts come from (a department, a census); default: the file name",
            )
            sub.add_argument(
                "--source-date",
                type=_date,
                default=None,
                help="the date the facts were true, YYYY-MM-DD; default: today",
            )
            sub.add_argument(
                "--lang",
                choices=languages,
                default=settings.LANGUAGE_CODE,
                help="language of the messages",
            )
            sub.add_argument(
                "--dry-run",
                action="store_true",
                help="check and count, then roll back: nothing is written",
            )
        template = kinds.add_parser("template", help="write the xlsx template of a kind")
        template.add_argument("template_kind", choices=template_kinds(), metavar="KIND")
        template.add_argument("out", type=Path, metavar="OUT.xlsx")
        template.add_argument("--lang", choices=languages, default=settings.LANGUAGE_CODE)

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(options["lang"]):
            if options["kind"] == "template":
                self._template(options["template_kind"], options["out"])
            else:
                self._import(options)

    def _template(self, kind: str, out: Path) -> None:
        with out.open("wb") as stream:
            template_for(kind)(stream)
        self.stdout.write(_("Template written to %(path)s") % {"path": out})

    def _import(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(_("no such file: %(path)s") % {"path": path})
        outcome = import_file(
            kind=options["kind"],
            path=path,
            actor=None,
            source=options["source"] or path.name,
            file_name=path.name,
            source_date=options["source_date"] or timezone.localdate(),
            via="command",
            dry_run=options["dry_run"],
            parallel=True,
        )
        if not outcome.ok:
            for error in outcome.errors:
                self.stderr.write(str(error))
            if outcome.errors_not_shown:
                self.stderr.write(
                    _("… and %(count)d more errors not shown") % {"count": outcome.errors_not_shown}
                )
            raise CommandError(
                _("%(count)d errors: nothing was imported") % {"count": outcome.error_count}
            )
        self.stdout.write(summary(outcome))


def summary(outcome: ImportOutcome) -> str:
    counts = outcome.counts
    text = _(
        "%(rows)d rows read: %(created)d created, %(updated)d updated, %(unchanged)d unchanged."
    ) % {
        "rows": counts.rows,
        "created": counts.created,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
    }
    lines = [text]
    if outcome.run.status == "dry_run":
        lines.append(_("Dry run: nothing was written."))
    if outcome.previous is not None:
        lines.append(
            _("This file was imported before, on %(date)s.")
            % {"date": timezone.localtime(outcome.previous.started_at).strftime("%Y-%m-%d %H:%M")}
        )
    return "\n".join(lines)
