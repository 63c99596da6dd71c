"""``tanfang rates --period 2026-W10|2026-03 --area CODE --format json|csv``: the visit rates
of a node and of every node under it (docs/visit-rates.md).

JSON: one array of row objects. CSV: a header row, then one row per node; the exclusions are
one column per reason. ``--close`` first keeps the rates of a closed period as its snapshot
(the weekly and monthly job). Exit status 2, with the reason on standard error, for a period
that is not a week or a month or has not begun, and for an unknown area code.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from tanfang.areas.models import Area
from tanfang.core.cli_args import day_argument
from tanfang.visits.rates import (
    EXCLUSION_REASONS,
    RateError,
    RateRow,
    area_by_code,
    period_containing,
    rate_period,
    rate_snapshot_close,
    rates_for,
)

CSV_COLUMNS = (
    "area_code",
    "name",
    "level",
    "period",
    "due",
    "visited",
    "rate",
    "target",
    *(f"excluded_{reason}" for reason in EXCLUSION_REASONS),
    "basis",
)


class Command(BaseCommand):
    help = "Print the weekly or monthly visit rate of an area and of every node under it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--period",
            default="",
            help="an ISO week (2026-W10) or a month (2026-03); default: the current week",
        )
        parser.add_argument(
            "--area",
            default="",
            metavar="CODE",
            help="the code of a city, district, subdistrict or community; default: every city",
        )
        parser.add_argument("--format", choices=("json", "csv"), default="json")
        parser.add_argument(
            "--close",
            action="store_true",
            help="first keep the rates of this closed period as its snapshot (every node)",
        )
        parser.add_argument(
            "--on", type=day_argument, default=None, help="today, for tests: YYYY-MM-DD"
        )
        parser.add_argument(
            "--lang",
            choices=[code for code, _name in settings.LANGUAGES],
            default=settings.LANGUAGE_CODE,
            help="language of the messages",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with translation.override(options["lang"]):
            try:
                rows = self._rows(options)
            except RateError as exc:
                raise CommandError(str(exc), returncode=2) from exc
        self.stdout.write(render(rows, options["format"]), ending="")

    def _rows(self, options: dict[str, Any]) -> list[RateRow]:
        on = options["on"] or timezone.localdate()
        period = (
            rate_period(options["period"]) if options["period"] else period_containing(on, "week")
        )
        roots = (
            [area_by_code(options["area"])]
            if options["area"]
            else list(Area.objects.filter(parent__isnull=True, level="city").order_by("code"))
        )
        if options["close"]:
            written = rate_snapshot_close(period, on=on)
            self.stderr.write(
                _("Snapshot of %(period)s kept for %(count)d areas.")
                % {"period": period.key, "count": written}
            )
        rows: list[RateRow] = []
        for root in roots:
            rows.extend(rates_for(area=root, period=period, on=on))
        return rows


def render(rows: list[RateRow], fmt: str) -> str:
    """The rows as one JSON array, or as CSV with a header row."""
    if fmt == "json":
        return json.dumps([row.as_dict() for row in rows], ensure_ascii=False, indent=1) + "\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.as_dict()
        excluded = data.pop("excluded")
        data.update({f"excluded_{k}": excluded.get(k, 0) for k in EXCLUSION_REASONS})
        data["rate"] = "" if data["rate"] is None else f"{data['rate']:.4f}"
        writer.writerow([data[column] for column in CSV_COLUMNS])
    return buffer.getvalue()
