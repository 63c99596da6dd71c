"""``tanfang readings``: the reading store from the command line.

- ``import FILE --partner CODE [--utility U]``: a CSV or Parquet file of readings
  (docs/monitoring-ingest.md); the same file again is the same batch. Prints what was stored
  and each reading set aside (row, column, reason), at most ``--show`` of them.
- ``compact [--day D | --before D]``: merge each day's files into one, deduplicated.
- ``hourly --day D [--to D]``: build the hourly aggregates of those UTC days.
- ``retain [--now ISO]``: apply the keeping times (raw readings, then hourly aggregates).
- ``report [--partner CODE] [--days N]``: per partner, the batches and the reasons readings
  were set aside.

Exit status 1 when a file cannot be read at all (bad readings in it are not an error).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.monitoring import store
from tanfang.monitoring.checks import IngestError
from tanfang.monitoring.files import FileError, file_format, ingest_file
from tanfang.monitoring.ingest import batch_report, row_message
from tanfang.monitoring.models import DataPartner, IngestBatch


def _day(raw: str) -> dt.date:
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"{raw!r} is not a date YYYY-MM-DD") from exc


def _moment(raw: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"{raw!r} is not an ISO 8601 moment") from exc
    if moment.tzinfo is None:
        raise CommandError(f"{raw!r} has no UTC offset (e.g. 2024-05-01T09:00+08:00)")
    return moment


class Command(BaseCommand):
    help = "Import readings files and look after the reading store."

    def add_arguments(self, parser: CommandParser) -> None:
        languages = [code for code, _name in settings.LANGUAGES]
        parser.add_argument(
            "--lang", choices=languages, default=settings.LANGUAGE_CODE, help="message language"
        )
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        imp = sub.add_parser("import", help="import a CSV or Parquet file of readings")
        imp.add_argument("file", type=Path, metavar="FILE")
        imp.add_argument("--partner", required=True, help="the partner's code")
        imp.add_argument(
            "--utility",
            choices=["water", "electricity", "gas"],
            help="which of the partner's column mappings applies",
        )
        imp.add_argument("--show", type=int, default=20, help="readings set aside to list")
        compact = sub.add_parser("compact", help="merge each day's files into one")
        compact.add_argument("--day", type=_day, help="only this UTC day")
        compact.add_argument("--before", type=_day, help="every day before this one")
        hourly = sub.add_parser("hourly", help="build hourly aggregates")
        hourly.add_argument("--day", type=_day, required=True, help="UTC day")
        hourly.add_argument("--to", type=_day, help="last UTC day (default: --day)")
        retain = sub.add_parser("retain", help="apply the keeping times")
        retain.add_argument("--now", type=_moment, help="default: now")
        report = sub.add_parser("report", help="batches and reasons per partner")
        report.add_argument("--partner", help="one partner's code")
        report.add_argument("--days", type=int, default=30, help="batches of the last N days")

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(options["lang"]):
            getattr(self, "_" + options["action"])(options)

    def _import(self, options: dict[str, Any]) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(_("no such file: %(path)s") % {"path": path})
        partner = _partner(options["partner"])
        try:
            fmt = file_format(partner, options["utility"])
            batch = ingest_file(partner, path, utility=options["utility"])
        except (FileError, IngestError) as exc:
            raise CommandError(str(exc)) from exc
        report = batch_report(batch, limit=max(0, options["show"]))
        if report["repeated"]:
            self.stdout.write(
                _("This file was imported before as batch %(batch)d on %(date)s: nothing new.")
                % {
                    "batch": batch.pk,
                    "date": timezone.localtime(batch.received_at).strftime("%Y-%m-%d %H:%M"),
                }
            )
        self.stdout.write(_summary(report))
        for item in report["set_aside"]:
            column = fmt.column_of(item["field"])
            self.stdout.write(
                "  "
                + row_message(item["row"], item["reason"], item["detail"], column)
                + f"  [{item['meter_id']} | {item['ts']} | {item['value']}]"
            )
        hidden = batch.quarantined - len(report["set_aside"])
        if hidden > 0:
            self.stdout.write(
                _("… and %(count)d more set aside (all are kept in %(path)s)")
                % {"count": hidden, "path": store.quarantine_path(partner.code, batch.pk)}
            )

    def _compact(self, options: dict[str, Any]) -> None:
        days = store.stored_days()
        if options["day"]:
            days = [d for d in days if d == options["day"]]
        elif options["before"]:
            days = [d for d in days if d < options["before"]]
        else:
            today = dt.datetime.now(dt.UTC).date()
            days = [d for d in days if d < today]
        for day in days:
            done = store.readings_compact(day)
            self.stdout.write(
                f"{day}: {done.files} files, {done.rows_in} -> {done.rows_out} readings"
            )

    def _hourly(self, options: dict[str, Any]) -> None:
        day: dt.date = options["day"]
        last: dt.date = options["to"] or day
        meters = store.meters_from_db()
        while day <= last:
            built = store.hourly_build(day, meters=meters)
            self.stdout.write(f"{day}: {built.meters} meters, {built.hours} hours -> {built.path}")
            day += dt.timedelta(days=1)

    def _retain(self, options: dict[str, Any]) -> None:
        done = store.retention_apply(options["now"] or timezone.now())
        self.stdout.write(
            _(
                "Raw days deleted: %(raw)d (hourly built first: %(built)d); hourly days "
                "deleted: %(hourly)d; quarantine files deleted: %(quarantine)d."
            )
            % {
                "raw": len(done.raw_days_deleted),
                "built": len(done.hourly_built),
                "hourly": len(done.hourly_days_deleted),
                "quarantine": done.quarantine_files_deleted,
            }
        )

    def _report(self, options: dict[str, Any]) -> None:
        since = timezone.now() - dt.timedelta(days=options["days"])
        partners = DataPartner.objects.order_by("code")
        if options["partner"]:
            partners = partners.filter(code=options["partner"])
            if not partners.exists():
                raise CommandError(_("no partner %(code)s") % {"code": options["partner"]})
        for partner in partners:
            batches = list(IngestBatch.objects.filter(partner=partner, received_at__gte=since))
            reasons: Counter[str] = Counter()
            for batch in batches:
                reasons.update(batch.reasons)
            self.stdout.write(
                _(
                    "%(partner)s (%(code)s): %(batches)d batches, %(rows)d readings, %(stored)d "
                    "stored, %(duplicates)d duplicates, %(quarantined)d set aside"
                )
                % {
                    "partner": partner.name,
                    "code": partner.code,
                    "batches": len(batches),
                    "rows": sum(b.rows for b in batches),
                    "stored": sum(b.stored for b in batches),
                    "duplicates": sum(b.duplicates for b in batches),
                    "quarantined": sum(b.quarantined for b in batches),
                }
            )
            for reason, count in reasons.most_common():
                self.stdout.write(f"  {reason}: {count}")
            for batch in batches:
                self.stdout.write(
                    f"  #{batch.pk} {timezone.localtime(batch.received_at):%Y-%m-%d %H:%M} "
                    f"{batch.source} {batch.name or '-'}: {batch.rows} / {batch.stored} / "
                    f"{batch.duplicates} / {batch.quarantined}"
                )


def _partner(code: str) -> DataPartner:
    partner = DataPartner.objects.filter(code=code).first()
    if partner is None:
        raise CommandError(_("no partner %(code)s") % {"code": code})
    return partner


def _summary(report: dict[str, Any]) -> str:
    text = (
        _(
            "Batch %(batch)d: %(rows)d readings, %(stored)d stored, %(duplicates)d duplicates, "
            "%(quarantined)d set aside."
        )
        % report
    )
    if report["reasons"]:
        text += " " + ", ".join(f"{k}: {v}" for k, v in sorted(report["reasons"].items()))
    return text
